"""Simplify an exported graph (onnxsim, onnxslim as the fallback) and prove it still computes the same.

onnxsim folds constants, removes the exporter's Identity/Shape chains and fuses BatchNorm into
convolutions; it only ships x86_64 wheels, so onnxslim covers aarch64 (Jetson) and any onnxsim
failure. Either way the simplified graph is run against the original on the same inputs.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass

import numpy as np
import onnx

from export.onnx_export import GraphIO
from runtime.errors import RunError


class SimplifyError(RunError):
    """The simplified graph does not compute what the exported one did."""


@dataclass(frozen=True)
class SimplifyResult:
    model: onnx.ModelProto
    tool: str  # "onnxsim x.y", "onnxslim x.y" or "none" (both failed; the original is kept)
    max_abs_diff: float
    notes: tuple[str, ...] = ()


def simplify_model(
    model: onnx.ModelProto, io_spec: GraphIO, shapes: list[tuple], atol: float = 1e-4
) -> SimplifyResult:
    """Simplify with onnxsim, else onnxslim, else keep the original; verify at each shape."""
    notes = []
    for name, run in (("onnxsim", _onnxsim), ("onnxslim", _onnxslim)):
        try:
            simplified, version = run(model)
        except Exception as err:
            notes.append(
                f"{name} failed: {str(err).strip().splitlines()[0] if str(err) else err!r}"
            )
            continue
        diff = max_output_diff(model, simplified, io_spec, shapes)
        if diff <= atol:
            return SimplifyResult(simplified, f"{name} {version}", diff, tuple(notes))
        notes.append(f"{name} changed the outputs by {diff:.3g} (> {atol:g}); discarded")
    return SimplifyResult(model, "none", 0.0, tuple(notes))


def _onnxsim(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    import onnxsim

    with _quiet():
        simplified, ok = onnxsim.simplify(model, check_n=0)
    if not ok:
        raise SimplifyError("onnxsim reported that the simplified model could not be validated")
    return simplified, onnxsim.__version__


def _onnxslim(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    import onnxslim

    with _quiet():
        simplified = onnxslim.slim(model)
    return simplified, onnxslim.__version__


@contextlib.contextmanager
def _quiet():
    """The simplifiers print progress to stdout and log at INFO; library code stays silent."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def random_input(io_spec: GraphIO, shape: tuple, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if io_spec.input.dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float32)


def max_output_diff(
    a: onnx.ModelProto, b: onnx.ModelProto, io_spec: GraphIO, shapes: list[tuple]
) -> float:
    """Largest |a - b| over the outputs at each input shape (label outputs: count of mismatches)."""
    from export.ort_session import cpu_session

    sa, sb = cpu_session(a.SerializeToString()), cpu_session(b.SerializeToString())
    worst = 0.0
    for i, shape in enumerate(shapes):
        x = random_input(io_spec, shape, seed=i)
        ya = sa.run(None, {io_spec.input.name: x})[0]
        yb = sb.run(None, {io_spec.input.name: x})[0]
        if ya.shape != yb.shape:
            return float("inf")
        if io_spec.output_kind == "labels":
            worst = max(worst, float(np.mean(ya != yb)))
        else:
            worst = max(worst, float(np.abs(ya.astype(np.float64) - yb).max()))
    return worst
