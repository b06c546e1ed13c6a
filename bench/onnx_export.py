"""Bench tooling, not the library: export an HF BERT folder to ONNX the way transformers.js' models are
made, so that `make bench-compare` runs transformers.js on *the same weights* as veer, on the graphs its
users load.

    python bench/onnx_export.py MODEL_DIR OUT_DIR

MODEL_DIR is veer's own all-MiniLM-L6-v2 folder (config.json, F16 model.safetensors, tokenizer.json).
OUT_DIR gets the layout transformers.js loads offline (what a Xenova/ or onnx-community/ hub folder holds):

  config.json, tokenizer.json, tokenizer_config.json, special_tokens_map.json  copied from MODEL_DIR;
  onnx/model.onnx            fp32 (transformers.js dtype 'fp32'): HF Optimum's exporter
                             (`optimum-cli export onnx --task feature-extraction`, torch.onnx.export's
                             TorchScript path, Optimum's default opset) of transformers' BertModel loaded
                             from MODEL_DIR, the F16 weights upcast to f32; inputs input_ids /
                             attention_mask / token_type_ids [batch_size, sequence_length] int64, output
                             last_hidden_state [batch_size, sequence_length, 384] f32; Optimum then checks
                             its outputs against PyTorch's (an error if they differ);
  onnx/model_quantized.onnx  q8 (transformers.js' default dtype on wasm): onnxruntime's dynamic int8
                             quantization of model.onnx with the settings of transformers.js'
                             scripts/convert.py + quantize.py for BERT: weights QInt8, per channel,
                             reduce_range (7-bit), MatMul with constant B only.

Then it checks the fp32 graph against veer's own embedding of MODEL_DIR/native-embedding.json's tokens
(`veer embed`, written by scripts/assets.sh; mean-pooled, cosine >= 0.9999) and prints q8's cosine.

Runs offline (HF_HUB_OFFLINE); needs the pinned torch / transformers / optimum-onnx / onnxruntime that
scripts/bench-setup.sh installs into .cache/bench-venv.
"""
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402
from optimum.exporters.onnx import main_export  # noqa: E402

COPIED = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def main(model_dir, out_dir):
    onnx_dir = os.path.join(out_dir, "onnx")
    os.makedirs(onnx_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # library_name: the folder is also a sentence-transformers one (modules.json), whose export
        # would add the pooling to the graph; transformers.js pools itself and wants last_hidden_state.
        main_export(model_dir, tmp, task="feature-extraction", library_name="transformers", device="cpu")
        shutil.move(os.path.join(tmp, "model.onnx"), os.path.join(onnx_dir, "model.onnx"))
    for f in COPIED:
        if os.path.exists(os.path.join(model_dir, f)):
            shutil.copy(os.path.join(model_dir, f), out_dir)
    # transformers.js scripts/quantize.py quantize_q8 for a model without Conv: ONNXQuantizer in
    # IntegerOps mode, weight QInt8, activations QUInt8 (dynamic), the ops of IntegerOpsRegistry, with
    # per_channel and reduce_range on (convert.py's default for BERT).
    quantize_dynamic(
        os.path.join(onnx_dir, "model.onnx"),
        os.path.join(onnx_dir, "model_quantized.onnx"),
        per_channel=True,
        reduce_range=True,
        weight_type=QuantType.QInt8,
        extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True},
    )
    for f in ["model.onnx", "model_quantized.onnx"]:
        print(f"{onnx_dir}/{f}: {os.path.getsize(os.path.join(onnx_dir, f))} bytes")
    check(model_dir, onnx_dir)


def check(model_dir, onnx_dir):
    """The fp32 graph's mean-pooled embedding against veer's (native-embedding.json), and q8's."""
    path = os.path.join(model_dir, "native-embedding.json")
    if not os.path.exists(path):
        print(f"{path} is missing: embeddings not checked")
        return
    ref = json.load(open(path))
    assert ref["pooling"] == "mean"
    ids = np.array(ref["input_ids"], np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    for f, floor in [("model.onnx", 0.9999), ("model_quantized.onnx", None)]:
        sess = ort.InferenceSession(os.path.join(onnx_dir, f), providers=["CPUExecutionProvider"])
        v = sess.run(["last_hidden_state"], feeds)[0].mean(1)
        cos = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(v, np.array(ref["embeddings"]))]
        print(f"{f}: cosine to veer's embedding ({ids.shape[1]} tokens) {min(cos):.6f}")
        if floor is not None and min(cos) < floor:
            sys.exit(f"{f} does not agree with veer's weights (cosine {min(cos):.6f} < {floor})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:3])
