"""export_artifacts(): checkpoint -> FP32/FP16/INT8 ONNX + sidecars, gated, written atomically.

Order: check targets and inputs (nothing is written before this passes), load the model, read
the calibration data, stage every variant in a temp folder, run the gate, then move the passing
variants into place with their sidecars. A variant that misses its budget is not written and
the call raises GateFailedError after the passing ones are in place.

INT8 with `int8_fallback="auto"` is repaired around the gate (export/int8/repair.py): outlier
Conv pairs equalized before calibration, the most sensitive nodes left in float after a failed
gate, each try re-checked against the PyTorch reference the gate kept.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import onnx

from calibration.sources import (
    GENERATED,
    CalibrationData,
    CalibrationDataError,
    load_calibration_data,
)
from export import artifacts, model_info
from export.fp16 import convert_fp16
from export.gate_data import (
    DEFAULT_GATE_FRAMES,
    DEFAULT_VAL_IMAGES,
    GateData,
    generated_gate,
    holdout_gate,
    val_gate,
)
from export.inference_plan import plan_inference
from export.int8.records import RepairRecord
from export.int8.repair import Int8Work, repair_int8
from export.int8.stage import stage_int8
from export.onnx_export import ExportOptions, GraphIO, export_onnx
from export.request import (
    ArtifactResult,
    ExportInputError,
    ExportReport,
    ExportRequest,
    GateFailedError,
)
from export.simplify import simplify_model
from export.strip_form import StripForm, choose_strip_form, model_for_export
from export.trt_ops import check_trt_ops
from export.verify import recheck, run_gate
from runtime.atomic import check_writable_folder
from runtime.deps import available
from runtime.memory_estimate import estimate_peak_activation
from runtime.meta import ModelMeta, sha256_file, write_meta
from runtime.preprocess import Preprocess
from runtime.val_data import find_val_set

Progress = Callable[[str], None]


def export_artifacts(
    request: ExportRequest, progress: Progress | None = None, tick: Progress | None = None
) -> ExportReport:
    """Run the whole export; see the module docstring. Never prints, never exits.

    `progress(text)` starts a stage; `tick(text)` updates the running stage's line."""
    report = ExportReport()
    say = progress or (lambda _stage: None)
    model, info = model_info.load(request)
    _note_model(report, info)
    request, plan, plan_warnings = plan_inference(request, info)
    report.inference_plan = plan
    report.model_notes.append(f"inference: {plan.describe()}")
    report.warnings += plan_warnings
    form = choose_strip_form(request, model)
    report.strip_form = form
    report.model_notes.append(_form_note(form))
    name = artifacts.check_name(request.name or model_info.default_name(request, info))
    targets = {p: artifacts.onnx_path(request.out, name, p) for p in request.precisions}
    artifacts.preflight(list(targets.values()), request.force)
    if request.sensitivity_report is not None:
        check_writable_folder(request.sensitivity_report, "--sensitivity-report")
    pp = _preprocess(request, info, report)
    calib = _read_calibration(request, info)
    if calib is not None:
        report.warnings += list(calib.warnings)  # skipped entries, an untrue frame count
    gate = _gate_data(request, info, pp, calib, report) if request.verify else None
    with tempfile.TemporaryDirectory(prefix="scaseg-export-") as tmp:
        traced = model_for_export(model, form)
        staged, work = _stage_all(request, traced, info, pp, calib, Path(tmp), report, say)
        reference = None
        if gate is not None:
            with _timed(report, "verify"):
                say(f"verifying on {gate.count} frames ({gate.kind}) through the runtime")
                reference = _verify(model, traced, staged, info, request, report, pp, gate, tick)
        if work is not None:
            with _timed(report, "int8 repairs"):
                _repair_int8(work, staged, request, info, report, gate, reference, say, tick)
        for precision, (path, meta) in staged.items():
            check = next((a.check for a in report.artifacts if a.precision == precision), None)
            ok = check is None or check.passed
            if ok:
                if precision == "int8" and report.calibration is not None:
                    meta = replace(meta, calibration=report.calibration.to_dict())
                meta = _finish_meta(meta, path, check, report)
                artifacts.place(path, targets[precision], meta, request.force)
            result = ArtifactResult(precision, targets[precision], path.stat().st_size, check, ok)
            _upsert(report, result)
    if report.failed:
        lines = "; ".join(f for a in report.failed for f in a.check.failures)
        raise GateFailedError(f"accuracy gate failed: {lines}", report)
    return report


def _preprocess(request: ExportRequest, info: dict, report: ExportReport) -> Preprocess:
    """The input contract (flags, else the checkpoint, else mmseg's defaults), noted in the report."""
    pp, source, warnings = model_info.preprocess_for(request, info)
    plan = report.inference_plan
    if plan is not None and plan.resize != pp.resize:
        pp = replace(pp, resize=plan.resize, scale=plan.scale)
    info["preprocess_source"] = source
    report.model_notes.append(
        f"preprocessing: {pp.color.upper()}, mean {_triplet(pp.mean)}, std {_triplet(pp.std)} "
        f"({source})"
    )
    report.warnings += warnings
    return pp


def _form_note(form: StripForm) -> str:
    if form.form == "grid":
        return f"strip attention: grid form, {form.grid} points per head ({form.reason})"
    return f"strip attention: exact ({form.reason})"


def _note_model(report: ExportReport, info: dict) -> None:
    report.class_names = tuple(info["class_names"])
    report.class_source = info["class_source"]
    notes = [f"{info.get('format', 'checkpoint')}, variant {info['variant']} "
             f"({info.get('variant_source', 'given')}), {len(report.class_names)} classes "
             f"({report.class_source})"]  # fmt: skip
    for pattern, count in info.get("remapped") or ():
        notes.append(f"remapped {count} key(s): {pattern}")
    if info.get("random_decoder"):
        notes.append("decoder weights are RANDOM (--allow-random-decoder): for smoke tests only")
    report.model_notes = notes
    report.warnings += list(info.get("class_warnings") or ())
    report.warnings += list(info.get("metadata_warnings") or ())


def _read_calibration(request: ExportRequest, info: dict) -> CalibrationData | None:
    """The calibration frames (and the gate's held-out ones), or None where none are needed."""
    source = request.calib_data
    if source is None and "int8" in request.precisions:
        if not info["is_demo"]:
            raise ExportInputError(
                f"--precision int8 needs --calib-data for {Path(info['checkpoint']).name}: an "
                "image folder, glob, video or text file listing frames like the ones it will see "
                "(generated street scenes are the bundled demo model's data; pass "
                "--calib-data generated to use them anyway)"
            )
        source = GENERATED
    if source is None:
        return None
    holdout = 0
    if request.verify and request.val_data is None and source != GENERATED:
        holdout = request.verify_frames or DEFAULT_GATE_FRAMES
    try:
        return load_calibration_data(
            source, request.calib_samples, request.height, request.width, holdout=holdout
        )
    except CalibrationDataError as err:
        raise ExportInputError(str(err)) from err


def _gate_data(request, info: dict, pp, calib: CalibrationData | None, report) -> GateData:
    """The user's masks, else held-out calibration frames, else generated scenes (see gate_data)."""
    count = request.verify_frames
    k = len(info["class_names"])
    if request.val_data is not None:
        val_set = find_val_set(
            request.val_data,
            masks=request.val_masks,
            split=request.val_split,
            reduce_zero_label=request.reduce_zero_label,
            ignore_index=request.ignore_index,
        )
        return val_gate(val_set, count or DEFAULT_VAL_IMAGES, k, request.ignore_index)
    if calib is not None and calib.kind != GENERATED:
        if calib.holdout_frames:
            return holdout_gate(calib.holdout_frames, str(request.calib_data))
        report.warnings.append(
            f"--calib-data {request.calib_data} has no frames left after the {calib.samples} "
            "used to calibrate, so the gate cannot use held-out frames of it; pass --val-data "
            "or more frames"
        )
    if info["is_demo"]:
        return generated_gate(pp, count or DEFAULT_GATE_FRAMES, with_truth=True)
    report.warnings.append(
        "no --val-data: the gate compared each variant with PyTorch FP32 on generated street "
        "scenes (agreement only; no mIoU). Pass --val-data DIR (images with masks) to check "
        "accuracy on your own data"
    )
    return generated_gate(pp, count or DEFAULT_GATE_FRAMES, with_truth=False)


def _stage_all(request, model, info, pp, calib, tmp: Path, report, say) -> tuple[dict, object]:
    """Build every requested variant in tmp; returns ({precision: (path, meta)}, Int8Work or
    None: what the INT8 repairs after the gate start from)."""
    options = ExportOptions(
        request.height, request.width, request.dynamic, request.fuse_preprocess, request.fuse_argmax
    )
    with _timed(report, "export"):
        say(f"exporting ONNX (opset {options.opset}, {_shape_text(request)})")
        fp32, io_spec = _stage_fp32(model, pp, options, tmp, report)
    base = model_info.base_meta(info, io_spec, pp, request)
    base.extra["simplifier"] = report.simplifier
    base.extra["strip_attention"] = report.strip_form.to_dict()
    base = replace(base, inference=report.inference_plan.inference)
    staged = {"fp32": (fp32, base)}
    if "fp16" in request.precisions:
        with _timed(report, "fp16"):
            say("converting to FP16 (fragile nodes kept in FP32)")
            fp16_model, kept = convert_fp16(onnx.load(str(fp32)))
            check_trt_ops(fp16_model, "the FP16 graph")
            path = tmp / "model.fp16.onnx"
            onnx.save(fp16_model, str(path))
            report.fp32_nodes = kept
            staged["fp16"] = (path, _derived(base, "fp16", fp32, fp32_nodes=kept))
    work = None
    if "int8" in request.precisions:
        with _timed(report, "int8"):
            inference = report.inference_plan.inference
            stage = stage_int8(fp32, io_spec.input.name, pp, calib, request, tmp, say, inference)
            report.warnings += stage.warnings
            report.calibration = stage.record
            report.float_matmuls = tuple(stage.record.float_matmuls)
            if request.int8_fallback == "auto":
                stage.record.repairs = RepairRecord(
                    equalized=stage.work.equalized, equalize_diff=stage.work.equalize_diff
                )
            work = stage.work
            hashes = {"calibration_data": calib.sha256}
            if work.calibrated != fp32:
                hashes["calibrated_onnx"] = sha256_file(work.calibrated)
            calibration = stage.record.to_dict()
            staged["int8"] = (
                stage.path,
                _derived(base, "int8", fp32, hashes, calibration=calibration),
            )
    if "fp32" not in request.precisions:
        staged.pop("fp32")
    return staged, work


def _stage_fp32(model, pp: Preprocess, options: ExportOptions, tmp: Path, report):
    data, io_spec = export_onnx(model, pp, options)
    exported = onnx.load_from_string(data)
    result = simplify_model(exported, io_spec, _check_shapes(io_spec, options))
    report.simplifier = result.tool
    check_trt_ops(result.model, "the FP32 graph")
    path = tmp / "model.fp32.onnx"
    onnx.save(result.model, str(path))
    return path, io_spec


def _check_shapes(io_spec: GraphIO, options: ExportOptions) -> list[tuple]:
    if io_spec.input.profile is not None:
        return [tuple(s) for s in io_spec.input.profile]  # min, opt, max
    return [tuple(io_spec.input.shape)]


def _repair_int8(
    work: Int8Work, staged: dict, request, info, report, gate, reference, say, tick
) -> None:
    """After the gate: export/int8/repair.repair_int8 with this export's gate and files."""
    path, meta = staged["int8"]
    result = next((a for a in report.artifacts if a.precision == "int8"), None)
    check = result.check if result is not None else None
    record = report.calibration.repairs if report.calibration is not None else None

    def write(model: onnx.ModelProto) -> None:
        check_trt_ops(model, "the INT8 graph with nodes left in float")
        onnx.save(model, str(path))
        write_meta(path, artifacts.with_artifact_hash(meta, sha256_file(path)))

    def again(k: int):
        done = [0]

        def advance() -> None:
            done[0] += 1
            if tick is not None:
                tick(f"INT8 fallback, {k} node(s) in float: {done[0]}/{gate.count} frames")

        return recheck(
            "int8",
            path,
            reference,
            gate,
            request.budgets,
            model_info.class_names(info),
            _openvino(request),
            advance,
        )

    outcome = repair_int8(
        work,
        path,
        write,
        record,
        check,
        again,
        request.int8_max_float_nodes,
        request.sensitivity_report,
        say,
        tick,
    )
    report.sensitivity = outcome.ranking
    report.sensitivity_files = outcome.files
    report.warnings += outcome.warnings
    if outcome.check is not None:
        _upsert(report, ArtifactResult("int8", path, path.stat().st_size, outcome.check, False))


def _openvino(request) -> bool:
    return request.openvino_gate and available("openvino")


def _derived(
    base: ModelMeta, precision: str, source: Path, hashes: dict | None = None, **changes
) -> ModelMeta:
    from dataclasses import replace

    hashes = {**base.hashes, "source_onnx": sha256_file(source), **(hashes or {})}
    return replace(base, precision=precision, hashes=hashes, **changes)


def _verify(model, traced, staged: dict, info, request, report, pp, gate: GateData, tick) -> None:
    """Run the gate over every staged variant, each opened through the runtime with its sidecar."""
    for path, meta in staged.values():  # the runtime refuses artifacts without a sidecar
        write_meta(path, artifacts.with_artifact_hash(meta, sha256_file(path)))
    done = [0]

    def advance() -> None:
        done[0] += 1
        if tick is not None:
            tick(f"verifying: {done[0]}/{gate.count} frames ({gate.kind}) through the runtime")

    openvino = _openvino(request)
    result = run_gate(
        model,
        {p: path for p, (path, _) in staged.items()},
        pp,
        gate,
        request.budgets,
        model_info.class_names(info),
        openvino,
        progress=advance,
        inference=report.inference_plan.inference,
        traced=None if traced is model else traced,
    )
    report.reference_miou = result.ref_miou
    report.reference_iou = result.ref_iou
    report.gate_data = gate.description
    report.gate_frames = result.frames
    report.warnings += result.warnings
    for precision, check in result.checks.items():
        _upsert(report, ArtifactResult(precision, check.path, check.size_bytes, check, False))
    return result.reference


def _memory(path: Path, meta: ModelMeta) -> dict:
    """The sidecar's `memory` section: peak activations from a liveness pass over the graph's
    tensor shapes at the shape it was exported for (a dynamic profile's opt and max)."""
    spec = meta.input
    shapes = [tuple(spec.shape)] if spec.profile is None else [spec.profile[1], spec.profile[2]]
    model = onnx.load(str(path))
    found = [estimate_peak_activation(model, {spec.name: tuple(s)}) for s in shapes]
    first = found[0]
    memory = {
        "peak_activation_mb": first.peak_mb,
        "input_shape": list(shapes[0]),
        "weights_mb": first.weights_mb,
        "method": "liveness over the ONNX graph's tensor shapes (runtime/memory_estimate.py)",
    }
    if first.largest_tensor is not None:
        t = first.largest_tensor
        memory["largest_tensor"] = {
            "name": t.name,
            "shape": list(t.shape),
            "mb": round(t.bytes / 2**20, 1),
        }
    if len(found) > 1 and shapes[1] != shapes[0]:
        memory["max_peak_activation_mb"] = found[1].peak_mb
        memory["max_input_shape"] = list(shapes[1])
    unknown = max(e.unknown_tensors for e in found)
    if unknown:
        memory["unknown_tensors"] = unknown  # not counted: the peak is a lower bound
    return memory


def _finish_meta(meta: ModelMeta, path: Path, check, report: ExportReport) -> ModelMeta:
    from dataclasses import replace

    meta = replace(meta, memory=_memory(path, meta))
    report.memory[meta.precision] = meta.memory
    extra = dict(meta.extra)
    if check is not None:
        gate = {**check.summary(), "frames": report.gate_frames, "data": report.gate_data}
        if check.iou is not None:
            gate["per_class_iou"] = _per_class(report.class_names, check.iou)
            gate["reference_miou"] = report.reference_miou
        extra["gate"] = gate
    return artifacts.with_artifact_hash(replace(meta, extra=extra), sha256_file(path))


def _per_class(names, iou) -> dict:
    return {n: (round(float(v), 6) if v == v else None) for n, v in zip(names, iou)}


def _upsert(report: ExportReport, result: ArtifactResult) -> None:
    report.artifacts = [a for a in report.artifacts if a.precision != result.precision]
    report.artifacts.append(result)


def _triplet(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _shape_text(request: ExportRequest) -> str:
    if request.dynamic is None:
        return f"static {request.height}x{request.width}"
    d = request.dynamic
    return f"dynamic batch {d.batch[0]}-{d.batch[2]}, {d.height[0]}-{d.height[2]} x {d.width[0]}-{d.width[2]}"


@contextmanager
def _timed(report: ExportReport, stage: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        report.stage_seconds[stage] = round(time.perf_counter() - start, 2)
