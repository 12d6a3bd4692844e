"""The grid form of Strip Cross-Attention: accuracy against the exact form, the degenerate range,
the model swap and its refusals, and the ONNX export (dynamic size, TensorRT-friendly ops)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from scaseg.config import DecoderConfig
from scaseg.decoder import StripCrossAttention
from scaseg.errors import ModelConfigError
from scaseg.model import build_model
from scaseg.strip_grid import (
    GRID_DEFAULT,
    GRID_MAX,
    GridStripCrossAttention,
    check_grid,
    use_grid_attention,
)

WEIGHTS = Path(__file__).resolve().parents[2] / "scaseg" / "weights" / "scaseg_t_demo.safetensors"
BANNED_OPS = {"GatherElements", "ScatterND", "NonZero", "Loop", "If"}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread: with other work on a small machine, OpenMP spinning made the demo-model
    forward 4x slower on 2 threads than on 1 (as in tests/support/training.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def strip_attention(seed: int = 0, dim: int = 64, kv_dim: int = 96, heads: int = 2):
    """An exact module with q/k/v weights large enough that F(a) is clearly non-linear
    (|a| up to ~2, where the default init gives |a| < 0.1 and F is nearly a straight line)."""
    torch.manual_seed(seed)
    module = StripCrossAttention(dim, kv_dim, heads, DecoderConfig()).eval()
    with torch.no_grad():
        for lin in (module.q, module.k, module.v):
            lin.weight.normal_(0.0, 3.0 / lin.in_features**0.5)
    return module


def inputs(batch: int = 2, n: int = 2048, m: int = 128, dim: int = 64, kv_dim: int = 96):
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, n, dim, generator=g), torch.randn(batch, m, kv_dim, generator=g)


def max_error(exact: StripCrossAttention, grid: int, x, y) -> float:
    with torch.no_grad():
        ref = exact(x, y)
        got = GridStripCrossAttention.from_exact(exact, grid)(x, y)
    return float((got - ref).abs().max())


def test_grid_matches_exact_attention_at_the_default_grid():
    exact = strip_attention()
    x, y = inputs()
    with torch.no_grad():
        scale = float(exact(x, y).abs().max())
    assert GRID_DEFAULT == 256
    assert max_error(exact, GRID_DEFAULT, x, y) < 2e-4 * scale


def test_error_shrinks_quadratically_as_the_grid_grows():
    exact = strip_attention()
    x, y = inputs()
    errors = [max_error(exact, g, x, y) for g in (16, 64, 256, 1024)]
    # Linear interpolation: error ~ step^2, so 4x the points should give ~16x less error.
    for coarse, fine in itertools.pairwise(errors):
        assert coarse > 6 * fine, errors


def test_each_batch_item_and_head_uses_its_own_range():
    """Offsets into the flattened table: a batch gives what each item gives alone."""
    exact = strip_attention(heads=4)
    x, y = inputs(batch=3)
    x[1] *= 5.0  # a much wider query range in item 1 than in items 0 and 2
    grid = GridStripCrossAttention.from_exact(exact, 64)
    with torch.no_grad():
        together = grid(x, y)
        alone = torch.cat([grid(x[i : i + 1], y[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [1, 500])
def test_equal_queries_all_get_f_of_amin(n):
    exact = strip_attention()
    x, y = inputs(n=n)
    x = x[:, :1].expand_as(x).contiguous()  # every query of an item the same: span = 0
    with torch.no_grad():
        got = GridStripCrossAttention.from_exact(exact, GRID_DEFAULT)(x, y)
        ref = exact(x, y)
    assert torch.isfinite(got).all()
    assert torch.equal(got, got[:, :1].expand_as(got))  # weight 0 on T_0 = F(amin), bit for bit
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_half_precision_grid_stays_as_close_as_half_exact():
    exact = strip_attention()
    x, y = inputs()
    with torch.no_grad():
        ref = exact(x, y)
        half_exact = StripCrossAttention(64, 96, 2, DecoderConfig())
        half_exact.load_state_dict(exact.state_dict())
        half_exact = half_exact.half().eval()
        err_exact = (half_exact(x.half(), y.half()).float() - ref).abs().max()
        grid = GridStripCrossAttention.from_exact(half_exact, GRID_DEFAULT)
        assert grid.fractions.dtype == torch.float16
        got = grid(x.half(), y.half()).float()
    assert torch.isfinite(got).all()
    assert (got - ref).abs().max() < 3 * err_exact + 1e-3


def test_same_state_dict_and_shared_weights():
    exact = strip_attention()
    grid = GridStripCrossAttention.from_exact(exact, 32)
    assert grid.state_dict().keys() == exact.state_dict().keys()
    assert grid.q.weight is exact.q.weight  # shared, not copied
    fresh = GridStripCrossAttention(64, 96, 2, DecoderConfig(), grid=32)
    fresh.load_state_dict(exact.state_dict(), strict=True)
    x, y = inputs(n=64)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x, y), grid(x, y))
    assert (grid.heads, grid.head_dim, grid.scale, grid.grid) == (2, 32, exact.scale, 32)


@pytest.mark.parametrize("bad", [1, 0, -3, GRID_MAX + 1, 2.5, True, "256"])
def test_grid_outside_the_allowed_range_is_refused(bad):
    with pytest.raises(ModelConfigError, match="grid must"):
        check_grid(bad)
    with pytest.raises(ValueError, match="grid must"):
        use_grid_attention(build_model("tiny", 3), bad)


@pytest.mark.parametrize("kind", ["cross", "self"])
def test_models_without_strip_attention_are_refused(kind):
    model = build_model("t", 8, attention=kind)
    with pytest.raises(ModelConfigError, match=f"attention='{kind}'"):
        use_grid_attention(model)


def test_swap_leaves_the_original_model_unchanged():
    torch.manual_seed(0)
    model = build_model("tiny", 3).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gridded = use_grid_attention(model, 64)
    assert all(type(b.attn) is StripCrossAttention for b in model.decode_head.blocks)
    assert all(type(b.attn) is GridStripCrossAttention for b in gridded.decode_head.blocks)
    assert all(b.attn.grid == 64 for b in gridded.decode_head.blocks)
    assert gridded.state_dict().keys() == model.state_dict().keys()
    with torch.no_grad():
        for p in gridded.parameters():
            p.add_(1.0)  # the copy owns its weights
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    again = use_grid_attention(gridded, 128)  # a grid model can change its G
    assert all(b.attn.grid == 128 for b in again.decode_head.blocks)


@pytest.fixture(scope="module")
def demo():
    from scaseg.checkpoint import load_model

    model, _ = load_model(WEIGHTS)
    model = model.float().eval()
    return model, use_grid_attention(model, GRID_DEFAULT)


def scene_batch(height: int, width: int, count: int) -> np.ndarray:
    from runtime.preprocess import Preprocess, preprocess
    from scenes import render_scene, split_seeds

    pp = Preprocess(height, width)
    seeds = split_seeds("val", count, start=40)
    return np.concatenate([preprocess(render_scene(s, height, width)[0], pp) for s in seeds])


def test_demo_model_labels_agree_on_street_scenes(demo, record_property):
    exact, grid = demo
    # 256x512: stage 1 has 8192 queries against 128 keys, so the 256-point table is really used.
    x = torch.from_numpy(scene_batch(256, 512, 3))
    with torch.no_grad():
        ref, got = exact(x), grid(x)
    agreement = float((ref.argmax(1) == got.argmax(1)).float().mean())
    diff = float((ref - got).abs().max())
    record_property("argmax_agreement", agreement)
    record_property("max_logit_diff", diff)
    print(f"grid vs exact: argmax agreement {agreement:.5%}, max |logit diff| {diff:.2e}")
    assert agreement >= 0.999
    assert diff < 1e-2


@pytest.fixture(scope="module")
def grid_onnx(demo):
    from export.onnx_export import ExportOptions, ShapeRange, export_onnx
    from runtime.preprocess import Preprocess

    dynamic = ShapeRange(batch=(1, 1, 2), height=(256, 256, 512), width=(256, 512, 512))
    options = ExportOptions(256, 512, dynamic=dynamic)
    data, spec = export_onnx(demo[1], Preprocess(256, 512), options)
    return data, spec


@pytest.mark.slow
def test_grid_onnx_runs_at_two_sizes_and_matches_pytorch(demo, grid_onnx):
    ort = pytest.importorskip("onnxruntime")
    data, spec = grid_onnx
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # as one_torch_thread: steady on a shared machine
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    # Two sizes, and a batch of 2 (the table offsets (b * heads + head) * (G-1) come from the
    # graph's batch size at run time).
    for n, h, w in ((1, 256, 512), (1, 512, 512), (2, 256, 512)):
        x = scene_batch(h, w, n)
        with torch.no_grad():
            ref = demo[1](torch.from_numpy(x)).numpy()
        got = session.run(None, {spec.input.name: x})[0]
        assert got.shape == (n, 8, h // 4, w // 4)
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_grid_onnx_uses_only_tensorrt_friendly_ops(grid_onnx):
    import onnx

    from export.trt_ops import op_counts, unsupported_ops

    model = onnx.load_from_string(grid_onnx[0])
    ops = op_counts(model)
    assert {"Gather", "Floor", "Clip", "Cast", "ReduceMin", "ReduceMax"} <= set(ops)
    assert not BANNED_OPS & set(ops), ops
    assert unsupported_ops(model) == {}  # every op parses on TensorRT 8.6 and later
