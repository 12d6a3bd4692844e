"""A FAKE `triton_python_backend_utils`: a stand-in for the module Triton's Python stub provides.

It proves model.py's request handling, not that the real Triton stub accepts it.
"""

from __future__ import annotations

import types

import numpy as np


def fake_pb_utils() -> types.ModuleType:
    pb = types.ModuleType("triton_python_backend_utils")

    class Tensor:
        def __init__(self, name, array):
            self.name, self._array = name, array

        def as_numpy(self):
            return self._array

    class InferenceResponse:
        def __init__(self, output_tensors, error=None):
            self.output_tensors, self.error = output_tensors, error

    pb.Tensor, pb.InferenceResponse = Tensor, InferenceResponse
    pb.TritonError = lambda message: message
    pb.get_input_tensor_by_name = lambda request, name: request[name]
    pb.Logger = types.SimpleNamespace(log_info=lambda message: None)
    return pb


def image_tensor(array: np.ndarray):
    """An "image" input tensor of the fake module (install it in sys.modules first)."""
    import triton_python_backend_utils as pb

    return pb.Tensor("image", array)
