"""The report in Markdown, for a CI log or a pull request: verdict, gates, the table, each failure."""

from __future__ import annotations

from .cells import COLUMNS, gates_text, row_cells
from .content import Report


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_summary(report: Report, page_name: str) -> str:
    host = report.host
    versions = ", ".join(f"{name} {version}" for name, version in host.versions.items())
    lines = [
        f"# digitkit verify: {report.verdict}, {report.passed_count} of {len(report.results)} "
        "artifact/backend pairs pass",
        "",
        f"- Gates: {'; '.join(gates_text(report.gates, report.reference_accuracy))}",
        f"- Verified {report.verified_at} on {host.machine} ({host.system}), Python {host.python}; {versions}",
        f"- Manifest: `{report.manifest.name}`, exported {report.manifest.created}",
        f"- Details, with the images on which each artifact disagrees with Keras: [{page_name}]({page_name})",
        "",
        "| | " + " | ".join(_cell(c) for c in COLUMNS) + " |",
        "|---|" + "|".join("---" if i < 3 else "--:" for i in range(len(COLUMNS))) + "|",
    ]
    for result in report.results:
        cells = row_cells(result, report.size_of(result))
        verdict = "PASS" if result.passed else "**FAIL**"
        lines.append(f"| {verdict} | " + " | ".join(_cell(cells[c]) for c in COLUMNS) + " |")
    failed = [r for r in report.results if r.failures]
    if failed:
        lines += ["", "Failed gates:", ""]
        lines += [f"- {r.file} on {r.backend}: {'; '.join(f.message for f in r.failures)}" for r in failed]
    return "\n".join(lines) + "\n"
