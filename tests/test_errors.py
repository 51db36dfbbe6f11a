"""Error details: the first line of an exception, and torch's out-of-memory error said as the engine's own."""

import pytest
import torch

from captioner_gui.engine import DecodeOptions, GPUOutOfMemory, load_model
from captioner_gui.engine.errors import first_line
from captioner_gui.engine.model import TorchCaptioner


def test_first_line_is_the_message_s_first_line_or_the_class_name():
    assert first_line(RuntimeError("\n  it broke\nat line 3")) == "it broke"
    assert first_line(ValueError()) == "ValueError"


def test_a_gpu_out_of_memory_becomes_the_engine_s_error(tiny_mlp, images, monkeypatch):
    model = load_model(str(tiny_mlp.folder), device="cpu", precision="fp32")  # the torch form, as on a GPU

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(TorchCaptioner, "_caption", out_of_memory)
    monkeypatch.setattr(TorchCaptioner, "encode", out_of_memory)
    with pytest.raises(GPUOutOfMemory, match="^The GPU ran out of memory"):
        model.caption(images[:1], DecodeOptions(method="greedy"))
    if model.kind_guard is not None:
        with pytest.raises(GPUOutOfMemory):
            model.kinds(images[:1])
