"""scaseg runtime: torch-free inference for SCASeg artifacts (ONNX Runtime or TensorRT)."""
