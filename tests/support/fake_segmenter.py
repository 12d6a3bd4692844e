"""A FAKE segmenter for pipeline and sink tests: no model, labels computed from the frame."""

from __future__ import annotations

import time

import numpy as np


class FakeSegmenter:
    """A fake segmenter: class = blue channel // 32, after `delay_s` of 'inference'."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False):
        self.delay_s, self.fail = delay_s, fail
        self.prepared = 0

    def prepare(self, frame_bgr):
        self.prepared += 1
        return frame_bgr[None, ..., 0]

    def infer(self, batch):
        if self.fail:
            raise RuntimeError("model exploded (fake)")
        time.sleep(self.delay_s)
        return batch // 32

    def postprocess(self, output, frame_hw):
        assert output.shape[1:] == frame_hw
        return output[0].astype(np.uint8)
