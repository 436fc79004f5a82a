"""Nothing lost, nothing surprising: Ctrl-C at random moments, output paths, stale artifacts, messages.

Every test runs the real `digitkit` console script in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
from helpers import mnist_png_dir, run_cli

DIGITKIT = Path(sys.executable).with_name("digitkit")
# Python's own start-up (site and the editable-install finder: about 40 ms of CPU here) runs before
# digitkit's first line takes over Ctrl-C. On a loaded machine that can take most of a second of wall
# time, so the random moments are counted from when the process has used this much CPU time.
STARTED_CPU_SECONDS = 0.12


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def leftovers(directory: Path) -> list[str]:
    """Hidden staging directories and temporary files a command may leave only while it runs."""
    if not directory.exists():
        return []
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob(".*")
        if p.name.startswith(".digitkit-staging-") or ".tmp" in p.name
    )


def export_is_whole(directory: Path) -> None:
    """No manifest yet, or a manifest whose every file is there, byte for byte."""
    from digitkit.runtime.manifest import MANIFEST_NAME, read_manifest

    if not (directory / MANIFEST_NAME).exists():
        return
    manifest = read_manifest(directory)
    for entry in manifest.artifacts:
        manifest.check_artifact(entry)


def report_is_whole(report: Path) -> None:
    if not report.exists():
        return
    page = report / "index.html"
    assert page.is_file(), f"half a report: {sorted(p.name for p in report.iterdir())}"
    text = page.read_text()
    for name in (p.name for p in report.iterdir() if p.suffix == ".png"):
        assert name in text
    import re

    for name in re.findall(r"src='([^']+)'", text):
        if not name.startswith("data:"):  # the digits are inline PNGs now; files are what can go missing
            assert (report / name).is_file(), f"{name} is in index.html but missing"


def json_is_whole(path: Path) -> None:
    if path.exists():
        json.loads(path.read_text())


def bundle_is_whole(out: Path) -> None:
    archive = out.with_name(out.name + ".tar.gz")
    assert out.exists() == archive.exists(), "a bundle directory without its archive, or the reverse"
    if out.exists():
        from digitkit.toolkit.bundling import open_bundle

        with open_bundle(out):
            pass
        with open_bundle(archive):
            pass


def train_is_whole(out: Path) -> None:
    record = out / "training.json"
    if record.exists():
        assert json.loads(record.read_text())["model_file"] == "model.keras"
        assert (out / "model.keras").is_file()
    if (out / "model.keras").exists():
        import zipfile

        assert zipfile.is_zipfile(out / "model.keras")


class Case:
    """One long command: how to run it in ``work``, how long it takes at most, what must hold after."""

    def __init__(
        self,
        name: str,
        args: Callable[[Path], list[str]],
        window: float,
        trials: int,
        check: Callable[[Path], None],
    ) -> None:
        self.name, self.args, self.window, self.trials, self.check = name, args, window, trials, check


def interrupt_once(args: list[str], delay: float, cwd: Path) -> tuple[int | None, str, bool]:
    """Start the command, send one SIGINT after ``delay`` seconds (if it still runs), wait for it."""
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        [str(DIGITKIT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if cpu_seconds(process.pid) >= STARTED_CPU_SECONDS:
                break
        except (OSError, IndexError, ValueError):
            break
        time.sleep(0.005)
    time.sleep(delay)
    sent = process.poll() is None
    if sent:
        process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err, sent


@pytest.mark.slow
def test_ctrl_c_at_random_moments_exits_130_with_nothing_half_written(
    export_dir, seed_model_dir, mnist, tmp_path, figures
):
    """≥ 30 SIGINTs at random moments into train, export, verify --report, bench, bundle (with and
    without building the wheel) and predict on many files: exit 130 (or 0 if it had already
    finished), one line, no traceback, no half-written output, no staging left behind."""
    _, (x_test, _) = mnist
    images = tmp_path / "digits"
    mnist_png_dir(images, x_test[:300])
    int8 = export_dir / "digit_mlp_int8.tflite"
    cases = [
        Case(
            "train",
            lambda w: ["train", "--epochs", "1", "--out", str(w / "train")],
            14.0,
            2,
            lambda w: train_is_whole(w / "train"),
        ),
        Case(
            "export",
            lambda w: (
                ["export", "--model", str(seed_model_dir / "model.keras"), "--out", str(w / "export")]
                + ["--format", "tflite"]
            ),
            10.0,
            3,
            lambda w: export_is_whole(w / "export"),
        ),
        Case(
            "verify --report",
            lambda w: (
                ["verify", str(export_dir), "--artifact", int8.name, "--backend", "numpy"]
                + ["--report", str(w / "report"), "--json", str(w / "verify.json")]
            ),
            2.5,
            8,
            lambda w: (report_is_whole(w / "report"), json_is_whole(w / "verify.json")),
        ),
        Case(
            "bench",
            lambda w: (
                ["bench", "--model", str(int8), "--backend", "numpy", "--seconds", "0.2"]
                + ["--batch-sizes", "1,32", "--json", str(w / "bench.json")]
            ),
            2.5,
            5,
            lambda w: json_is_whole(w / "bench.json"),
        ),
        Case(
            "bundle",
            lambda w: ["bundle", str(export_dir), "--out", str(w / "bundle"), "--mode", "int8", "--no-wheel"],
            0.7,
            5,
            lambda w: bundle_is_whole(w / "bundle"),
        ),
        Case(
            "bundle with wheel",
            lambda w: ["bundle", str(export_dir), "--out", str(w / "bundle"), "--mode", "int8"],
            3.0,
            2,
            lambda w: bundle_is_whole(w / "bundle"),
        ),
        Case(
            "predict",
            lambda w: ["predict", str(images), "--model", str(int8), "--json"],
            0.7,
            6,
            lambda w: None,
        ),
    ]
    seed = int(os.environ.get("DIGITKIT_INTERRUPT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    tried, interrupted = [], 0
    for case in cases:
        window = case.window  # at most: a run that finishes first shows this machine is faster today
        # a run that finished before its signal proves less: try again (at most 3x) until case.trials
        # runs were interrupted mid-run, so a fast, quiet machine still tests every command
        hits, trial = 0, -1
        while hits < case.trials and trial + 1 < 3 * case.trials:
            trial += 1
            work = tmp_path / f"{case.name.replace(' ', '-')}-{trial}"
            work.mkdir()
            delay = rng.uniform(0.0, window)
            code, err, sent = interrupt_once(case.args(work), delay, work)
            where = f"{case.name} interrupted {delay:.2f} s after start-up (DIGITKIT_INTERRUPT_SEED={seed})"
            tried.append(where)
            assert "Traceback" not in err and "Exception ignored" not in err, f"{where}:\n{err}"
            if code == 0:  # it finished first (or was already exiting when the signal came)
                assert "Interrupted" not in err, f"{where}:\n{err}"
                window = min(window, delay)
            else:
                assert sent and code == 130, f"{where}: exit {code}\n{err}"
                assert err.strip().splitlines()[-1].startswith("digitkit: error: Interrupted"), (
                    f"{where}:\n{err}"
                )
                interrupted += 1
                hits += 1
            case.check(work)
            assert leftovers(work) == [], f"{where}: left {leftovers(work)}"
            shutil.rmtree(work)
    assert len(tried) >= 30
    assert interrupted >= 20, f"only {interrupted} of {len(tried)} runs were still going when signalled"
    figures.append(
        f"Ctrl-C safety: {len(tried)} runs of train/export/verify --report/bench/bundle/predict, "
        f"{interrupted} interrupted mid-run: each exit 130, one line, nothing half-written; the rest had "
        f"finished (seed {seed})"
    )


# --- output paths, checked before the work -----------------------------------------------------


def test_json_to_a_directory_is_refused_before_the_run(export_dir, tmp_path):
    target = tmp_path / "results.json"
    target.mkdir()
    started = time.perf_counter()
    result = run_cli("verify", export_dir, "--json", target)
    assert result.returncode == 2
    assert f"--json {target} is a directory" in result.stderr and "Traceback" not in result.stderr
    assert time.perf_counter() - started < 20  # refused before 10,000 images on 14 artifact/backend pairs
    assert list(target.iterdir()) == []


def test_a_json_value_that_is_not_a_json_file_gets_one_line_naming_the_fix(export_dir, tmp_path):
    """`--json adir` leaves adir to the command (the convention): whatever argument that leaves over,
    the user gets the value that writes where they meant, not Typer's boxed usage error."""
    adir = tmp_path / "adir"
    adir.mkdir()
    cases = [
        (["verify", export_dir, "--json", adir], f"Pass --json {adir / 'verify.json'} for a file"),
        (["verify", "--json", adir, export_dir], f"Pass --json {adir / 'verify.json'} for a file"),
        (["train", "--json", "results", "--epochs", "1"], "Pass --json results.json for a file"),
        (["doctor", "--json", "notes.txt"], "Pass --json notes.json for a file"),
        (["verify", export_dir, f"--json={adir}"], f"Pass --json {adir / 'result.json'} for a file"),
    ]
    for args, fix in cases:
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        (line,) = result.stderr.splitlines()
        assert line.startswith("digitkit: error: --json takes only - or a file name ending in .json"), line
        assert f"{fix}, or --json alone for JSON on stdout" in line, line
        assert result.stdout == ""
    assert list(adir.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


def test_json_parent_directories_are_made_as_for_every_output(export_dir, tmp_path):
    target = tmp_path / "new" / "deeper" / "info.json"
    result = run_cli("info", export_dir / "digit_mlp_int8.tflite", "--json", target)
    assert result.returncode == 0, result.stderr
    assert json.loads(target.read_text())["mode"] == "int8"
    assert f"JSON: {target}" in result.stdout


def test_report_given_a_file_names_report_not_out(export_dir, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    result = run_cli("verify", export_dir, "--report", notes)
    assert result.returncode == 2
    assert "--report" in result.stderr and "--out" not in result.stderr
    assert notes.read_text() == "mine"


def test_json_flag_never_takes_an_image_as_its_file(export_dir, tmp_path, mnist_test):
    (image,) = mnist_png_dir(tmp_path / "pngs", mnist_test[0][:1])
    before = image.read_bytes()
    result = run_cli("predict", "--json", image, "--model", export_dir)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["file"] == str(image) and record["backend"] == "litert"
    assert record["model"].endswith("digit_mlp_int8_pixels.tflite")
    assert image.read_bytes() == before


# --- nothing lost -----------------------------------------------------------------------------


def copy_export(export_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    return copy


def test_verify_names_model_files_the_manifest_does_not_list(export_dir, tmp_path):
    export = copy_export(export_dir, tmp_path)
    shutil.copy(export / "digit_mlp_int8.tflite", export / "old_model.tflite")
    result = run_cli("verify", export, "--artifact", "digit_mlp_int8.tflite", "--backend", "numpy")
    assert result.returncode == 0, result.stderr
    assert "1 model file in" in result.stderr and "old_model.tflite" in result.stderr
    assert "not verified" in result.stderr


def test_missing_reference_probabilities_names_the_skipped_check(export_dir, tmp_path):
    export = copy_export(export_dir, tmp_path)
    (export / "reference_probabilities.npy").unlink()
    result = run_cli(
        "verify", export, "--artifact", "digit_mlp_int8.tflite", "--backend", "numpy", "--json", "-"
    )
    assert result.returncode == 0, result.stderr
    assert "reference_probabilities.npy is missing" in result.stderr and "skipped" in result.stderr
    assert json.loads(result.stdout)["results"][0]["max_abs_prob_diff"] is None


@pytest.mark.slow
def test_re_export_with_fewer_modes_removes_its_own_stale_artifacts(export_dir, seed_model_dir, tmp_path):
    export = copy_export(export_dir, tmp_path)
    (export / "digit_mlp_int8.onnx").write_bytes(b"edited by hand")  # not digitkit's any more: kept
    (export / "notes.txt").write_text("mine")  # never digitkit's: untouched
    result = run_cli(
        "export", "--model", seed_model_dir, "--out", export, "--format", "tflite", "--json", "-"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [a["file"] for a in summary["artifacts"]] == ["digit_mlp_fp32.tflite"]
    assert "digit_mlp_int8_pixels.tflite" in summary["stale_removed"]
    assert summary["stale_kept"] == ["digit_mlp_int8.onnx"]
    assert f"Removed {len(summary['stale_removed'])} files" in result.stderr
    assert "Kept digit_mlp_int8.onnx" in result.stderr
    left = sorted(p.name for p in export.iterdir())
    assert left == [
        "digit_mlp_fp32.tflite",
        "digit_mlp_int8.onnx",
        "manifest.json",
        "notes.txt",
        "reference_probabilities.npy",
    ]
    verify = run_cli("verify", export, "--backend", "numpy")
    assert verify.returncode == 0, verify.stderr
    assert "PASS: 1 of 1 artifact/backend pair passes." in verify.stdout
    assert "digit_mlp_int8.onnx" in verify.stderr  # named: not listed, not verified


# --- clear messages -----------------------------------------------------------------------------


def test_directories_resolve_to_their_artifact(export_dir, seed_model_dir, tmp_path, mnist_test):
    (image,) = mnist_png_dir(tmp_path / "pngs", mnist_test[0][:1])
    predict = run_cli("predict", image, "--model", export_dir)
    assert predict.returncode == 0, predict.stderr
    assert predict.stdout.startswith(
        f"Model: {export_dir / 'digit_mlp_int8_pixels.tflite'} (tflite int8-pixels) on "
    )
    info = run_cli("info", export_dir, "--json")
    assert info.returncode == 0, info.stderr
    assert len(json.loads(info.stdout)) == len(
        json.loads((export_dir / "manifest.json").read_text())["artifacts"]
    )
    training = run_cli("predict", image, "--model", seed_model_dir)
    assert training.returncode == 2
    assert "is a training directory" in training.stderr and "digitkit export --model" in training.stderr
    bench = run_cli("bench", "--bundle", export_dir)
    assert bench.returncode == 2 and f"bench --model {export_dir}" in bench.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["predict", "x.png", "--threads", "-3"], "--threads -3 is not a positive number of threads"),
        (["predict", "x.png", "--threads", "0"], "--threads 0 is not a positive number of threads"),
        (["bench", "--model", "{int8}", "--seconds", "0"], "--seconds 0 leaves no time to measure"),
        (["bench", "--model", "{int8}", "--threads", "0"], "--threads 0 is not a positive"),
        (["verify", "{export}", "--artifact", "{int8}", "--backend", "nope"], "Unknown backend"),
        (
            ["bundle", "{export}", "--mode", "foo"],
            "Pass --mode with one of: dynamic, fp16, fp32, int8",
        ),
    ],
)
def test_wrong_values_get_the_right_fix(export_dir, tmp_path, args, expected):
    int8 = export_dir / "digit_mlp_int8.tflite"
    args = [a.format(int8=int8, export=export_dir) for a in args]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert "Re-export" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_artifact_by_full_path_is_accepted(export_dir):
    result = run_cli(
        "verify", export_dir, "--artifact", export_dir / "digit_mlp_int8.tflite", "--backend", "numpy"
    )
    assert result.returncode == 0, result.stderr
    assert "PASS: 1 of 1 artifact/backend pair passes." in result.stdout


def test_a_cp1252_stdout_gets_ascii_instead_of_a_crash(export_dir):
    result = subprocess.run(
        [
            str(DIGITKIT),
            "verify",
            str(export_dir),
            "--artifact",
            "digit_mlp_int8.tflite",
            "--backend",
            "numpy",
        ],
        capture_output=True,
        encoding="cp1252",
        env={**os.environ, "PYTHONIOENCODING": "cp1252"},
    )
    assert result.returncode == 0, result.stderr
    assert "max |dp|" in result.stdout and "accuracy >= 0.95" in result.stdout
    assert "µs/image" in result.stdout  # cp1252 has µ: only what it lacks is replaced


def test_version_module_entry_and_completion():
    from digitkit.runtime import __version__

    assert run_cli("--version").stdout == f"digitkit {__version__}\n"
    module = subprocess.run([sys.executable, "-m", "digitkit", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout == f"digitkit {__version__}\n"
    # `digitkit` is a regular package whose import loads nothing (the CLI takes over Ctrl-C first);
    # `digitkit.__version__` reads the runtime's constant on first use.
    package = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, digitkit; loaded = sorted(m for m in sys.modules if m.startswith(('digitkit', 'numpy'))); "
            "from digitkit import __version__; print(digitkit.__file__, loaded, digitkit.__version__, __version__)",
        ],
        capture_output=True,
        text=True,
    )
    assert package.returncode == 0, package.stderr
    location, rest = package.stdout.split(" ", 1)
    assert location.endswith("__init__.py") and rest == f"['digitkit'] {__version__} {__version__}\n"
    completion = run_cli(
        "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    )
    assert completion.returncode == 0 and "_DIGITKIT_COMPLETE" in completion.stdout
    words = run_cli(
        env={"_DIGITKIT_COMPLETE": "complete_bash", "COMP_WORDS": "digitkit do", "COMP_CWORD": "1"}
    )
    assert words.stdout.split() == ["doctor"]


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path):
    result = run_cli("info", tmp_path / "missing.tflite", "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "does not exist" in result.stderr.splitlines()[-1]


# --- predict and the Python API ---------------------------------------------------------------------


def test_predict_reads_stdin_and_writes_a_record_per_failed_file(export_dir, tmp_path, mnist_test):
    images, labels = mnist_test
    (image,) = mnist_png_dir(tmp_path / "pngs", images[:1])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with open(image, "rb") as stdin:
        result = subprocess.run(
            [str(DIGITKIT), "predict", "-", broken, "--model", export_dir, "--json"],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
    assert result.returncode == 2
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"file": str(broken), "error": records[0]["error"]} == records[0]
    assert records[1]["file"] == "-" and records[1]["digit"] == int(labels[0])
    assert "INFO" not in result.stderr and "XNNPACK" not in result.stderr


def test_predict_aligns_its_columns(export_dir, tmp_path, mnist_test):
    short = mnist_png_dir(tmp_path / "a", mnist_test[0][:1])[0]
    long = mnist_png_dir(tmp_path / "a-much-longer-directory-name", mnist_test[0][1:2])[0]
    result = run_cli("predict", short, long, "--model", export_dir)
    rows = result.stdout.splitlines()[1:]
    assert len({row.index("  digit ") for row in rows}) == 1


def test_api_accepts_keras_shapes_pil_images_and_bytes_and_refuses_booleans(export_dir, mnist_test, capfd):
    import io

    from PIL import Image

    from digitkit.runtime import InputError, load
    from digitkit.runtime.images import load_image

    images, _ = mnist_test
    model = load(export_dir / "digit_mlp_int8_pixels.tflite")
    expected = model.predict(images[:8])
    assert (model.predict(images[:8, :, :, None]) == expected).all()
    assert (model.predict(images[0][:, :, None]) == expected[:1]).all()
    assert model.predict(Image.fromarray(images[0]))[0] == expected[0]
    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, format="PNG")
    assert (load_image(buffer.getvalue()) == images[0]).all()
    buffer.seek(0)
    assert (load_image(buffer) == images[0]).all()
    with pytest.raises(InputError, match="Boolean"):
        model.predict(images[:2] > 127)
    assert "XNNPACK" not in capfd.readouterr().err


def test_large_phone_jpegs_decode_reduced_without_a_pillow_warning(tmp_path):
    from PIL import Image, ImageDraw

    from digitkit.runtime.images import load_image

    for width, height in ((8000, 6000), (12000, 10000)):  # 48 MP, and 120 MP: above Pillow's own limit
        photo = Image.new("L", (width, height), 230)
        ImageDraw.Draw(photo).line(
            [(width // 2, height // 4), (width // 2, 3 * height // 4)], fill=20, width=width // 40
        )
        path = tmp_path / f"photo-{width}.jpg"
        photo.save(path, quality=80)
        del photo
        code = (
            "import warnings\n"
            "warnings.simplefilter('error')\n"
            "from digitkit.runtime.images import load_image\n"
            f"digit = load_image({str(path)!r})\n"
            "with open('/proc/self/status') as status:\n"
            "    peak = [line for line in status if line.startswith('VmHWM')][0].split()[1]\n"
            "print(digit.shape, int(digit.max()), int(peak) // 1024)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        shape, peak, rss_mib = (
            result.stdout.rsplit(" ", 2)[0],
            result.stdout.split()[-2],
            int(result.stdout.split()[-1]),
        )
        assert shape.startswith("(28, 28)") and peak == "255"
        assert rss_mib < 150, f"{width}x{height}: {rss_mib} MiB"  # decoded at 1/8 per side, not whole
        assert "DecompressionBomb" not in result.stderr
    assert load_image(path).shape == (28, 28)
