// One training step's cost, for finding where time goes: loads a model, attaches LoRA (or trains
// everything), runs --steps steps of random [batch, seq] ids and prints tokens/s; --profile F
// writes the last step's op trace (chrome://tracing JSON, LibTorch's legacy profiler).
//   retort_bench_train_step --model M [--lora 16] [--dropout 0.05] [--batch 4] [--seq 256] [--steps 4]
//                           [--checkpointing] [--profile trace.json]
#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "finetune/sft_step.h"
#include "models/loader.h"
#include "train/optimizer.h"

int main(int argc, char** argv) {
  using namespace retort;
  std::string model_path, profile;
  int64_t rank = 16, batch = 4, seq = 256, steps = 4;
  double dropout = 0.05;
  bool checkpointing = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&] { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (flag == "--model") model_path = value();
    else if (flag == "--lora") rank = std::stoll(value());
    else if (flag == "--dropout") dropout = std::stod(value());
    else if (flag == "--batch") batch = std::stoll(value());
    else if (flag == "--seq") seq = std::stoll(value());
    else if (flag == "--steps") steps = std::stoll(value());
    else if (flag == "--profile") profile = value();
    else if (flag == "--checkpointing") checkpointing = true;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  LoadedModel loaded = load_model(model_path);
  if (rank > 0) {
    LoraSpec spec;
    spec.rank = rank;
    spec.alpha = 2.0 * static_cast<double>(rank);
    spec.dropout = dropout;
    attach_lora(*loaded.model, spec, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, 0);
  }
  loaded.model->set_activation_checkpointing(checkpointing);
  SftStep step(*loaded.model);
  AdamW optimizer(step.named_trainable_parameters(), {});
  at::manual_seed(0);
  const at::Tensor ids = at::randint(loaded.model->config().vocab_size, {batch, seq}, at::kLong);
  const Batch data{ids, ids.clone(), {}, {}, {}};
  double timed = 0;
  for (int64_t s = 0; s < steps; ++s) {
    std::unique_ptr<torch::autograd::profiler::RecordProfile> recording;
    if (!profile.empty() && s == steps - 1) recording = std::make_unique<torch::autograd::profiler::RecordProfile>(profile);
    const auto start = std::chrono::steady_clock::now();
    const StepResult result = step.forward(data);
    (result.loss_sum / static_cast<double>(result.tokens)).backward();
    clip_grad_norm(optimizer.parameters(), 1.0);
    optimizer.step(1e-4);
    optimizer.zero_grad();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s > 0) timed += seconds;
    std::printf("step %lld: %.3f s\n", static_cast<long long>(s), seconds);
  }
  if (steps > 1) std::printf("tokens/s %.1f\n", static_cast<double>(batch * seq * (steps - 1)) / timed);
  return 0;
}
