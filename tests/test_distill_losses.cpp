// distill/losses: each divergence and its gradient against float64 formulas
// (tests/reference/fixture_distill.py), sparse == dense when k = vocabulary, and the chunked
// loss over an output projection equal to the unchunked one.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <torch/csrc/autograd/autograd.h>

#include "distill/losses.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "test_support_fixtures.h"

namespace retort {
namespace {

struct Oracle {
  std::shared_ptr<SafetensorsFile> file = SafetensorsFile::open((test::fixture_dir("distill") / "distill.safetensors").string());
  nlohmann::json cases = nlohmann::json::parse(read_text_file((test::fixture_dir("distill") / "cases.json").string()));
  at::Tensor get(const std::string& name) const { return file->load(name); }
};

KdOptions options_of(const nlohmann::json& c) {
  KdOptions options;
  options.divergence = parse_divergence(c["divergence"]);
  options.temperature = c["temperature"];
  options.beta = c["beta"];
  if (!c["tail"].get<std::string>().empty()) options.tail = parse_tail_mode(c["tail"]);
  return options;
}

void expect_close(const at::Tensor& ours, const at::Tensor& reference, const std::string& what,
                  double tolerance = 2e-5) {
  const double scale = std::max(1.0, reference.abs().max().item<double>());
  EXPECT_LE((ours - reference).abs().max().item<double>(), tolerance * scale) << what;
}

TEST(DistillLosses, EveryDivergenceAndGradientEqualsTheFloat64Formula) {
  const Oracle oracle;
  for (const auto& c : oracle.cases) {
    const std::string key = c["key"];
    const KdOptions options = options_of(c);
    const at::Tensor student = oracle.get("student").requires_grad_(true);
    const at::Tensor values =
        c["kind"] == "dense" ? token_divergence(student, oracle.get("teacher"), options)
                             : token_divergence_topk(student, oracle.get("topk_ids"), oracle.get("topk_log_probs"), options);
    const at::Tensor grad = torch::autograd::grad({values.sum()}, {student})[0];
    expect_close(values, oracle.get(key + "-values"), key + " values");
    expect_close(grad, oracle.get(key + "-grad"), key + " gradient");
  }
}

TEST(DistillLosses, SparseWithEveryTokenEqualsDense) {
  const Oracle oracle;
  for (const std::string name : {"forward_kl", "reverse_kl", "jsd", "tv"}) {
    for (const TailMode tail : {TailMode::kRestBucket, TailMode::kRenormalize}) {
      for (const double temperature : {1.0, 2.0}) {
        KdOptions options;
        options.divergence = parse_divergence(name);
        options.temperature = temperature;
        options.tail = tail;
        const at::Tensor a = oracle.get("student").requires_grad_(true);
        const at::Tensor b = oracle.get("student").requires_grad_(true);
        const at::Tensor dense = token_divergence(a, oracle.get("teacher"), options);
        const at::Tensor sparse = token_divergence_topk(b, oracle.get("full_ids"), oracle.get("full_log_probs"), options);
        const std::string what = name + " T=" + std::to_string(temperature);
        // Float32 both ways, by different roads (log-probs renormalised vs logits): 2e-4.
        expect_close(sparse, dense, what, 2e-4);
        expect_close(torch::autograd::grad({sparse.sum()}, {b})[0], torch::autograd::grad({dense.sum()}, {a})[0], what,
                     2e-4);
      }
    }
  }
}

TEST(DistillLosses, ChunkedOverTheOutputProjectionEqualsUnchunked) {
  at::manual_seed(3);
  const at::Tensor hidden = at::randn({13, 16});
  const at::Tensor weight = at::randn({40, 16}) * 0.5;
  const at::Tensor teacher_logits = at::randn({13, 40}) * 2;
  const auto [top_values, top_ids] = at::log_softmax(teacher_logits, -1).topk(6, -1);
  for (const bool sparse : {false, true}) {
    KdOptions options;
    options.divergence = Divergence::kJsd;
    options.temperature = 1.5;
    const at::Tensor x1 = hidden.clone().requires_grad_(true), w1 = weight.clone().requires_grad_(true);
    const TokenLoss chunked = kd_loss(
        x1, *Projection::over(dense_storage(w1), w1.size(1), w1.size(0)),
        [&](int64_t start, int64_t rows) {
          TeacherChunk chunk;
          if (sparse) {
            chunk.topk_ids = top_ids.narrow(0, start, rows);
            chunk.topk_log_probs = top_values.narrow(0, start, rows);
          } else {
            chunk.logits = teacher_logits.narrow(0, start, rows);
          }
          return chunk;
        },
        options, /*chunk_tokens=*/5);
    const auto grads = torch::autograd::grad({chunked.sum}, {x1, w1});
    const at::Tensor x2 = hidden.clone().requires_grad_(true), w2 = weight.clone().requires_grad_(true);
    const at::Tensor logits = at::linear(x2, w2);
    const at::Tensor whole = sparse ? token_divergence_topk(logits, top_ids, top_values, options).sum()
                                    : token_divergence(logits, teacher_logits, options).sum();
    const auto expected = torch::autograd::grad({whole}, {x2, w2});
    EXPECT_EQ(chunked.tokens, 13);
    expect_close(chunked.sum, whole, "loss");
    expect_close(grads[0], expected[0], "d/d hidden");
    expect_close(grads[1], expected[1], "d/d weight");
  }
}

TEST(DistillLosses, BadSettingsAreRefusedWithTheValidOnes) {
  try {
    parse_divergence("kl");
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("forward_kl, reverse_kl, jsd, tv"), std::string::npos);
  }
  KdOptions options;
  options.divergence = Divergence::kJsd;
  options.beta = 1.0;
  EXPECT_THROW(token_divergence(at::zeros({1, 4}), at::zeros({1, 4}), options), Error);
  options.divergence = Divergence::kForwardKl;
  options.temperature = 0;
  EXPECT_THROW(token_divergence(at::zeros({1, 4}), at::zeros({1, 4}), options), Error);
}

}  // namespace
}  // namespace retort
