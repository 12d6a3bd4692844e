"""A target's folder: every seed and companion in its place, one of them replaced by the input.
Only the file changed by the previous input is restored, so a 7 MB seed is not rewritten for
every input of another seed. Also where inputs are saved as regression files and read back."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

from tests.fuzz.seeds import SEEDS
from tests.fuzz.targets import Target

GZIP_OVER = 256 << 10  # regression files larger than this are stored gzipped


class Workspace:
    def __init__(self, target: Target, seeds_dir: Path, folder: Path, progress: Path) -> None:
        self.target, self.folder, self.progress = target, folder, progress
        self.seed_bytes = {name: (seeds_dir / SEEDS[name][0]).read_bytes() for name in target.seeds}
        shutil.rmtree(folder, ignore_errors=True)
        for name, place in {**target.seeds, **target.extra}.items():
            dest = folder / place
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(seeds_dir / SEEDS[name][0], dest)
        self._dirty: str | None = None
        self.placed = 0  # inputs written so far: a crash report's count

    def place(self, seed: str, data: bytes) -> Path:
        """Write `data` where `seed` sits (restoring the file the last input changed) and record
        it in the progress file, so a crash of this process names the input that caused it."""
        if self._dirty is not None and self._dirty != seed:
            (self.folder / self.target.seeds[self._dirty]).write_bytes(self.seed_bytes[self._dirty])
        path = self.folder / self.target.seeds[seed]
        path.write_bytes(data)
        self._dirty = seed
        self.placed += 1
        record = {
            "target": self.target.name,
            "seed": seed,
            "path": str(path),
            "placed": self.placed,
        }
        self.progress.write_text(json.dumps(record))
        return path


def regression_name(seed: str, data: bytes, place: str) -> str:
    """<seed>-<sha256 prefix><the placed file's suffix>[.gz]: the seed names where it goes."""
    digest = hashlib.sha256(data).hexdigest()[:10]
    suffix = "".join(Path(place).suffixes[-1:])
    return f"{seed}-{digest}{suffix}" + (".gz" if len(data) > GZIP_OVER else "")


def save_input(folder: Path, target: Target, seed: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / regression_name(seed, data, target.seeds[seed])
    payload = gzip.compress(data, mtime=0) if path.suffix == ".gz" else data
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
    return path


def read_input(path: Path) -> tuple[str, bytes]:
    """(seed, bytes) of a saved input."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return path.name.split("-")[0], data
