// Parity of the Llama-family decoder with transformers (tests/reference/fixture_models.py):
// float32 logits (plain and left-padded batch), greedy generation, loss and every gradient.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "io/safetensors.h"
#include "models/generate.h"
#include "models/loader.h"
#include "tests/test_support_fixtures.h"
#include "train/losses.h"

namespace retort {
namespace {

class ModelParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = (test::fixture_dir("models") / GetParam()).string();
    loaded_ = load_model(dir_);
    expected_ = SafetensorsFile::open(dir_ + "/expected.safetensors");
  }
  at::Tensor expected(const std::string& name) const { return expected_->load(name); }

  std::string dir_;
  LoadedModel loaded_;
  std::shared_ptr<SafetensorsFile> expected_;
};

// max |a - b| relative to the reference's scale.
double relative_error(const at::Tensor& actual, const at::Tensor& reference) {
  const double scale = std::max(1.0, reference.abs().max().item<double>());
  return (actual.to(at::kDouble) - reference.to(at::kDouble)).abs().max().item<double>() / scale;
}

std::vector<int64_t> row(const at::Tensor& ids, int64_t index) {
  const at::Tensor r = ids[index].contiguous().to(at::kLong);
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

TEST_P(ModelParity, LogitsMatchTransformers) {
  at::NoGradGuard no_grad;
  const at::Tensor logits = loaded_.model->forward_logits(expected("input_ids"));
  EXPECT_LE(relative_error(logits, expected("logits")), 1e-4);
}

TEST_P(ModelParity, PaddedBatchLogitsMatchTransformers) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.attention_mask = expected("padded_attention_mask");
  options.position_ids = expected("padded_position_ids");
  const at::Tensor logits = loaded_.model->forward_logits(expected("padded_input_ids"), options);
  const at::Tensor real = options.attention_mask.to(at::kBool);  // compare real tokens only
  EXPECT_LE(relative_error(logits.index({real}), expected("padded_logits").index({real})), 1e-4);
}

TEST_P(ModelParity, GreedyGenerationMatchesTransformers) {
  SamplingOptions options;
  options.max_new_tokens = 32;
  options.eos_token_ids = loaded_.model->config().eos_token_ids;
  const GenerationResult result = generate(*loaded_.model, {row(expected("generate_prompt"), 0)}, options);
  const std::vector<int64_t> reference = row(expected("generate_ids"), 0);
  ASSERT_EQ(reference.size(), 32u);
  EXPECT_EQ(result.new_tokens[0], reference);
}

TEST_P(ModelParity, BatchedLeftPaddedGenerationMatchesTransformers) {
  const at::Tensor prompt = expected("batch_generate_prompt");
  const at::Tensor mask = expected("batch_generate_mask");
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t i = 0; i < prompt.size(0); ++i) {
    const std::vector<int64_t> ids = row(prompt, i), keep = row(mask, i);
    std::vector<int64_t> real;
    for (size_t j = 0; j < ids.size(); ++j) {
      if (keep[j]) real.push_back(ids[j]);
    }
    prompts.push_back(real);
  }
  SamplingOptions options;
  options.max_new_tokens = 16;
  options.eos_token_ids = loaded_.model->config().eos_token_ids;
  const GenerationResult result = generate(*loaded_.model, prompts, options);
  const at::Tensor reference = expected("batch_generate_ids");
  for (int64_t i = 0; i < reference.size(0); ++i) EXPECT_EQ(result.new_tokens[i], row(reference, i)) << "row " << i;
}

TEST_P(ModelParity, LossAndEveryGradientMatchTransformers) {
  CausalLM& model = *loaded_.model;
  model.train();
  model.zero_grad();
  const at::Tensor hidden = model.forward_hidden(expected("input_ids"), {});
  const TokenLoss loss = causal_lm_loss(hidden, model.output_head(), expected("labels"), /*chunk_tokens=*/16);
  const at::Tensor mean = loss.mean();
  EXPECT_LE(relative_error(mean.detach().reshape({1}), expected("loss")), 1e-5);
  mean.backward();
  int checked = 0;
  for (const auto& item : model.named_parameters()) {
    const at::Tensor reference = expected("grad." + item.key());
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    const double scale = std::max(1e-6, reference.abs().max().item<double>());
    const double error = (item.value().grad().to(at::kDouble) - reference.to(at::kDouble)).abs().max().item<double>();
    EXPECT_LE(error / scale, 1e-4) << item.key();
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(expected_->tensors().size()) - 13) << "every parameter has a gradient reference";
}

INSTANTIATE_TEST_SUITE_P(Transformers, ModelParity,
                         ::testing::Values("llama_gqa", "llama31_rope", "mistral_window", "qwen2_tied",
                                           "qwen3_window", "qwen3_tied", "gemma3_local_global", "gemma3_scaled"));

}  // namespace
}  // namespace retort
