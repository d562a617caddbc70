"""Oracle for tests/test_gguf.cpp: GGUF files written by gguf-py (GGUFWriter, gguf.quants), the
view gguf-py's GGUFReader has of them, gguf-py's float32 dequantization of every tensor, and
deliberately broken files for the bad-input tests.

Usage: python fixture_gguf.py OUT_DIR. Writes
  valid.json        per valid file: version, alignment, data offset, metadata and tensor infos as
                    GGUFReader reads them, and the expected/*.f32 file (raw little-endian float32,
                    PyTorch shape order) holding gguf.quants.dequantize's output for each tensor
  type_sizes.json   gguf-py's GGML_QUANT_SIZES: block size and bytes per block of every type
  broken.json       per broken file: a substring of the expected message, and the key or tensor
                    the error must name
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

RNG = np.random.default_rng(20260126)

# Byte offsets of the f16 scale fields in each block (ggml-common.h): random blocks get sane
# finite scales there so that every other byte can be random.
SCALE_OFFSETS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
    Q.IQ4_NL: [0],
}


def random_blocks(qtype: Q, shape: tuple[int, ...]) -> np.ndarray:
    """Random but valid raw blocks for `shape` (PyTorch order), as gguf-py's byte shape."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = int(np.prod(shape)) // block_size
    raw = RNG.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for offset in SCALE_OFFSETS[qtype]:
        scale = RNG.uniform(1e-3, 5e-2, n_blocks) * RNG.choice([-1.0, 1.0], n_blocks)
        raw[:, offset:offset + 2] = scale.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(gguf.quant_shape_to_byte_shape(shape, qtype))


def random_weights(shape: tuple[int, ...]) -> np.ndarray:
    values = (RNG.standard_normal(shape) * 0.05).astype(np.float32)
    values.reshape(-1, shape[-1])[0, :32] = 0.0  # an all-zero block: scale d = 0
    return values


def f32_special() -> np.ndarray:
    values = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    values.flat[:6] = [np.inf, -np.inf, -0.0, np.nan, 1e-40, 3.4e38]
    return values


def f16_special() -> np.ndarray:
    values = (RNG.standard_normal((3, 40)) * 10).astype(np.float16)
    bits = values.view(np.uint16).reshape(-1)
    # inf, -inf, -0, quiet NaNs (one with a payload, one negative), smallest subnormal, a larger
    # subnormal, largest finite, smallest normal.
    bits[:10] = [0x7C00, 0xFC00, 0x8000, 0x7E00, 0x7E55, 0xFE00, 0x0001, 0x03FF, 0x7BFF, 0x0400]
    return values


def bf16_special() -> np.ndarray:
    values = RNG.standard_normal((4, 40)).astype(np.float32)
    values.flat[:6] = [np.inf, -np.inf, -0.0, np.nan, 1e-40, 3.3e38]
    return gguf.quants.quantize(values, Q.BF16)


# (name, ggml type, data already in the file's form, raw_dtype for add_tensor)
def type_tensors() -> list[tuple[str, Q, np.ndarray]]:
    tensors = [
        ("f32.1d", Q.F32, RNG.standard_normal(7).astype(np.float32)),
        ("f32.special", Q.F32, f32_special()),
        ("f32.4d", Q.F32, RNG.standard_normal((2, 1, 3, 4)).astype(np.float32)),
        ("f16.special", Q.F16, f16_special()),
        ("bf16.special", Q.BF16, bf16_special()),
        ("bf16.1d", Q.BF16, gguf.quants.quantize(RNG.standard_normal(5).astype(np.float32), Q.BF16)),
    ]
    quantized = [(Q.Q8_0, (4, 64)), (Q.Q8_0, (96,)), (Q.Q4_0, (6, 64)), (Q.Q4_1, (5, 96)),
                 (Q.Q5_0, (4, 64)), (Q.Q5_1, (3, 128))]
    for qtype, shape in quantized:
        name = f"{qtype.name.lower()}.quantized.{len(shape)}d"
        tensors.append((name, qtype, gguf.quants.quantize(random_weights(shape), qtype)))
    raw = [(Q.Q8_0, (3, 32)), (Q.Q4_0, (2, 96)), (Q.Q4_1, (3, 32)), (Q.Q5_0, (2, 64)),
           (Q.Q5_1, (2, 32)), (Q.Q4_K, (3, 512)), (Q.Q4_K, (256,)), (Q.Q4_K, (2, 2, 256)),
           (Q.Q5_K, (2, 512)), (Q.Q5_K, (256,)), (Q.Q6_K, (3, 256)), (Q.Q6_K, (2, 1, 512)),
           # Types the reader lists but cannot dequantize.
           (Q.Q2_K, (1, 256)), (Q.Q3_K, (2, 256)), (Q.IQ4_NL, (2, 32))]
    for qtype, shape in raw:
        name = f"{qtype.name.lower()}.random.{len(shape)}d"
        tensors.append((name, qtype, random_blocks(qtype, shape)))
    return tensors


def add_tensors(writer: gguf.GGUFWriter, tensors) -> None:
    for name, qtype, data in tensors:
        if qtype in (Q.F32, Q.F16):
            writer.add_tensor(name, data)
        else:
            writer.add_tensor(name, data, raw_dtype=qtype)


def add_every_value_type(writer: gguf.GGUFWriter) -> None:
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4_000_000_000)
    writer.add_int32("test.i32", -2_000_000_000)
    writer.add_float32("test.f32", 0.1)
    writer.add_bool("test.bool_true", True)
    writer.add_bool("test.bool_false", False)
    writer.add_string("test.string", "h\u00e9llo \u2581world\n\u4e16\u754c")
    writer.add_key_value("test.string_empty", "", V.STRING)
    writer.add_uint64("test.u64", 2**64 - 1)
    writer.add_int64("test.i64", -2**63)
    writer.add_float64("test.f64", 1e-300)
    writer.add_uint32("test.small_i_as_u32", 7)
    writer.add_array("test.array.string", ["a", "", "\u2581the", "<0x0A>", "x" * 300])
    arrays = {
        V.UINT8: [0, 1, 255], V.INT8: [-128, 0, 127], V.UINT16: [0, 65535], V.INT16: [-32768, 7],
        V.UINT32: [0, 4_294_967_295], V.INT32: [-2_147_483_648, 2_147_483_647, 3],
        V.FLOAT32: [0.5, -1e-5, 3.0e38], V.BOOL: [True, False, True],
        V.UINT64: [2**64 - 1, 0], V.INT64: [-2**63, 2**63 - 1], V.FLOAT64: [1e-300, -2.5],
    }
    for element_type, values in arrays.items():
        writer.add_key_value(f"test.array.{element_type.name.lower()}", values, V.ARRAY,
                             sub_type=element_type)
    writer.add_key_value("test.array.small_i64", [1, -2, 3], V.ARRAY, sub_type=V.INT64)


def write_with_gguf_py(path: Path, tensors, alignment: int | None = None, metadata=True) -> None:
    writer = gguf.GGUFWriter(path, "llama")
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    if metadata:
        add_every_value_type(writer)
    add_tensors(writer, tensors)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# ---- Hand-built files: exact control over every byte, for version 2 and the broken files ----

def enc_str(text: str | bytes) -> bytes:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("<Q", len(data)) + data


def enc_kv(key: str, vtype: int, payload: bytes) -> bytes:
    return enc_str(key) + struct.pack("<I", vtype) + payload


def enc_array(element_type: int, items: list[bytes], count: int | None = None) -> bytes:
    return struct.pack("<IQ", element_type, len(items) if count is None else count) + b"".join(items)


def enc_tensor(name: str | bytes, ne: list[int], qtype: int, offset: int) -> bytes:
    dims = b"".join(struct.pack("<q", d) for d in ne)
    return enc_str(name) + struct.pack("<I", len(ne)) + dims + struct.pack("<IQ", qtype, offset)


def build(kvs: list[bytes], infos: list[bytes], data: bytes, *, version=3, magic=b"GGUF",
          n_tensors=None, n_kv=None, alignment=32) -> bytes:
    header = magic + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    body = header + b"".join(kvs) + b"".join(infos)
    return body + b"\0" * ((-len(body)) % alignment) + data


ARCH_KV = enc_kv("general.architecture", V.STRING, enc_str("llama"))
COUNT_KV = enc_kv("test.count", V.UINT32, struct.pack("<I", 7))
NAMES_KV = enc_kv("test.names", V.ARRAY, enc_array(V.STRING, [enc_str("x"), enc_str("yz")]))
A_DATA = np.arange(8, dtype=np.float32).tobytes()                         # "a": F32 [8], 32 bytes
B_DATA = gguf.quants.quantize(np.linspace(-1, 1, 32, dtype=np.float32), Q.Q8_0).tobytes()  # 34


def base_parts(b_ne=(32,), b_type=Q.Q8_0, b_offset=32, a_name="a", b_name="b"):
    kvs = [ARCH_KV, COUNT_KV, NAMES_KV]
    infos = [enc_tensor(a_name, [8], Q.F32, 0), enc_tensor(b_name, list(b_ne), b_type, b_offset)]
    data = A_DATA + B_DATA + b"\0" * 30
    return kvs, infos, data


def base_file() -> bytes:
    return build(*base_parts())


def version2_file() -> bytes:
    """Version 2, alignment 16, an empty string, an empty array, a 63-byte tensor name, an
    empty tensor and one tensor that is not F32."""
    kvs = [ARCH_KV, enc_kv("general.alignment", V.UINT32, struct.pack("<I", 16)),
           enc_kv("test.empty", V.STRING, enc_str("")),
           enc_kv("test.empty_array", V.ARRAY, enc_array(V.UINT32, [])),
           enc_kv("test.bools", V.ARRAY, enc_array(V.BOOL, [b"\1", b"\0"]))]
    f16 = np.array([1.5, -2.0, 65504.0], dtype=np.float16).tobytes()           # 6 bytes
    infos = [enc_tensor("n" * 63, [4], Q.F32, 0), enc_tensor("empty", [0, 3], Q.F32, 16),
             enc_tensor("half", [3], Q.F16, 16)]
    data = np.array([1, 2, 3, 4], dtype=np.float32).tobytes() + f16 + b"\0" * 10
    return build(kvs, infos, data, version=2, alignment=16)


def cut_in(blob: bytes, marker: bytes, extra: int) -> bytes:
    """The file cut `extra` bytes after the end of `marker`."""
    return blob[:blob.index(marker) + len(marker) + extra]


def broken_files() -> list[tuple[str, bytes, str, str, str]]:
    """(file name, bytes, message substring, key, tensor)."""
    base = base_file()
    kvs, infos, data = base_parts()

    def with_kv(kv: bytes) -> bytes:
        return build(kvs + [kv], infos, data)

    def with_b(**kw) -> bytes:
        return build(*base_parts(**kw))

    huge = 2**60
    cases = [
        ("bad_magic", build(kvs, infos, data, magic=b"GGML"), "bad magic", "", ""),
        ("version_0", build(kvs, infos, data, version=0), "GGUF version 0 is not supported", "", ""),
        ("version_1", build(kvs, infos, data, version=1), "GGUF version 1 is not supported", "", ""),
        ("version_4", build(kvs, infos, data, version=4), "GGUF version 4 is not supported", "", ""),
        ("empty", b"", "truncated file", "", ""),
        ("truncated_header", base[:12], "truncated file", "", ""),
        ("truncated_kv", cut_in(base, b"test.count", 4 + 2), "truncated file", "test.count", ""),
        ("truncated_tensor_info", cut_in(base, enc_str("b"), 6), "truncated file", "", "b"),
        ("data_past_eof", base[:-40], "runs past the end of the file", "", "b"),
        ("offset_past_eof", with_b(b_offset=2**40), "runs past the end of the file", "", "b"),
        ("duplicate_key", with_kv(COUNT_KV), "duplicate metadata key", "test.count", ""),
        ("empty_key", with_kv(enc_kv("", V.UINT8, b"\1")), "has an empty key", "", ""),
        ("duplicate_tensor", with_b(b_name="a"), "duplicate tensor name", "", "a"),
        ("unknown_tensor_type", with_b(b_type=99), "unknown tensor type id 99", "", "b"),
        ("retired_tensor_type", with_b(b_type=4), "unknown tensor type id 4", "", "b"),
        ("misaligned_offset", with_b(b_offset=48), "is not a multiple of the alignment 32", "", "b"),
        ("overlapping_data", build(kvs, [enc_tensor("a", [16], Q.F32, 0), infos[1]], data),
         "overlaps the data of tensor 'a'", "", "b"),
        ("ne0_not_block_multiple", with_b(b_ne=(33,)), "not a multiple of the Q8_0 block size 32",
         "", "b"),
        ("name_64_bytes", with_b(b_name="n" * 64), "tensor name is 64 bytes long", "", "n" * 64),
        ("five_dims", with_b(b_ne=(32, 1, 1, 1, 1)), "tensor has 5 dimensions", "", "b"),
        ("negative_dim", with_b(b_ne=(32, -2)), "dimension 1 is negative", "", "b"),
        ("element_overflow", with_b(b_ne=(2**32, 2**32)), "more than 2^63 elements", "", "b"),
        ("byte_overflow", with_b(b_type=Q.F32, b_ne=(2**62,)), "larger than 2^63 bytes", "", "b"),
        ("key_length_huge", with_kv(struct.pack("<Q", 2**40) + b"key"),
         "has length 1099511627776, larger than the rest of the file", "", ""),
        ("string_length_huge", with_kv(enc_kv("test.s", V.STRING, struct.pack("<Q", 2**62) + b"ab")),
         "larger than the rest of the file", "test.s", ""),
        ("array_string_length_huge",
         with_kv(enc_kv("test.a", V.ARRAY, enc_array(V.STRING, [enc_str("ok"), struct.pack("<Q", huge)]))),
         "larger than the rest of the file", "test.a", ""),
        ("array_length_huge", with_kv(enc_kv("test.a", V.ARRAY, enc_array(V.UINT32, [b"\0" * 4], huge))),
         "array length 1152921504606846976 is larger than the rest of the file", "test.a", ""),
        ("nested_array", with_kv(enc_kv("test.n", V.ARRAY, enc_array(V.ARRAY, []))),
         "nested arrays are not supported", "test.n", ""),
        ("unknown_value_type", with_kv(enc_kv("test.t", 13, b"\0" * 8)),
         "unknown metadata value type 13", "test.t", ""),
        ("unknown_array_type", with_kv(enc_kv("test.t", V.ARRAY, enc_array(77, [b"\0"]))),
         "unknown metadata value type 77", "test.t", ""),
        ("alignment_not_power_of_two", with_kv(enc_kv("general.alignment", V.UINT32, struct.pack("<I", 48))),
         "alignment 48 is not a power of two", "general.alignment", ""),
        ("alignment_zero", with_kv(enc_kv("general.alignment", V.UINT32, struct.pack("<I", 0))),
         "alignment 0 is not a power of two", "general.alignment", ""),
        ("alignment_wrong_type", with_kv(enc_kv("general.alignment", V.UINT64, struct.pack("<Q", 32))),
         "alignment must have type uint32, not uint64", "general.alignment", ""),
        ("kv_count_huge", build(kvs, infos, data, n_kv=huge), "metadata count 1152921504606846976", "", ""),
        ("tensor_count_huge", build(kvs, infos, data, n_tensors=huge), "tensor count 1152921504606846976",
         "", ""),
    ]
    return cases


def big_endian_file(path: Path) -> None:
    writer = gguf.GGUFWriter(path, "llama", endianess=gguf.GGUFEndian.BIG)
    writer.add_tensor("w", np.arange(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# ---- The reader's view, as JSON ----

def json_value(value):
    return value.item() if isinstance(value, np.generic) else value


def describe(path: Path, out: Path, expected_dir: Path) -> dict:
    reader = gguf.GGUFReader(path)
    metadata = []
    for field in reader.fields.values():
        if field.name.startswith("GGUF."):  # the header, which GGUFReader lists as fields too
            continue
        entry = {"key": field.name, "type": int(field.types[0])}
        if field.types[0] == V.ARRAY:
            entry["element_type"] = int(field.parts[3][0])  # parts: key length, key, type, element type, ...
        contents = field.contents()
        entry["value"] = [json_value(v) for v in contents] if isinstance(contents, list) else json_value(contents)
        metadata.append(entry)
    tensors = []
    for tensor in reader.tensors:
        ne = [int(d) for d in tensor.shape]
        dequantizable = tensor.tensor_type in (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0,
                                               Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K)
        entry = {"name": tensor.name, "type": int(tensor.tensor_type), "ne": ne,
                 "offset": int(tensor.data_offset - reader.data_offset),
                 "n_bytes": int(tensor.n_bytes), "n_elements": int(tensor.n_elements),
                 "dequantizable": dequantizable}
        if dequantizable:
            values = gguf.quants.dequantize(np.asarray(tensor.data), tensor.tensor_type)
            values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
            assert values.size == tensor.n_elements, tensor.name
            expected = expected_dir / f"{path.stem}.{tensor.name}.f32"
            values.astype("<f4").tofile(expected)
            entry["expected"] = str(expected.relative_to(out))
        tensors.append(entry)
    return {"file": path.name, "version": int(reader.fields["GGUF.version"].contents()),
            "alignment": int(reader.alignment), "data_offset": int(reader.data_offset),
            "metadata": metadata, "tensors": tensors}


def check_dequantization_matches_source(described: dict, tensors, out: Path) -> None:
    """GGUFReader's bytes dequantize to what the bytes we wrote dequantize to."""
    by_name = {t["name"]: t for t in described["tensors"]}
    for name, qtype, data in tensors:
        entry = by_name[name]
        if "expected" not in entry:
            continue
        source = gguf.quants.dequantize(data, qtype).astype(np.float32).reshape(-1)
        written = np.fromfile(out / entry["expected"], dtype="<f4")
        assert source.tobytes() == written.tobytes(), name


def main() -> int:
    out = Path(sys.argv[1])
    expected_dir = out / "expected"
    expected_dir.mkdir(parents=True, exist_ok=True)

    typed = type_tensors()
    write_with_gguf_py(out / "types.gguf", typed)
    # Alignment 1 puts tensor data at odd addresses: the reader must not assume aligned loads.
    unaligned = [(n, q, d) for n, q, d in typed if n in ("f16.special", "f32.1d", "q8_0.random.2d",
                                                        "q4_k.random.1d", "bf16.1d", "q6_k.random.2d")]
    write_with_gguf_py(out / "alignment1.gguf", unaligned, alignment=1, metadata=False)
    write_with_gguf_py(out / "alignment64.gguf", typed[:4], alignment=64, metadata=False)
    (out / "base.gguf").write_bytes(base_file())
    (out / "version2.gguf").write_bytes(version2_file())

    valid = []
    for name in ("types.gguf", "alignment1.gguf", "alignment64.gguf", "base.gguf", "version2.gguf"):
        described = describe(out / name, out, expected_dir)
        valid.append(described)
        if name == "types.gguf":
            check_dequantization_matches_source(described, typed, out)
    assert valid[1]["alignment"] == 1 and valid[2]["alignment"] == 64 and valid[4]["version"] == 2
    (out / "valid.json").write_text(json.dumps(valid, indent=1))

    sizes = {qtype.name: [int(qtype), *gguf.GGML_QUANT_SIZES[qtype]] for qtype in Q}
    (out / "type_sizes.json").write_text(json.dumps(sizes, indent=1))

    broken_dir = out / "broken"
    broken_dir.mkdir()
    big_endian_file(broken_dir / "big_endian.gguf")
    broken = [{"file": "broken/big_endian.gguf", "message": "big-endian GGUF files are not supported",
               "key": "", "tensor": ""}]
    for name, blob, message, key, tensor in broken_files():
        (broken_dir / f"{name}.gguf").write_bytes(blob)
        broken.append({"file": f"broken/{name}.gguf", "message": message, "key": key, "tensor": tensor})
    (out / "broken.json").write_text(json.dumps(broken, indent=1))
    print(f"wrote {len(valid)} valid and {len(broken)} broken GGUF files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
