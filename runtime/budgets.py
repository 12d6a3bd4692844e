"""Every limit a reader of a user's file checks before it pays the cost, in one table.

A small file can ask for a huge cost (a zip member that inflates to gigabytes, a PNG header that
claims 12000x12000 16-bit RGBA, a pickle that asks for a 2.5 GB bytearray, a video header that
claims 60 million frames). Each reader checks the number the file claims against its budget here
first, then enforces it again while reading where the claim can lie. A breach is a BudgetError
(bad input, exit 2) that names the limit and the environment variable that raises it.

The defaults sit well above what real SCASeg work needs (the reason is beside each) and well
below what would exhaust a 8 GB Jetson; raise one with its variable, e.g.
`SCASEG_MAX_IMAGE_PIXELS=150000000 scaseg-run huge.tif`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runtime.errors import BudgetError, UserInputError

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Budget:
    """One limit: `unit` names what is counted ("bytes", "pixels", ...), `why` the default."""

    key: str
    default: int
    unit: str
    why: str

    @property
    def env(self) -> str:
        return f"SCASEG_MAX_{self.key.upper()}"

    @property
    def limit(self) -> int:
        """The default, or the environment's override (checked: a positive integer)."""
        raw = os.environ.get(self.env)
        if raw is None or not raw.strip():
            return self.default
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            value = 0
        if value <= 0:
            raise UserInputError(
                f"{self.env}={raw!r} is not a positive whole number; set it to a limit in "
                f"{self.unit} (the default is {self.default:,}) or unset it"
            )
        return value

    def check(self, value: int, what: str) -> int:
        """Raise BudgetError when `value` exceeds the limit; `what` names the file and its claim
        ("frame.png: a 12000x12000 image"). Returns `value`."""
        limit = self.limit
        if value > limit:
            raise BudgetError(
                f"{what} needs {value:,} {self.unit}, over the limit of {limit:,} {self.unit}; "
                f"if that is genuinely needed, raise it with {self.env}={max(value, limit + 1)}"
            )
        return value


def _b(key: str, default: int, unit: str, why: str) -> Budget:
    return Budget(key, default, unit, why)


BUDGETS: dict[str, Budget] = {
    b.key: b
    for b in (
        _b("checkpoint_bytes", 4 * GIB, "bytes",
           "SCASeg-L with optimizer state is under 1 GB; 4 GiB leaves room for larger heads"),
        _b("zip_member_bytes", 4 * GIB, "bytes",
           "one checkpoint storage after decompression; torch stores them uncompressed"),
        _b("zip_entries", 100_000, "entries",
           "one per checkpoint storage: SCASeg-L with its optimizer state has about 6,000"),
        _b("pickle_object_bytes", 64 * MIB, "bytes",
           "a bytes/bytearray/str built inside a checkpoint pickle (tensors live outside it)"),
        _b("tensor_elements", 1 << 30, "elements",
           "all tensors of one checkpoint together (4 GiB of float32)"),
        _b("metadata_depth", 64, "levels of nesting",
           "checkpoint metadata, sidecars and JSON: real ones nest fewer than 10 deep"),
        _b("metadata_items", 1_000_000, "items",
           "containers and scalars in checkpoint metadata or a JSON file"),
        _b("json_bytes", 16 * MIB, "bytes", "a sidecar or class file is a few kB"),
        _b("config_text_chars", 1 * MIB, "characters",
           "a training config in checkpoint metadata is 5-50 kB of Python; parsing costs ~100x"),
        _b("classes", 4096, "classes",
           "ADE20K-full has 3,688 classes; larger label sets do not fit a 1x1-conv classifier"),
        _b("class_name_chars", 256, "characters", "a class name is a word or a phrase"),
        _b("image_pixels", 64_000_000, "pixels",
           "8K video is 33 Mpx; 64 Mpx of 16-bit RGBA already decodes to 512 MB"),
        _b("image_bytes", 512 * MIB, "bytes", "one encoded image or mask file"),
        _b("input_side", 8192, "pixels per side",
           "the model's input; 8192 px already needs tens of GB of activations"),
        _b("batch", 256, "images", "one inference call; crops of one frame or a few streams"),
        _b("video_frames", 1_000_000, "frames",
           "frames read for calibration or evaluation (9 hours at 30 fps); live runs are not capped"),
        _b("folder_entries", 1_000_000, "entries",
           "files listed from one image/mask folder, glob or list file"),
        _b("list_bytes", 64 * MIB, "bytes",
           "a .txt list of image paths: a million paths of 60 characters"),
        _b("onnx_bytes", 8 * GIB, "bytes", "one ONNX model with its external data"),
    )
}  # fmt: skip


def budget(key: str) -> Budget:
    return BUDGETS[key]


def check(key: str, value: int, what: str) -> int:
    """`BUDGETS[key].check(value, what)`: raise BudgetError when over, else return `value`."""
    return BUDGETS[key].check(value, what)
