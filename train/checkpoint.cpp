// Checkpoints of the training loop: trainable weights, optimizer state, step, data position and
// RNG state, written into a temp directory that is renamed into place (a crash at any moment
// leaves the previous checkpoint intact), keeping the newest K.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "train/tensorboard.h"
#include "train/trainer.h"

namespace retort {
namespace fs = std::filesystem;

namespace {

std::string checkpoint_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "checkpoint-%06lld", static_cast<long long>(step));
  return name;
}

}  // namespace

std::vector<std::string> list_checkpoints(const std::string& directory) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) return out;
  for (const auto& entry : fs::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    // Complete checkpoints only: trainer.json is written last.
    if (name.rfind("checkpoint-", 0) == 0 && name.find(".tmp") == std::string::npos &&
        fs::exists(entry.path() / "trainer.json")) {
      out.push_back(entry.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void Trainer::save_checkpoint() {
  const CheckpointOptions& options = options_.checkpoint;
  fs::create_directories(options.directory);
  const fs::path final_dir = fs::path(options.directory) / checkpoint_name(step_count_);
  const fs::path temp_dir = fs::path(options.directory) / (checkpoint_name(step_count_) + ".tmp" + std::to_string(::getpid()));
  // Leftovers of a run killed mid-save are never complete checkpoints: clear them.
  for (const auto& entry : fs::directory_iterator(options.directory)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint-", 0) == 0 && name.find(".tmp") != std::string::npos) fs::remove_all(entry.path());
  }
  fs::create_directories(temp_dir);
  write_safetensors((temp_dir / "weights.safetensors").string(), step_.named_trainable_parameters());
  std::vector<std::pair<std::string, at::Tensor>> state;
  const auto tensors = optimizer_.state_tensors();
  for (size_t i = 0; i < tensors.size(); ++i) state.emplace_back("adamw." + std::to_string(i), tensors[i]);
  {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    state.emplace_back("rng.cpu", generator.get_state());
  }
  write_safetensors((temp_dir / "optimizer.safetensors").string(), state);
  const nlohmann::json trainer = {
      {"step", step_count_}, {"data", data_.state()}, {"loss_scale", loss_scale_}, {"good_steps", good_steps_}};
  write_file_atomic((temp_dir / "recipe.yaml").string(), options.recipe_yaml);
  write_file_atomic((temp_dir / "trainer.json").string(), trainer.dump(2) + "\n");
  fs::remove_all(final_dir);
  fs::rename(temp_dir, final_dir);
  saved_step_ = step_count_;
  auto all = list_checkpoints(options.directory);
  while (static_cast<int64_t>(all.size()) > std::max<int64_t>(1, options.keep_last)) {
    fs::remove_all(all.front());
    all.erase(all.begin());
  }
}

bool Trainer::resume_from_latest() {
  const auto all = list_checkpoints(options_.checkpoint.directory);
  if (all.empty()) return false;
  const fs::path dir = all.back();
  const auto trainer = nlohmann::json::parse(read_text_file((dir / "trainer.json").string()));
  const auto weights = SafetensorsFile::open((dir / "weights.safetensors").string());
  c10::NoGradGuard no_grad;
  for (auto& [name, tensor] : step_.named_trainable_parameters()) {
    if (!weights->find(name)) throw bad_input("checkpoint lacks a trained tensor").file(weights->path()).tensor(name);
    tensor.copy_(weights->view(name));
  }
  const auto state = SafetensorsFile::open((dir / "optimizer.safetensors").string());
  std::vector<at::Tensor> tensors;
  for (size_t i = 0; state->find("adamw." + std::to_string(i)); ++i) tensors.push_back(state->load("adamw." + std::to_string(i)));
  optimizer_.load_state_tensors(tensors);
  at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state->load("rng.cpu"));
  }
  data_.restore(trainer["data"].get<std::string>());
  step_count_ = trainer["step"].get<int64_t>();
  saved_step_ = step_count_;
  loss_scale_ = trainer.value("loss_scale", loss_scale_);
  good_steps_ = trainer.value("good_steps", int64_t{0});
  return true;
}

void Trainer::cut_logs_back(int64_t last_step) const {
  const fs::path directory = options_.checkpoint.directory;
  const fs::path metrics = directory / "metrics.jsonl";
  if (fs::exists(metrics)) {
    std::ifstream in(metrics);
    std::string kept, line;
    while (std::getline(in, line)) {
      // A torn last line (killed mid-append) or the note of why a run stopped has no step to keep.
      const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (record.is_object() && record.contains("step") && record["step"].is_number_integer() &&
          record["step"].get<int64_t>() <= last_step) {
        kept += line + "\n";
      }
    }
    in.close();
    if (kept.empty()) {
      fs::remove(metrics);
    } else {
      write_file_atomic(metrics.string(), kept);
    }
  }
  cut_tensorboard_events((directory / "tensorboard").string(), last_step);
}

}  // namespace retort
