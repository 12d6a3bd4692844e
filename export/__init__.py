"""scaseg export: PyTorch checkpoint -> ONNX (FP32/FP16/INT8) + sidecars, and TensorRT engines.

Library use (the `scaseg-export` CLI is a thin layer over these):

    from export.pipeline import export_artifacts
    from export.request import ExportRequest
    report = export_artifacts(ExportRequest(precisions=("fp32", "fp16", "int8"), out=Path("out")))

    from export.trt_build import EngineOptions, build_engine   # on the target device
    build_engine(Path("out/scaseg_t.fp16.onnx"), EngineOptions(workspace_gib=2))

Nothing is imported here so that `import export.<module>` stays cheap.
"""
