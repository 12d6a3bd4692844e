"""PycudaApi's primary-context handling against a FAKE pycuda.driver (tests/support/fake_cuda.py)
that follows pycuda's own push/pop/detach semantics. Proves the order of our calls, not pycuda."""

from __future__ import annotations

import threading

import pytest

from runtime.cuda_mem import PycudaApi
from tests.support.fake_cuda import FakeCudaContextError, FakePycuda

HANDLE = 0xC0  # the fake's primary context of device 0


def _open() -> tuple[PycudaApi, FakePycuda]:
    pycuda = FakePycuda()
    return PycudaApi(0, driver=pycuda, libcuda=pycuda.fake_libcuda), pycuda


def test_open_leaves_nothing_current_and_close_releases_on_the_same_thread():
    api, pycuda = _open()
    driver = pycuda.fake_driver
    assert driver.stack() == [] and driver.primary_refs == {0: 1}
    with api.active():
        assert driver.current() == HANDLE
    api.close()
    assert driver.primary_refs == {0: 0}  # our retain is released
    assert driver.stack() == []  # and the primary context is not left current on the thread
    assert ("stream-destroyed", True) in driver.log  # the stream died inside its context
    api.close()  # a second close is a no-op


def test_close_from_another_thread_still_releases_and_leaves_that_thread_clean():
    api, pycuda = _open()
    driver = pycuda.fake_driver
    seen = {}

    def close() -> None:
        api.close()
        seen["stack"] = list(driver.stack())

    worker = threading.Thread(target=close)
    worker.start()
    worker.join()
    assert driver.primary_refs == {0: 0} and seen["stack"] == [] and driver.stack() == []
    assert ("leaked-out-of-thread", 0) not in driver.log
    assert ("stream-destroyed", True) in driver.log


def test_close_under_another_current_pycuda_context_restores_it():
    api, pycuda = _open()
    driver = pycuda.fake_driver
    other = pycuda.Device(1).retain_primary_context()
    other.push()
    api.close()
    assert driver.stack() == [other.handle] and pycuda.Context.get_current() is other
    assert driver.primary_refs == {0: 0, 1: 1}


def _old_close(api: PycudaApi) -> None:
    """The order close() had before: push, free, pop, then detach."""
    with api.active():
        api._stream = None
    api._context.detach()


def test_the_fake_catches_the_old_pop_then_detach_order():
    api, pycuda = _open()
    _old_close(api)  # same thread: detach pushes the context again and leaves it current
    assert pycuda.fake_driver.stack() == [HANDLE]

    api, pycuda = _open()
    worker = threading.Thread(target=_old_close, args=(api,))
    worker.start()
    worker.join()  # another thread: pycuda releases nothing
    assert pycuda.fake_driver.primary_refs == {0: 1}
    assert ("leaked-out-of-thread", 0) in pycuda.fake_driver.log


def test_fake_pycuda_is_strict_about_a_missing_context():
    pycuda = FakePycuda()
    with pytest.raises(FakeCudaContextError, match="no currently active context"):
        pycuda.Stream()
    with pytest.raises(FakeCudaContextError, match="cannot pop non-current context"):
        pycuda.Context.pop()
