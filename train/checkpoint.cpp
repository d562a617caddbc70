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

namespace {

// Each rank's own shard of the state: the optimizer state it owns and its random generators.
std::string state_shard_name(int rank) {
  return rank == 0 ? "optimizer.safetensors" : "optimizer-rank" + std::to_string(rank) + ".safetensors";
}

// The CPU generator, and the CUDA generator of the device trained on (so LoRA dropout on a GPU
// resumes exactly too).
void add_random_state(NamedTensors& state, std::optional<int> gpu) {
  at::Generator cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    state.emplace_back("rng.cpu", cpu.get_state());
  }
  if (gpu) {
    at::Generator cuda = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<int8_t>(*gpu)));
    std::lock_guard<std::mutex> lock(cuda.mutex());
    state.emplace_back("rng.cuda", cuda.get_state());
  }
}

void restore_random_state(const SafetensorsFile& state, std::optional<int> gpu) {
  at::Generator cpu = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(state.load("rng.cpu"));
  }
  if (gpu && state.find("rng.cuda")) {
    at::Generator cuda = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<int8_t>(*gpu)));
    std::lock_guard<std::mutex> lock(cuda.mutex());
    cuda.set_state(state.load("rng.cuda"));
  }
}

}  // namespace

// Every rank writes its shard into one temporary folder; rank 0 writes the rest and commits it
// with a rename once all have finished, so a checkpoint is complete or absent.
void Trainer::save_checkpoint() {
  const CheckpointOptions& options = options_.checkpoint;
  const bool alone = collective_->world_size() == 1;
  const fs::path final_dir = fs::path(options.directory) / checkpoint_name(step_count_);
  const fs::path temp_dir =
      fs::path(options.directory) / (checkpoint_name(step_count_) + ".tmp" + (alone ? std::to_string(::getpid()) : ""));
  if (is_primary()) {
    fs::create_directories(options.directory);
    // Leftovers of a run killed mid-save are never complete checkpoints: clear them.
    for (const auto& entry : fs::directory_iterator(options.directory)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("checkpoint-", 0) == 0 && name.find(".tmp") != std::string::npos) fs::remove_all(entry.path());
    }
    fs::create_directories(temp_dir);
    write_safetensors((temp_dir / "weights.safetensors").string(), trainable_);
  }
  collective_->barrier();
  NamedTensors state;
  if (is_primary() || collective_->gradients_sharded()) state = optimizer_->state();
  add_random_state(state, gpu_);
  write_safetensors((temp_dir / state_shard_name(collective_->rank())).string(), state);
  collective_->barrier();
  if (is_primary()) {
    const nlohmann::json trainer = {{"step", step_count_},
                                    {"data", data_.state()},
                                    {"loss_scale", loss_scale_},
                                    {"good_steps", good_steps_},
                                    {"world_size", collective_->world_size()}};
    write_file_atomic((temp_dir / "recipe.yaml").string(), options.recipe_yaml);
    write_file_atomic((temp_dir / "trainer.json").string(), trainer.dump(2) + "\n");
    fs::remove_all(final_dir);
    fs::rename(temp_dir, final_dir);
    auto all = list_checkpoints(options.directory);
    while (static_cast<int64_t>(all.size()) > std::max<int64_t>(1, options.keep_last)) {
      fs::remove_all(all.front());
      all.erase(all.begin());
    }
  }
  collective_->barrier();
  saved_step_ = step_count_;
}

bool Trainer::resume_from_latest() {
  const auto all = list_checkpoints(options_.checkpoint.directory);
  if (all.empty()) return false;
  const fs::path dir = all.back();
  const auto trainer = nlohmann::json::parse(read_text_file((dir / "trainer.json").string()));
  const auto weights = SafetensorsFile::open((dir / "weights.safetensors").string());
  c10::NoGradGuard no_grad;
  for (auto& [name, tensor] : trainable_) {
    if (!weights->find(name)) throw bad_input("checkpoint lacks a trained tensor").file(weights->path()).tensor(name);
    tensor.copy_(weights->view(name));
  }
  // This rank's shard (its random state; its optimizer state when sharded); replicated optimizer
  // state is rank 0's. A rank the saving run did not have reads rank 0's shard.
  fs::path own_path = dir / state_shard_name(collective_->rank());
  if (!fs::exists(own_path)) own_path = dir / state_shard_name(0);
  const auto own = SafetensorsFile::open(own_path.string());
  const auto primary =
      collective_->gradients_sharded() || is_primary() ? own : SafetensorsFile::open((dir / state_shard_name(0)).string());
  try {
    optimizer_->load_state([&](const std::string& name) -> std::optional<at::Tensor> {
      if (!primary->find(name)) return std::nullopt;
      return primary->load(name);
    });
  } catch (Error& error) {
    throw std::move(error).file(primary->path());
  }
  restore_random_state(*own, gpu_);
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
