"""verify --report: the page of a passing export and of a sabotaged one, read as HTML and in a real
headless Chromium; self-contained; written whole or not at all; curves for 1 to 50 epochs."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import time
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, console_errors, screenshot, unavailable
from test_verify import copy_export, corrupt_tflite_weights, rescale_onnx_scales

from digitkit.runtime.errors import InputError
from digitkit.runtime.files import STAGING_PREFIX
from digitkit.runtime.manifest import read_manifest
from digitkit.toolkit.report import SUMMARY, write_report
from digitkit.toolkit.report.charts import epoch_ticks, training_charts
from digitkit.toolkit.verification import Gates, verify_manifest

pytestmark = pytest.mark.slow
BACKENDS = ("litert", "onnxruntime")  # one per format: 8 artifacts, 8 pairs; the numpy rows are verify's
SABOTAGED = ("digit_mlp_int8.tflite", "digit_mlp_int8.onnx")
KEPT_HEIGHT = 1500  # the README's screenshots: verdict, table and the first disagreements


class Page(HTMLParser):
    """What a page refers to, its ids, and the text of each element with a given class."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.references: list[str] = []
        self.ids: set[str] = set()
        self.images: list[tuple[str, str]] = []  # (src, alt)
        self.tags: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href"):
            if attributes.get(name):
                self.references.append(attributes[name] or "")
        if attributes.get("id"):
            self.ids.add(attributes["id"] or "")
        if tag == "img":
            self.images.append((attributes.get("src") or "", attributes.get("alt") or ""))


@pytest.fixture(scope="module")
def passing(export_dir, mnist_test):
    x_test, y_test = mnist_test
    manifest = read_manifest(export_dir)
    return manifest, verify_manifest(manifest, x_test, y_test, Gates(), backends=BACKENDS)


@pytest.fixture(scope="module")
def sabotaged(export_dir, mnist_test, tmp_path_factory):
    """The int8 TFLite model with noise for weights, the int8 ONNX model with wrong scales (the
    sabotage of tests/test_verify.py), and the fp32 TFLite model intact."""
    directory = copy_export(export_dir, tmp_path_factory.mktemp("sabotaged"))
    corrupt_tflite_weights(directory / SABOTAGED[0])
    rescale_onnx_scales(directory / SABOTAGED[1])
    manifest = read_manifest(directory)
    x_test, y_test = mnist_test
    files = [*SABOTAGED, "digit_mlp_fp32.tflite"]
    return manifest, verify_manifest(manifest, x_test, y_test, Gates(), backends=BACKENDS, files=files)


def render(verified, mnist_test, target: Path, **options) -> Path:
    manifest, results = verified
    x_test, y_test = mnist_test
    return write_report(target, manifest, results, x_test, y_test, Gates(), **options)


def verdict_text(page: str) -> str:
    match = re.search(r"<section class='verdict (pass|fail)' id='verdict'>(.*?)</section>", page, re.S)
    assert match, "no verdict section"
    return match.group(1) + " " + html.unescape(re.sub(r"<[^>]+>", " ", match.group(2)))


def table_rows(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr class='(pass|fail)'>(.*?)</tr>", body, re.S)


def test_passing_report_says_pass_with_gates_host_and_manifest(passing, mnist_test, tmp_path, figures):
    manifest, results = passing
    assert len({r.file for r in results}) == 8 and all(r.passed for r in results)
    steps: list[tuple[int, int, str]] = []
    started = time.perf_counter()
    page_path = render(passing, mnist_test, tmp_path / "report", progress=lambda *s: steps.append(s))
    seconds = time.perf_counter() - started
    figures.append(f"report: {len(results)} pairs of 8 artifacts rendered in {seconds:.3f} s")
    page = page_path.read_text()
    assert verdict_text(page).split()[0] == "pass"
    assert "PASS" in verdict_text(page) and "8 of 8 artifact/backend pairs pass" in verdict_text(page)
    for gate in (
        "accuracy ≥ 95.00%",
        "at most 0.50 pp below the Keras model",
        "agreement with the Keras model ≥ 99.00%",
    ):
        assert gate in page
    import platform

    assert platform.machine() in page and f"Python {platform.python_version()}" in page
    assert str(manifest.path) in page and manifest.created in page
    for name in ("litert", "onnxruntime", "numpy"):
        assert re.search(rf"{name} \d+\.\d+", page), name  # backend versions
    rows = table_rows(page)
    assert [kind for kind, _ in rows] == ["pass"] * 8
    assert "'badge fail'" not in page
    assert steps[0][:2] == (0, steps[0][1]) and steps[-1] == (steps[0][1], steps[0][1], "done")
    assert [s[0] for s in steps] == sorted(s[0] for s in steps)
    summary = (tmp_path / "report" / SUMMARY).read_text()
    assert summary.startswith("# digitkit verify: PASS, 8 of 8 artifact/backend pairs pass")
    assert summary.count("| PASS |") == 8


def test_sabotaged_report_shows_the_failed_gates_first_and_the_disagreements(sabotaged, mnist_test, tmp_path):
    manifest, results = sabotaged
    page = render(sabotaged, mnist_test, tmp_path / "report").read_text()
    verdict = verdict_text(page)
    assert verdict.split()[0] == "fail" and "FAIL" in verdict
    assert "1 of 3 artifact/backend pairs pass" in verdict
    failed = {r.file: r for r in results if not r.passed}
    assert set(failed) == set(SABOTAGED)
    for result in failed.values():  # each failed gate, in the verdict and in its row
        for failure in result.failures:
            assert failure.message in verdict
    assert "accuracy" in [f.kind for f in failed[SABOTAGED[0]].failures]
    rows = table_rows(page)
    assert [kind for kind, _ in rows] == ["fail", "fail", "pass"]  # failed first
    assert all("class='bad'" in row for kind, row in rows if kind == "fail")
    assert "digit_mlp_fp32.tflite" in rows[2][1]
    # the disagreements: test images with the Keras model's answer and the artifact's, both probabilities
    tflite = page.split(f"id='artifact-{SABOTAGED[0].replace('.', '-')}'", 1)[1].split("<section", 1)[0]
    cards = re.findall(r"<figure class='digit'>(.*?)</figure>", tflite, re.S)
    assert len(cards) == 60
    reference = manifest.reference_predictions()
    probabilities = manifest.reference_probabilities()
    y_test = mnist_test[1]
    index, keras, answer = (
        int(v)
        for v in re.search(
            r"#(\d+)</span>.*?Keras <span[^>]*>(\d)\b.*?int8 <span[^>]*>(\d)", cards[0], re.S
        ).groups()
    )
    row = next(r for r in results if r.file == SABOTAGED[0])
    assert keras == reference[index] == y_test[index] and answer == row.predictions[index] != keras
    assert f"{keras} ({probabilities[index, keras]:.2f})" in cards[0]
    assert f"{answer} ({row.probabilities[index, answer]:.2f})" in cards[0]
    summary = (tmp_path / "report" / SUMMARY).read_text()
    assert summary.startswith("# digitkit verify: FAIL, 1 of 3")
    assert summary.count("| **FAIL** |") == 2 and "Failed gates:" in summary


def test_reports_are_self_contained(passing, sabotaged, mnist_test, tmp_path):
    """Nothing from the internet; every file and anchor referred to exists; the digits are the test
    images themselves."""
    from PIL import Image

    x_test, _ = mnist_test
    for name, verified in (("pass", passing), ("fail", sabotaged)):
        page_path = render(verified, mnist_test, tmp_path / name)
        text = page_path.read_text()
        parsed = Page(text)
        assert "script" not in parsed.tags and "link" not in parsed.tags and "url(" not in text
        links = [r for r in parsed.references if not r.startswith("data:image/png;base64,")]
        assert not [r for r in links if re.match(r"[a-z]+:|//", r)], links  # no scheme, no host
        for reference in parsed.references:
            if reference.startswith("#"):
                assert reference[1:] in parsed.ids, reference
            elif not reference.startswith("data:"):
                assert (page_path.parent / reference).is_file(), reference
        assert sorted(p.name for p in page_path.parent.iterdir()) == ["index.html", "summary.md"]
        for src, alt in parsed.images[:20]:
            index = int(re.search(r"test image (\d+)", alt).group(1))
            data = base64.b64decode(src.split(",", 1)[1])
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), x_test[index])
        assert parsed.images or name == "pass"


@pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "")
def test_reports_in_headless_chromium(passing, sabotaged, mnist_test, tmp_path, figures):
    """Both pages load without a console error, the verdict is coloured, and a phone-wide window
    needs no sideways scrolling. DIGITKIT_REPORT_SCREENSHOTS=DIR keeps the laptop's first screen
    (docs/report-pass.png and docs/report-fail.png come from there)."""
    keep = os.environ.get("DIGITKIT_REPORT_SCREENSHOTS")
    colours = {"pass": (19, 115, 51), "fail": (179, 38, 30)}
    for name, verified in (("pass", passing), ("fail", sabotaged)):
        page = render(verified, mnist_test, tmp_path / name)
        for width, height in ((1280, 1000), (390, 844)):  # a laptop, a phone
            with chromium(width, height, mobile=width < 500) as driver:
                driver.get(page.as_uri())
                assert console_errors(driver) == []
                verdict = driver.find_element("id", "verdict")
                word = verdict.text.split()[0]
                assert word == name.upper()
                colour = driver.execute_script("return getComputedStyle(arguments[0]).color", verdict)
                assert tuple(int(v) for v in re.findall(r"\d+", colour)[:3]) == colours[name]
                scroll, client = driver.execute_script(
                    "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
                )
                assert scroll <= client, f"{name} at {width} px scrolls sideways ({scroll} > {client})"
                # README: on a phone the results table turns into one card (a grid box) per pair
                displays = driver.execute_script(
                    "return [...document.querySelectorAll('table.results tbody tr')]"
                    ".map(r => getComputedStyle(r).display)"
                )
                assert displays and set(displays) == ({"grid"} if width < 500 else {"table-row"}), displays
                if keep and width > 500:  # the top of the page, for the README
                    driver.set_window_size(width, KEPT_HEIGHT)
                    screenshot(driver, Path(keep) / f"report-{name}.png", full_page=False)
                shot = screenshot(driver, tmp_path / f"report-{name}-{width}.png", full_page=width > 500)
                assert shot.stat().st_size > 10_000
                assert console_errors(driver) == []
        figures.append(f"report: {name} page screenshots in {tmp_path}")


def test_interrupted_report_leaves_no_half_written_report(passing, mnist_test, tmp_path):
    def interrupt_at(step: int):
        def progress(done: int, total: int, what: str) -> None:
            if done == step:
                raise KeyboardInterrupt

        return progress

    target = tmp_path / "report"
    renaming = 8 + 3  # reference, 8 artifacts, page, writing: then the staged files are renamed
    for step in (1, renaming):  # while building, and with every file staged
        with pytest.raises(KeyboardInterrupt):
            render(passing, mnist_test, target, progress=interrupt_at(step))
        assert not target.exists() and list(tmp_path.iterdir()) == []
    render(passing, mnist_test, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        render(passing, mnist_test, target, progress=interrupt_at(renaming))
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # the earlier report intact
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]
    render(passing, mnist_test, target)  # an earlier report is replaced whole
    assert sorted(p.name for p in target.iterdir()) == ["index.html", "summary.md"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="holds files a report does not write"):
        render(passing, mnist_test, mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("epochs", [1, 2, 7, 13, 50])
def test_training_curves_read_for_1_to_50_epochs(passing, mnist_test, tmp_path, epochs):
    manifest, results = passing
    history = tuple(
        {
            "epoch": e,
            "loss": 0.3 / e,
            "accuracy": 0.9 + 0.08 * (1 - 1 / e),
            "val_loss": 0.12 + 0.01 / e,
            "val_accuracy": 0.96 + 0.02 * (1 - 1 / e),
        }
        for e in range(1, epochs + 1)
    )
    source = manifest.source_model
    training = replace(source.training, epochs=history)
    changed = replace(manifest, source_model=replace(source, training=training))
    page = render((changed, results), mnist_test, tmp_path / "report").read_text()
    section = page.split("<h3>Training</h3>", 1)[1]
    if epochs == 1:  # one point is no curve: a table instead
        assert "<svg" not in section and "<table class='small'>" in section
        return
    ticks = epoch_ticks(epochs)
    assert ticks == sorted(set(ticks)) and ticks[0] >= 1 and ticks[-1] <= epochs and 2 <= len(ticks) <= 9
    charts = training_charts(history)
    assert charts.count("<svg") == 2 and section.count("<svg") == 2
    labels = re.findall(r'text-anchor="middle">(\d+)</text>', charts)
    assert [int(t) for t in labels] == ticks * 2  # integer epochs only, on both charts
    for points in re.findall(r'<polyline points="([^"]+)"', charts):
        assert len(points.split()) == epochs  # a line through every epoch, never a lone dot
    assert ("<circle" in charts) == (epochs <= 20)
