// The training loop against an explicit PyTorch reference (tests/reference/fixture_training.py):
// 10-step loss trajectories for full fine-tuning and LoRA, accumulation normalised by trained
// tokens, only adapter parameters changing under LoRA; learning-rate schedules.
#include <gtest/gtest.h>

#include <signal.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/autograd.h>

#include <fstream>

#include "finetune/sft_step.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "lora/lora.h"
#include "models/loader.h"
#include "tests/test_batches.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"
#include "train/losses.h"
#include "train/tensorboard.h"
#include "train/trainer.h"

namespace retort {
namespace {

using test::VectorSource;

std::vector<Batch> fixture_batches() {
  const auto file = SafetensorsFile::open((test::fixture_dir("training") / "batches.safetensors").string());
  std::vector<Batch> batches;
  for (int i = 0; file->find("input_ids." + std::to_string(i)); ++i) {
    const std::string n = std::to_string(i);
    batches.push_back({file->load("input_ids." + n), file->load("labels." + n), file->load("attention_mask." + n), {}, {}});
  }
  return batches;
}

TrainerOptions fixture_options() {
  const auto settings = nlohmann::json::parse(read_text_file((test::fixture_dir("training") / "settings.json").string()));
  TrainerOptions options;
  options.max_steps = settings["steps"];
  options.gradient_accumulation = settings["accumulation"];
  options.adamw.lr = settings["lr"];
  options.adamw.weight_decay = settings["weight_decay"];
  options.max_grad_norm = settings["max_grad_norm"];
  options.schedule = {Schedule::kCosine, settings["warmup"].get<int64_t>(), settings["steps"].get<int64_t>(), 0.0};
  return options;
}

void expect_trajectory(const std::vector<StepMetrics>& ours, const std::string& reference_file) {
  const auto reference = nlohmann::json::parse(read_text_file((test::fixture_dir("training") / reference_file).string()));
  ASSERT_EQ(ours.size(), reference.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    const double loss = reference[i]["loss"];
    EXPECT_NEAR(ours[i].loss, loss, 1e-4 * loss) << "step " << i + 1;
    EXPECT_NEAR(ours[i].grad_norm, reference[i]["grad_norm"].get<double>(), 1e-4 * ours[i].grad_norm) << i + 1;
    EXPECT_DOUBLE_EQ(ours[i].lr, reference[i]["lr"].get<double>()) << i + 1;
    EXPECT_EQ(ours[i].tokens, reference[i]["tokens"].get<int64_t>()) << i + 1;
  }
}

TEST(Training, FullFineTuneTrajectoryEqualsReference) {
  const LoadedModel loaded = load_model((test::fixture_dir("training") / "base").string());
  SftStep step(*loaded.model);
  VectorSource data(fixture_batches());
  Trainer trainer(step, data, fixture_options());
  expect_trajectory(trainer.run(), "full.json");
  const auto final_weights = SafetensorsFile::open((test::fixture_dir("training") / "full_final.safetensors").string());
  for (const auto& item : loaded.model->named_parameters()) {
    const at::Tensor reference = final_weights->load(item.key());
    EXPECT_LE((item.value() - reference).abs().max().item<double>(), 1e-4) << item.key();
  }
}

TEST(Training, LoraTrajectoryEqualsPeftAndOnlyAdaptersChange) {
  const LoadedModel loaded = load_model((test::fixture_dir("training") / "base").string());
  std::map<std::string, at::Tensor> before;
  for (const auto& item : loaded.model->named_parameters()) before[item.key()] = item.value().clone();
  load_peft_adapter(*loaded.model, (test::fixture_dir("training") / "lora_init").string());
  SftStep step(*loaded.model);
  EXPECT_EQ(step.trainable_parameters().size(), 2u * 3u * 2u);  // A and B, 3 targets, 2 layers
  VectorSource data(fixture_batches());
  Trainer trainer(step, data, fixture_options());
  expect_trajectory(trainer.run(), "lora.json");
  for (const auto& item : loaded.model->named_parameters()) {
    EXPECT_TRUE(at::equal(item.value(), before[item.key()])) << "base weight changed: " << item.key();
  }
  for (const at::Tensor& t : step.trainable_parameters()) EXPECT_GT(t.abs().sum().item<double>(), 0.0);
}

TEST(Training, Bfloat16LoraTracksThePeftFloat32Trajectory) {
  // A bfloat16 base with float32 adapters: the loss follows the float32 reference within
  // bfloat16's rounding (3 significant digits), and the base stays bfloat16 and unchanged.
  LoadOptions load;
  load.dtype = at::kBFloat16;
  const LoadedModel loaded = load_model((test::fixture_dir("training") / "base").string(), load);
  load_peft_adapter(*loaded.model, (test::fixture_dir("training") / "lora_init").string());
  SftStep step(*loaded.model);
  for (const at::Tensor& t : step.trainable_parameters()) EXPECT_EQ(t.scalar_type(), at::kFloat);
  const at::Tensor embed_before = loaded.model->output_head().storage().trainable_tensor().clone();
  VectorSource data(fixture_batches());
  Trainer trainer(step, data, fixture_options());
  const auto ours = trainer.run();
  const auto reference = nlohmann::json::parse(read_text_file((test::fixture_dir("training") / "lora.json").string()));
  ASSERT_EQ(ours.size(), reference.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_NEAR(ours[i].loss, reference[i]["loss"].get<double>(), 2e-2 * reference[i]["loss"].get<double>()) << i + 1;
  }
  EXPECT_EQ(loaded.model->output_head().storage().compute_dtype(), at::kBFloat16);
  EXPECT_TRUE(at::equal(loaded.model->output_head().storage().trainable_tensor(), embed_before));
}

TEST(Training, AccumulationOfFourSingleBatchesEqualsOneBatchOfFour) {
  at::manual_seed(3);
  const at::Tensor ids = at::randint(1, 64, {4, 12}, at::kLong);
  at::Tensor labels = ids.clone();
  // Different numbers of trained tokens per row (labels[:, 1:] counted): 10, 6, 3 and 11.
  labels[0].narrow(0, 0, 2).fill_(kIgnoreIndex);
  labels[1].narrow(0, 0, 6).fill_(kIgnoreIndex);
  labels[2].narrow(0, 0, 9).fill_(kIgnoreIndex);
  labels[3].narrow(0, 0, 1).fill_(kIgnoreIndex);
  auto run = [&](int64_t micro, int64_t accumulation) {
    const LoadedModel loaded = load_model((test::fixture_dir("training") / "base").string());
    std::vector<Batch> batches;
    for (int64_t start = 0; start < 4; start += micro) {
      batches.push_back({ids.narrow(0, start, micro), labels.narrow(0, start, micro), {}, {}, {}});
    }
    SftStep step(*loaded.model);
    VectorSource data(batches);
    TrainerOptions options;
    options.max_steps = 1;
    options.gradient_accumulation = accumulation;
    options.adamw.lr = 1e-2;
    options.max_grad_norm = 0;
    Trainer trainer(step, data, options);
    const auto metrics = trainer.run();
    EXPECT_EQ(metrics.front().tokens, 10 + 6 + 3 + 11);
    return std::make_pair(loaded.model, metrics.front().loss);
  };
  const auto [one_batch, loss_a] = run(4, 1);
  const auto [four_micro, loss_b] = run(1, 4);
  EXPECT_NEAR(loss_a, loss_b, 1e-6);
  auto params_b = four_micro->named_parameters();
  // AdamW's first step moves each weight by about lr * g / |g|: rounding in the tiniest gradients
  // (a [4 x 12] batch and four [1 x 12] ones sum in different orders) shows up amplified, so the
  // bound is 0.1% of the lr = 1e-2 step; a wrongly weighted row flips the sign of some
  // gradients and moves those weights by whole steps.
  for (const auto& item : one_batch->named_parameters()) {
    EXPECT_LE((item.value() - params_b[item.key()]).abs().max().item<double>(), 1e-5) << item.key();
  }
}

TEST(Training, ResumeFromACheckpointContinuesExactly) {
  auto run = [&](const std::string& dir, int64_t max_steps) {
    const LoadedModel loaded = load_model((test::fixture_dir("training") / "base").string());
    load_peft_adapter(*loaded.model, (test::fixture_dir("training") / "lora_init").string());
    SftStep step(*loaded.model);
    VectorSource data(fixture_batches());
    TrainerOptions options = fixture_options();
    options.max_steps = max_steps;
    options.checkpoint = {dir, /*every_steps=*/3, /*keep_last=*/2, /*resume=*/true, "name: test\n"};
    Trainer trainer(step, data, options);
    trainer.run();
    std::map<std::string, at::Tensor> weights;
    for (auto& [name, tensor] : step.named_trainable_parameters()) weights[name] = tensor.clone();
    return weights;
  };
  test::TempDir straight, interrupted;
  const auto expected = run(straight.path().string(), 10);
  run(interrupted.path().string(), 5);  // stops after step 5 (checkpoints at 3 and 5)
  EXPECT_EQ(list_checkpoints(interrupted.path().string()).size(), 2u);
  const auto resumed = run(interrupted.path().string(), 10);  // a new process would do the same
  for (const auto& [name, tensor] : expected) {
    EXPECT_TRUE(at::equal(tensor, resumed.at(name))) << "not bitwise equal: " << name;
  }
  // The metrics file of the interrupted run equals the straight run's, step for step.
  auto losses = [](const std::filesystem::path& dir) {
    std::vector<std::pair<int64_t, double>> out;
    std::ifstream in(dir / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const auto json = nlohmann::json::parse(line);
      out.emplace_back(json["step"].get<int64_t>(), json["loss"].get<double>());
    }
    return out;
  };
  EXPECT_EQ(losses(interrupted.path()), losses(straight.path()));
  EXPECT_EQ(losses(straight.path()).size(), 10u);
  const auto kept = list_checkpoints(interrupted.path().string());
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_NE(kept.back().find("checkpoint-000010"), std::string::npos);
  EXPECT_NE(kept.front().find("checkpoint-000009"), std::string::npos);
}

// A stop request (what SIGINT/SIGTERM/SIGUSR1 become) polled between micro-batches: a step whose
// optimizer update has not begun is abandoned, its data position put back, and the run ends with a
// checkpoint of its last completed step, from which a resumed run continues bit for bit.
TEST(Training, AStopRequestCheckpointsTheLastStepAndResumesExactly) {
  struct Outcome {
    std::map<std::string, at::Tensor> weights;
    int64_t steps;
    std::string reason;
  };
  const auto batches = fixture_batches();
  ASSERT_GE(batches.size(), 4u);
  auto run = [&](const std::string& dir, int stop_at_poll) {
    const LoadedModel loaded = load_model((test::fixture_dir("training") / "base").string());
    load_peft_adapter(*loaded.model, (test::fixture_dir("training") / "lora_init").string());
    SftStep step(*loaded.model);
    VectorSource data(batches);
    TrainerOptions options = fixture_options();
    options.gradient_accumulation = 2;  // polls: before each step and between its two micro-batches
    options.max_steps = static_cast<int64_t>(batches.size()) / 2;
    options.checkpoint = {dir, /*every_steps=*/100, /*keep_last=*/2, /*resume=*/true, "name: test\n"};
    int polls = 0;
    if (stop_at_poll > 0) options.stop_requested = [&] { return ++polls >= stop_at_poll ? SIGTERM : 0; };
    Trainer trainer(step, data, options);
    trainer.run();
    Outcome out{{}, trainer.completed_steps(), stop_reason_name(trainer.stop_reason(), trainer.stop_signal())};
    for (auto& [name, tensor] : step.named_trainable_parameters()) out.weights[name] = tensor.clone();
    return out;
  };
  test::TempDir straight;
  const Outcome expected = run(straight.path().string(), 0);
  // Poll 3: before step 2 begins. Poll 4: between step 2's micro-batches (the step is abandoned).
  for (const auto& [poll, steps] : {std::pair{3, 1}, std::pair{4, 1}}) {
    test::TempDir stopped;
    const Outcome first = run(stopped.path().string(), poll);
    EXPECT_EQ(first.steps, steps) << "poll " << poll;
    EXPECT_EQ(first.reason, "SIGTERM");
    const auto saved = list_checkpoints(stopped.path().string());
    ASSERT_EQ(saved.size(), 1u) << "poll " << poll;
    EXPECT_NE(saved.back().find("checkpoint-00000" + std::to_string(steps)), std::string::npos) << saved.back();
    const std::string metrics = read_text_file((stopped.path() / "metrics.jsonl").string());
    EXPECT_NE(metrics.find("{\"after_step\":" + std::to_string(steps) + ",\"stopped\":\"SIGTERM\"}"),
              std::string::npos) << metrics;
    const Outcome resumed = run(stopped.path().string(), 0);
    EXPECT_EQ(resumed.steps, expected.steps);
    for (const auto& [name, tensor] : expected.weights) {
      EXPECT_TRUE(at::equal(tensor, resumed.weights.at(name))) << "poll " << poll << ": not bitwise equal: " << name;
    }
    // One line per step, the note of the stop gone with the steps after its checkpoint.
    EXPECT_EQ(read_text_file((stopped.path() / "metrics.jsonl").string()).find("stopped"), std::string::npos);
  }
}

TEST(Schedules, WarmupThenDecayAsTransformersDefinesThem) {
  const ScheduleOptions cosine{Schedule::kCosine, 10, 110, 0.0};
  EXPECT_DOUBLE_EQ(lr_multiplier(cosine, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(cosine, 5), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(cosine, 10), 1.0);
  EXPECT_NEAR(lr_multiplier(cosine, 60), 0.5, 1e-12);
  EXPECT_NEAR(lr_multiplier(cosine, 110), 0.0, 1e-12);
  const ScheduleOptions with_floor{Schedule::kCosine, 0, 100, 0.1};
  EXPECT_NEAR(lr_multiplier(with_floor, 100), 0.1, 1e-12);
  const ScheduleOptions linear{Schedule::kLinear, 0, 100, 0.0};
  EXPECT_DOUBLE_EQ(lr_multiplier(linear, 25), 0.75);
  EXPECT_DOUBLE_EQ(lr_multiplier({Schedule::kConstant, 4, 100, 0.0}, 50), 1.0);
}

}  // namespace
}  // namespace retort

namespace retort {
namespace {

TEST(Losses, ChunkedLossAndGradientsEqualPlainCrossEntropy) {
  at::manual_seed(5);
  const at::Tensor hidden = at::randn({2, 9, 16}, at::kDouble).set_requires_grad(true);
  const at::Tensor weight = at::randn({40, 16}, at::kDouble).set_requires_grad(true);
  at::Tensor labels = at::randint(0, 40, {2, 9}, at::kLong);
  labels[0][3] = kIgnoreIndex;
  labels[1][8] = kIgnoreIndex;
  // Reference: the full logits at once, as transformers' ForCausalLMLoss (summed).
  const at::Tensor logits = at::linear(hidden.narrow(1, 0, 8), weight).reshape({-1, 40});
  const at::Tensor reference = at::cross_entropy_loss(logits, labels.narrow(1, 1, 8).reshape({-1}), std::nullopt,
                                                      at::Reduction::Sum, kIgnoreIndex);
  const auto reference_grads = torch::autograd::grad({reference}, {hidden, weight});
  for (int64_t chunk : {1, 3, 7, 64}) {
    const TokenLoss loss = causal_lm_loss(hidden, *Projection::over(dense_storage(weight), weight.size(1), weight.size(0)), labels, chunk);
    EXPECT_EQ(loss.tokens, 14);  // 2 x 8 shifted labels, 2 ignored
    EXPECT_NEAR(loss.sum.item<double>(), reference.item<double>(), 1e-5 * reference.item<double>()) << chunk;
    const auto grads = torch::autograd::grad({loss.sum * 0.5}, {hidden, weight});  // scaled upstream gradient
    EXPECT_LE((grads[0] - reference_grads[0] * 0.5).abs().max().item<double>(), 1e-5) << chunk;
    EXPECT_LE((grads[1] - reference_grads[1] * 0.5).abs().max().item<double>(), 1e-5) << chunk;
  }
}

}  // namespace
}  // namespace retort

namespace retort {
namespace {

TEST(TensorBoard, Crc32cKnownValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // the CRC-32C check value
}

TEST(TensorBoard, TheTensorboardPackageReadsOurEventFiles) {
  const LoadedModel loaded = load_model((test::fixture_dir("training") / "base").string());
  SftStep step(*loaded.model);
  VectorSource data(fixture_batches());
  TrainerOptions options = fixture_options();
  options.max_steps = 4;
  test::TempDir out;
  options.checkpoint.directory = out.path().string();
  options.checkpoint.tensorboard = true;
  Trainer trainer(step, data, options);
  const auto history = trainer.run();
  const auto result = test::run_program({test::env_or_empty("RETORT_PYTHON"),
                                         test::env_or_empty("RETORT_SOURCE_DIR") + "/tests/reference/read_tensorboard.py",
                                         (out.path() / "tensorboard").string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto scalars = nlohmann::json::parse(result.out);
  ASSERT_TRUE(scalars.contains("train/loss")) << result.out;
  ASSERT_EQ(scalars["train/loss"].size(), history.size());
  for (size_t i = 0; i < history.size(); ++i) {
    EXPECT_EQ(scalars["train/loss"][i][0].get<int64_t>(), history[i].step);
    EXPECT_NEAR(scalars["train/loss"][i][1].get<double>(), history[i].loss, 1e-6 * history[i].loss);  // float32
    EXPECT_NEAR(scalars["train/lr"][i][1].get<double>(), history[i].lr, 1e-6 * options.adamw.lr);
  }
  EXPECT_TRUE(scalars.contains("train/grad_norm"));
}

}  // namespace
}  // namespace retort

namespace retort {
namespace {

// Loss and every trainable gradient of one step (LoRA with dropout, or full), optionally with
// activation checkpointing; the same seed gives the same dropout masks.
std::vector<at::Tensor> step_gradients(bool lora, bool checkpointing) {
  LoadedModel loaded = load_model((test::fixture_dir("training") / "base").string());
  if (lora) {
    LoraSpec spec;
    spec.rank = 4;
    spec.alpha = 8;
    spec.dropout = 0.2;
    attach_lora(*loaded.model, spec, {"q_proj", "v_proj", "down_proj"}, 5);
  }
  loaded.model->set_activation_checkpointing(checkpointing);
  SftStep step(*loaded.model);
  at::manual_seed(9);
  const at::Tensor ids = at::randint(loaded.model->config().vocab_size, {2, 12}, at::kLong);
  Batch batch{ids, ids.clone(), {}, {}, {}};
  const StepResult result = step.forward(batch);
  result.loss_sum.backward();
  std::vector<at::Tensor> out = {result.loss_sum.detach()};
  for (auto& [name, tensor] : step.named_trainable_parameters()) out.push_back(tensor.grad().clone());
  return out;
}

TEST(Training, ActivationCheckpointingGivesIdenticalGradients) {
  for (const bool lora : {true, false}) {
    const auto plain = step_gradients(lora, false);
    const auto checkpointed = step_gradients(lora, true);
    ASSERT_EQ(plain.size(), checkpointed.size());
    for (size_t i = 0; i < plain.size(); ++i) {
      EXPECT_TRUE(at::allclose(plain[i], checkpointed[i], 1e-6, 1e-7)) << (lora ? "LoRA" : "full") << " tensor " << i;
    }
  }
}

}  // namespace
}  // namespace retort

namespace retort {
namespace {

TEST(Precision, LowPrecisionParametersKeepFloat32MasterWeights) {
  // An update of 1e-4 a step vanishes in bfloat16 (spacing 2^-7 at 1.0); the float32 master
  // accumulates it and the parameter follows once the sum is representable.
  at::Tensor weight = at::ones({4, 4}, at::kBFloat16).requires_grad_(true);
  AdamWOptions options;
  options.lr = 1e-4;
  AdamW optimizer({{"weight", weight}}, options);
  for (int step = 0; step < 200; ++step) {
    weight.mutable_grad() = at::ones({4, 4}, at::kBFloat16);
    optimizer.step(options.lr);
  }
  const auto state = optimizer.state();
  ASSERT_EQ(state.size(), 4u);  // exp_avg, exp_avg_sq, step, master
  EXPECT_EQ(state[0].first, "adamw.weight.exp_avg");
  EXPECT_EQ(state[0].second.scalar_type(), at::kFloat);
  EXPECT_EQ(state[3].first, "adamw.weight.master");
  EXPECT_EQ(state[3].second.scalar_type(), at::kFloat);
  EXPECT_NEAR(state[3].second[0][0].item<double>(), 1.0 - 200 * 1e-4, 1e-5);
  EXPECT_TRUE(at::equal(weight, state[3].second.to(at::kBFloat16)));
  EXPECT_LT(weight[0][0].item<double>(), 1.0);
}

// A float16 weight whose gradient (10 per element) times the initial scale overflows float16.
class OverflowStep : public TrainingStep {
 public:
  at::Tensor weight = at::ones({8}, at::kHalf).requires_grad_(true);
  // The trainer divides by the batch's 2 trained tokens: d(loss)/d(weight) = 10.
  StepResult forward(const Batch&) override { return {(weight.to(at::kFloat) * 10.0).sum() * 2.0, 2}; }
  std::vector<std::pair<std::string, at::Tensor>> named_trainable_parameters() override { return {{"w", weight}}; }
};

class EndlessBatches : public BatchSource {
 public:
  std::optional<Batch> next() override {
    const at::Tensor ids = at::zeros({1, 3}, at::kLong);
    return Batch{ids, ids.clone(), {}, {}, {}};
  }
  std::string state() const override { return "{}"; }
  void restore(const std::string&) override {}
};

TEST(Precision, Float16LossScalingSkipsOverflowingStepsAndHalvesTheScale) {
  OverflowStep step;
  EndlessBatches data;
  TrainerOptions options;
  options.max_steps = 7;
  options.max_grad_norm = 0;
  options.adamw.lr = 1e-2;
  options.schedule.kind = Schedule::kConstant;
  options.dynamic_loss_scaling = true;
  options.loss_scale_growth_interval = 2;
  Trainer trainer(step, data, options);
  const auto history = trainer.run();
  ASSERT_EQ(history.size(), 7u);
  // 10 x 65536, x 32768, x 16384 and x 8192 overflow float16 (max 65504); x 4096 does not;
  // two good steps double the scale again, and 8192 overflows again.
  const std::vector<double> scales = {65536, 32768, 16384, 8192, 4096, 4096, 8192};
  const std::vector<bool> skipped = {true, true, true, true, false, false, true};
  for (size_t i = 0; i < history.size(); ++i) {
    EXPECT_EQ(history[i].loss_scale, scales[i]) << i;
    EXPECT_EQ(history[i].skipped, skipped[i]) << i;
    if (i < 5) {
      EXPECT_NEAR(history[i].loss, 80.0, 1e-6) << i;  // the weight is unchanged by skipped steps
    }
  }
  EXPECT_LT(step.weight[0].item<double>(), 1.0);  // the good steps updated it
}

}  // namespace
}  // namespace retort
