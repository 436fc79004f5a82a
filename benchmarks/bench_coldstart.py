"""Cold start: one MNIST test digit, as a PNG, predicted in a fresh process by `digitkit predict`, by a
TensorFlow + Keras script and by a bare LiteRT script (the floor); interleaved runs, medians."""

from __future__ import annotations

from dataclasses import dataclass, field

from common import BENCH_DIR, DIGITKIT, PYTHON, Table, goal, last_json, median, run_child, x
from PIL import Image

from digitkit.toolkit.data import load_mnist_test

GOAL_SECONDS, GOAL_RSS_MB = 0.5, 80


@dataclass
class ColdVariant:
    label: str
    argv: list
    runs: list = field(default_factory=list)  # of common.Child: wall_s, rss_mb (its own peak), cpu_s, stdout

    def median(self, key: str) -> float:
        return median(getattr(run, key) for run in self.runs)


def run(ws, log) -> dict:
    """name -> ColdVariant, after one untimed warm-up run each (the page cache then holds every file)."""
    png, script = ws.work / "one.png", [PYTHON, BENCH_DIR / "cold_predict.py"]
    int8, pixels = ws.export_dir / "digit_mlp_int8.tflite", ws.export_dir / "digit_mlp_int8_pixels.tflite"
    Image.fromarray(load_mnist_test()[0][0]).save(png)  # test digit 0, a 7
    result = {
        "digitkit": ColdVariant(
            "digitkit predict (int8)", [DIGITKIT, "predict", png, "--json", "--model", int8]
        ),
        "keras": ColdVariant("TensorFlow + Keras script (model.keras)", [*script, "keras", png, ws.keras]),
        "litert": ColdVariant("numpy + Pillow + LiteRT (int8-pixels)", [*script, "litert", png, pixels]),
    }
    for variant in result.values():
        run_child(variant.argv)
    for i in range(2 if ws.quick else 5):
        log(f"[coldstart] round {i + 1}")
        for variant in list(result.values())[:: 1 if i % 2 == 0 else -1]:
            variant.runs.append(run_child(variant.argv))
    return result


def tables(result: dict) -> list:
    wall, rss = ({name: v.median(key) for name, v in result.items()} for key in ("wall_s", "rss_mb"))
    rows = []
    for name, v in result.items():
        mine = name == "digitkit"  # the goals are digitkit's
        goals = [goal(wall[name], GOAL_SECONDS) * mine, goal(rss[name], GOAL_RSS_MB) * mine]
        digits = sorted({last_json(r.stdout)["digit"] for r in v.runs})
        cpu = f"{v.median('cpu_s'):.2f} s"
        rows.append([v.label, f"{wall[name]:.3f} s", goals[0], f"{rss[name]:.0f} MB", goals[1], cpu, digits])
    d, k, f, runs = "digitkit", "keras", "litert", len(result["digitkit"].runs)
    note = (
        f"One PNG digit (a 7), a fresh process, {runs} interleaved runs each; medians. TensorFlow / digitkit: "
        f"{x(wall[k] / wall[d])} wall, {x(rss[k] / rss[d])} peak RSS. digitkit / LiteRT floor: "
        f"{x(wall[d] / wall[f])} wall, {x(rss[d] / rss[f])} peak RSS."
    )
    goals = f"goal wall <= {GOAL_SECONDS} s | peak RSS | goal RSS <= {GOAL_RSS_MB} MB"
    return [Table("Cold start", f"process | wall | {goals} | CPU | digit", rows, note)]
