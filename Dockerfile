# syntax=docker/dockerfile:1
# scaseg images. Pick the platform with --build-arg TARGET=x86|jetson|cpu (x86 with an NVIDIA
# GPU, Jetson, or an x86 CPU without one: ONNX Runtime and OpenVINO) and the stage with --target:
#   runtime  torch-free: scaseg-run on TensorRT engines or ONNX Runtime (the default stage). It
#            holds the runtime package only (with its bundled demo model); the model code, the
#            weights, export, calibration and the scene generator are not in it.
#   export   runtime + torch + the build side (scaseg/, export/, calibration/, scenes/):
#            scaseg-export, calibration, engine builds
# Build/run commands and what was verified where: docs/deployment.md. Models are mounted at run
# time (-v), never baked in: engines must be built on the GPU that runs them.
ARG TARGET=x86
# TensorRT 10.3 (the JetPack 6 version), CUDA 12.6, Ubuntu 22.04, Python 3.10.
ARG X86_BASE=nvcr.io/nvidia/tensorrt:24.08-py3
# JetPack 6.1 (L4T r36.4): TensorRT 10.3 with Python bindings, CUDA 12.6, cuDNN, and JetPack's
# OpenCV 4.8 built with GStreamer (CSI cameras, hardware decode).
ARG JETSON_BASE=nvcr.io/nvidia/l4t-jetpack:r36.4.0
# x86 CPU boxes (industrial PCs, NUCs, Intel Core Ultra): Debian 12, Python 3.11.
ARG CPU_BASE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${X86_BASE} AS runtime-x86
WORKDIR /opt/scaseg
COPY pyproject.toml README.md ./
COPY runtime ./runtime
# gpu extra: onnxruntime-gpu (CUDA/TensorRT providers) and cuda-python, held to the image's
# CUDA 12 (cuda-python 13 needs a CUDA 13 driver). pycuda compiles against the image's CUDA
# toolkit. (DL3013: "." is this source tree; pyproject.toml bounds its dependencies.)
# hadolint ignore=DL3013
RUN python3 -m pip install --no-cache-dir ".[gpu]" "cuda-python>=12,<13" \
 && python3 -m pip install --no-cache-dir "pycuda>=2022.1"

# ---------------------------------------------------------------------------------------------
FROM ${JETSON_BASE} AS runtime-jetson
# JetPack's OpenCV Python module is the cv2 used here; the opencv-python wheel (no GStreamer)
# would shadow it, so scaseg is installed without its PyPI dependencies and they are listed.
# DL3008: the versions are the L4T apt repository's for this JetPack; the base tag pins them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3-pip python3-dev build-essential libopencv-python \
      gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/scaseg
COPY pyproject.toml README.md ./
COPY runtime ./runtime
# numpy<2: JetPack 6's OpenCV and TensorRT bindings are built against numpy 1.x. onnxruntime is
# the CPU wheel (PyPI has no Jetson GPU build); engines run on TensorRT. pycuda builds here,
# against the device's CUDA (it cannot be cross-built). onnx: every .onnx is parsed by it before a
# runtime opens the file (runtime/onnx_guard.py); JetPack 6's Python 3.10 gets no onnxruntime
# past 1.23, so that check is the only one there against weights read from outside the folder.
RUN python3 -m pip install --no-cache-dir --no-deps . \
 && python3 -m pip install --no-cache-dir "numpy>=1.24,<2" "typer>=0.12" "rich>=13" \
      "onnxruntime>=1.17" "onnx>=1.16" "pycuda>=2022.1"

# ---------------------------------------------------------------------------------------------
FROM ${CPU_BASE} AS runtime-cpu
# OpenCV's wheel needs libGL and GLib at import. Intel GPUs and NPUs are reached by passing their
# devices in (--device /dev/dri, /dev/accel) with the host's drivers; only the CPU is verified.
# DL3008: Debian 12's versions, pinned by the base tag.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/scaseg
COPY pyproject.toml README.md ./
COPY runtime ./runtime
# cpu + openvino extras: ONNX Runtime's CPU wheel and OpenVINO; --backend auto picks OpenVINO for
# artifacts the export gate verified on it. (DL3013: "." is this source tree.)
# hadolint ignore=DL3013
RUN python3 -m pip install --no-cache-dir ".[cpu,openvino]"

# ---------------------------------------------------------------------------------------------
# DL3006: an earlier stage of this file, chosen by TARGET, not an image from a registry.
# hadolint ignore=DL3006
FROM runtime-${TARGET} AS runtime
# Jetson containers find the GPU through the NVIDIA container runtime (--runtime nvidia).
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
ENTRYPOINT ["scaseg-run"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------
FROM runtime AS export
# PyPI's torch is a CUDA build on x86 and a CPU build on aarch64; ONNX export and calibration
# need no GPU, and engines are built by TensorRT, so both work. On Jetson this stage also pulls
# the opencv-python wheel: run videos from the runtime stage.
WORKDIR /opt/scaseg
COPY scaseg ./scaseg
COPY export ./export
COPY calibration ./calibration
COPY scenes ./scenes
# hadolint ignore=DL3013
RUN python3 -m pip install --no-cache-dir "torch>=2.1" ".[export]"
ENTRYPOINT ["scaseg-export"]
CMD ["--help"]
