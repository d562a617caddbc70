// distill on a GPU: the int8 teacher and a teacher split between the CPU and a GPU give the
// CPU's results. Skipped where no CUDA device is usable (these sessions' build machine); run by
// scripts/gpu_build.sh on the GPU machine: scripts/gpu_build.sh build-gpu -FS python_fixtures -R DistillCuda
// needs only the `models` fixture carried along (-DRETORT_FIXTURES_DIR).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "distill/kd_step.h"
#include "distill/teacher.h"
#include "test_support_fixtures.h"
#include "train/device_info.h"

namespace retort {
namespace {

at::Tensor logits_of(CausalLM& model, const at::Tensor& ids) {
  at::NoGradGuard no_grad;
  return model.forward_logits(ids, {}).to(at::kCPU, at::kFloat);
}

TEST(DistillCuda, Int8AndCpuGpuSplitTeachersMatchTheCpu) {
  if (!query_devices().cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
  const std::string path = (test::fixture_dir("models") / "llama_gqa").string();
  at::manual_seed(0);
  const at::Tensor ids = at::randint(2, 90, {2, 13}, at::kLong);
  TeacherLoadOptions cpu;
  cpu.dtype = at::kFloat;
  const at::Tensor reference = logits_of(*load_teacher(path, cpu).model, ids);

  // Layer 0 (and the embedding) on the CPU, layer 1 (and the head) on the GPU.
  TeacherLoadOptions split = cpu;
  split.devices = {c10::kCPU, c10::Device("cuda:0")};
  LoadedModel spread = load_teacher(path, split);
  EXPECT_LT((logits_of(*spread.model, ids) - reference).abs().max().item<double>(), 1e-4);

  // int8 weights, bfloat16 activations: the GPU agrees with the CPU's int8 forward.
  TeacherLoadOptions int8_cpu;
  int8_cpu.quantize = BaseQuantization::kInt8;
  TeacherLoadOptions int8_gpu = int8_cpu;
  int8_gpu.devices = {c10::Device("cuda:0")};
  const at::Tensor on_cpu = logits_of(*load_teacher(path, int8_cpu).model, ids);
  const at::Tensor on_gpu = logits_of(*load_teacher(path, int8_gpu).model, ids);
  EXPECT_LT(((on_gpu - on_cpu).norm() / on_cpu.norm()).item<double>(), 2e-2);
  EXPECT_LT(((on_gpu - reference).norm() / reference.norm()).item<double>(), 3e-2);

  // The KD step with the split teacher and a GPU student equals the all-CPU step.
  auto kd_loss_with = [&](CausalLM& teacher, const c10::Device& student_device) {
    LoadOptions load;
    load.device = student_device;
    LoadedModel student = load_model((test::fixture_dir("models") / "llama_gqa").string(), load);
    KdStepOptions options;
    options.alpha = 0.5;
    options.shared_vocab = student.model->config().vocab_size;
    KdStep step(*student.model, teacher, options);
    Batch batch;
    batch.input_ids = ids.to(student_device);
    batch.labels = batch.input_ids.clone();
    return step.forward(batch).loss_sum.item<double>();
  };
  LoadedModel cpu_teacher = load_teacher(path, cpu);
  const double expected = kd_loss_with(*cpu_teacher.model, c10::kCPU);
  EXPECT_NEAR(kd_loss_with(*spread.model, c10::Device("cuda:0")), expected, 1e-3 * std::abs(expected));

  // A tied model (its head is the embedding, on the first device) split the same way.
  const std::string tied = (test::fixture_dir("models") / "qwen2_tied").string();
  const at::Tensor tied_reference = logits_of(*load_teacher(tied, cpu).model, ids);
  EXPECT_LT((logits_of(*load_teacher(tied, split).model, ids) - tied_reference).abs().max().item<double>(), 1e-4);
}

}  // namespace
}  // namespace retort
