// The Trainer's seams for many processes, on one process: the optimizer's state keyed by
// parameter name (and the older positional layout still read), the Collective consulted for the
// window's normaliser, the loss and the gradient norm, gradient-ready hooks with the
// window-closing flag, and a step's named loss parts reaching the logs.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <barrier>
#include <filesystem>
#include <fstream>
#include <thread>
#include <map>
#include <nlohmann/json.hpp>

#include "io/error.h"
#include "test_batches.h"
#include "test_support.h"
#include "train/trainer.h"

namespace retort {
namespace {

// Sum over a batch of w . x_t for each trained token t, x_t one-hot of the token id: a linear
// model whose gradient is exact to reason about. Parts "even" and "odd" split the sum.
class LinearStep : public TrainingStep {
 public:
  at::Tensor weight = at::linspace(0.5, 1.5, 6, at::kFloat).requires_grad_(true);
  at::Tensor bias = at::full({1}, 0.25, at::kFloat).requires_grad_(true);
  StepResult forward(const Batch& batch) override {
    const NextTokenTargets next = next_token_targets(batch.labels);
    const at::Tensor ids = next.labels.masked_select(next.counted);
    const at::Tensor per_token = weight.index_select(0, ids) * weight.index_select(0, ids) + bias;
    const at::Tensor even = (per_token * (ids % 2 == 0)).sum(), odd = (per_token * (ids % 2 == 1)).sum();
    StepResult result{per_token.sum(), ids.numel(), ids.numel()};
    result.parts = {{"even", even.detach()}, {"odd", odd.detach()}};
    return result;
  }
  NamedTensors named_trainable_parameters() override { return {{"weight", weight}, {"bias", bias}}; }
};

std::vector<Batch> list_batches() {
  std::vector<Batch> batches;
  for (int64_t i = 0; i < 8; ++i) {
    const at::Tensor ids = at::tensor({i % 6, (i + 1) % 6, (i + 3) % 6, (2 * i) % 6}, at::kLong).reshape({1, 4});
    at::Tensor labels = ids.clone();
    if (i % 3 == 0) labels[0][2] = kIgnoreIndex;  // windows with unequal trained tokens
    batches.push_back(Batch{ids, labels, {}, {}, {}});
  }
  return batches;
}

struct ListSource : test::VectorSource {
  ListSource() : VectorSource(list_batches()) {}
};

// Two ranks that see identical data, simulated in one process: a sum over ranks doubles, a max
// is the value itself; the gradients the hooks saw are summed over "both ranks" once backward
// of the window's last micro-batch has finished (as a data-parallel reducer would).
class MirroredPair : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  void all_reduce_sum(at::Tensor& tensor) override { tensor.mul_(2); }
  void all_reduce_max(at::Tensor&) override {}
  void barrier() override {}
  bool wants_gradient_hooks() const override { return true; }
  void gradient_ready(const std::string& name, const at::Tensor& grad, bool closes_window) override {
    ready.emplace_back(name, closes_window);
  }
  void gradients_finished() override {
    ++finished;
    for (at::Tensor& p : parameters) p.mutable_grad().mul_(2);
  }
  std::vector<std::pair<std::string, bool>> ready;
  int finished = 0;
  std::vector<at::Tensor> parameters;
};

TrainerOptions options_for(int64_t steps) {
  TrainerOptions options;
  options.max_steps = steps;
  options.gradient_accumulation = 2;
  options.adamw.lr = 0.1;
  options.max_grad_norm = 0.5;
  options.schedule.kind = Schedule::kConstant;
  return options;
}

TEST(TrainerSeams, MirroredRanksTrainExactlyAsOneProcessAndHooksSeeEveryGradient) {
  LinearStep alone_step;
  ListSource alone_data;
  Trainer alone(alone_step, alone_data, options_for(3));
  const auto alone_history = alone.run();

  LinearStep pair_step;
  ListSource pair_data;
  MirroredPair pair;
  pair.parameters = {pair_step.weight, pair_step.bias};
  TrainerOptions options = options_for(3);
  options.collective = &pair;
  Trainer mirrored(pair_step, pair_data, options);
  const auto pair_history = mirrored.run();

  ASSERT_EQ(alone_history.size(), 3u);
  ASSERT_EQ(pair_history.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    // Each rank divides by the window's tokens over both ranks, and the loss adds up over them.
    EXPECT_DOUBLE_EQ(pair_history[i].loss, alone_history[i].loss) << i;
    EXPECT_EQ(pair_history[i].tokens, 2 * alone_history[i].tokens) << i;
    EXPECT_NEAR(pair_history[i].grad_norm, alone_history[i].grad_norm, 1e-6) << i;
    ASSERT_EQ(pair_history[i].loss_parts.size(), 2u);
    EXPECT_EQ(pair_history[i].loss_parts[0].first, "even");
    EXPECT_NEAR(pair_history[i].loss_parts[0].second + pair_history[i].loss_parts[1].second, pair_history[i].loss,
                1e-6);
  }
  EXPECT_TRUE(at::allclose(pair_step.weight, alone_step.weight, 1e-6, 1e-7));
  EXPECT_FALSE(at::equal(alone_step.weight, at::linspace(0.5, 1.5, 6, at::kFloat)));  // it trained
  // Every parameter's gradient for each of 2 micro-batches x 3 steps; only the window's last
  // micro-batch closes it.
  ASSERT_EQ(pair.ready.size(), 12u);
  for (size_t i = 0; i < pair.ready.size(); ++i) EXPECT_EQ(pair.ready[i].second, (i / 2) % 2 == 1) << i;
  EXPECT_EQ(pair.finished, 3);
}

// Two ranks as two threads of this process: sums through shared slots, a barrier, and a
// data-parallel gradient reduction once a window's backward is done.
struct ThreadGroup {
  std::barrier<> sync{2};
  at::Tensor slots[2];
};

class ThreadRank : public Collective {
 public:
  ThreadRank(ThreadGroup& group, int rank, std::vector<at::Tensor> parameters)
      : group_(group), rank_(rank), parameters_(std::move(parameters)) {}
  int rank() const override { return rank_; }
  int world_size() const override { return 2; }
  void all_reduce_sum(at::Tensor& tensor) override { reduce(tensor, /*max=*/false); }
  void all_reduce_max(at::Tensor& tensor) override { reduce(tensor, /*max=*/true); }
  void barrier() override { group_.sync.arrive_and_wait(); }
  bool wants_gradient_hooks() const override { return true; }
  void gradients_finished() override {
    for (at::Tensor& p : parameters_) all_reduce_sum(p.mutable_grad());
  }

 private:
  void reduce(at::Tensor& tensor, bool max) {
    group_.slots[rank_] = tensor.clone();
    group_.sync.arrive_and_wait();
    const at::Tensor result = max ? at::maximum(group_.slots[0], group_.slots[1]) : group_.slots[0] + group_.slots[1];
    group_.sync.arrive_and_wait();
    tensor.copy_(result);
  }
  ThreadGroup& group_;
  int rank_;
  std::vector<at::Tensor> parameters_;
};

// Data parallel over 2 ranks, each taking every other micro-batch, with 2 micro-batches a window,
// trains as one process with windows of 4; every rank writes its shard and rank 0 commits the
// checkpoint, and a resumed pair continues exactly.
TEST(TrainerSeams, TwoRanksTrainAsOneProcessAndShareOneCheckpoint) {
  const std::vector<Batch> all = list_batches();
  const auto rank_batches = [&](int rank) {
    std::vector<Batch> mine;
    for (size_t i = static_cast<size_t>(rank); i < all.size(); i += 2) mine.push_back(all[i]);
    return mine;
  };
  test::TempDir dir;
  const auto run_pair = [&](int64_t steps, std::vector<std::vector<StepMetrics>>& histories, LinearStep* steps_out) {
    ThreadGroup group;
    std::vector<std::thread> threads;
    for (int rank = 0; rank < 2; ++rank) {
      threads.emplace_back([&, rank] {
        test::VectorSource data(rank_batches(rank));
        ThreadRank collective(group, rank, {steps_out[rank].weight, steps_out[rank].bias});
        TrainerOptions options = options_for(steps);
        options.collective = &collective;
        options.checkpoint.directory = dir.path().string();
        Trainer trainer(steps_out[rank], data, options);
        histories[static_cast<size_t>(rank)] = trainer.run();
      });
    }
    for (auto& thread : threads) thread.join();
  };
  LinearStep first[2];
  std::vector<std::vector<StepMetrics>> histories(2);
  run_pair(1, histories, first);
  const auto checkpoint = dir.path() / "checkpoint-000001";
  EXPECT_TRUE(std::filesystem::exists(checkpoint / "optimizer.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(checkpoint / "optimizer-rank1.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(checkpoint / "weights.safetensors"));
  LinearStep resumed[2];
  run_pair(2, histories, resumed);
  ASSERT_EQ(histories[0].size(), 1u);  // step 2 only: step 1 came from the checkpoint
  EXPECT_TRUE(at::equal(resumed[0].weight, resumed[1].weight));  // the replicas stay equal

  LinearStep alone_step;
  test::VectorSource alone_data(all);
  TrainerOptions options = options_for(2);
  options.gradient_accumulation = 4;
  Trainer alone(alone_step, alone_data, options);
  const auto alone_history = alone.run();
  EXPECT_NEAR(histories[0][0].loss, alone_history[1].loss, 1e-6);
  EXPECT_EQ(histories[0][0].tokens, alone_history[1].tokens);
  EXPECT_TRUE(at::allclose(resumed[0].weight, alone_step.weight, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(resumed[1].bias, alone_step.bias, 1e-5, 1e-6));
  // Rank 0 alone wrote the metrics: one line per step.
  std::ifstream metrics(dir.path() / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 2);
}

TEST(TrainerSeams, OptimizerStateIsKeyedByNameAndTheOlderPositionalLayoutStillLoads) {
  at::Tensor a = at::ones({2, 3}, at::kFloat).requires_grad_(true);
  at::Tensor b = at::ones({3}, at::kBFloat16).requires_grad_(true);
  AdamWOptions options;
  options.lr = 0.01;
  AdamW trained({{"a", a}, {"b", b}}, options);
  for (int step = 0; step < 3; ++step) {
    a.mutable_grad() = at::arange(6, at::kFloat).reshape({2, 3}) * (step + 1);
    b.mutable_grad() = at::full({3}, 0.5, at::kBFloat16);
    trained.step(options.lr);
  }
  std::map<std::string, at::Tensor> named;
  for (const auto& [name, tensor] : trained.state()) named[name] = tensor;
  ASSERT_EQ(named.size(), 7u);  // 3 per parameter, and b's float32 master
  // Parameters in another order read their own state back by name.
  at::Tensor a2 = at::ones({2, 3}, at::kFloat), b2 = at::ones({3}, at::kBFloat16);
  AdamW reordered({{"b", b2}, {"a", a2}}, options);
  reordered.load_state([&](const std::string& name) -> std::optional<at::Tensor> {
    const auto found = named.find(name);
    return found == named.end() ? std::nullopt : std::optional<at::Tensor>(found->second);
  });
  for (const auto& [name, tensor] : reordered.state()) EXPECT_TRUE(at::equal(tensor, named.at(name))) << name;
  // A checkpoint from before: per parameter exp_avg, exp_avg_sq, step in order, then masters.
  const std::vector<std::string> order = {"adamw.a.exp_avg", "adamw.a.exp_avg_sq", "adamw.a.step",
                                          "adamw.b.exp_avg", "adamw.b.exp_avg_sq", "adamw.b.step",
                                          "adamw.b.master"};
  std::map<std::string, at::Tensor> positional;
  for (size_t i = 0; i < order.size(); ++i) positional["adamw." + std::to_string(i)] = named.at(order[i]);
  AdamW old_layout({{"a", at::ones({2, 3}, at::kFloat)}, {"b", at::ones({3}, at::kBFloat16)}}, options);
  old_layout.load_state([&](const std::string& name) -> std::optional<at::Tensor> {
    const auto found = positional.find(name);
    return found == positional.end() ? std::nullopt : std::optional<at::Tensor>(found->second);
  });
  for (const auto& [name, tensor] : old_layout.state()) EXPECT_TRUE(at::equal(tensor, named.at(name))) << name;
  // A missing tensor is named.
  named.erase("adamw.b.exp_avg_sq");
  AdamW incomplete({{"a", at::ones({2, 3}, at::kFloat)}, {"b", at::ones({3}, at::kBFloat16)}}, options);
  try {
    incomplete.load_state([&](const std::string& name) -> std::optional<at::Tensor> {
      const auto found = named.find(name);
      return found == named.end() ? std::nullopt : std::optional<at::Tensor>(found->second);
    });
    FAIL() << "an incomplete state loaded";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("adamw.b.exp_avg_sq"), std::string::npos) << error.what();
  }
}

TEST(TrainerSeams, LossPartsReachMetricsAndCheckpointsStoreStateByName) {
  test::TempDir dir;
  LinearStep step;
  ListSource data;
  TrainerOptions options = options_for(2);
  options.checkpoint.directory = dir.path().string();
  Trainer trainer(step, data, options);
  trainer.run();
  std::ifstream metrics(dir.path() / "metrics.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(metrics, line));
  const auto record = nlohmann::json::parse(line);
  ASSERT_TRUE(record.contains("loss_even")) << line;
  EXPECT_NEAR(record["loss_even"].get<double>() + record["loss_odd"].get<double>(), record["loss"].get<double>(), 1e-6);
  // A resumed trainer reads the state back by name and continues.
  LinearStep resumed_step;
  ListSource resumed_data;
  TrainerOptions more = options_for(3);
  more.checkpoint.directory = dir.path().string();
  Trainer resumed(resumed_step, resumed_data, more);
  const auto history = resumed.run();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].step, 3);
  LinearStep straight_step;
  ListSource straight_data;
  Trainer straight(straight_step, straight_data, options_for(3));
  const auto straight_history = straight.run();
  EXPECT_EQ(history[0].loss, straight_history.back().loss);
  EXPECT_TRUE(at::equal(resumed_step.weight, straight_step.weight));
  EXPECT_TRUE(at::equal(resumed_step.bias, straight_step.bias));
}

}  // namespace
}  // namespace retort
