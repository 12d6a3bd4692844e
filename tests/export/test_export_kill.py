"""SIGKILL a real `scaseg-export --precision all` at every stage, then check what it left behind.

Kill points come from what the process shows, not from fixed sleeps: its progress lines on stderr
(rich draws them live when TTY_COMPATIBLE=1) and the files appearing in the out folder. The first
run is killed 0.5 s in (startup); the same command again completes and gives the duration of each
stage here, now. Later points are "stage line seen + a fraction of that stage's duration", or
"this file appeared / changed" for placement (a few ms for the tiny model: watched, not timed).
The stage a kill really landed in is read back from the frozen state (output so far, out folder),
and the test asserts that the kills covered placement and at least four of startup, ONNX export,
FP16, INT8 and verify.

After every kill, every file at a final path must be complete: each ONNX loads and passes the
checker, each sidecar parses and its recorded artifact sha256 is the ONNX's; an ONNX without its
sidecar (a kill between the two renames) is refused by the runtime with its "no sidecar" error.
Hidden temp files (`.m.fp32.XXXX.tmp.onnx`) may be left; nothing takes them for artifacts.

After the first complete run, every run is `--force` over a complete set with new weights (the
checkpoint file is rewritten before each run), so a new ONNX next to the old sidecar shows as a
hash mismatch, and a kill before placement must leave the old set untouched. Each run is also the
re-run of the killed one before it; at the end the same command without --force is refused with
the names of the artifacts there and "--force", and the --force run completes and its artifacts
run in the runtime.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from runtime.meta import MetaError, read_meta, sha256_file, sidecar_path
from scaseg.checkpoint import save_checkpoint
from scaseg.model import build_model
from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB

ROOT = Path(__file__).resolve().parents[2]
NAME = "m"
PRECISIONS = ("fp32", "fp16", "int8")
FINAL = {f"{NAME}.{p}.onnx{s}" for p in PRECISIONS for s in ("", ".json")}
# runtime.atomic temp names: "." + stem + "." + mkstemp's random part + ".tmp" + suffix.
TEMP_RE = re.compile(rf"^\.{NAME}\.(fp32|fp16|int8)(\.onnx)?\.[A-Za-z0-9_]+\.tmp\.(onnx|json)$")
STAGE_LINES = {  # pipeline progress line -> stage
    "exporting ONNX": "export",
    "converting to FP16": "fp16",
    "calibrating INT8": "int8",
    "verifying on": "verify",
}
REPORT_LINE = "written to "  # printed after every artifact is in place
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
POLL_S = 0.0005
RUN_TIMEOUT_S = 120


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _save_checkpoint(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    info = {
        "variant": "tiny",
        "num_classes": 8,
        "class_names": list(DEMO_CLASSES[:8]),
        "palette_rgb": [list(c) for c in DEMO_PALETTE_RGB[:8]],
    }
    save_checkpoint(build_model("tiny", 8).eval(), path, info)


def _command(ckpt: Path, out: Path, cache: Path, force: bool) -> list[str]:
    # Lenient budgets: weights change between runs and this test is about kills, not accuracy.
    return [
        *(sys.executable, "-u", "-m", "export.cli", "--checkpoint", str(ckpt)),
        *("--out", str(out), "--name", NAME, "--calib-cache", str(cache), "--precision", "all"),
        *("--input-size", "64x64", "--verify-frames", "2", "--calib-samples", "2",
          "--calib-data", "generated", "--int8-agreement", "50"),
        *("--fp32-agreement", "99", "--fp16-agreement", "90", "--int8-max-drop", "100"),
        *("--engines", "no", *(["--force"] if force else [])),
    ]  # fmt: skip


def _identity(path: str | os.PathLike) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns  # inodes alone get reused


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """{name: identity} of everything in folder."""
    if not folder.is_dir():
        return {}
    state = {}
    for entry in os.scandir(folder):
        try:
            state[entry.name] = _identity(entry.path)
        except FileNotFoundError:  # renamed away while listing
            continue
    return state


class Export:
    """One `python -m export.cli` child in its own session; output read by a thread."""

    def __init__(self, cmd: list[str], out: Path, tmpdir: Path) -> None:
        env = {**os.environ, "TMPDIR": str(tmpdir), "TTY_COMPATIBLE": "1", "FORCE_COLOR": "1"}
        env.pop("NO_COLOR", None)
        self.out = out
        self.start_state = _snapshot(out)
        self.seen: dict[str, float] = {}  # stage/report line -> seconds after start
        self._raw = bytearray()
        self.text = ""
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A shell's background job (`make test &`) ignores SIGINT and its children inherit
            # that, so the export would never see the Ctrl-C this test sends: restore it.
            preexec_fn=_default_sigint,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            now = self.elapsed()
            self._raw.extend(chunk)
            self.text = ANSI_RE.sub("", self._raw.decode("utf-8", errors="replace"))
            for line in (*STAGE_LINES, REPORT_LINE):
                if line not in self.seen and line in self.text:
                    self.seen[line] = now

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def run_until(
        self, trigger: Callable[[Export], bool] | None, sig: int = signal.SIGKILL
    ) -> bool:
        """Poll until trigger(self) holds (then send `sig`: True) or the process exits (False)."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while self.proc.poll() is None:
            if trigger is not None and trigger(self):
                os.killpg(self.proc.pid, sig)
                self.finish()
                return True
            assert time.monotonic() < deadline, f"export hung:\n{self.text}"
            time.sleep(POLL_S)
        self.finish()
        return False

    def finish(self) -> None:
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        self.proc.stdout.close()

    def stage(self) -> str:
        """Where the (now frozen) process was, from its output and the out folder."""
        if REPORT_LINE in self.text:
            return "after placement"
        if _snapshot(self.out) != self.start_state:
            return "placement"
        shown = [stage for line, stage in STAGE_LINES.items() if line in self.seen]
        return shown[-1] if shown else "startup"


# Triggers: callables on a running Export.


def after_start(seconds: float):
    return lambda run: run.elapsed() >= seconds


def after_line(line: str, seconds: float):
    return lambda run: line in run.seen and run.elapsed() >= run.seen[line] + seconds


def when_file(pattern: str):
    """A file matching pattern is in the out folder and was not there at the start."""
    regex = re.compile(pattern)

    def trigger(run: Export) -> bool:
        try:
            names = os.listdir(run.out)
        except FileNotFoundError:
            return False
        for name in names:
            if regex.fullmatch(name):
                try:
                    if run.start_state.get(name) != _identity(run.out / name):
                        return True
                except FileNotFoundError:
                    continue
        return False

    return trigger


def when_line(line: str):
    return lambda run: line in run.seen


# Checks.


def _check_final_paths(out: Path) -> list[str]:
    """Every file at a final path is complete and consistent; returns leftover hidden names."""
    from runtime import Segmenter

    names = set(os.listdir(out)) if out.is_dir() else set()
    hidden = sorted(n for n in names if n.startswith("."))
    assert names - set(hidden) <= FINAL, f"unexpected files: {sorted(names - FINAL)}"
    for precision in PRECISIONS:
        model = out / f"{NAME}.{precision}.onnx"
        side = sidecar_path(model)
        if model.exists():
            onnx.checker.check_model(onnx.load(str(model)))
        if side.exists():
            assert model.exists(), f"{side.name} without its ONNX"
            meta = read_meta(model)
            assert meta.precision == precision
            assert meta.hashes["artifact"] == sha256_file(model), (
                f"{side.name} describes another ONNX than {model.name}"
            )
        elif model.exists():
            with pytest.raises(MetaError, match="has no sidecar"):
                Segmenter(model)
    for name in hidden:  # runtime.atomic's own temp names, never taken for artifacts
        assert TEMP_RE.fullmatch(name), f"unexpected hidden file {name}"
        if name.endswith(".onnx"):
            with pytest.raises(MetaError, match="has no sidecar"):
                Segmenter(out / name)
    return hidden


def _check_cache(cache: Path) -> None:
    for path in cache.glob("*.json") if cache.is_dir() else ():
        json.loads(path.read_text())  # complete: the cache writes atomically too


def _check_complete(out: Path, checkpoint: Path) -> None:
    from runtime import Segmenter

    hidden = _check_final_paths(out)
    assert set(os.listdir(out)) >= FINAL, sorted(os.listdir(out))
    frame = np.full((48, 80, 3), 127, np.uint8)
    ckpt_hash = sha256_file(checkpoint)
    for precision in PRECISIONS:
        model = out / f"{NAME}.{precision}.onnx"
        assert read_meta(model).hashes["checkpoint"] == ckpt_hash, f"{model.name}: old weights"
        assert Segmenter(model, provider="cpu")(frame).shape == (48, 80)
    assert all(TEMP_RE.fullmatch(n) for n in hidden)


def _scratch_temp(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith("scaseg-"))


def test_place_drops_the_old_sidecar_before_the_new_onnx_lands(tmp_path, monkeypatch):
    """The fast version of the "fp32 ONNX renamed" kill point below: with --force, at the moment
    the new ONNX is renamed into place the old sidecar is already gone."""
    import runtime.atomic
    from export import artifacts

    target = tmp_path / "m.fp32.onnx"
    target.write_bytes(b"old")
    sidecar_path(target).write_text("{}")
    staged = tmp_path / "staged.onnx"
    staged.write_bytes(b"new")
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((Path(dst).name, sidecar_path(target).exists()))
        real_replace(src, dst)

    monkeypatch.setattr(runtime.atomic.os, "replace", replace)
    monkeypatch.setattr(artifacts, "write_meta", lambda t, _m: seen.append(("sidecar", None)))
    artifacts.place(staged, target, meta=None, force=True)
    assert seen == [("m.fp32.onnx", False), ("sidecar", None)]
    assert target.read_bytes() == b"new"


@pytest.mark.slow
def test_sigkill_at_every_stage_leaves_only_complete_artifacts(tmp_path):
    ckpt, out = tmp_path / "tiny.safetensors", tmp_path / "out"
    cache, tmpdir = tmp_path / "cache", tmp_path / "tmp"
    tmpdir.mkdir()
    log: list[tuple[str, str, str]] = []  # (kill point, stage it landed in, out folder changes)

    def kill(point: str, trigger, force: bool, seed: int) -> Export:
        _save_checkpoint(ckpt, seed)  # new weights: every run calibrates and writes new bytes
        run = Export(_command(ckpt, out, cache, force), out, tmpdir)
        assert run.run_until(trigger), f"{point}: the export ended first:\n{run.text}"
        now = _snapshot(out)
        changed = [n for n, i in now.items() if run.start_state.get(n) != i]
        gone = [f"-{n}" for n in run.start_state if n not in now]
        log.append((point, run.stage(), " ".join(sorted(changed) + gone)))
        if log[-1][1] not in ("placement", "after placement"):
            assert _snapshot(out) == run.start_state  # nothing touched before placement
        _check_final_paths(out)
        _check_cache(cache)
        return run

    def complete(force: bool, seed: int | None) -> Export:
        if seed is not None:
            _save_checkpoint(ckpt, seed)
        run = Export(_command(ckpt, out, cache, force), out, tmpdir)
        assert run.run_until(None) is False and run.proc.returncode == 0, run.text
        _check_complete(out, ckpt)
        return run

    # Killed while starting up (imports, checkpoint, calibration frames); the same command again
    # completes and gives the duration of each stage here, now.
    kill("startup", after_start(0.5), False, seed=0)
    ref = complete(False, seed=None)
    t = {stage: ref.seen[line] for line, stage in STAGE_LINES.items()}
    t["done"] = ref.seen[REPORT_LINE]
    span = {"export": t["fp16"] - t["export"], "int8": t["verify"] - t["int8"]}
    span["verify"] = t["done"] - t["verify"]

    # --force runs over that complete set, killed in each stage, then during placement.
    kill("export", after_line("exporting ONNX", 0.4 * span["export"]), True, seed=1)
    kill("fp16", when_line("converting to FP16"), True, seed=2)
    kill("int8", after_line("calibrating INT8", 0.5 * span["int8"]), True, seed=3)
    kill("verify", after_line("verifying on", 0.4 * span["verify"]), True, seed=4)
    # File triggers also match the final name, so a temp file missed between two polls still
    # fires a moment later (the kill then lands just after that step, still in placement).
    kill("fp32 ONNX being copied", when_file(rf"\.{NAME}\.fp32\..+\.tmp\.onnx|{NAME}\..+"), True, 5)
    kill("fp32 ONNX renamed", when_file(rf"{NAME}\.fp32\.onnx"), True, seed=6)
    kill(
        "fp16 sidecar being written",
        when_file(rf"\.?{NAME}\.fp16\.onnx\.(.+\.tmp\.)?json"),
        True,
        7,
    )

    # Without --force the same command is refused, naming what is there; with it, it completes.
    refused = Export(_command(ckpt, out, cache, False), out, tmpdir)
    assert refused.run_until(None) is False and refused.proc.returncode == 2, refused.text
    present = [out / n for n in sorted(FINAL) if (out / n).exists()]
    assert "--force" in refused.text and any(str(p) in refused.text for p in present)
    scratch = _scratch_temp(tmpdir)
    complete(True, seed=8)
    assert _scratch_temp(tmpdir) == scratch  # a finished run leaves no temp folder of its own

    summary = "\n".join(f"  {point:27} -> {stage:10} {files}" for point, stage, files in log)
    hidden = sorted(n for n in os.listdir(out) if n.startswith("."))
    print(f"kill points (complete run: {t['done']:.1f} s to placement):\n{summary}")
    print(f"left behind: {len(scratch)} scaseg-* folders in $TMPDIR; in --out: {hidden}")
    covered = {stage for _, stage, _ in log} & {"startup", *STAGE_LINES.values(), "placement"}
    assert len(covered) >= 5 and "placement" in covered, summary


@pytest.mark.slow
@pytest.mark.parametrize("line", ["exporting ONNX", "calibrating INT8", "verifying on"])
def test_ctrl_c_in_any_stage_exits_130_and_leaves_nothing(tmp_path, line):
    """SIGINT (Ctrl-C) instead of SIGKILL: the export says it was interrupted, exits 130, places
    nothing, and removes its stage folders and temp files from $TMPDIR."""
    ckpt, out = tmp_path / "tiny.safetensors", tmp_path / "out"
    cache, tmpdir = tmp_path / "cache", tmp_path / "tmp"
    tmpdir.mkdir()
    _save_checkpoint(ckpt, seed=0)
    run = Export(_command(ckpt, out, cache, force=False), out, tmpdir)
    assert run.run_until(when_line(line), sig=signal.SIGINT), f"ended first:\n{run.text}"
    assert run.proc.returncode == 130, run.text
    assert "scaseg-export: interrupted" in run.text and "Traceback" not in run.text, run.text
    assert not out.exists() or not any(out.iterdir())
    # Our stage folders are scaseg-*; a dependency leaves its own '.ses' session file there.
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith("scaseg")] == []
