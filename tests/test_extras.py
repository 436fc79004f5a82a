"""The README's extras table is the distribution's metadata: each extra brings exactly the packages the
table names, the base install is numpy alone, and the `cli` pin keeps pydantic out."""

from __future__ import annotations

import importlib.metadata
import re

from helpers import ROOT

DEVELOPMENT = {"test", "lint"}  # the repository's own extras (make install), not a user's


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def metadata_extras() -> tuple[set[str], dict[str, set[str]]]:
    base: set[str] = set()
    extras: dict[str, set[str]] = {}
    for requirement in importlib.metadata.requires("digitkit") or []:
        marker = re.search(r'extra == "([^"]+)"', requirement)
        if marker is None:
            base.add(_name(requirement))
        else:
            extras.setdefault(marker.group(1), set()).add(_name(requirement))
    return base, extras


def readme_extras() -> dict[str, set[str]]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| extra | brings | for |") :].split("\n\n")[0].splitlines()[2:]
    rows = {}
    for row in table:
        extra, brings = (cell.strip() for cell in row.strip("|").split("|")[:2])
        names = re.sub(r"\([^)]*\)", "", brings)  # "(below 0.29, ...)" notes aside
        rows[extra.strip("`")] = {n.strip().lower() for n in names.split(",") if n.strip()}
    return rows


def test_the_extras_table_is_the_metadata():
    base, extras = metadata_extras()
    assert base == {"numpy"}  # "the base install is numpy alone"
    table = readme_extras()
    assert set(table) == set(extras) - DEVELOPMENT, (sorted(table), sorted(extras))
    for extra, names in table.items():
        assert names == extras[extra], (extra, names, extras[extra])


def test_the_cli_pin_keeps_pydantic_out():
    """typer below 0.29 (typer 0.29 requires pydantic, whose compiled core has no wheel for every
    device): the pin is in the metadata, and the installed typer requires no pydantic."""
    pins = [
        r for r in importlib.metadata.requires("digitkit") or [] if r.startswith("typer") and '"cli"' in r
    ]
    assert pins and all("<0.29" in pin for pin in pins), pins
    typer = importlib.metadata.distribution("typer")
    assert tuple(int(p) for p in typer.version.split(".")[:2]) < (0, 29), typer.version
    assert not [r for r in typer.requires or [] if _name(r) == "pydantic"], typer.requires
