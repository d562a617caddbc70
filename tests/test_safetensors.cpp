// safetensors against the reference library: its files read exactly, ours read by it and by
// transformers, exact round trips (sharded too), and every malformed file refused clearly.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "models/loader.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

TEST(Safetensors, ReadsEveryDtypeTheReferenceWrites) {
  const fs::path dir = test::fixture_dir("safetensors");
  const auto file = SafetensorsFile::open((dir / "dtypes.safetensors").string());
  const nlohmann::json expected = nlohmann::json::parse(read_text_file((dir / "dtypes.json").string()));
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->metadata().at("note"), "oracle");
  ASSERT_EQ(file->tensors().size(), expected.size());
  for (const auto& [name, reference] : expected.items()) {
    const at::Tensor tensor = file->load(name);
    EXPECT_EQ(tensor.sizes().vec(), reference["shape"].get<std::vector<int64_t>>()) << name;
    const at::Tensor flat = tensor.flatten();
    const auto values = reference["values"];
    ASSERT_EQ(flat.numel(), static_cast<int64_t>(values.size())) << name;
    const bool floating = at::isFloatingType(tensor.scalar_type());
    const at::Tensor as_wide = floating ? flat.to(at::kDouble) : flat.to(at::kLong);
    for (int64_t i = 0; i < flat.numel(); ++i) {
      if (floating) {
        EXPECT_EQ(as_wide[i].item<double>(), values[i].get<double>()) << name << "[" << i << "]";
      } else {
        EXPECT_EQ(as_wide[i].item<int64_t>(), values[i].get<int64_t>()) << name << "[" << i << "]";
      }
    }
  }
}

TEST(Safetensors, RoundTripIsBitExactForEveryDtype) {
  const fs::path dir = test::fixture_dir("safetensors");
  const auto original = SafetensorsFile::open((dir / "dtypes.safetensors").string());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& info : original->tensors()) tensors.emplace_back(info.name, original->load(info.name));
  test::TempDir temp;
  const std::string path = (temp.path() / "copy.safetensors").string();
  write_safetensors(path, tensors);
  const auto copy = SafetensorsFile::open(path);
  EXPECT_EQ(copy->metadata().at("format"), "pt");
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor back = copy->load(name);
    ASSERT_EQ(back.scalar_type(), tensor.scalar_type()) << name;
    ASSERT_EQ(back.sizes(), tensor.sizes()) << name;
    EXPECT_EQ(std::memcmp(back.data_ptr(), tensor.data_ptr(), tensor.numel() * tensor.element_size()), 0) << name;
  }
  // The header is padded so the byte buffer starts 8-aligned.
  std::ifstream in(path, std::ios::binary);
  uint64_t header = 0;
  in.read(reinterpret_cast<char*>(&header), 8);
  EXPECT_EQ(header % 8, 0u);
}

TEST(Safetensors, LoadsShardedHfCheckpointThroughTheIndex) {
  const fs::path dir = test::fixture_dir("safetensors");
  const LoadedModel loaded = load_model((dir / "sharded").string());
  const auto expected = SafetensorsFile::open((dir / "sharded_expected.safetensors").string());
  at::NoGradGuard no_grad;
  const at::Tensor logits = loaded.model->forward_logits(expected->load("input_ids"));
  EXPECT_LE((logits - expected->load("logits")).abs().max().item<double>(), 1e-5);
}

TEST(Safetensors, OurShardedWriterIsReadByTransformers) {
  const fs::path dir = test::fixture_dir("safetensors");
  const LoadedModel loaded = load_model((dir / "sharded").string());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : loaded.model->named_parameters()) tensors.emplace_back(item.key(), item.value());
  test::TempDir out;
  const auto files = write_sharded_safetensors(out.path().string(), tensors, /*max_shard_bytes=*/10'000);
  EXPECT_GE(files.size(), 3u);
  EXPECT_TRUE(fs::exists(out.path() / "model.safetensors.index.json"));
  fs::copy_file(dir / "sharded" / "config.json", out.path() / "config.json");
  // We read it back exactly...
  const LoadedModel again = load_model(out.path().string());
  for (const auto& item : loaded.model->named_parameters()) {
    EXPECT_TRUE(at::equal(item.value(), again.model->named_parameters()[item.key()])) << item.key();
  }
  // ...and so does transformers, with the same logits.
  const test::CommandResult check = test::run_program(
      {test::env_or_empty("RETORT_PYTHON"), test::env_or_empty("RETORT_SOURCE_DIR") + "/tests/reference/check_hf_load.py",
       out.path().string(), (dir / "sharded_expected.safetensors").string()});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

// Writes a raw safetensors file: 8-byte length, the header text as given, then `data_bytes` bytes.
std::string write_raw(const fs::path& dir, const std::string& name, const std::string& header, size_t data_bytes,
                      int64_t header_length_override = -1) {
  const std::string path = (dir / name).string();
  std::ofstream out(path, std::ios::binary);
  const uint64_t length = header_length_override >= 0 ? header_length_override : header.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << header << std::string(data_bytes, '\x01');
  return path;
}

void expect_refused(const std::string& path, const std::string& fragment, const std::string& tensor = "") {
  try {
    SafetensorsFile::open(path);
    FAIL() << "accepted a bad file; expected: " << fragment;
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kBadInput);
    const std::string message = error.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    if (!tensor.empty()) {
      EXPECT_NE(message.find("tensor '" + tensor + "'"), std::string::npos) << message;
    }
  }
}

TEST(SafetensorsBadInput, EveryMalformedFileIsRefusedWithFileAndTensor) {
  test::TempDir temp;
  const fs::path dir = temp.path();
  const std::string ok_a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  expect_refused(write_raw(dir, "tiny", "", 0, 0).substr(0), "header does not start with '{'");
  {
    const std::string path = (dir / "short").string();
    std::ofstream(path) << "abc";
    expect_refused(path, "too small");
  }
  expect_refused(write_raw(dir, "past_eof", "{" + ok_a + "}", 8, 1000), "runs past the end of the file");
  expect_refused(write_raw(dir, "truncated", "{" + ok_a + "}", 4), "runs past the end of the file", "a");
  expect_refused(write_raw(dir, "trailing", "{" + ok_a + "}", 12), "trailing bytes");
  expect_refused(write_raw(dir, "overlap",
                           "{" + ok_a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
                 "overlap", "b");
  expect_refused(write_raw(dir, "gap", "{" + ok_a + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})", 16),
                 "gap of 4 bytes", "b");
  expect_refused(write_raw(dir, "dtype", R"({"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", 8),
                 "unknown dtype 'F17'", "a");
  expect_refused(write_raw(dir, "mismatch", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                 "needs 12 bytes but data_offsets span 8", "a");
  expect_refused(write_raw(dir, "duplicate", "{" + ok_a + "," + ok_a + "}", 8), "duplicate tensor name", "a");
  expect_refused(write_raw(dir, "notjson", "{not json", 0), "not valid JSON");
  expect_refused(write_raw(dir, "negative", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                 "non-negative", "a");
  expect_refused(write_raw(dir, "huge", "{" + ok_a + "}", 8, 200'000'000), "exceeds the 100 MB limit");
  expect_refused(write_raw(dir, "f4odd", R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}})", 1),
                 "not a multiple of 8", "a");
}

TEST(SafetensorsBadInput, CliExitsTwoNamingFileAndTensor) {
  const fs::path source = test::fixture_dir("safetensors") / "sharded";
  test::TempDir temp;
  const fs::path model = temp.path() / "model";
  fs::copy(source, model);
  // Truncate one shard: the CLI must name the file and exit 2.
  std::vector<fs::path> shards;
  for (const auto& entry : fs::directory_iterator(model)) {
    if (entry.path().filename().string().rfind("model-", 0) == 0) shards.push_back(entry.path());
  }
  std::sort(shards.begin(), shards.end());
  fs::resize_file(shards.front(), fs::file_size(shards.front()) - 3);
  test::CommandResult result = test::run_retort({"logits", "--model", model.string(), "--prompt-ids", "1,2", "--out",
                                                 (temp.path() / "l.safetensors").string()});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find(shards.front().string()), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("tensor '"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(temp.path() / "l.safetensors"));
}

TEST(SafetensorsBadInput, MissingTensorAndWrongShapeNameTheTensor) {
  const LoadedModel loaded = load_model((test::fixture_dir("safetensors") / "sharded").string());
  test::TempDir temp;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : loaded.model->named_parameters()) {
    if (item.key() == "model.norm.weight") continue;  // missing
    tensors.emplace_back(item.key(), item.value());
  }
  write_safetensors((temp.path() / "model.safetensors").string(), tensors);
  fs::copy_file(test::fixture_dir("safetensors") / "sharded" / "config.json", temp.path() / "config.json");
  try {
    load_model(temp.path().string());
    FAIL() << "missing tensor accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("tensor 'model.norm.weight': missing tensor"), std::string::npos)
        << error.what();
  }
  tensors.emplace_back("model.norm.weight", at::ones({31}));
  write_safetensors((temp.path() / "model.safetensors").string(), tensors);
  try {
    load_model(temp.path().string());
    FAIL() << "wrong shape accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("wrong shape for the config: expected [32], file has [31]"),
              std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("model.safetensors"), std::string::npos);
  }
}

TEST(SafetensorsWriter, FailedWriteLeavesNoPartialFile) {
  test::TempDir temp;
  const std::string path = (temp.path() / "out.safetensors").string();
  write_safetensors(path, {{"a", at::ones({4})}});
  const auto before = fs::file_size(path);
  EXPECT_THROW(write_safetensors(path, {{"a", at::ones({8})}, {"a", at::ones({2})}}), Error);  // duplicate name
  EXPECT_EQ(fs::file_size(path), before);
  for (const auto& entry : fs::directory_iterator(temp.path())) {
    EXPECT_EQ(entry.path().filename(), "out.safetensors") << "temp file left behind";
  }
}

}  // namespace
}  // namespace retort
