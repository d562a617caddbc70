// `keep`: projections hold a GGUF file's own blocks and compute as gguf-py's dequantized weights
// (every kept type), whole models as the same file loaded dense, and SmolLM2-135M's Q4_1 GGUF
// continues greedily as llama.cpp does; `cache-teacher` from that GGUF kept as stored writes what
// the dense load writes.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <set>

#include "distill/teacher_cache.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/gguf.h"
#include "models/generate.h"
#include "models/loader.h"
#include "models/quantized_storage.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

LoadOptions keep_options() {
  LoadOptions options;
  options.quantize = BaseQuantization::kKeep;
  return options;
}

TEST(GgufKeep, EveryKeptBlockTypeComputesAsGgufPyDequantized) {
  const auto dir = test::fixture_dir("gguf");
  const auto valid = nlohmann::json::parse(read_text_file((dir / "valid.json").string()));
  const auto file = GgufFile::open((dir / "types.gguf").string());
  std::set<std::string> kept;
  for (const auto& tensor : valid[0]["tensors"]) {
    const GgufTensorInfo& info = *file->find_tensor(tensor["name"].get<std::string>());
    if (info.ne.size() != 2) continue;
    const std::string name = info.name;
    Projection projection(info.ne[0], info.ne[1], false);
    at::Tensor blocks = at::empty({info.ne[1], static_cast<int64_t>(info.n_bytes) / info.ne[1]}, at::kByte);
    std::memcpy(blocks.data_ptr<uint8_t>(), file->tensor_data(info), info.n_bytes);
    if (!keepable_ggml_type(info.type)) {
      if (info.type == GgmlType::F32 || info.type == GgmlType::F16 || info.type == GgmlType::BF16) continue;
      EXPECT_THROW(keep_projection_blocks(projection, info.type, blocks, at::kFloat, at::kCPU), Error) << name;
      continue;
    }
    keep_projection_blocks(projection, info.type, blocks, at::kFloat, at::kCPU);
    EXPECT_EQ(projection.storage().kind(), WeightStorageKind::kGgufBlocks);
    EXPECT_EQ(projection.storage().bytes(), static_cast<int64_t>(info.n_bytes));
    const std::string bytes = read_text_file((dir / tensor["expected"].get<std::string>()).string());
    const at::Tensor expected =
        at::from_blob(const_cast<char*>(bytes.data()), {info.ne[1], info.ne[0]}, at::kFloat).clone();
    EXPECT_TRUE(at::equal(projection.dense_weight(at::kFloat), expected)) << name;
    const at::Tensor x = at::randn({5, info.ne[0]}).requires_grad_(true);
    const at::Tensor y = projection.forward(x);
    const at::Tensor reference = at::matmul(x.detach(), expected.t());
    EXPECT_LE((y - reference).abs().max().item<double>(), 1e-5 * std::max(1.0, reference.abs().max().item<double>()))
        << name;
    // The gradient to the input is dY W, W dequantized again in the backward pass.
    const at::Tensor grad = at::randn_like(y);
    y.backward(grad);
    EXPECT_TRUE(at::allclose(x.grad(), at::matmul(grad, expected), 1e-5, 1e-6)) << name;
    kept.insert(ggml_type_name(info.type));
  }
  EXPECT_EQ(kept, (std::set<std::string>{"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}));
}

TEST(GgufKeep, ModelsComputeExactlyAsTheSameFileLoadedDense) {
  const auto dir = test::fixture_dir("gguf_models");
  for (const std::string name : {"llama-q4_0.gguf", "qwen2-q8_0.gguf", "qwen3-q4_0.gguf", "llama-f16.gguf"}) {
    const std::string path = (dir / name).string();
    const LoadedModel kept = load_model(path, keep_options());
    const LoadedModel dense = load_model(path);
    const bool quantized = name.find("f16") == std::string::npos;
    for (const auto& [weight, projection] : decoder_projection_weights(*kept.model)) {
      EXPECT_EQ(projection->storage().kind(), quantized ? WeightStorageKind::kGgufBlocks : WeightStorageKind::kDense)
          << name << " " << weight;
    }
    at::NoGradGuard no_grad;
    const at::Tensor ids = at::randint(1, kept.model->config().vocab_size, {2, 9}, at::kLong);
    EXPECT_TRUE(at::equal(kept.model->forward_logits(ids), dense.model->forward_logits(ids))) << name;
  }
}

TEST(GgufKeep, SmolLM2Q4_1KeptAsStoredContinuesAsLlamaCpp) {
  const auto reference =
      nlohmann::json::parse(read_text_file((test::fixture_dir("smollm2") / "smollm2.json").string()));
  const LoadedModel loaded = load_model(reference["gguf"].get<std::string>(), keep_options());
  int64_t kept_bytes = 0, weights = 0;
  for (const auto& [weight, projection] : decoder_projection_weights(*loaded.model)) {
    ASSERT_EQ(projection->storage().kind(), WeightStorageKind::kGgufBlocks) << weight;
    kept_bytes += projection->storage().bytes();
    weights += projection->in_features() * projection->out_features();
  }
  EXPECT_EQ(kept_bytes * 8, weights * 5);  // Q4_1: 20 bytes per 32 weights
  const std::vector<int64_t> expected = reference["llama_cpp_ids"].get<std::vector<int64_t>>();
  SamplingOptions options;
  options.max_new_tokens = static_cast<int64_t>(expected.size());
  options.eos_token_ids = loaded.model->config().eos_token_ids;
  const GenerationResult result =
      generate(*loaded.model, {reference["prompt_ids"].get<std::vector<int64_t>>()}, options);
  EXPECT_EQ(result.new_tokens[0], expected);
}

// distill.teacher_quantize: keep. A GGUF teacher held as its own blocks computes exactly as the
// same file loaded dense (above), so the teacher cache it writes holds the same top-k ids and
// log-probabilities; the caches differ only in the identity they record.
TEST(GgufKeep, CacheTeacherFromTheGgufAsStoredWritesWhatTheDenseLoadWrites) {
  const auto reference =
      nlohmann::json::parse(read_text_file((test::fixture_dir("smollm2") / "smollm2.json").string()));
  const std::string gguf = reference["gguf"].get<std::string>();
  test::TempDir temp;
  std::string texts;
  for (const char* text : {"The quick brown fox jumps over the lazy dog.", "Paris is the capital of France.",
                           "Soften garlic in olive oil, add crushed tomatoes and simmer.", "Cats sleep most of the day.",
                           "A short story about a robot who paints.", "Rain fell on the quiet harbour all night."}) {
    texts += nlohmann::json{{"text", text}}.dump() + "\n";
  }
  write_file_atomic((temp.path() / "train.jsonl").string(), texts);
  const std::string recipe = (temp.path() / "recipe.yaml").string();
  write_file_atomic(recipe, "model:\n  path: " + gguf + "\ndata:\n  train: " + (temp.path() / "train.jsonl").string() +
                                "\n  format: text\n  max_seq_len: 32\ntraining:\n  micro_batch_size: 3\n"
                                "distill:\n  teacher: " + gguf + "\n  teacher_dtype: float32\n  cache_top_k: 16\n");
  std::map<std::string, std::shared_ptr<const TeacherCache>> caches;
  for (const std::string quantize : {"none", "keep"}) {
    const std::string dir = (temp.path() / ("cache_" + quantize)).string();
    const test::CommandResult made = test::run_retort(
        {"cache-teacher", recipe, "distill.teacher_cache=" + dir, "distill.teacher_quantize=" + quantize});
    ASSERT_EQ(made.exit_code, 0) << quantize << ": " << made.err;
    caches[quantize] = TeacherCache::open(dir);
  }
  const TeacherCache& dense = *caches["none"];
  const TeacherCache& kept = *caches["keep"];
  EXPECT_NE(kept.identity().teacher_dtype, dense.identity().teacher_dtype);  // "float32 keep": recorded
  ASSERT_EQ(kept.tokens(), dense.tokens());
  ASSERT_GT(dense.tokens(), 30);
  for (int64_t id = 0; id < 6; ++id) {
    const TopkBlock a = kept.sequence(id), b = dense.sequence(id);
    EXPECT_TRUE(at::equal(a.ids, b.ids)) << "sequence " << id;
    EXPECT_TRUE(at::equal(a.log_probs, b.log_probs)) << "sequence " << id;
    EXPECT_TRUE(at::equal(a.rest_log_mass, b.rest_log_mass)) << "sequence " << id;
  }
}

}  // namespace
}  // namespace retort
