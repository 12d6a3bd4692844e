"""What a command reads, resolved for the output-path rule: a glob over a symlink cycle ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_recursive_glob_over_symlink_cycles_with_no_match_ends(tmp_path):
    # Two links back to the folder: glob.iglob('**') walked 2^depth paths until the names grew
    # past PATH_MAX, which never ended in practice. A child process, so a hang fails the test.
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / name).symlink_to(folder, target_is_directory=True)
    code = (
        "from runtime.io.input_paths import _globbed\n"
        "found = _globbed('in/**/*.png', '--source')\n"
        "print([os.fspath(f.path) for f in found])\n"
    )
    done = subprocess.run([sys.executable, "-c", "import os\n" + code], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['in']"  # no file matched; the scanned base folder is an input


def test_a_recursive_glob_finds_each_file_once_through_a_cycle(tmp_path, monkeypatch):
    from runtime.io.input_paths import _globbed

    folder = tmp_path / "in" / "sub"
    folder.mkdir(parents=True)
    (folder / "f.png").write_bytes(b"x")
    (folder / "up").symlink_to(tmp_path / "in", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    files = [f for f in _globbed("in/**/*.png", "--source") if not f.scanned]
    assert [os.path.realpath(f.path) for f in files] == [str(folder / "f.png")]
