// GGUF reader and dequantization against gguf-py (tests/reference/fixture_gguf.py): metadata and
// tensor infos equal GGUFReader's view, dequantized tensors equal gguf.quants.dequantize bit for
// bit, and broken, truncated or corrupted files give bad_input naming the file, never a crash.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Half.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "io/error.h"
#include "io/gguf.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path gguf_fixture(const std::string& relative) { return test::fixture_dir("gguf") / relative; }

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_bytes(const fs::path& path, std::string_view bytes) {
  // A fresh file rather than a truncated one: ext4 flushes truncate-and-rewrite to disk on close.
  fs::remove(path);
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

json read_json(const std::string& relative) { return json::parse(read_bytes(gguf_fixture(relative))); }

// Runs `action` and checks it throws a bad_input whose message contains `message_part` and
// whose context names the file (and the key or tensor when given).
template <class Action>
void expect_bad_input(Action&& action, const std::string& message_part, const std::string& file,
                      const std::string& key = "", const std::string& tensor = "") {
  try {
    action();
    ADD_FAILURE() << "no error; expected one containing: " << message_part;
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kBadInput) << error.what();
    EXPECT_NE(error.message().find(message_part), std::string::npos)
        << "message: " << error.what() << "\nexpected to contain: " << message_part;
    EXPECT_EQ(error.context().file, file) << error.what();
    if (!key.empty()) {
      EXPECT_EQ(error.context().key, key) << error.what();
    }
    if (!tensor.empty()) {
      EXPECT_EQ(error.context().tensor, tensor) << error.what();
    }
    EXPECT_NE(std::string(error.what()).find(file), std::string::npos) << error.what();
  } catch (const std::exception& error) {
    ADD_FAILURE() << "not a retort::Error: " << error.what();
  }
}

// ---- Metadata and tensor infos equal GGUFReader's ----

void expect_array_equals(const GgufArray& array, const json& expected, const std::string& key) {
  std::visit(
      [&](const auto& values) {
        using Values = std::decay_t<decltype(values)>;
        if constexpr (std::is_same_v<Values, std::monostate>) {
          ADD_FAILURE() << key << ": an array of arrays";
        } else {
          EXPECT_EQ(values, expected.get<Values>()) << key;
        }
      },
      array.data);
}

void expect_value_equals(const GgufValue& value, const json& expected, const std::string& key) {
  EXPECT_EQ(static_cast<int>(value.type()), expected.at("type").get<int>()) << key;
  const json& data = expected.at("value");
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, GgufArray>) {
          EXPECT_EQ(static_cast<int>(v.element_type()), expected.at("element_type").get<int>()) << key;
          EXPECT_EQ(v.size(), data.size()) << key;
          expect_array_equals(v, data, key);
        } else {
          EXPECT_EQ(v, data.get<T>()) << key;  // floats too: the JSON holds their exact value
        }
      },
      value.data);
}

TEST(GgufReader, MetadataEqualsGgufPyReader) {
  for (const json& expected : read_json("valid.json")) {
    const std::string path = gguf_fixture(expected.at("file").get<std::string>()).string();
    SCOPED_TRACE(path);
    const auto file = GgufFile::open(path);
    EXPECT_EQ(file->version(), expected.at("version").get<uint32_t>());
    EXPECT_EQ(file->alignment(), expected.at("alignment").get<uint32_t>());
    const json& metadata = expected.at("metadata");
    ASSERT_EQ(file->keys().size(), metadata.size());
    for (size_t i = 0; i < metadata.size(); ++i) {
      const std::string key = metadata[i].at("key").get<std::string>();
      EXPECT_EQ(file->keys()[i], key) << "keys out of file order at " << i;
      const GgufValue* value = file->find(key);
      ASSERT_NE(value, nullptr) << key;
      expect_value_equals(*value, metadata[i], key);
    }
  }
}

TEST(GgufReader, TensorInfosEqualGgufPyReader) {
  for (const json& expected : read_json("valid.json")) {
    const std::string path = gguf_fixture(expected.at("file").get<std::string>()).string();
    SCOPED_TRACE(path);
    const auto file = GgufFile::open(path);
    const std::string bytes = read_bytes(path);
    EXPECT_EQ(file->data_offset(), expected.at("data_offset").get<uint64_t>());
    const json& tensors = expected.at("tensors");
    ASSERT_EQ(file->tensors().size(), tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const GgufTensorInfo& info = file->tensors()[i];
      const std::vector<int64_t> ne = tensors[i].at("ne").get<std::vector<int64_t>>();
      EXPECT_EQ(info.name, tensors[i].at("name").get<std::string>());
      EXPECT_EQ(info.ne, ne) << info.name;
      EXPECT_EQ(info.torch_shape(), std::vector<int64_t>(ne.rbegin(), ne.rend())) << info.name;
      EXPECT_EQ(static_cast<uint32_t>(info.type), tensors[i].at("type").get<uint32_t>()) << info.name;
      EXPECT_EQ(info.offset, tensors[i].at("offset").get<uint64_t>()) << info.name;
      EXPECT_EQ(info.n_bytes, tensors[i].at("n_bytes").get<uint64_t>()) << info.name;
      EXPECT_EQ(info.n_elements(), tensors[i].at("n_elements").get<int64_t>()) << info.name;
      EXPECT_EQ(file->find_tensor(info.name), &info);
      const size_t start = expected.at("data_offset").get<size_t>() + info.offset;
      ASSERT_LE(start + info.n_bytes, bytes.size()) << info.name;
      EXPECT_EQ(std::memcmp(file->tensor_data(info), bytes.data() + start, info.n_bytes), 0) << info.name;
    }
    EXPECT_EQ(file->find_tensor("no.such.tensor"), nullptr);
  }
}

TEST(GgufTypes, TableEqualsGgufPy) {
  const json sizes = read_json("type_sizes.json");
  size_t known = 0;
  for (uint32_t id = 0; id < 256; ++id) known += find_ggml_type(id) != nullptr;
  EXPECT_EQ(known, sizes.size()) << "types known here but not to gguf-py, or the reverse";
  for (const auto& [name, entry] : sizes.items()) {
    const GgmlTypeInfo* info = find_ggml_type(entry[0].get<uint32_t>());
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->name, name);
    EXPECT_EQ(info->block_size, entry[1].get<int64_t>()) << name;
    // gguf-py sizes Q8_1 as 40 bytes; ggml's block_q8_1 is 36 (f16 d, f16 s, 32 x int8), and
    // ggml's size is the one that matters for files. Q8_1 is never stored in model files anyway.
    const int64_t expected_type_size = name == "Q8_1" ? 36 : entry[2].get<int64_t>();
    EXPECT_EQ(info->type_size, expected_type_size) << name;
  }
  EXPECT_EQ(find_ggml_type(4), nullptr);  // retired Q4_2
  EXPECT_EQ(ggml_dequantizable_type_names(),
            "F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16");
}

// ---- Dequantization equals gguf.quants.dequantize ----

std::string first_difference(const float* actual, const float* expected, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(&actual[i], &expected[i], sizeof(float)) != 0) {
      return "element " + std::to_string(i) + ": " + std::to_string(actual[i]) + " vs gguf-py " +
             std::to_string(expected[i]);
    }
  }
  return "";
}

TEST(GgufDequant, EveryTensorEqualsGgufPyBitForBit) {
  std::set<std::string> types_checked;
  for (const json& expected : read_json("valid.json")) {
    const std::string path = gguf_fixture(expected.at("file").get<std::string>()).string();
    const auto file = GgufFile::open(path);
    for (const json& tensor : expected.at("tensors")) {
      if (!tensor.at("dequantizable").get<bool>()) continue;
      const std::string name = tensor.at("name").get<std::string>();
      SCOPED_TRACE(path + ": " + name);
      const at::Tensor values = file->load_float(name);
      const GgufTensorInfo& info = *file->find_tensor(name);
      EXPECT_EQ(values.sizes().vec(), info.torch_shape());
      EXPECT_EQ(values.scalar_type(), at::kFloat);
      EXPECT_TRUE(values.is_contiguous());
      EXPECT_TRUE(values.device().is_cpu());
      const std::string reference = read_bytes(gguf_fixture(tensor.at("expected").get<std::string>()));
      ASSERT_EQ(reference.size(), static_cast<size_t>(values.numel()) * sizeof(float));
      const auto* expected_values = reinterpret_cast<const float*>(reference.data());
      EXPECT_EQ(first_difference(values.data_ptr<float>(), expected_values, values.numel()), "");
      types_checked.insert(ggml_type_name(info.type));
    }
  }
  EXPECT_EQ(types_checked, (std::set<std::string>{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
                                                  "Q5_1", "Q4_K", "Q5_K", "Q6_K"}));
}

TEST(GgufDequant, UnsupportedTypesNameTheTensorAndTheSupportedOnes) {
  const std::string path = gguf_fixture("types.gguf").string();
  const auto file = GgufFile::open(path);
  const json valid = read_json("valid.json");
  int unsupported = 0;
  for (const json& tensor : valid.at(0).at("tensors")) {
    if (tensor.at("dequantizable").get<bool>()) continue;
    const std::string name = tensor.at("name").get<std::string>();
    const std::string type = ggml_type_name(file->find_tensor(name)->type);
    expect_bad_input([&] { file->load_float(name); },
                     "tensor type " + type + " is not supported; supported: F32, F16, Q4_0", path, "",
                     name);
    ++unsupported;
  }
  EXPECT_EQ(unsupported, 3);  // Q2_K, Q3_K, IQ4_NL: listed, but not loadable
}

TEST(GgufDequant, LoadingAMissingTensorNamesIt) {
  const std::string path = gguf_fixture("types.gguf").string();
  const auto file = GgufFile::open(path);
  expect_bad_input([&] { file->load_float("q4_k.random.2"); },
                   "no such tensor in the file; did you mean 'q4_k.random.2d'?", path, "",
                   "q4_k.random.2");
}

// The parallel split over blocks must give what dequantizing block by block gives.
TEST(GgufDequant, ParallelChunksEqualBlockByBlock) {
  std::mt19937 rng(7);
  for (const GgmlType type : {GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q6_K, GgmlType::F16}) {
    const GgmlTypeInfo& info = ggml_type_info(type);
    const int64_t n_blocks = 20011 * 32 / info.block_size + 3;
    std::vector<uint8_t> blocks(n_blocks * info.type_size);
    for (uint8_t& byte : blocks) byte = static_cast<uint8_t>(rng());
    std::vector<float> whole(n_blocks * info.block_size), by_block(whole.size());
    dequantize_to_float(type, blocks.data(), n_blocks * info.block_size, whole.data());
    for (int64_t b = 0; b < n_blocks; ++b) {
      dequantize_to_float(type, blocks.data() + b * info.type_size, info.block_size,
                          by_block.data() + b * info.block_size);
    }
    EXPECT_EQ(std::memcmp(whole.data(), by_block.data(), whole.size() * sizeof(float)), 0) << info.name;
  }
}

// An independent f16 conversion (c10::Half) agrees on every one of the 65536 inputs.
TEST(GgufDequant, Fp16ConversionEqualsC10ForAllInputs) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const float ours = fp16_to_fp32(static_cast<uint16_t>(bits));
    const float reference = static_cast<float>(c10::Half(static_cast<uint16_t>(bits), c10::Half::from_bits()));
    if (std::isnan(reference)) {
      EXPECT_TRUE(std::isnan(ours)) << bits;
      EXPECT_EQ(std::signbit(ours), std::signbit(reference)) << bits;
    } else {
      ASSERT_EQ(std::memcmp(&ours, &reference, sizeof(float)), 0) << "f16 bits " << bits;
    }
  }
}

// ---- Typed getters ----

TEST(GgufReader, TypedGettersConvertOnlyWhatFits) {
  const std::string path = gguf_fixture("types.gguf").string();
  const auto file = GgufFile::open(path);
  EXPECT_EQ(file->get_string("general.architecture"), "llama");
  EXPECT_EQ(file->get_u32("test.u32"), 4'000'000'000u);
  EXPECT_EQ(file->get_u32("test.u8"), 200u);
  EXPECT_EQ(file->get_u64("test.u64"), UINT64_MAX);
  EXPECT_EQ(file->get_i64("test.i64"), INT64_MIN);
  EXPECT_EQ(file->get_i64("test.i8"), -100);
  EXPECT_EQ(file->get_f32("test.f32"), 0.1f);
  EXPECT_EQ(file->get_f32("test.f64"), static_cast<float>(1e-300));
  EXPECT_TRUE(file->get_bool("test.bool_true"));
  EXPECT_FALSE(file->get_bool("test.bool_false"));
  EXPECT_EQ(file->get_string("test.string_empty"), "");
  EXPECT_EQ(file->get_string_array("test.array.string").at(2), "\u2581the");
  EXPECT_EQ(file->get_f32_array("test.array.float32"), (std::vector<float>{0.5f, -1e-5f, 3.0e38f}));
  EXPECT_EQ(file->get_f32_array("test.array.float64"), (std::vector<float>{static_cast<float>(1e-300), -2.5f}));
  EXPECT_EQ(file->get_i32_array("test.array.small_i64"), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(file->get_i32_array("test.array.int8"), (std::vector<int32_t>{-128, 0, 127}));
  EXPECT_FALSE(file->find_u32("no.such.key").has_value());
  EXPECT_EQ(file->find_string_array("no.such.key"), nullptr);
  EXPECT_EQ(file->find_string("test.string"), "h\u00e9llo \u2581world\n\u4e16\u754c");

  expect_bad_input([&] { file->get_u32("test.i8"); }, "value -100 is out of range for uint32", path,
                   "test.i8");
  expect_bad_input([&] { file->get_u32("test.u64"); }, "out of range for uint32", path, "test.u64");
  expect_bad_input([&] { file->get_i64("test.u64"); }, "out of range for int64", path, "test.u64");
  expect_bad_input([&] { file->get_f32("test.u32"); }, "has type uint32, expected float32 or float64",
                   path, "test.u32");
  expect_bad_input([&] { file->find_u32("test.string"); }, "has type string, expected uint32", path,
                   "test.string");
  expect_bad_input([&] { file->get_bool("test.u8"); }, "has type uint8, expected bool", path, "test.u8");
  expect_bad_input([&] { file->get_string_array("test.array.int32"); },
                   "has type array of int32, expected array of string", path, "test.array.int32");
  expect_bad_input([&] { file->get_i32_array("test.array.uint32"); },
                   "value 4294967295 is out of range for int32", path, "test.array.uint32");
  expect_bad_input([&] { file->get_i32_array("test.array.float32"); },
                   "has type array of float32, expected array of int32", path, "test.array.float32");
  expect_bad_input([&] { file->get_string("test.f64x"); },
                   "missing metadata key; did you mean 'test.f64'?", path, "test.f64x");
  expect_bad_input([&] { file->get_string_array("missing"); }, "missing metadata key", path, "missing");
}

// ---- Bad input ----

TEST(GgufReader, BrokenFilesAreBadInputNamingFileKeyAndTensor) {
  const json cases = read_json("broken.json");
  EXPECT_GE(cases.size(), 36u);
  for (const json& entry : cases) {
    const std::string path = gguf_fixture(entry.at("file").get<std::string>()).string();
    SCOPED_TRACE(path);
    expect_bad_input([&] { GgufFile::open(path); }, entry.at("message").get<std::string>(), path,
                     entry.at("key").get<std::string>(), entry.at("tensor").get<std::string>());
  }
  expect_bad_input([&] { GgufFile::open("/no/such/file.gguf"); }, "cannot open", "/no/such/file.gguf");
}

// Every prefix of a valid file that cuts into its header or tensor data is rejected.
TEST(GgufReader, EveryTruncationIsBadInput) {
  const std::string original = read_bytes(gguf_fixture("base.gguf"));
  const auto whole = GgufFile::open(gguf_fixture("base.gguf").string());
  uint64_t data_end = 0;
  for (const GgufTensorInfo& info : whole->tensors()) {
    data_end = std::max(data_end, whole->data_offset() + info.offset + info.n_bytes);
  }
  ASSERT_LT(data_end, original.size());  // the last tensor's padding is optional
  test::TempDir dir;
  const std::string path = (dir.path() / "cut.gguf").string();
  for (size_t length = 0; length < original.size(); ++length) {
    write_bytes(path, std::string_view(original).substr(0, length));
    if (length < data_end) {
      expect_bad_input([&] { GgufFile::open(path); }, "", path);
    } else {
      EXPECT_EQ(GgufFile::open(path)->tensors().size(), 2u) << length;
    }
  }
}

// Random bytes written over a valid header either still parse (and every tensor then loads or
// is refused as bad input) or are refused as bad input: no crash, hang or huge allocation.
TEST(GgufReader, RandomHeaderCorruptionIsBadInputOrReadable) {
  const std::string original = read_bytes(gguf_fixture("types.gguf"));
  const uint64_t header_size = GgufFile::open(gguf_fixture("types.gguf").string())->data_offset();
  test::TempDir dir;
  const std::string path = (dir.path() / "corrupt.gguf").string();
  constexpr uint8_t kInteresting[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 0x40};
  std::mt19937_64 rng(20260126);
  int rejected = 0, opened = 0;
  for (int iteration = 0; iteration < 1500; ++iteration) {
    std::string corrupt = original;
    for (int change = 0, n = 1 + static_cast<int>(rng() % 3); change < n; ++change) {
      const size_t at = rng() % header_size;
      corrupt[at] = static_cast<char>(rng() % 2 ? kInteresting[rng() % 6] : rng());
    }
    write_bytes(path, corrupt);
    try {
      const auto file = GgufFile::open(path);
      ++opened;
      for (const GgufTensorInfo& info : file->tensors()) {
        try {
          file->load_float(info.name);
        } catch (const Error& error) {
          ASSERT_EQ(error.kind(), ErrorKind::kBadInput) << error.what();
        }
      }
    } catch (const Error& error) {
      ASSERT_EQ(error.kind(), ErrorKind::kBadInput) << error.what();
      ASSERT_EQ(error.context().file, path);
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(opened, 100);
}

}  // namespace
}  // namespace retort
