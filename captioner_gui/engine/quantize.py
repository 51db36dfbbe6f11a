"""int8 for the CPU: torch's dynamic int8 Linear layers, used by both encoders (CLIP and GPT-2) as they load.

Also the memory hygiene of converting (freed heap memory given back).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

# torch announces that its quantized tensors move to torchao; they work as they are. A filter for this one
# message rather than catch_warnings around the conversion: GPT-2 and CLIP are converted on two threads at once,
# and catch_warnings is not thread-safe.
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")


def release_freed_memory() -> None:
    """Returns freed heap memory to the system (glibc keeps it otherwise, and converting weights frees a lot)."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # another C library (musl): nothing to do
            pass


# Modules that read their Linear children's weights directly instead of calling them: those stay fp32.
READS_LINEAR_WEIGHTS = ("MultiheadAttention", "AttentionPool2d")


def quantize_linears(module: nn.Module) -> nn.Module:
    """Replaces a module's nn.Linear layers, in place, by torch's dynamic int8 layers (fbgemm on x86, qnnpack on
    ARM): weights int8 with a scale per output channel, activations quantized on the fly per batch.

    The same result as torch.ao's `quantize_dynamic` with `per_channel_dynamic_qconfig`, at about two thirds of
    its cost: no observer modules, and each layer's weights are packed once, not twice."""
    if type(module) is nn.Linear:
        return int8_linear(module)
    for parent in list(module.modules()):
        if type(parent).__name__ in READS_LINEAR_WEIGHTS:
            continue
        for child_name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, child_name, int8_linear(child))
    return module


def int8_linear(linear: nn.Linear) -> nn.Module:
    """An int8 copy of a Linear layer: symmetric per-channel scales (largest |weight| of a row maps to 127.5,
    as torch.ao's per-channel weight observer computes them); the bias stays fp32."""
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    weight = linear.weight.detach().float()
    scales = (weight.abs().amax(dim=1) / 127.5).clamp_min(torch.finfo(torch.float32).eps).double()
    int8_weight = torch.quantize_per_channel(weight, scales, torch.zeros_like(scales, dtype=torch.long), 0,
                                             torch.qint8)
    # Built at 1x1 and then given its weights, so that its own placeholder weights are never packed.
    layer = Int8Linear(1, 1, dtype=torch.qint8)
    layer.in_features, layer.out_features = linear.in_features, linear.out_features
    # The bias is copied, so that a memory-mapped weights file can go.
    layer.set_weight_bias(int8_weight, None if linear.bias is None else linear.bias.detach().float().clone())
    return layer
