"""The most harmful quantized nodes, found by scoring groups of nodes and splitting the worst.

Scoring one node means one graph (that node quantized, every other node float) run on the
sensitivity frames. Doing that for all of SCASeg-T's 232 nodes took over two minutes on two
cores, though the repairs only ever need the few worst. Quantization noise from different nodes
adds up at the logits (independent rounding errors: their energies add), so a group's score is
about the sum of its members' and never below its worst member's. Best-first search on that:

1. score contiguous groups of `group_size` nodes in graph order;
2. take the group with the highest score; a single node is the next most harmful node, a larger
   group is split in two halves, which are scored and put back;
3. repeat until as many nodes as asked for are found.

A node comes out only when its score beats every group still unsplit, which (with additive
scores) contains no worse node. Nodes are found on demand (`top(k)`), so the fallback search
pays for the nodes it tries, not for the whole ranking; the scores of single nodes are the same
numbers the one-by-one ranking (export/int8/sensitivity.rank_nodes) gives them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

import numpy as np
import onnx

from export.int8.sensitivity import (
    NodeSensitivity,
    _compare,
    _session,
    float_nodes,
    quantized_nodes,
)

GROUP_SIZE = 16


class GroupRanking:
    def __init__(
        self,
        qdq: onnx.ModelProto,
        fp32: onnx.ModelProto,
        input_name: str,
        inputs: Sequence[np.ndarray],
        group_size: int = GROUP_SIZE,
        tick: Callable[[str], None] | None = None,
    ) -> None:
        if not inputs:
            raise ValueError("no calibration frames to rank INT8 nodes on")
        self._qdq, self._fp32, self._input, self._inputs = qdq, fp32, input_name, inputs
        self._tick = tick
        nodes = quantized_nodes(qdq)
        self.ops = dict(nodes)
        self.names = [n for n, _ in nodes]
        reference = _session(fp32)
        self._refs = [reference.run(None, {input_name: x})[0] for x in inputs]
        del reference
        self._labels = np.issubdtype(self._refs[0].dtype, np.integer)
        if self._labels:
            self._variance = 1.0
        else:
            stacked = np.concatenate([r.astype(np.float64).ravel() for r in self._refs])
            self._variance = float(stacked.var()) or 1.0
        self._values = sum(r.size for r in self._refs)
        self.evaluations = 0
        self.found: list[NodeSensitivity] = []
        self._heap: list[tuple[float, int, tuple[str, ...], float]] = []
        self._order = 0
        for start in range(0, len(self.names), max(1, group_size)):
            self._push(tuple(self.names[start : start + group_size]))

    def _score(self, group: tuple[str, ...]) -> tuple[float, float]:
        """(relative logit error, agreement) with only `group` quantized."""
        chosen = set(group)
        others = [n for n in self.names if n not in chosen]
        graph = float_nodes(self._qdq, self._fp32, others, every_side_pair=True)
        session = _session(graph)
        err = same = pixels = 0.0
        for x, ref in zip(self._inputs, self._refs):
            e, s, p = _compare(ref, session.run(None, {self._input: x})[0])
            err, same, pixels = err + e, same + s, pixels + p
        self.evaluations += 1
        if self._tick is not None:
            self._tick(
                f"INT8 sensitivity: {self.evaluations} group scores, {len(self.found)} worst "
                "node(s) found"
            )
        rel = err / max(pixels, 1) if self._labels else err / self._values / self._variance
        return rel, same / max(pixels, 1)

    def _push(self, group: tuple[str, ...]) -> None:
        if not group:
            return
        rel, agreement = self._score(group)
        self._order += 1
        heapq.heappush(self._heap, (-rel, self._order, group, agreement))

    def top(self, k: int) -> list[str]:
        """The k most harmful nodes (fewer when there are fewer), worst first."""
        while len(self.found) < k and self._heap:
            neg, _, group, agreement = heapq.heappop(self._heap)
            if len(group) == 1:
                name = group[0]
                self.found.append(
                    NodeSensitivity(name, self.ops[name], len(self.found) + 1, -neg, agreement)
                )
                continue
            half = len(group) // 2
            self._push(group[:half])
            self._push(group[half:])
        return [s.node for s in self.found[:k]]
