"""What an export is asked to do (ExportRequest) and what it produced (ExportReport)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from calibration.ranges import CalibrationSettings
from export.int8.records import CalibrationRecord
from export.onnx_export import ShapeRange
from export.plans import InferencePlan, StripForm
from export.verify import Budgets, VariantCheck
from runtime.budgets import check
from runtime.errors import RunError, UserInputError
from runtime.meta import PRECISIONS
from scaseg.model import check_input_size

DEMO_CHECKPOINT = (
    Path(__file__).resolve().parents[1] / "scaseg" / "weights" / "scaseg_t_demo.safetensors"
)


INT8_FALLBACK = ("auto", "off")
INT8_ROUNDING = ("gptq", "nearest")
STRIP_FORMS = ("auto", "exact", "grid")  # export/strip_form.py
STRIP_GRID_RANGE = (2, 4096)
INFERENCE_MODES = ("whole", "slide")  # runtime/slide.py; export/inference_plan.py
RESIZE_CHOICES = ("stretch", "keep_ratio")


class ExportInputError(UserInputError):
    """Bad user input (options, checkpoint, calibration data): the CLI exits with code 2."""


class GateFailedError(RunError):
    """A variant missed its accuracy budget; `report` holds every check (passing ones written)."""

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ExportRequest:
    checkpoint: Path | None = None  # None: the bundled demo model
    out: Path = Path("artifacts")
    name: str | None = None  # default: scaseg_<variant>, or the checkpoint's stem
    precisions: tuple[str, ...] = ("fp32",)
    height: int = 512
    width: int = 512
    dynamic: ShapeRange | None = None
    fuse_preprocess: bool = False
    fuse_argmax: bool = False
    num_classes: int | None = None  # when given, the checkpoint must have exactly this many
    variant: str | None = None  # None: from the checkpoint (metadata, else tensor shapes)
    allow_random_decoder: bool = False  # smoke tests of backbone-only checkpoints
    classes: str | None = None  # preset name or .json/.txt file; None: checkpoint metadata
    color: str | None = None  # rgb | bgr, the model's input channel order; None: rgb
    mean: tuple[float, float, float] | None = None  # in the model's channel order; None: ImageNet
    std: tuple[float, float, float] | None = None
    # Image folder, glob, video, text file listing images, or "generated". None: generated scenes
    # for the bundled demo model; any other model must name its own frames for INT8.
    calib_data: str | None = None
    calib_samples: int = 32
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    calib_cache: Path | None = None  # None: ~/.cache/scaseg/calibration
    verify: bool = True
    verify_frames: int | None = None  # None: 16 (generated / held-out frames), 100 val images
    val_data: Path | None = None  # images with masks in a known layout (or images + val_masks)
    val_masks: Path | None = None
    val_split: str | None = None  # None: the layout's validation split
    ignore_index: int = 255
    reduce_zero_label: bool | None = None  # None: on for the ADE20K layout only
    openvino_gate: bool = True  # also run the gate on OpenVINO where it is installed
    budgets: Budgets = field(default_factory=Budgets)
    # INT8 repairs: "auto" equalizes outlier Conv pairs before calibration and, if the gate still
    # fails, leaves the most sensitive nodes in float (up to int8_max_float_nodes; None: 10% of
    # the quantized nodes); "off" quantizes as is and lets the gate decide.
    int8_fallback: str = "auto"
    int8_max_float_nodes: int | None = None
    # INT8 weight rounding: "gptq" minimises each layer's output error on calibration frames;
    # "nearest" rounds every weight to its nearest grid point (ONNX Runtime's quantizer)
    int8_rounding: str = "gptq"
    sensitivity_report: Path | None = None  # folder for the INT8 sensitivity CSV and PNG
    # Strip attention's form in the graph: exact, grid (linear in pixels), or auto (grid where it
    # pays); strip_grid: grid points per head, None: scaseg.strip_grid.GRID_DEFAULT
    strip_attention: str = "auto"
    strip_grid: int | None = None
    # How frames are run, as mmseg scores the model (export/inference_plan.py); None: from the
    # checkpoint's config (test_cfg, the test pipeline's Resize), else whole frames stretched
    inference: str | None = None  # whole | slide
    slide_crop: tuple[int, int] | None = None  # (h, w); slide: the graph's input size
    slide_stride: tuple[int, int] | None = None  # (h, w)
    resize: str | None = None  # stretch | keep_ratio
    resize_scale: tuple[int, int] | None = None  # keep_ratio: (long, short) side limits
    force: bool = False

    def __post_init__(self) -> None:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise ExportInputError(
                f"precision {', '.join(bad) or '(none)'} is not one of {', '.join(PRECISIONS)}, all"
            )
        try:
            check_input_size(self.height, self.width)
        except ValueError as err:
            raise ExportInputError(f"--input-size: {err}") from err
        if self.dynamic is not None and not (
            self.dynamic.height[0] <= self.height <= self.dynamic.height[2]
            and self.dynamic.width[0] <= self.width <= self.dynamic.width[2]
        ):
            raise ExportInputError(
                f"--input-size {self.height}x{self.width} is outside the dynamic range "
                f"{self.dynamic.height[0]}-{self.dynamic.height[2]} x "
                f"{self.dynamic.width[0]}-{self.dynamic.width[2]}"
            )
        if self.verify and self.verify_frames is not None and self.verify_frames < 1:
            raise ExportInputError(f"--verify-frames must be >= 1, got {self.verify_frames}")
        if self.calib_samples < 1:
            raise ExportInputError(f"--calib-samples must be >= 1, got {self.calib_samples}")
        # Each is a frame decoded (or rendered) and run: a count past the frame budget is hours.
        check("video_frames", self.calib_samples, "--calib-samples")
        if self.verify_frames is not None:
            check("video_frames", self.verify_frames, "--verify-frames")
        if self.val_masks is not None and self.val_data is None:
            raise ExportInputError(
                "--val-masks needs --val-data IMAGES: pass the folder of the images they label"
            )
        if self.int8_fallback not in INT8_FALLBACK:
            raise ExportInputError(
                f"--int8-fallback {self.int8_fallback!r} is not one of {', '.join(INT8_FALLBACK)}"
            )
        if self.int8_rounding not in INT8_ROUNDING:
            raise ExportInputError(
                f"--int8-rounding {self.int8_rounding!r} is not one of {', '.join(INT8_ROUNDING)}"
            )
        if self.int8_max_float_nodes is not None and self.int8_max_float_nodes < 0:
            raise ExportInputError(
                f"--int8-max-float-nodes {self.int8_max_float_nodes}: pass a count >= 0 "
                "(0 leaves no node in float)"
            )
        if (self.sensitivity_report is not None or self.int8_max_float_nodes is not None) and (
            "int8" not in self.precisions
        ):
            flag = "--sensitivity-report" if self.sensitivity_report else "--int8-max-float-nodes"
            raise ExportInputError(
                f"{flag} is about the INT8 variant; pass --precision int8 (or all) with it"
            )
        if self.strip_attention not in STRIP_FORMS:
            raise ExportInputError(
                f"--strip-attention {self.strip_attention!r} is not one of {', '.join(STRIP_FORMS)}"
            )
        lo, hi = STRIP_GRID_RANGE
        if self.strip_grid is not None and not lo <= self.strip_grid <= hi:
            raise ExportInputError(
                f"--strip-grid {self.strip_grid}: pass a count of grid points in {lo}..{hi} "
                "(256 agrees with the exact form on >= 99.9% of pixels)"
            )
        if self.strip_grid is not None and self.strip_attention == "exact":
            raise ExportInputError(
                "--strip-grid sets the grid form's size; it contradicts --strip-attention exact"
            )
        if self.inference is not None and self.inference not in INFERENCE_MODES:
            raise ExportInputError(
                f"--inference {self.inference!r} is not one of {', '.join(INFERENCE_MODES)}"
            )
        if self.resize is not None and self.resize not in RESIZE_CHOICES:
            raise ExportInputError(f"--resize {self.resize!r} is not one of stretch, keep-ratio")
        if not 0 <= self.ignore_index <= 65535:
            raise ExportInputError(f"--ignore-index must be in 0..65535, got {self.ignore_index}")


@dataclass
class ArtifactResult:
    precision: str
    path: Path
    size_bytes: int
    check: VariantCheck | None
    written: bool


@dataclass
class ExportReport:
    artifacts: list[ArtifactResult] = field(default_factory=list)
    reference_miou: float | None = None
    reference_iou: object = None  # (K,) PyTorch FP32 IoU per class against the masks
    gate_data: str | None = None  # what the gate ran on
    gate_frames: int = 0
    class_names: tuple[str, ...] = ()
    class_source: str = ""  # --classes, checkpoint metadata, or numbered
    model_notes: list[str] = field(default_factory=list)  # format, variant source, remapped keys
    warnings: list[str] = field(default_factory=list)
    simplifier: str = ""
    fp32_nodes: tuple[str, ...] = ()
    float_matmuls: tuple[str, ...] = ()
    # How the INT8 variant was made; its `repairs` (equalized pairs, nodes left in float, gate
    # result per step) is None where --int8-fallback off. to_dict() is the sidecar's form.
    calibration: CalibrationRecord | None = None
    sensitivity: list = field(default_factory=list)  # NodeSensitivity, most harmful first
    sensitivity_files: list[Path] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    engine_note: str | None = None  # how to build engines where TensorRT/GPU are missing
    engines: list[Path] = field(default_factory=list)
    strip_form: StripForm | None = None  # the strip attention form written (export/strip_form.py)
    memory: dict[str, dict] = field(default_factory=dict)  # precision -> sidecar `memory`
    inference_plan: InferencePlan | None = None  # whole/slide and the resize (inference_plan.py)

    @property
    def failed(self) -> list[ArtifactResult]:
        return [a for a in self.artifacts if a.check is not None and not a.check.passed]
