"""The FAKE TensorRT and CUDA are as strict as the real ones where our code once went wrong.

Passing here proves the fakes catch a mistake, not that real TensorRT or pycuda work.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from export import trt_compat
from tests.support.fake_cuda import FakeCuda, FakeCudaContextError
from tests.support.fake_tensorrt import (
    REAL_COUNTERPARTS,
    FakeConfigWithInt8,
    FakeEntropyCalibrator2,
    FakeLayerWithPrecision,
    FakeTrt,
)


def test_fake_cuda_refuses_memory_calls_outside_an_active_context():
    cuda = FakeCuda()
    with pytest.raises(FakeCudaContextError, match="alloc_device without an active CUDA"):
        cuda.alloc_device(16)
    with cuda.active():
        ptr = cuda.alloc_device(16)
    with pytest.raises(FakeCudaContextError, match="free_device"):
        cuda.free_device(ptr)
    with cuda.active():
        cuda.free_device(ptr)
    assert cuda.allocated == set()


def _calibrator_with_fix_reverted():
    """make_entropy_calibrator as it was before the fix: the buffer allocated outside active()."""
    source = inspect.getsource(trt_compat.make_entropy_calibrator)
    fixed = "with cuda.active():\n                self.device = cuda.alloc_device("
    assert fixed in source, "the calibrator changed: update this regression test"
    namespace = dict(vars(trt_compat))
    exec(
        source.replace(fixed, "if True:\n                self.device = cuda.alloc_device("),
        namespace,
    )
    return namespace["make_entropy_calibrator"]


def test_calibrator_buffer_lives_inside_the_cuda_context_and_a_regression_is_caught(tmp_path):
    batches = [np.zeros((1, 3, 64, 64), np.float32)]
    cuda = FakeCuda()
    calibrator = trt_compat.make_entropy_calibrator(
        FakeTrt("8.6.1"), batches, tmp_path / "c.cache", cuda
    )
    assert len(cuda.allocated) == 1 and cuda.active_depth == 0
    calibrator.free()
    assert cuda.allocated == set()

    reverted = _calibrator_with_fix_reverted()
    with pytest.raises(FakeCudaContextError, match="alloc_device"):
        reverted(FakeTrt("8.6.1"), batches, tmp_path / "c.cache", FakeCuda())


def test_fake_trt_11_lacks_what_tensorrt_11_removed():
    trt = FakeTrt("11.4.0")
    config = trt.Builder(trt.ILogger()).create_builder_config()
    assert not hasattr(trt, "IInt8EntropyCalibrator2")
    assert not hasattr(config, "int8_calibrator") and not hasattr(config, "set_calibration_profile")
    assert not hasattr(trt.BuilderFlag, "FP16")


def _public(names) -> set[str]:
    return {n for n in names if not n.startswith("_") and not n.startswith("fake")}


@pytest.mark.gpu
def test_every_name_the_fakes_define_exists_on_the_real_tensorrt():
    """Checks the fakes against an installed TensorRT (names only; the GPU itself is not used)."""
    trt = pytest.importorskip("tensorrt", reason="needs the real tensorrt Python bindings")
    fake = FakeTrt(trt.__version__)
    missing = [f"tensorrt.{n}" for n in _public(dir(fake)) if not hasattr(trt, n)]
    for enum_name in (
        "BuilderFlag",
        "NetworkDefinitionCreationFlag",
        "MemoryPoolType",
        "DeviceType",
    ):
        for member in getattr(fake, enum_name).__members__:
            if not hasattr(getattr(trt, enum_name), member):
                missing.append(f"tensorrt.{enum_name}.{member}")
    for fake_cls, real_name in REAL_COUNTERPARTS.items():
        if fake.fake.major >= 11 and fake_cls in (
            FakeConfigWithInt8,
            FakeEntropyCalibrator2,
            FakeLayerWithPrecision,
        ):
            continue  # stand-ins for TensorRT < 11 only
        if not hasattr(trt, real_name):
            continue  # reported above when the fake module defines it
        real_cls = getattr(trt, real_name)
        names = _public(vars(fake_cls)) | _public(_instance_attributes(fake_cls))
        missing += [f"tensorrt.{real_name}.{n}" for n in names if not hasattr(real_cls, n)]
    assert not missing, f"the fakes define names the real TensorRT lacks: {sorted(missing)}"


def _instance_attributes(fake_cls) -> set[str]:
    """Data attributes a fake sets in __init__ (read from the source: no instance needed)."""
    try:
        source = inspect.getsource(fake_cls.__init__)
    except (TypeError, OSError):
        return set()
    return {line.split("self.", 1)[1].split(" ")[0].split(",")[0].split(":")[0]
            for line in source.splitlines() if line.strip().startswith("self.")}  # fmt: skip


@pytest.mark.gpu
def test_every_name_the_fake_pycuda_uses_exists_on_the_real_pycuda():
    """Checks the fake pycuda.driver (tests/support/fake_cuda.py) against an installed pycuda."""
    driver = pytest.importorskip("pycuda.driver", reason="needs the real pycuda")
    from tests.support.fake_cuda import FakePycuda

    fake = FakePycuda()
    expected = {
        "": ("init", "get_version", "Device", "Context", "Stream"),
        "Context": ("push", "pop", "get_current", "detach", "handle"),
        "Device": ("retain_primary_context", "name", "compute_capability"),
        "Stream": ("handle",),
    }
    missing = []
    for owner, names in expected.items():
        real = getattr(driver, owner) if owner else driver
        mock = getattr(fake, owner) if owner else fake
        for name in names:
            assert hasattr(mock, name) or name == "handle", f"fake lacks {owner}.{name}"
            if not hasattr(real, name):
                missing.append(f"pycuda.driver.{owner + '.' if owner else ''}{name}")
    assert not missing, f"the fake pycuda uses names the real one lacks: {missing}"
