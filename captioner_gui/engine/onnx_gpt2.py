"""GPT-2's decoding step as an onnxruntime graph, written node by node from the weights (no exporter).

A step reads every weight once, so its time is the weights' bytes and, for one new token, the count of the other
operations. onnxruntime has fused operators for a transformer block, and written by hand a layer is nine of them:

    SkipLayerNormalization   the residual sum and the next layer norm in one
    MatMulNBits              int8 weights (or DynamicQuantizeMatMul, see below), the bias added in the same call
    Split                    queries, keys and values
    MultiHeadAttention       causal attention with the cache: past keys and values in, one position longer out
    FastGelu                 GELU's tanh form, with the first MLP layer's bias

(torch's exporter wrote about 30 a layer for the same step.) The graph's inputs and outputs are those
`onnx_model.OnnxGPT2` feeds: the new positions' embeddings and each layer's past keys and values -> the last
position's logits and the keys and values one position longer.

Two quantizations of the same weights, by the rows a call feeds (see README, Speed):
- `one_row`: MatMulNBits, 8 bits with a scale per output channel and per block of BLOCK inputs, the activations
  quantized on the fly (accuracy level 4): MLAS's fastest kernel for one row.
- else: DynamicQuantizeMatMul with a scale per output channel: its matrix kernels slow down far less with rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK = 128  # MatMulNBits: one scale per output channel and per block of this many inputs
OPSET = 20  # ONNX's own operators (the CPU form's other graphs are exported at the same)
CONTRIB = "com.microsoft"


def block_int8(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) fp32 -> MatMulNBits' uint8 weights (N, ⌈K / BLOCK⌉, BLOCK), symmetric (its implied zero point 128),
    and their scales (N, ⌈K / BLOCK⌉): onnxruntime's own quantizer (as its MatMulNBitsQuantizer calls it)."""
    from onnxruntime.capi._pybind_state import quantize_matmul_8bits

    outputs, inputs = weight.shape
    count = -(-inputs // BLOCK)
    matmul_weight = np.pad(weight.T, ((0, count * BLOCK - inputs), (0, 0)))  # (K, N), K padded with zeros
    quantized = np.zeros((outputs, count, BLOCK), dtype=np.uint8)
    scales = np.zeros((outputs, count), dtype=np.float32)
    zero_points = np.zeros((outputs, count), dtype=np.uint8)  # unused: symmetric
    quantize_matmul_8bits(quantized, np.ascontiguousarray(matmul_weight, dtype=np.float32), scales, zero_points,
                          BLOCK, outputs, count * BLOCK, True)
    return quantized, scales


def channel_int8(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) fp32 -> DynamicQuantizeMatMul's int8 weights (K, N) and a scale per output channel (N,)."""
    scales = np.abs(weight).max(axis=1) / 127
    scales[scales == 0] = 1
    quantized = np.clip(np.rint(weight / scales[:, None]), -127, 127)
    return np.ascontiguousarray(quantized.T.astype(np.int8)), scales.astype(np.float32)


class Graph:
    """The nodes and weights of one graph, as they are added."""

    def __init__(self, one_row: bool):
        self.one_row = one_row
        self.nodes: list = []
        self.weights: list = []
        self.weight_bytes: dict[str, int] = {}

    def constant(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        self.weight_bytes[name] = array.nbytes
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], domain: str = "", **attributes) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{op}_{len(self.nodes)}", domain=domain,
                                           **attributes))
        return outputs[0]

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None, name: str) -> str:
        """x @ weight.T + bias, weight (N, K) in int8."""
        outputs, inputs = weight.shape
        if self.one_row:
            quantized, scales = block_int8(weight)
            weights = [self.constant(f"{name}.weight", quantized), self.constant(f"{name}.scales", scales)]
            extra = [] if bias is None else ["", "", self.constant(f"{name}.bias", bias)]
            return self.node("MatMulNBits", [x, *weights, *extra], [name], CONTRIB, K=inputs, N=outputs, bits=8,
                             block_size=BLOCK, accuracy_level=4)
        quantized, scales = channel_int8(weight)
        weights = [self.constant(f"{name}.weight", quantized), self.constant(f"{name}.scales", scales),
                   self.constant(f"{name}.zero_points", np.zeros(outputs, np.int8))]
        extra = [] if bias is None else [self.constant(f"{name}.bias", bias)]
        return self.node("DynamicQuantizeMatMul", [x, *weights, *extra], [name], CONTRIB)


def write_gpt2_step(gpt, path: Path, one_row: bool, past: list[str], present: list[str]) -> int:
    """Writes the step graph of `gpt` (a fast_gpt2.FastGPT2: its parameters are read, nothing is run) to `path`.
    `past` and `present` name the cache's inputs and outputs: each layer's keys, then each layer's values.
    Returns the bytes of weights a step reads: all but the place table, of which only a row is read."""
    from onnx import TensorProto, helper, save_model

    def array(parameter) -> np.ndarray:
        return parameter.detach().float().cpu().numpy()

    layers, heads, width = len(gpt.blocks), gpt.heads, gpt.width
    epsilon = float(gpt.ln_f.eps)
    g = Graph(one_row)
    axis_0, axis_1 = g.constant("axis_0", np.array([0])), g.constant("axis_1", np.array([1]))

    # The new positions' place embeddings: rows past .. past + new of the table.
    g.node("Shape", [past[0]], ["past_length"], start=2, end=3)
    g.node("Shape", ["embeds"], ["new_length"], start=1, end=2)
    g.node("Add", ["past_length", "new_length"], ["length"])
    g.node("Slice", [g.constant("wpe", array(gpt.wpe.weight)), "past_length", "length", axis_0], ["places"])
    x = g.node("Add", ["embeds", "places"], ["x.0"])
    first = gpt.blocks[0].ln_1
    h = g.node("LayerNormalization", [x, g.constant("ln_1.0.weight", array(first.weight)),
                                      g.constant("ln_1.0.bias", array(first.bias))], ["h.0"], axis=-1,
               epsilon=epsilon)
    for i, block in enumerate(gpt.blocks):
        qkv = g.linear(h, array(block.qkv.weight), array(block.qkv.bias), f"qkv.{i}")
        g.node("Split", [qkv, g.constant(f"split.{i}", np.array([width] * 3))], [f"q.{i}", f"k.{i}", f"v.{i}"],
               axis=-1)
        g.node("MultiHeadAttention", [f"q.{i}", f"k.{i}", f"v.{i}", "", "", "", past[i], past[layers + i]],
               [f"attention.{i}", present[i], present[layers + i]], CONTRIB, num_heads=heads, unidirectional=1)
        attended = g.linear(f"attention.{i}", array(block.proj.weight), array(block.proj.bias), f"proj.{i}")
        g.node("SkipLayerNormalization", [attended, x, g.constant(f"ln_2.{i}.weight", array(block.ln_2.weight)),
                                          g.constant(f"ln_2.{i}.bias", array(block.ln_2.bias))],
               [f"h2.{i}", "", "", f"x2.{i}"], CONTRIB, epsilon=epsilon)
        inner = g.linear(f"h2.{i}", array(block.fc.weight), None, f"fc.{i}")
        g.node("FastGelu", [inner, g.constant(f"fc.{i}.bias", array(block.fc.bias))], [f"gelu.{i}"], CONTRIB)
        out = g.linear(f"gelu.{i}", array(block.fc_proj.weight), array(block.fc_proj.bias), f"fc_proj.{i}")
        norm = gpt.blocks[i + 1].ln_1 if i + 1 < layers else gpt.ln_f  # the next layer norm, with this residual
        name = f"ln_1.{i + 1}" if i + 1 < layers else "ln_f"
        h = g.node("SkipLayerNormalization", [out, f"x2.{i}", g.constant(f"{name}.weight", array(norm.weight)),
                                              g.constant(f"{name}.bias", array(norm.bias))],
                   [f"h.{i + 1}", "", "", f"x.{i + 1}"], CONTRIB, epsilon=epsilon)
        x = f"x.{i + 1}"
    # The last position only (a prefix feeds several), then the output layer (tied to the word table: no bias).
    g.node("Slice", [h, g.constant("last", np.array([-1])), g.constant("end", np.array([np.iinfo(np.int64).max])),
                     axis_1], ["h.last"])
    g.linear("h.last", array(gpt.lm_head.weight), None, "lm_head")
    g.node("Squeeze", ["lm_head", axis_1], ["logits"])

    head_dim = width // heads
    vocabulary = gpt.lm_head.weight.shape[0]

    def tensor(name: str, shape: list) -> object:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        g.nodes, "gpt2_step",
        [tensor("embeds", ["batch", "new", width]), *(tensor(n, ["batch", heads, "past", head_dim]) for n in past)],
        [tensor("logits", ["batch", vocabulary]),
         *(tensor(n, ["batch", heads, "past_and_new", head_dim]) for n in present)],
        g.weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid(CONTRIB, 1)])
    save_model(model, str(path))
    return sum(size for name, size in g.weight_bytes.items() if name != "wpe")
