// Projection over a weight storage: an int8 base computes as its dense dequantized weight would,
// under LoRA, DoRA and merge/unmerge; views of the output head's rows; a tied head.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "lora/lora.h"
#include "models/gemm.h"
#include "models/linear.h"

namespace retort {
namespace {

struct Pair {
  std::shared_ptr<Projection> quantized = std::make_shared<Projection>(16, 8, true);
  std::shared_ptr<Projection> dense = std::make_shared<Projection>(16, 8, true);

  explicit Pair(bool dora) {
    at::manual_seed(3);
    at::NoGradGuard no_grad;
    quantized->weight.normal_(0, 0.2);
    quantized->bias.normal_(0, 0.1);
    quantized->quantize_int8(at::kFloat, at::kCPU);
    // The reference: a plain float32 projection holding the dequantized weight.
    dense->weight.copy_(quantized->dense_weight(at::kFloat));
    dense->bias.copy_(quantized->bias);
    LoraSpec spec;
    spec.rank = 4;
    spec.alpha = 8;
    spec.use_dora = dora;
    auto a = std::make_shared<LoraAdapter>(*quantized, spec);
    auto b = std::make_shared<LoraAdapter>(*dense, spec);
    a->lora_a.normal_(0, 0.3);
    a->lora_b.normal_(0, 0.3);
    if (dora) a->magnitude = at::linalg_vector_norm(dense->weight, 2, {1}, false, std::nullopt) * 1.1;
    b->lora_a.copy_(a->lora_a);
    b->lora_b.copy_(a->lora_b);
    if (dora) b->magnitude = a->magnitude.clone();
    quantized->adapter = a;
    dense->adapter = b;
  }
};

TEST(ProjectionStorage, Int8RowsComputeAsTheirDequantizedWeight) {
  Pair pair(false);
  EXPECT_EQ(pair.quantized->storage().kind(), WeightStorageKind::kInt8Rows);
  EXPECT_EQ(pair.quantized->weight.scalar_type(), at::kChar);
  // Each row's codes times its scale is the dequantized row, within half a step of the original.
  const at::Tensor x = at::randn({5, 16});
  EXPECT_TRUE(at::allclose(pair.quantized->forward_base(x), pair.dense->forward_base(x), 1e-5, 1e-6));
  EXPECT_LT(pair.quantized->storage().bytes(), pair.dense->storage().bytes() / 3);
}

TEST(ProjectionStorage, DoraOnAnInt8BaseEqualsDoraOnTheDenseDequantizedBase) {
  for (const bool dora : {false, true}) {
    Pair pair(dora);
    const at::Tensor x = at::randn({5, 16});
    const at::Tensor ours = pair.quantized->forward(x), reference = pair.dense->forward(x);
    EXPECT_TRUE(at::allclose(ours, reference, 1e-5, 1e-6)) << "dora " << dora << ": "
                                                          << (ours - reference).abs().max().item<double>();
    // The adapters' gradients agree too (the base is frozen in both).
    auto* qa = dynamic_cast<LoraAdapter*>(pair.quantized->adapter.get());
    auto* da = dynamic_cast<LoraAdapter*>(pair.dense->adapter.get());
    for (at::Tensor* t : {&qa->lora_a, &qa->lora_b, &da->lora_a, &da->lora_b}) t->requires_grad_(true);
    pair.quantized->forward(x).square().sum().backward();
    pair.dense->forward(x).square().sum().backward();
    EXPECT_TRUE(at::allclose(qa->lora_a.grad(), da->lora_a.grad(), 1e-4, 1e-5)) << "dora " << dora;
    EXPECT_TRUE(at::allclose(qa->lora_b.grad(), da->lora_b.grad(), 1e-4, 1e-5)) << "dora " << dora;
  }
}

TEST(ProjectionStorage, MergeAndUnmergeOnAnInt8BaseGiveTheDenseResultsAndRestoreTheBase) {
  for (const bool dora : {false, true}) {
    Pair pair(dora);
    const at::Tensor x = at::randn({5, 16});
    const at::Tensor before = pair.quantized->forward(x);
    ASSERT_TRUE(merge_adapter(*pair.quantized));
    ASSERT_TRUE(merge_adapter(*pair.dense));
    EXPECT_FALSE(merge_adapter(*pair.quantized));  // already merged
    EXPECT_EQ(pair.quantized->storage().kind(), WeightStorageKind::kDense);
    const at::Tensor merged = pair.quantized->forward(x);
    EXPECT_TRUE(at::allclose(merged, pair.dense->forward(x), 1e-5, 1e-6)) << "dora " << dora;
    EXPECT_TRUE(at::allclose(merged, before, 1e-5, 1e-6)) << "dora " << dora;
    ASSERT_TRUE(unmerge_adapter(*pair.quantized));
    EXPECT_EQ(pair.quantized->storage().kind(), WeightStorageKind::kInt8Rows);
    EXPECT_TRUE(at::equal(pair.quantized->forward(x), before)) << "dora " << dora;  // the base, exactly
  }
}

TEST(ProjectionStorage, HeadViewsAndTiedHeadsComputeThroughTheStorage) {
  at::manual_seed(5);
  const at::Tensor embedding = at::randn({10, 6});
  const auto tied = Projection::over(dense_storage(embedding), 6, 10);
  const at::Tensor hidden = at::randn({4, 6});
  EXPECT_TRUE(at::equal(tied->forward(hidden), gemm_linear(hidden, embedding)));
  const auto shared = tied->first_outputs(7);
  EXPECT_EQ(shared->out_features(), 7);
  EXPECT_TRUE(at::equal(shared->forward(hidden), gemm_linear(hidden, embedding.narrow(0, 0, 7))));
  // The view follows the embedding: an in-place update shows through.
  at::NoGradGuard no_grad;
  embedding.mul_(2);
  EXPECT_TRUE(at::equal(shared->dense_weight(at::kFloat), embedding.narrow(0, 0, 7)));
}

}  // namespace
}  // namespace retort
