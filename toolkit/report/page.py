"""The report as one self-contained HTML page: the verdict first, then the table (failures first and
red), then each artifact's disagreements with the Keras model, then the reference itself.

No script, no web font, nothing fetched: the digits are inline PNGs, the curves inline SVG, the
matrices tables. A narrow screen gets the table as one card per row.
"""

from __future__ import annotations

import html
import math
from typing import Optional

import numpy as np

from .cells import COLUMNS, failed_columns, gates_text, row_cells, size_text
from .charts import training_charts
from .content import Answers, ArtifactSection, Disagreement, Report, pair_id
from .images import data_uri
from .matrices import difference_table, reference_table

VISIBLE_DISAGREEMENTS = 12  # the rest of those shown open on a click
PASSED = "<p>Every artifact keeps the Keras model's answers within the gates on every backend.</p>"

CSS = """
:root{--pass:#137333;--pass-bg:#e6f4ea;--fail:#b3261e;--fail-bg:#fce8e6;--ink:#1f2328;--muted:#57606a;
--line:#d0d7de;--soft:#f6f8fa;--better:#d1f0da;--worse:#fbd3cf}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink)}
main{max-width:1120px;margin:0 auto;padding:16px}
h1{font-size:1.15rem;margin:0 0 8px;color:var(--muted);font-weight:600}
h2{font-size:1.25rem;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:1.05rem;margin:20px 0 6px}
a{color:#0969da}
.verdict{border-radius:10px;padding:16px 20px;margin:8px 0 12px;border:2px solid}
.verdict.pass{background:var(--pass-bg);border-color:var(--pass);color:var(--pass)}
.verdict.fail{background:var(--fail-bg);border-color:var(--fail);color:var(--fail)}
.verdict .word{font-size:2.4rem;font-weight:800;letter-spacing:.04em;line-height:1}
.verdict .count{font-size:1.2rem;font-weight:600;margin-top:4px}
.verdict ul{margin:8px 0 0;padding-left:20px;color:var(--ink)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
nav.toc{margin:12px 0;font-size:.95rem}nav.toc a{margin-right:12px;white-space:nowrap}
table.results{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
table.results th,table.results td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
table.results th:nth-child(-n+4),table.results td:nth-child(-n+4){text-align:left}
table.results thead th{background:var(--soft);font-size:.85rem}
tr.fail,tr.fail td{background:var(--fail-bg)}td.bad{color:var(--fail);font-weight:700}
.badge{display:inline-block;font-weight:700;font-size:.8rem;padding:1px 8px;border-radius:9px;color:#fff}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}
.why{display:block;color:var(--fail);font-size:.85rem;white-space:normal}
.gallery{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
figure.digit{margin:0;min-width:150px;border:1px solid var(--line);border-radius:6px;padding:5px;font-size:.8rem;
background:#fff;display:flex;gap:6px;align-items:center}
figure.digit img{width:56px;height:56px;image-rendering:pixelated;flex:none}
figure.digit figcaption{line-height:1.35;white-space:nowrap}figure.digit .n{color:var(--muted)}
.right{color:var(--pass);font-weight:600}.wrong{color:var(--fail);font-weight:600}
table.cm{border-collapse:collapse;font-size:.78rem;font-variant-numeric:tabular-nums;margin:6px 0}
table.cm th,table.cm td{border:1px solid var(--line);width:2.9em;height:2em;text-align:center;padding:0}
table.cm th{background:var(--soft)}table.cm th.corner{font-weight:400;font-size:.7rem;width:5.5em}
table.cm td.ink{color:#fff}table.cm td.better{background:var(--better)}table.cm td.worse{background:var(--worse)}
.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{width:100%;max-width:420px;height:auto;font-size:11px}
svg.chart .grid{stroke:#e5e7eb}svg.chart .axis{stroke:#6b7280}svg.chart .chart-title{font-weight:700;font-size:13px}
svg.chart text{fill:#374151}
.pair{margin:4px 0}.muted{color:var(--muted)}.scroll{overflow-x:auto;max-width:100%}
.artifact{border-left:4px solid var(--pass);padding-left:12px;margin-top:18px}
.artifact.fail{border-left-color:var(--fail)}
table.small{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.small td,table.small th{padding:2px 10px;border-bottom:1px solid var(--line);text-align:right}
details{margin:6px 0}summary{cursor:pointer;color:#0969da}
footer{margin:32px 0 8px;color:var(--muted);font-size:.85rem}
@media (max-width:760px){
 main{padding:10px}.verdict .word{font-size:2rem}.artifact{padding-left:8px}
 table.cm{font-size:.7rem}table.cm th,table.cm td{width:auto;min-width:2.2em;height:1.8em}table.cm th.corner{width:auto}
 table.small td,table.small th{padding:2px 5px;font-size:.85rem}
 table.results thead{display:none}
 table.results,table.results tbody{display:block;width:100%}
 table.results tr{display:grid;grid-template-columns:1fr 1fr;column-gap:14px;border:1px solid var(--line);
  border-radius:8px;margin:0 0 10px;padding:4px 0}
 table.results td{display:block;border:0;text-align:right;padding:2px 10px;white-space:normal}
 table.results td::before{content:attr(data-label);float:left;color:var(--muted);font-weight:400;margin-right:6px}
 table.results td:nth-child(-n+4){text-align:right}
 table.results td.name,table.results td.file{grid-column:1/-1;text-align:left}
 table.results td.name::before,table.results td.file::before{content:none}
}
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def badge(passed: bool) -> str:
    return f"<span class='badge {'pass' if passed else 'fail'}'>{'PASS' if passed else 'FAIL'}</span>"


def verdict(report: Report) -> str:
    failed = [r for r in report.results if not r.passed]
    lines = "".join(
        f"<li><a href='#{pair_id(r)}'>{esc(r.file)} on {esc(r.backend)}</a>: "
        f"{esc('; '.join(f.message for f in r.failures))}</li>"
        for r in failed[:5]
    )
    more = f"<li>and {len(failed) - 5} more below</li>" if len(failed) > 5 else ""
    said = "fail a parity gate" if len(failed) != 1 else "fails a parity gate"
    return (
        f"<section class='verdict {report.verdict.lower()}' id='verdict'>"
        f"<div class='word'>{report.verdict}</div>"
        f"<div class='count'>{report.passed_count} of {len(report.results)} artifact/backend pairs pass"
        f"{'' if report.passed else f'; {len(failed)} {said}'}</div>"
        f"{f'<ul>{lines}{more}</ul>' if failed else PASSED}</section>"
    )


def facts(report: Report) -> str:
    manifest, host = report.manifest, report.host
    versions = ", ".join(f"{esc(name)} {esc(version)}" for name, version in host.versions.items())
    exported = f"{esc(manifest.created)}" + (
        f" on {esc(manifest.host.machine)}" if manifest.host.machine else ""
    )
    items = [
        ("Gates", "; ".join(esc(g) for g in gates_text(report.gates, report.reference_accuracy))),
        (
            "Verified",
            f"{esc(report.verified_at)} on {esc(host.machine)} ({esc(host.system)}), Python {esc(host.python)}",
        ),
        ("Versions", versions),
        ("Manifest", f"<code>{esc(manifest.name)}</code>, exported {exported}"),
        (
            "Reference",
            f"{esc(manifest.source_model.framework.capitalize())} model {esc(manifest.source_model.file)}, "
            f"{100 * report.reference_accuracy:.2f}% on the {manifest.test_set.images:,} MNIST test images",
        ),
    ]
    return "<dl class='facts'>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def results_table(report: Report) -> str:
    head = "<tr><th></th>" + "".join(f"<th>{esc(c)}</th>" for c in COLUMNS) + "</tr>"
    rows = []
    for result in report.results:
        cells = row_cells(result, report.size_of(result))
        bad = failed_columns(result)
        tds = [f"<td class='name'>{badge(result.passed)}</td>"]
        for column in COLUMNS:
            text = esc(cells[column])
            if column == "artifact":
                text = f"<a href='#{pair_id(result)}'>{text}</a>"
                if result.failures:
                    text += f"<span class='why'>{esc('; '.join(f.message for f in result.failures))}</span>"
            classes = " ".join(
                c for c in ("file" if column == "artifact" else "", "bad" if column in bad else "") if c
            )
            klass = f" class='{classes}'" if classes else ""
            tds.append(f"<td data-label='{esc(column)}'{klass}>{text}</td>")
        rows.append(f"<tr class='{'pass' if result.passed else 'fail'}'>{''.join(tds)}</tr>")
    return f"<table class='results'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def probability(value: Optional[float]) -> str:
    return "" if value is None or math.isnan(value) else f" ({value:.2f})"


def digit_card(d: Disagreement, images: np.ndarray, name: str) -> str:
    uri = data_uri(images[d.index])
    keras_class = "right" if d.keras == d.label else "wrong"
    answer_class = "right" if d.answer == d.label else "wrong"
    return (
        f"<figure class='digit'><img src='{uri}' alt='test image {d.index}, a {d.label}'>"
        f"<figcaption><span class='n'>#{d.index}</span> true <b>{d.label}</b><br>"
        f"Keras <span class='{keras_class}'>{d.keras}{probability(d.keras_probability)}</span><br>"
        f"{esc(name)} <span class='{answer_class}'>{d.answer}{probability(d.answer_probability)}</span>"
        "</figcaption></figure>"
    )


def answers_block(section: ArtifactSection, answers: Answers, images: np.ndarray) -> str:
    on = " and ".join(esc(b) for b in answers.backends)
    if answers.total == 0:
        return (
            f"<p>On {on}: the same top-1 answer as the Keras model on every test image; "
            "confusion matrix identical to the reference.</p>"
        )
    counts, name = answers.counts, esc(section.mode)
    summary = (
        f"<p>On {on}: <b>{answers.total:,}</b> test image{'s' if answers.total != 1 else ''} with another answer "
        f"than the Keras model: <span class='wrong'>{counts['worse']:,} Keras right, {name} wrong</span> · "
        f"<span class='right'>{counts['better']:,} {name} right, Keras wrong</span> · "
        f"{counts['both wrong']:,} both wrong. Each card: the test image, its true digit, the answer of "
        f"Keras and of {name} with the probability each gave it (green right, red wrong).</p>"
    )
    cards = [digit_card(d, images, section.mode) for d in answers.shown]
    visible = f"<div class='gallery'>{''.join(cards[:VISIBLE_DISAGREEMENTS])}</div>"
    hidden = ""
    if len(cards) > VISIBLE_DISAGREEMENTS:
        rest = len(cards) - VISIBLE_DISAGREEMENTS
        hidden = (
            f"<details><summary>{rest} more</summary>"
            f"<div class='gallery'>{''.join(cards[VISIBLE_DISAGREEMENTS:])}</div></details>"
        )
    if answers.total > len(cards):
        hidden += f"<p class='muted'>{len(cards)} of {answers.total:,} shown, worst first.</p>"
    matrix = (
        f"<details{' open' if not section.passed else ''}><summary>Confusion matrix: difference from "
        f"<a href='#reference'>the reference</a></summary>{difference_table(answers.confusion_delta)}"
        "<p class='muted'>Green: more right answers or fewer mistakes of that kind; red: fewer right "
        "answers or more mistakes. Empty: the same count as the Keras model.</p></details>"
    )
    return summary + visible + hidden + matrix


def artifact_html(section: ArtifactSection, images: np.ndarray) -> str:
    pairs = []
    for r in section.results:
        cells = row_cells(r, section.size_bytes)
        said = f"{cells['accuracy']} accurate, {cells['agreement']} agreement with Keras"
        failures = (
            f"<br><span class='wrong'>{esc('; '.join(f.message for f in r.failures))}</span>"
            if r.failures
            else ""
        )
        pairs.append(
            f"<div class='pair' id='{pair_id(r)}'>{badge(r.passed)} <b>{esc(r.backend)}</b>: {said}{failures}</div>"
        )
    blocks = "".join(answers_block(section, a, images) for a in section.answers)
    return (
        f"<section class='artifact {'pass' if section.passed else 'fail'}' id='{section.id}'>"
        f"<h3>{esc(section.file)}</h3><p class='muted'>{esc(section.format)} · {esc(section.mode)} · "
        f"{size_text(section.size_bytes)}</p>{''.join(pairs)}{blocks}</section>"
    )


def training_html(report: Report) -> str:
    training = report.manifest.source_model.training
    if training is None or not training.epochs:
        return "<p class='muted'>The manifest records no training history.</p>"
    epochs = training.epochs
    last = epochs[-1]
    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in last]
    names = {"loss": "loss", "accuracy": "accuracy", "val_loss": "test loss", "val_accuracy": "test accuracy"}
    table = (
        "<div class='scroll'><table class='small'><tr><th>epoch</th>"
        + "".join(f"<th>{names[k]}</th>" for k in keys)
        + "</tr>"
        + "".join(
            f"<tr><td>{int(e.get('epoch', i + 1))}</td>"
            + "".join(f"<td>{float(e[k]):.4f}</td>" for k in keys)
            + "</tr>"
            for i, e in enumerate(epochs[-5:] if len(epochs) > 5 else epochs)
        )
        + "</table></div>"
    )
    config = training.config
    recipe = ", ".join(
        f"{k} {v}" for k, v in config.items() if k in ("epochs", "batch_size", "optimizer", "seed")
    )
    lead = (
        f"<p>{len(epochs)} epoch{'s' if len(epochs) != 1 else ''}"
        + (f" ({esc(recipe)})" if recipe else "")
        + ".</p>"
    )
    if len(epochs) < 2:  # one point is no curve
        return lead + table + "<p class='muted'>Curves are drawn from two epochs on.</p>"
    caption = "<p class='muted'>Last epochs:</p>" if len(epochs) > 5 else ""
    return lead + f"<div class='charts'>{training_charts(epochs)}</div>" + caption + table


def render_page(report: Report, images: np.ndarray, summary_name: str) -> str:
    toc = " ".join(
        f"<a href='#{s.id}'>{esc(s.file)}{'' if s.passed else ' (FAIL)'}</a>" for s in report.sections
    )
    artifacts = "".join(artifact_html(s, images) for s in report.sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="generator" content="digitkit verify --report">
<title>{report.verdict}: {report.passed_count} of {len(report.results)} pass · digitkit verify</title>
<style>{CSS}</style></head><body><main>
<h1>digitkit verify: do the exported models keep the Keras model's answers?</h1>
{verdict(report)}
{facts(report)}
<nav class="toc"><b>Contents:</b> <a href="#results">Results</a> <a href="#artifacts">Disagreements</a> <a href="#reference">Keras reference</a> <a href="{esc(summary_name)}">Markdown summary</a></nav>
<h2 id="results">Results</h2>
<p class="muted">Every artifact on every backend, over all {report.manifest.test_set.images:,} MNIST test images; failed pairs first.
pp vs Keras: accuracy difference in percentage points; agreement: share of images with the Keras model's top-1 answer;
max |Δp|: largest difference from the Keras model's probabilities.</p>
{results_table(report)}
<h2 id="artifacts">What parity means: the images on which they disagree</h2>
<nav class="toc">Artifacts: {toc}</nav>
{artifacts}
<h2 id="reference">The Keras reference</h2>
<h3>Confusion matrix</h3>
{reference_table(report.reference_confusion)}
<h3>Training</h3>
{training_html(report)}
<footer>Written by digitkit {esc(report.host.versions.get("digitkit", ""))} at {esc(report.verified_at)}; this page loads nothing from elsewhere.</footer>
</main></body></html>
"""
