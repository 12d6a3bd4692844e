"""The INT8 path: ranges, quantization, equalization, bias correction, sensitivity and repairs."""
