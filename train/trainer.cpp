#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <mutex>

#include "io/error.h"
#include "io/stop_signal.h"
#include "train/losses.h"
#include "train/device_info.h"
#include "train/tensorboard.h"

namespace retort {

Trainer::Trainer(TrainingStep& step, BatchSource& data, TrainerOptions options)
    : step_(step),
      data_(data),
      options_(std::move(options)),
      collective_(options_.collective ? options_.collective : &single_process_),
      trainable_(step.named_trainable_parameters()) {
  if (options_.gradient_accumulation <= 0) throw bad_input("must be positive").key("training.gradient_accumulation");
  if (trainable_.empty()) throw bad_input("nothing to train: no trainable parameters");
  optimizer_ = options_.make_optimizer ? options_.make_optimizer(trainable_)
                                       : std::make_unique<AdamW>(trainable_, options_.adamw);
  if (options_.validation) validation_start_ = options_.validation->state();
  if (options_.dynamic_loss_scaling) loss_scale_ = options_.initial_loss_scale;
  const at::Device device = optimizer_->parameters().front().device();
  if (device.is_cuda()) gpu_ = device.has_index() ? device.index() : 0;
  if (collective_->wants_gradient_hooks()) register_gradient_hooks();
}

void Trainer::register_gradient_hooks() {
  for (auto& [name, parameter] : trainable_) {
    parameter.register_hook([this, name = name](const at::Tensor& grad) {
      collective_->gradient_ready(name, grad, closes_window_);
    });
  }
}

std::string stop_reason_name(StopReason reason, int signal_number) {
  switch (reason) {
    case StopReason::kMaxSteps: return "max_steps";
    case StopReason::kData: return "data";
    case StopReason::kTime: return "time";
    case StopReason::kSignal: return signal_name(signal_number);
  }
  return "";
}

Evaluation evaluate_step(TrainingStep& step, BatchSource& source, Collective& collective) {
  step.set_training(false);
  Evaluation evaluation;
  {
    c10::NoGradGuard no_grad;
    while (std::optional<Batch> batch = source.next()) {
      const StepResult result = step.forward(*batch);
      evaluation.loss_sum += result.loss_sum.item<double>();
      evaluation.normaliser += result.normaliser;
      evaluation.rows += batch->input_ids.size(0);
    }
  }
  step.set_training(true);
  evaluation.loss_sum = collective.sum(evaluation.loss_sum);
  evaluation.normaliser = collective.sum(evaluation.normaliser);
  evaluation.rows = collective.sum(evaluation.rows);
  return evaluation;
}

double Trainer::evaluate() {
  if (!options_.validation) throw internal_error("no validation data");
  options_.validation->restore(validation_start_);
  return evaluate_step(step_, *options_.validation, *collective_).mean();
}

namespace {

// The process's peak resident memory so far (Linux reports KiB).
double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// `gpu`: the CUDA device the step trains on, whose peak reserved memory is logged too.
void append_metrics(const std::string& directory, const StepMetrics& m, std::optional<int> gpu) {
  if (directory.empty()) return;
  std::filesystem::create_directories(directory);
  std::ofstream out(std::filesystem::path(directory) / "metrics.jsonl", std::ios::app);
  nlohmann::json line = {{"step", m.step},     {"loss", m.loss},     {"lr", m.lr},
                         {"grad_norm", m.grad_norm}, {"tokens", m.tokens}, {"tokens_per_s", m.tokens / std::max(m.seconds, 1e-9)},
                         {"input_tokens", m.input_tokens}, {"seconds", m.seconds}, {"peak_rss_mb", peak_rss_mb()}};
  if (gpu) {
    if (const auto peak = peak_gpu_memory_bytes(*gpu)) line["peak_gpu_mb"] = static_cast<double>(*peak) / (1 << 20);
  }
  for (const auto& [name, value] : m.loss_parts) line["loss_" + name] = value;
  if (m.loss_scale > 0) line["loss_scale"] = m.loss_scale;
  if (m.skipped) line["skipped"] = true;
  if (m.val_loss) {
    line["val_loss"] = *m.val_loss;
    line["val_ppl"] = std::exp(*m.val_loss);
  }
  out << line.dump() << "\n";
}

void log_scalars(TensorBoardWriter& tensorboard, const StepMetrics& metrics) {
  tensorboard.scalar("train/loss", metrics.loss, metrics.step);
  for (const auto& [name, value] : metrics.loss_parts) tensorboard.scalar("train/loss_" + name, value, metrics.step);
  tensorboard.scalar("train/lr", metrics.lr, metrics.step);
  tensorboard.scalar("train/grad_norm", metrics.grad_norm, metrics.step);
  tensorboard.scalar("train/tokens_per_s", metrics.tokens / std::max(metrics.seconds, 1e-9), metrics.step);
  if (metrics.val_loss) {
    tensorboard.scalar("val/loss", *metrics.val_loss, metrics.step);
    tensorboard.scalar("val/perplexity", std::exp(*metrics.val_loss), metrics.step);
  }
  tensorboard.flush();
}

// The data position and CPU random state at the start of a step (what a checkpoint stores).
struct StepStart {
  std::string data;
  at::Tensor random;

  static StepStart save(const BatchSource& source) {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    return {source.state(), generator.get_state()};
  }
  void restore(BatchSource& source) const {
    source.restore(data);
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(random);
  }
};

}  // namespace

bool Trainer::stop_pending() {
  if (!options_.stop_requested) return false;
  const int signal_number = options_.stop_requested();
  if (signal_number == 0) return false;
  stop_signal_ = signal_number;
  stop_reason_ = StopReason::kSignal;
  return true;
}

Trainer::Window Trainer::next_window() {
  // The whole window first: the loss is normalised by every unit (trained token) in it, so
  // micro-batches with more tokens weigh more (not an average of per-batch means).
  Window window;
  for (int64_t i = 0; i < options_.gradient_accumulation; ++i) {
    std::optional<Batch> batch = data_.next();
    if (!batch) break;
    window.normaliser += step_.normaliser(*batch);
    window.input_tokens +=
        batch->attention_mask.defined() ? batch->attention_mask.sum().item<int64_t>() : batch->input_ids.numel();
    window.batches.push_back(std::move(*batch));
  }
  // Every rank divides by the window's total over all ranks: their gradients then add up.
  window.normaliser = collective_->sum(window.normaliser);
  return window;
}

bool Trainer::forward_backward(const Window& window, StepMetrics& metrics) {
  const bool scaling = loss_scale_ > 0;
  const double normaliser = static_cast<double>(std::max<int64_t>(window.normaliser, 1));
  std::vector<std::pair<std::string, double>> parts;
  for (size_t i = 0; i < window.batches.size(); ++i) {
    const StepResult result = step_.forward(window.batches[i]);
    const at::Tensor loss = result.loss_sum / normaliser;
    closes_window_ = i + 1 == window.batches.size();
    (scaling ? loss * loss_scale_ : loss).backward();
    metrics.loss += loss.item<double>();
    metrics.tokens += result.tokens;
    for (size_t p = 0; p < result.parts.size(); ++p) {
      if (parts.size() <= p) parts.emplace_back(result.parts[p].first, 0.0);
      parts[p].second += result.parts[p].second.item<double>() / normaliser;
    }
    // The last micro-batch is done: finishing the step costs only the optimizer update.
    if (i + 1 < window.batches.size() && stop_pending()) return false;
  }
  if (collective_->wants_gradient_hooks()) collective_->gradients_finished();
  metrics.loss = collective_->sum(metrics.loss);
  metrics.tokens = collective_->sum(metrics.tokens);
  for (auto& [name, value] : parts) value = collective_->sum(value);
  metrics.loss_parts = std::move(parts);
  return true;
}

void Trainer::update(int64_t step, StepMetrics& metrics) {
  if (!std::isfinite(metrics.loss)) {
    throw internal_error("loss became " + std::to_string(metrics.loss) + " at step " + std::to_string(step + 1) +
                         "; stopping (the last checkpoint is kept)");
  }
  const bool scaling = loss_scale_ > 0;
  metrics.loss_scale = loss_scale_;
  const std::vector<at::Tensor>& parameters = optimizer_->parameters();
  if (scaling) {
    c10::NoGradGuard no_grad;
    for (const at::Tensor& p : parameters) {
      if (p.grad().defined()) p.grad().mul_(1.0 / loss_scale_);
    }
  }
  metrics.grad_norm = clip_grad_norm(parameters, options_.max_grad_norm, *collective_);
  metrics.lr = options_.adamw.lr * lr_multiplier(options_.schedule, step);
  metrics.skipped = scaling && collective_->any(!std::isfinite(metrics.grad_norm));
  if (metrics.skipped) {  // overflow: no update, a smaller scale
    loss_scale_ /= 2;
    good_steps_ = 0;
  } else {
    optimizer_->step(metrics.lr);
    if (scaling && ++good_steps_ >= options_.loss_scale_growth_interval) {
      loss_scale_ *= 2;
      good_steps_ = 0;
    }
  }
  optimizer_->zero_grad();
}

std::vector<StepMetrics> Trainer::run(const std::function<void(const StepMetrics&)>& on_step) {
  const CheckpointOptions& checkpoint = options_.checkpoint;
  if (!checkpoint.directory.empty()) {
    if (checkpoint.resume) resume_from_latest();
    if (is_primary()) cut_logs_back(step_count_);  // without a checkpoint the logs start afresh
  }
  std::optional<TensorBoardWriter> tensorboard;
  if (!checkpoint.directory.empty() && checkpoint.tensorboard && is_primary()) {
    tensorboard.emplace((std::filesystem::path(checkpoint.directory) / "tensorboard").string());
  }
  std::vector<StepMetrics> history;
  const auto run_start = std::chrono::steady_clock::now();
  stop_reason_ = StopReason::kMaxSteps;
  while (step_count_ < options_.max_steps && !stop_pending()) {
    const int64_t step = step_count_;
    const auto start = std::chrono::steady_clock::now();
    // Where the step began, to put back if a stop abandons it before the optimizer update.
    const std::optional<StepStart> step_start =
        options_.stop_requested ? std::optional<StepStart>(StepStart::save(data_)) : std::nullopt;
    const Window window = next_window();
    if (window.batches.empty()) {
      stop_reason_ = StopReason::kData;
      break;
    }
    StepMetrics metrics;
    metrics.input_tokens = collective_->sum(window.input_tokens);
    if (!forward_backward(window, metrics)) {
      optimizer_->zero_grad();
      step_start->restore(data_);
      break;
    }
    update(step, metrics);
    step_count_ = step + 1;
    metrics.step = step_count_;
    metrics.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool last = step_count_ == options_.max_steps;
    if (options_.validation &&
        (last || (options_.eval_every_steps > 0 && step_count_ % options_.eval_every_steps == 0))) {
      metrics.val_loss = evaluate();
    }
    history.push_back(metrics);
    if (is_primary()) append_metrics(checkpoint.directory, metrics, gpu_);
    if (tensorboard) log_scalars(*tensorboard, metrics);
    if (on_step) on_step(metrics);
    const bool cadence = checkpoint.every_steps > 0 && step_count_ % checkpoint.every_steps == 0;
    if (!checkpoint.directory.empty() && (cadence || last)) save_checkpoint();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    if (!last && options_.max_seconds > 0 && elapsed >= options_.max_seconds) {
      stop_reason_ = StopReason::kTime;
      break;
    }
  }
  // A run cut short by the data, the clock or a signal still ends with a checkpoint of its last step.
  if (!checkpoint.directory.empty() && step_count_ > 0 && saved_step_ != step_count_) save_checkpoint();
  // Why it stopped, in a line without "step": a resume cuts it away with the steps after its checkpoint.
  if (stop_signal_ != 0 && !checkpoint.directory.empty() && is_primary()) {
    std::ofstream out(std::filesystem::path(checkpoint.directory) / "metrics.jsonl", std::ios::app);
    out << nlohmann::json{{"stopped", stop_reason_name(stop_reason_, stop_signal_)}, {"after_step", step_count_}}.dump()
        << "\n";
  }
  return history;
}

}  // namespace retort
