"""The tensors of a state dict, checked once read: each one dense, every value finite.

A state dict holds one dense tensor per parameter or buffer. A view with stride 0 (or strides
that overlap) repeats a few stored values over a large shape: a (10_000_000, C, 1, 1) classifier
from C floats claims ten million classes. And a NaN or infinity in any weight or BatchNorm
statistic spreads to every output pixel it touches; the export would then compare NaN with NaN
and fail much later, or ship a model that outputs garbage. Both are refused here, naming the
first tensor at fault.
"""

from __future__ import annotations

import torch

from scaseg.errors import CheckpointError
from scaseg.metadata_walk import name

# Float8 kinds have no isfinite kernel on CPU: they are widened first (they are small).
_WIDEN = {torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz}


def check_state_tensors(state: dict[str, torch.Tensor], path) -> None:
    """Raise CheckpointError for the first tensor that repeats its storage or holds a NaN/Inf."""
    for key, tensor in state.items():
        if overlaps(tensor):
            raise CheckpointError(
                f"{path}: {name(key)} is a view that repeats its values (size "
                f"{list(tensor.shape)}, stride {list(tensor.stride())}); a state dict holds "
                "dense tensors: re-save it with torch.save(model.state_dict())"
            )
    bad = [(key, count) for key, tensor in state.items() if (count := _non_finite(tensor))]
    if bad:
        key, count = bad[0]
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise CheckpointError(
            f"{path}: {name(key)} holds {count:,} NaN or infinite values of "
            f"{state[key].numel():,}{more}; the training run diverged or the file is damaged: "
            "re-export from a healthy training iteration"
        )


def overlaps(tensor: torch.Tensor) -> bool:
    """True when two elements share memory (stride 0, or strides that interleave); transposed
    and sliced views do not."""
    reach = 0  # the furthest element the smaller-stride dimensions reach
    for stride, size in sorted((s, n) for n, s in zip(tensor.shape, tensor.stride()) if n > 1):
        if stride <= reach:
            return True
        reach += (size - 1) * stride
    return False


def _non_finite(tensor: torch.Tensor) -> int:
    if not (tensor.is_floating_point() or tensor.is_complex()) or tensor.numel() == 0:
        return 0
    values = tensor.float() if tensor.dtype in _WIDEN else tensor
    finite = torch.isfinite(values)
    return 0 if bool(finite.all()) else int(finite.numel() - finite.sum())
