"""Bench tooling, not the library: write an fp32 ONNX graph of a BERT encoder from an HF folder's
safetensors, so transformers.js (onnxruntime-web) runs *the same weights* as veer in `make bench-compare`.

    python bench/onnx_export.py MODEL_DIR OUT_DIR

OUT_DIR gets the layout transformers.js loads offline: config.json, tokenizer.json,
tokenizer_config.json (copied) and onnx/model.onnx with inputs input_ids / attention_mask /
token_type_ids ([batch, seq] int64) and output last_hidden_state ([batch, seq, hidden] f32);
transformers.js' feature-extraction pipeline does the pooling. The graph is the plain BERT
computation (post-LN, exact GELU through Erf, additive -1e4 mask as HF's BERT), written op by op
with the `onnx` helpers; the bench checks that both libraries' embeddings agree.

Needs numpy and onnx (the bench target installs them into .cache/bench-venv).
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def read_safetensors(path):
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[t["dtype"]]).reshape(t["shape"]).astype(
            np.float32 if t["dtype"] != "I64" else np.int64)
    return out


def main(model_dir, out_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    w = {k.removeprefix("bert."): v for k, v in w.items()}
    hidden, heads, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    head_dim, eps = hidden // heads, cfg["layer_norm_eps"]
    assert cfg.get("hidden_act", "gelu") == "gelu", "exact GELU only"

    nodes, inits = [], []
    count = [0]

    def const(value, name=None):
        count[0] += 1
        name = name or f"c{count[0]}"
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind, inputs, **attrs):
        count[0] += 1
        out = f"t{count[0]}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(x, prefix):  # x [.., in] @ W^T [in, out] + b
        wt = const(np.ascontiguousarray(w[prefix + ".weight"].T), prefix + ".weight_t")
        return op("Add", [op("MatMul", [x, wt]), const(w[prefix + ".bias"], prefix + ".bias")])

    def layer_norm(x, prefix):
        return op("LayerNormalization", [x, const(w[prefix + ".weight"], prefix + ".weight"),
                                         const(w[prefix + ".bias"], prefix + ".bias")], axis=-1, epsilon=eps)

    # Embeddings: word + position (0..seq) + token type, then LayerNorm.   // [batch, seq, hidden]
    seq = op("Gather", [op("Shape", ["input_ids"]), const(np.array(1, np.int64))], axis=0)
    positions = op("Range", [const(np.array(0, np.int64)), seq, const(np.array(1, np.int64))])
    x = op("Add", [op("Gather", [const(w["embeddings.word_embeddings.weight"], "word"), "input_ids"]),
                   op("Gather", [const(w["embeddings.position_embeddings.weight"], "pos"), positions])])
    x = op("Add", [x, op("Gather", [const(w["embeddings.token_type_embeddings.weight"], "type"), "token_type_ids"])])
    x = layer_norm(x, "embeddings.LayerNorm")

    # Additive mask: 0 where attended, -10000 on padding.   // [batch, 1, 1, seq]
    m = op("Cast", [op("Unsqueeze", ["attention_mask", const(np.array([1, 2], np.int64))])], to=TensorProto.FLOAT)
    bias = op("Mul", [op("Sub", [const(np.array(1.0, np.float32)), m]), const(np.array(-10000.0, np.float32))])

    split = const(np.array([0, 0, heads, head_dim], np.int64))
    merge = const(np.array([0, 0, hidden], np.int64))
    scale = const(np.array(1.0 / math.sqrt(head_dim), np.float32))
    for i in range(layers):
        p = f"encoder.layer.{i}."

        def heads_of(name, perm):  # [batch, seq, hidden] -> [batch, heads, seq, dim] (or K: [.., dim, seq])
            return op("Transpose", [op("Reshape", [linear(x, p + "attention.self." + name), split])], perm=perm)

        q, k, v = heads_of("query", [0, 2, 1, 3]), heads_of("key", [0, 2, 3, 1]), heads_of("value", [0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])  # [batch, heads, seq, seq]
        ctx = op("MatMul", [op("Softmax", [scores], axis=-1), v])  # [batch, heads, seq, dim]
        ctx = op("Reshape", [op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge])  # [batch, seq, hidden]
        x = layer_norm(op("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")  # [batch, seq, ffn]
        gelu = op("Mul", [op("Mul", [h, const(np.array(0.5, np.float32))]),
                          op("Add", [op("Erf", [op("Div", [h, const(np.array(math.sqrt(2.0), np.float32))])]),
                                     const(np.array(1.0, np.float32))])])
        x = layer_norm(op("Add", [linear(gelu, p + "output.dense"), x]), p + "output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))

    ids = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
    graph = helper.make_graph(nodes, "bert", [ids("input_ids"), ids("attention_mask"), ids("token_type_ids")],
                              [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="veer-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(os.path.join(out_dir, "onnx"), exist_ok=True)
    onnx.save(model, os.path.join(out_dir, "onnx", "model.onnx"))
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        if os.path.exists(os.path.join(model_dir, f)):
            shutil.copy(os.path.join(model_dir, f), out_dir)
    print(f"{out_dir}/onnx/model.onnx: {len(nodes)} nodes, {os.path.getsize(os.path.join(out_dir, 'onnx', 'model.onnx'))} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:3])
