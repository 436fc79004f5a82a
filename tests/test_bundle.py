"""Bundles: what a device receives, re-proved there by `verify --bundle`, and refused when altered."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile

import pytest
from helpers import constraints
from typer.testing import CliRunner

from digitkit.runtime.manifest import read_manifest
from digitkit.toolkit.cli import app
from digitkit.toolkit.data import TEST_FILES

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def bundle_dir(export_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "pi"
    result = runner.invoke(app, ["bundle", str(export_dir), "--out", str(out), "--mode", "int8"])
    assert result.exit_code == 0, result.output
    wheel = next(out.glob("digitkit-*.whl")).name
    assert "32-bit Pi OS trixie, riscv64, any CPU: sudo apt install python3-numpy" in result.output
    assert (
        f'pip install "./pi/{wheel}[cli]"  (numpy backend)' in result.output
    )  # each platform its install line
    return out


def test_bundle_holds_what_a_device_needs(bundle_dir):
    names = {p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file()}
    assert {
        "digit_mlp_int8.tflite",
        "digit_mlp_int8.onnx",
        "manifest.json",
        "README.md",
        "reference_probabilities.npy",
        "mnist/t10k-images-idx3-ubyte.gz",
        "mnist/t10k-labels-idx1-ubyte.gz",
    } <= names
    assert any(n.startswith("digitkit-") and n.endswith(".whl") for n in names)
    assert not any("fp32" in n for n in names)
    manifest = read_manifest(bundle_dir)
    assert [a.mode for a in manifest.artifacts] == ["int8", "int8"]
    assert (
        manifest.bundle is not None
        and manifest.bundle.wheel is not None
        and set(manifest.bundle.parity_set) == set(TEST_FILES)
    )
    readme = (bundle_dir / "README.md").read_text()
    assert (
        "[litert,cli,images]" in readme and "[tflite,cli]" in readme and "python3-numpy python3-pil" in readme
    )
    with tarfile.open(bundle_dir.with_name("pi.tar.gz")) as tar:
        assert "pi/manifest.json" in tar.getnames()
    # README step 2, `tar xzf bundle.tar.gz` on the device: the system's tar gives back the directory,
    # every file byte for byte (the emulated devices run steps 3-6 on such a directory).
    device = bundle_dir.parent / "device"
    device.mkdir()
    subprocess.run(["tar", "xzf", str(bundle_dir.with_name("pi.tar.gz"))], cwd=device, check=True)
    unpacked = {
        p.relative_to(device / "pi"): p.read_bytes() for p in (device / "pi").rglob("*") if p.is_file()
    }
    written = {p.relative_to(bundle_dir): p.read_bytes() for p in bundle_dir.rglob("*") if p.is_file()}
    assert unpacked == written


def test_verify_and_bench_on_the_bundle(bundle_dir, tmp_path):
    result = runner.invoke(app, ["verify", "--bundle", str(bundle_dir), "--json", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "v.json").read_text())["results"]
    assert {(r["file"], r["backend"]) for r in rows} == {
        ("digit_mlp_int8.tflite", "litert"),
        ("digit_mlp_int8.tflite", "numpy"),
        ("digit_mlp_int8.onnx", "onnxruntime"),
        ("digit_mlp_int8.onnx", "opencv"),  # make install brings OpenCV 4.x (the opencv extra)
    }
    result = runner.invoke(app, ["verify", "--bundle", str(bundle_dir.with_name("pi.tar.gz"))])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["bench", "--bundle", str(bundle_dir), "--seconds", "0.1", "--batch-sizes", "1,100", "--json"]
    )
    assert result.exit_code == 0, result.output
    bench = json.loads(result.output)
    assert {(b["file"], b["backend"]) for b in bench} == {
        (r["file"], r["backend"]) for r in rows
    }  # every verified pair
    for b in bench:  # batching pays on the native runtimes: batch 100 beats one image at a time. Not
        # asserted for numpy: its batch-1 int8 path skips zero pixels, and its batch-100 speed depends
        # on how many BLAS threads the machine's other work leaves it (558 µs/image seen in a loaded CI).
        assert b["batch1_median_us"] > 0 and b["throughput"]["100"] > 0, b
        if b["backend"] in ("litert", "tflite-runtime", "onnxruntime"):
            assert b["throughput"]["100"] > b["throughput"]["1"], b


def copy(bundle_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(bundle_dir, target)
    return target


def one_line_exit_2(result, fragment):
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and fragment in result.output, result.output


def test_altered_or_missing_files_are_refused(bundle_dir, tmp_path):
    target = copy(bundle_dir, tmp_path)
    path = target / "digit_mlp_int8.tflite"
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    one_line_exit_2(runner.invoke(app, ["verify", "--bundle", str(target)]), "changed since export")
    shutil.copy(bundle_dir / "digit_mlp_int8.tflite", path)
    (target / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    one_line_exit_2(runner.invoke(app, ["verify", "--bundle", str(target)]), "parity file")


def test_newer_manifest_schema_is_refused(bundle_dir, tmp_path):
    target = copy(bundle_dir, tmp_path)
    manifest = read_manifest(target).to_json()
    manifest["schema_version"] = 99
    (target / "manifest.json").write_text(json.dumps(manifest))
    one_line_exit_2(runner.invoke(app, ["verify", "--bundle", str(target)]), "Upgrade digitkit")


def test_a_device_without_native_backends_runs_tflite_on_numpy_and_names_the_onnx_extra(bundle_dir, tmp_path):
    """A clean venv with the bundle's wheel and its CLI extra, but no native runtime: the TFLite
    artifact runs on the numpy backend (saying so once), the ONNX one needs onnxruntime."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(bundle_dir.glob("digitkit-*.whl"))
    install = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            *constraints(tmp_path),
            f"{wheel}[cli]",
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    result = subprocess.run(
        [str(venv / "bin" / "digitkit"), "verify", "--bundle", str(bundle_dir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "No runtime for onnx models is installed" in result.stderr
    assert "pip install 'digitkit[onnxruntime]'" in result.stderr
    tflite_only = subprocess.run(
        [
            str(venv / "bin" / "digitkit"),
            "verify",
            "--bundle",
            str(bundle_dir),
            "--artifact",
            "digit_mlp_int8.tflite",
        ],
        capture_output=True,
        text=True,
    )
    assert tflite_only.returncode == 0, tflite_only.stdout + tflite_only.stderr
    assert "numpy" in tflite_only.stdout and "PASS" in tflite_only.stdout
    auto = subprocess.run(
        [str(venv / "bin" / "digitkit"), "info", str(bundle_dir / "digit_mlp_int8.tflite")],
        capture_output=True,
        text=True,
    )
    assert auto.returncode == 0 and "backend:       numpy" in auto.stdout, auto.stdout + auto.stderr
    notes = [line for line in auto.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("digitkit: note: No native tflite runtime is installed"), (
        auto.stderr
    )


def test_bundling_never_deletes_what_it_did_not_write(export_dir, tmp_path):
    """A user's folder, a file, and the export itself are refused before any work; a previous bundle
    is replaced; --force takes a folder all the same."""
    notes = tmp_path / "mine"
    (notes / "photos").mkdir(parents=True)
    (notes / "notes.txt").write_text("keep me")
    args = ["bundle", str(export_dir), "--mode", "int8", "--no-wheel"]
    one_line_exit_2(runner.invoke(app, [*args, "--out", str(notes)]), "--force")
    assert (notes / "notes.txt").read_text() == "keep me" and (notes / "photos").is_dir()
    a_file = tmp_path / "a-file"
    a_file.write_text("data")
    one_line_exit_2(runner.invoke(app, [*args, "--out", str(a_file)]), "is a file")
    assert a_file.read_text() == "data"
    one_line_exit_2(runner.invoke(app, [*args, "--out", str(export_dir)]), "overlap the export directory")
    one_line_exit_2(
        runner.invoke(app, [*args, "--out", str(export_dir / "inside")]), "overlap the export directory"
    )
    assert not (export_dir / "inside").exists()
    fresh = tmp_path / "fresh"
    assert runner.invoke(app, [*args, "--out", str(fresh)]).exit_code == 0
    again = runner.invoke(app, [*args, "--out", str(fresh)])  # a previous bundle is ours to replace
    assert again.exit_code == 0, again.output
    forced = runner.invoke(app, [*args, "--out", str(notes), "--force"])
    assert forced.exit_code == 0 and not (notes / "notes.txt").exists(), forced.output


def test_verifying_an_archive_changes_nothing_beside_it(bundle_dir, tmp_path):
    archive = tmp_path / "pi.tar.gz"
    shutil.copy(bundle_dir.with_name("pi.tar.gz"), archive)
    neighbour = tmp_path / "pi"
    neighbour.mkdir()
    (neighbour / "README.md").write_text("my edited notes")
    result = runner.invoke(app, ["verify", "--bundle", str(archive), "--backend", "litert"])
    assert result.exit_code == 0, result.output
    assert (neighbour / "README.md").read_text() == "my edited notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pi", "pi.tar.gz"]


def test_an_archive_with_a_link_or_an_escaping_member_is_refused(tmp_path):
    import io

    for name, kind in (("bundle/../../escape.txt", tarfile.REGTYPE), ("bundle/link", tarfile.SYMTYPE)):
        archive = tmp_path / f"evil-{kind!r}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            member = tarfile.TarInfo(name)
            member.type = kind
            member.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(member, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        one_line_exit_2(
            runner.invoke(app, ["verify", "--bundle", str(archive)]), "is not a digitkit bundle archive"
        )
    assert not (tmp_path.parent / "escape.txt").exists()


def test_a_bundle_of_the_c_export_carries_its_header_and_verifies(export_dir, tmp_path):
    out = tmp_path / "mcu"
    made = runner.invoke(
        app, ["bundle", str(export_dir), "--out", str(out), "--mode", "int8-c", "--no-wheel"]
    )
    assert made.exit_code == 0, made.output
    entry = read_manifest(out).artifacts[0]
    assert entry.format == "c" and {ref.file for ref in entry.companion_files()} <= {
        p.name for p in out.iterdir()
    }
    result = runner.invoke(app, ["verify", "--bundle", str(out), "--json", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "v.json").read_text())["results"]
    assert [(r["file"], r["backend"], r["passed"]) for r in rows] == [("digit_mlp_int8.c", "c", True)]
    bench = runner.invoke(
        app, ["bench", "--bundle", str(out), "--seconds", "0.05", "--batch-sizes", "1", "--json"]
    )
    assert bench.exit_code == 0, bench.output
    assert [(b["file"], b["backend"]) for b in json.loads(bench.output)] == [("digit_mlp_int8.c", "c")]


def files_and_hashes(directory) -> dict[str, str]:
    from digitkit.runtime.hashing import sha256_file

    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in directory.rglob("*") if p.is_file()}


@pytest.mark.parametrize("moment", ["bundle-swap", "bundle-swapped"])
def test_a_bundle_killed_during_its_swap_leaves_one_whole_bundle(bundle_dir, export_dir, tmp_path, moment):
    """Killed (SIGKILL, deterministically, runtime/files.py `fault_point`) just before or just after
    the new directory takes the old one's place: the directory is then the previous bundle, byte
    for byte, or the new one, whole; never missing, never a mix. A rerun cleans up."""
    from helpers import run_cli

    from digitkit.runtime.files import FAULT_ENV

    out = tmp_path / "pi"
    shutil.copytree(bundle_dir, out)
    shutil.copy(bundle_dir.with_name("pi.tar.gz"), tmp_path / "pi.tar.gz")
    before = files_and_hashes(out)
    archive = (tmp_path / "pi.tar.gz").read_bytes()
    command = ["bundle", export_dir, "--out", out, "--mode", "int8-pixels", "--no-wheel"]
    killed = run_cli(*command, env={FAULT_ENV: moment})
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert visible == ["pi", "pi.tar.gz"], visible
    assert (tmp_path / "pi.tar.gz").read_bytes() == archive  # replaced after the swap, not before
    if moment == "bundle-swap":
        assert files_and_hashes(out) == before
    else:
        manifest = read_manifest(out)
        assert [a.mode for a in manifest.artifacts] == ["int8-pixels"]
        for entry in manifest.artifacts:
            manifest.check_artifact(entry)
        assert not any(name.endswith(".whl") for name in files_and_hashes(out))
    rerun = run_cli(*command)
    assert rerun.returncode == 0, rerun.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"
    assert [a.mode for a in read_manifest(out).artifacts] == ["int8-pixels"]
