"""Checks Retort's quantized GGUF exports against llama.cpp's own quantizers. Given Retort's F32
export of a model and its exports in other types: llama-quantize (llama_model_quantize, no
imatrix) run on the F32 file must choose the same type for every tensor and produce the same
bytes; gguf-py's Q8_0/Q4_0 quantizers must produce the same bytes; gguf-py must read every
file, and its dequantization must stay within the type's error bound of the F32 values.
Usage: check_export_quants.py F32.gguf NAME=PATH ... (NAME: q8_0, q4_0, q4_k_m, q5_k_m, q6_k, f16, bf16).
Exit 1 on any difference."""
import ctypes
import os
import sys
import tempfile

import llama_cpp
import numpy as np
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

FTYPES = {"q8_0": 7, "q4_0": 2, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18, "f16": 1, "bf16": 32}
# Largest relative RMS error of a dequantized tensor, per type (generous bounds for each type's grid).
RMS_BOUND = {T.F32: 0, T.F16: 1e-3, T.BF16: 8e-3, T.Q8_0: 1e-2, T.Q6_K: 3e-2, T.Q5_0: 6e-2, T.Q5_1: 6e-2, T.Q5_K: 8e-2, T.Q4_K: 0.12, T.Q4_0: 0.15}


def tensors(path):
    return {t.name: t for t in GGUFReader(path).tensors}


def main() -> int:
    source = sys.argv[1]
    reference = tensors(source)
    last_layer = max(int(t.split(".")[1]) for t in reference if t.startswith("blk."))
    failures = []
    for item in sys.argv[2:]:
        name, path = item.split("=", 1)
        ours = tensors(path)
        with tempfile.TemporaryDirectory() as temp:
            out = os.path.join(temp, "ref.gguf")
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = FTYPES[name]
            params.nthread = 2
            if llama_cpp.llama_model_quantize(source.encode(), out.encode(), ctypes.byref(params)) != 0:
                failures.append(f"{name}: llama_model_quantize failed")
                continue
            theirs = tensors(out)
        differing = [t for t, info in theirs.items()
                     if ours[t].tensor_type != info.tensor_type or ours[t].data.tobytes() != info.data.tobytes()]
        print(f"{name}: {len(theirs) - len(differing)}/{len(theirs)} tensors identical to llama-quantize")
        for t in differing[:5]:
            failures.append(f"{name}: {t} is {ours[t].tensor_type.name}, llama-quantize wrote "
                            f"{theirs[t].tensor_type.name}{' (bytes differ)' if ours[t].tensor_type == theirs[t].tensor_type else ''}")
        for t, info in ours.items():
            # numpy's (de)quantizers are slow: a sample of layers covers every type and rule.
            if not (t.startswith(("blk.0.", "blk.1.", "token_embd", "output")) or t.startswith(f"blk.{last_layer}.")):
                continue
            values = np.asarray(reference[t].data, dtype=np.float32).reshape(-1, reference[t].shape[0])
            if info.tensor_type in (T.Q8_0, T.Q4_0):
                if quantize(values, info.tensor_type).tobytes() != info.data.tobytes():
                    failures.append(f"{name}: {t} differs from gguf-py's {info.tensor_type.name} quantizer")
            restored = dequantize(info.data, info.tensor_type).reshape(values.shape)
            rms = float(np.sqrt(np.mean((restored - values) ** 2)) / (np.sqrt(np.mean(values ** 2)) + 1e-12))
            if rms > RMS_BOUND.get(info.tensor_type, 0.2):
                failures.append(f"{name}: {t} ({info.tensor_type.name}) relative RMS error {rms:.3g}")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
