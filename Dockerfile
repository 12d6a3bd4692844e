# Placeholder until the deployment issue: a CPU image that runs the demo through ONNX Runtime.
# Jetson (L4T/JetPack 6) and x86 TensorRT targets come with the deployment work.
FROM python:3.11-slim
WORKDIR /opt/scaseg
COPY pyproject.toml README.md ./
COPY scaseg ./scaseg
COPY export ./export
COPY runtime ./runtime
COPY calibration ./calibration
RUN pip install --no-cache-dir ".[cpu]"
ENTRYPOINT ["scaseg-run"]
CMD ["--help"]
