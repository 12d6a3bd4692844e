"""Strip Cross-Attention evaluated on a grid: cost linear in the number of pixels.

Why a grid works. Strip attention projects every query to ONE number per head. For a batch item b
and a head h, write a_i = scale * q_i for query i (N of them), k_j for key j (M of them) and V for
the (M, C/h) values. The head's output for query i is

    F(a_i),   F(a) = sum_j softmax_j(a * k_j) V_j,

so every query of that (b, h) reads the SAME function F of one scalar, only at a different point.
F is smooth (its derivative is a covariance of k and V under the softmax weights), so a piecewise
linear interpolant through a few hundred samples reproduces it closely. The grid form:

1. amin, amax = the smallest and largest a_i of that (b, h); span = amax - amin (clamped, below);
2. g_t = amin + t * span / (G - 1) for t = 0..G-1, and the table T_t = F(g_t): a (G, M) softmax
   and a (G, M) @ (M, C/h) product, exactly the exact path with G rows instead of N;
3. for each query, u = (a_i - amin) / span * (G - 1); i0 = floor(u) limited to 0..G-2, w = u - i0,
   output = T_i0 + w * (T_{i0+1} - T_i0): one row gather and one multiply-add.

Costs per (b, h): the exact form spends N * M for the logits, N * M for the softmax and
N * M * C/h for A @ V, and holds an (N, M) attention map. The grid form spends G * M * (1 + C/h)
for the table plus N * C/h for the interpolation, and holds a (G, M) map and the (N, C/h) result.
With N = 131072 and M = 2048 (stage 1 of SCASeg-T at 1024x2048) the map shrinks from 268 M to
0.5 M entries per head. The table is a fixed cost, so the exact form stays cheaper for small N:
measured per stage (benchmarks/strip_grid.py, G = 256, ONNX Runtime and OpenVINO on the CPU) the
grid form was slower at N <= G, about even up to N ~ 16 G while M <= 128 keys, 1.1-2.6x faster
from N >= 4 G with M >= 256, and 2-8x faster at 1024x2048 (N up to 131 k, M = 2048).

Error. Linear interpolation is off by at most step^2 / 8 * max|F''| with step = span / (G - 1),
so doubling G quarters the error; G = 256 keeps the demo model's labels unchanged (tests).

Export. The forward is straight-line tensor code (no data-dependent Python branches), so the
legacy TorchScript exporter (opset 17) keeps batch, height and width dynamic. The row lookup is a
Gather on axis 0 of the table flattened to (B*h*(G-1), 2*C/h), with flat indices
(b * heads + head) * (G - 1) + i0 built from an arange of B*h (an ONNX Range): Floor, Clip, Cast
and Gather only, which TensorRT 8.6 and 10 parse, and no GatherElements/ScatterND/NonZero/Loop/If.

Precision. Positions and weights are computed in the working dtype (float16 after `.half()`), the
indices in int64. In float16 the weight w has the resolution of (a_i - amin) itself, about
|a| * 2^-11, i.e. no worse than the float16 rounding the exact form already applies to a_i.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from scaseg.config import DecoderConfig
from scaseg.decoder import StripCrossAttention
from scaseg.errors import ModelConfigError

GRID_DEFAULT = 256
GRID_MIN = 2  # two points: a single linear segment from F(amin) to F(amax)
GRID_MAX = 4096  # past this the (G, M) table costs more than the exact map saves at any size
# Smallest span of the grid, absolute, in units of a = scale * q. When every query of a (b, h) is
# equal, span = 0 and (a - amin) / span would be 0/0; clamping to SPAN_EPS makes u = 0 exactly, so
# every query gets T_0 = F(amin) with weight 0. 1e-4 rather than 1e-6: it is a normal float16
# number (float16's smallest normal is 6.1e-5), so the clamp still works under `.half()` and on
# engines that flush float16 subnormals to zero. A span this small only happens for (near-)equal
# queries; the grid then covers [amin, amin + 1e-4] ⊇ [amin, amax] and F barely moves across it.
SPAN_EPS = 1e-4


def check_grid(grid: int) -> int:
    """`grid` as an int in GRID_MIN..GRID_MAX, or ModelConfigError saying what is allowed."""
    if not isinstance(grid, int) or isinstance(grid, bool):
        raise ModelConfigError(f"grid must be a whole number, got {type(grid).__name__} {grid!r}")
    if not GRID_MIN <= grid <= GRID_MAX:
        raise ModelConfigError(
            f"grid must be in {GRID_MIN}..{GRID_MAX} points (default {GRID_DEFAULT}), got {grid}"
        )
    return grid


class GridStripCrossAttention(nn.Module):
    """Strip Cross-Attention through a G-point table of F(a) and linear interpolation.

    Same submodules, attributes and state_dict keys as StripCrossAttention (q, k, v, proj;
    heads, head_dim, scale), so checkpoints of the exact form load as they are. `grid` is G.
    """

    def __init__(
        self, dim: int, kv_dim: int, heads: int, cfg: DecoderConfig, grid: int = GRID_DEFAULT
    ) -> None:
        super().__init__()
        self._adopt(StripCrossAttention(dim, kv_dim, heads, cfg), grid)

    @classmethod
    def from_exact(
        cls, module: StripCrossAttention, grid: int = GRID_DEFAULT
    ) -> GridStripCrossAttention:
        """The grid form of `module`, sharing its Linear layers (the same parameter tensors)."""
        if not isinstance(module, (StripCrossAttention, GridStripCrossAttention)):
            raise ModelConfigError(
                f"from_exact needs a StripCrossAttention, got {type(module).__name__}"
            )
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new._adopt(module, grid)
        new.train(module.training)
        return new

    def _adopt(self, module: nn.Module, grid: int) -> None:
        self.heads = module.heads
        self.head_dim = module.head_dim
        self.scale = module.scale
        self.q, self.k, self.v, self.proj = module.q, module.k, module.v, module.proj
        self.grid = check_grid(grid)
        weight = module.q.weight
        # t / (G-1) for t = 0..G-1; not persistent, so the state_dict stays the exact form's.
        # A buffer follows .half()/.to(), and exports as a constant initializer.
        fractions = torch.linspace(0.0, 1.0, self.grid, dtype=torch.float32)
        self.register_buffer(
            "fractions", fractions.to(device=weight.device, dtype=weight.dtype), persistent=False
        )

    def extra_repr(self) -> str:
        return f"heads={self.heads}, head_dim={self.head_dim}, grid={self.grid}"

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        a = self.q(x).transpose(1, 2) * self.scale  # (B,N,h) -> (B,h,N)
        k = self.k(y).transpose(1, 2).unsqueeze(-2)  # (B,M,h) -> (B,h,1,M)
        v = self.v(y).reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)  # (B,h,M,C/h)
        amin = a.amin(dim=-1, keepdim=True)  # (B,h,1)
        span = (a.amax(dim=-1, keepdim=True) - amin).clamp(min=SPAN_EPS)  # (B,h,1)
        table = self._table(amin, span, k, v)  # (B,h,G-1,2*C/h): rows [T_t, T_{t+1} - T_t]
        u = ((a - amin) / span * (self.grid - 1)).clamp(0.0, self.grid - 1.0)  # (B,h,N)
        i0 = u.floor().clamp(max=self.grid - 2.0)  # (B,h,N), left grid point, 0..G-2
        w = (u - i0).unsqueeze(-1)  # (B,h,N,1) interpolation weight in [0, 1]
        rows = self._lookup(table, i0)  # (B,h,N,2*C/h)
        lo, delta = rows.split(self.head_dim, dim=-1)  # 2 x (B,h,N,C/h)
        out = lo + w * delta  # (B,h,N,C/h)
        out = out.transpose(1, 2).reshape(b, n, c)  # (B,h,N,C/h) -> (B,N,C)
        return self.proj(out)

    def _table(
        self, amin: torch.Tensor, span: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """F at the G grid points, as rows [T_t, T_{t+1} - T_t] for t = 0..G-2."""
        points = amin + span * self.fractions  # (B,h,1) + (B,h,1)*(G,) -> (B,h,G)
        attn = (points.unsqueeze(-1) @ k).softmax(dim=-1)  # (B,h,G,1) @ (B,h,1,M) -> (B,h,G,M)
        values = attn @ v  # (B,h,G,M) @ (B,h,M,C/h) -> (B,h,G,C/h)
        lo = values[:, :, :-1]  # (B,h,G-1,C/h)
        return torch.cat([lo, values[:, :, 1:] - lo], dim=-1)  # (B,h,G-1,2*C/h)

    def _lookup(self, table: torch.Tensor, i0: torch.Tensor) -> torch.Tensor:
        """Row i0 of each (b, head)'s table, by one Gather on axis 0 of the flattened table."""
        b, h, rows, width = table.shape
        n = i0.shape[-1]
        flat = table.reshape(-1, width)  # (B,h,G-1,2C/h) -> (B*h*(G-1), 2C/h)
        # (b * heads + head) * (G-1): the first row of each (b, head) block, as int64.
        offsets = torch.arange(b * h, device=table.device, dtype=torch.int64) * rows  # (B*h,)
        index = i0.to(torch.int64).reshape(b * h, n) + offsets.unsqueeze(-1)  # (B*h,N)
        picked = flat.index_select(0, index.reshape(-1))  # (B*h*N, 2C/h)
        return picked.reshape(b, h, n, width)  # (B*h*N,2C/h) -> (B,h,N,2C/h)


def use_grid_attention(model: nn.Module, grid: int = GRID_DEFAULT) -> nn.Module:
    """A deep copy of `model` with every StripCrossAttention in its grid form (G = `grid`).

    `model` itself is not changed. A model already in grid form gets the new G. ModelConfigError
    (a ValueError) when `grid` is out of range or the model has no strip attention (built with
    attention="cross" or "self": their full-width queries have no one-scalar form).
    """
    check_grid(grid)
    kinds = (StripCrossAttention, GridStripCrossAttention)
    if not any(isinstance(m, kinds) for m in model.modules()):
        cfg = getattr(model, "cfg", None)
        kind = getattr(getattr(cfg, "decoder", None), "attention", None)
        which = f" (it was built with attention={kind!r})" if kind else ""
        raise ModelConfigError(
            f"the grid form needs Strip Cross-Attention, and this model has none{which}; "
            "only attention='strip' models can use it"
        )
    gridded = copy.deepcopy(model)
    for parent in list(gridded.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, kinds):
                setattr(parent, name, GridStripCrossAttention.from_exact(child, grid))
    return gridded
