"""Triton's model configuration (the subset we generate) and its config.pbtxt text format.

Config text is written directly (no protobuf dependency at export time); the tests parse every
generated file with Triton's own schema (tritonclient's model_config_pb2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# How long the dynamic batcher holds the first request waiting for others: 2 ms is well under one
# frame at 30 fps, and enough for concurrent clients to meet in one batch.
MAX_QUEUE_DELAY_US = 2000


@dataclass(frozen=True)
class TritonTensor:
    name: str
    data_type: str  # TYPE_FP32, ...
    dims: tuple[int, ...]  # without the batch dim when max_batch_size > 0; -1 = any size


@dataclass(frozen=True)
class TritonModelConfig:
    """The subset of Triton's ModelConfig we generate; `to_pbtxt` renders the text format."""

    name: str
    backend: str  # python | onnxruntime | tensorrt
    max_batch_size: int  # 0 = the model takes no batch dim of Triton's (dims are the full shape)
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]
    dynamic_batching: bool
    instance_kind: str = "KIND_AUTO"
    instance_count: int = 1
    cc_model_filenames: dict[str, str] = field(default_factory=dict)
    dla_core: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # written as comments at the top

    def to_pbtxt(self) -> str:
        lines = [f"# {note}" for note in self.notes]
        lines += [f"name: {_q(self.name)}", f"backend: {_q(self.backend)}"]
        lines.append(f"max_batch_size: {self.max_batch_size}")
        lines += _tensors("input", self.inputs) + _tensors("output", self.outputs)
        if self.dynamic_batching:
            lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}"]
            lines.append("}")
        group = [f"    count: {self.instance_count}", f"    kind: {self.instance_kind}"]
        if self.dla_core is not None:
            group += [
                "    secondary_devices [",
                f"      {{ kind: KIND_NVDLA device_id: {self.dla_core} }}",
                "    ]",
            ]
        lines += ["instance_group [", "  {", *group, "  }", "]"]
        for cc, filename in sorted(self.cc_model_filenames.items()):
            lines.append(f"cc_model_filenames {{ key: {_q(cc)} value: {_q(filename)} }}")
        for key, value in self.parameters.items():
            lines.append(f"parameters {{ key: {_q(key)} value {{ string_value: {_q(value)} }} }}")
        return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensors(kind: str, tensors: Sequence[TritonTensor]) -> list[str]:
    lines = [f"{kind} ["]
    for i, t in enumerate(tensors):
        dims = ", ".join(str(d) for d in t.dims)
        lines += ["  {", f"    name: {_q(t.name)}", f"    data_type: {t.data_type}"]
        lines += [f"    dims: [ {dims} ]", "  }" + ("," if i < len(tensors) - 1 else "")]
    return [*lines, "]"]
