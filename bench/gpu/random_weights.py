"""Fill a model folder's weights with random values of the real shapes and dtypes.

The GPU bench machine cannot be reached by the model files (only ~64 MB travel with the repo), so
`prepare.sh` ships each folder's small files plus `shapes.json` (the real model.safetensors header)
and this writes `model.safetensors` there. Throughput does not depend on the values; agreement
between devices is measured on these same random weights. Norm weights are 1, everything else
N(0, 0.02); the decoder's end-of-text rows are zero so greedy decoding never stops early.
"""
import json, struct, sys
import numpy as np

folder = sys.argv[1]
header = json.load(open(f"{folder}/shapes.json"))
header.pop("__metadata__", None)
eos = {int(i) for i in sys.argv[2].split(",")} if len(sys.argv) > 2 else set()
rng = np.random.default_rng(0)
dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
out, offset, blobs = {}, 0, []
for name in sorted(header):
    info = header[name]
    shape = info["shape"]
    if info["dtype"] == "I64":  # buffers such as BERT's position_ids: 0, 1, 2, …
        a = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    elif "norm" in name.lower() and name.endswith("weight"):
        a = np.ones(shape, np.float32)
    elif "norm" in name.lower() and name.endswith("bias"):
        a = np.zeros(shape, np.float32)
    else:
        a = rng.normal(0, 0.02, size=shape).astype(np.float32)
    if a.dtype.kind == "f" and (name.endswith("embed_tokens.weight") or name == "lm_head.weight"):
        for i in eos:
            a[i] = 0
    b = a.astype(dtypes[info["dtype"]]).tobytes()
    out[name] = {"dtype": info["dtype"], "shape": shape, "data_offsets": [offset, offset + len(b)]}
    offset += len(b)
    blobs.append(b)
h = json.dumps(out).encode()
h += b" " * (-len(h) % 8)
with open(f"{folder}/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for b in blobs:
        f.write(b)
print(folder, offset, "bytes of random weights")
