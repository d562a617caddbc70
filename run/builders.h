// The pieces `retort run` and `retort cache-teacher` assemble from a recipe, each built in one
// place: the text side and scanned data, the loaders, the model (with its storage and LoRA), the
// trainer's options and the exports written after a run. Methods (run/method.h) draw on them.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "data/dataset.h"
#include "lora/lora.h"
#include "models/loader.h"
#include "recipe/recipe.h"
#include "train/trainer.h"

namespace retort::run {

using Info = std::function<void(const std::string&)>;

// The recipe's tokenizer and chat template, its encoder and pipeline, and the scanned train and
// validation splits. Pinned in memory: the encoder and pipeline point into it.
class RunData {
 public:
  explicit RunData(const Recipe& recipe);
  RunData(const RunData&) = delete;
  RunData& operator=(const RunData&) = delete;

  const data::RecipeText text;
  const data::ExampleEncoder encoder;
  const data::DataPipeline pipeline;
  const data::PreparedData prepared;
  const Tokenizer& tokenizer() const { return *text.tokenizer; }
  TokenId pad_id() const;
};

// The training loader (shuffled as the recipe says) and the validation loader, numbered after
// the training sequences (the numbering a teacher cache is keyed by).
struct RunLoaders {
  std::unique_ptr<data::DataLoader> train;
  std::unique_ptr<data::DataLoader> validation;  // null: no validation data
  int64_t total_steps = 0;  // training.max_steps, or the epochs' optimizer steps
};
RunLoaders build_loaders(const Recipe& recipe, const RunData& data);

// The model to train in training.precision on model.device, with fresh LoRA adapters (seeded by
// training.seed) when lora.enabled, and activation checkpointing as asked.
struct TrainedModel {
  LoadedModel loaded;
  std::string path;  // model.path, home expanded
  std::optional<LoraSpec> lora;
  CausalLM& model() const { return *loaded.model; }
};
TrainedModel build_model(const Recipe& recipe, const Info& info);

// The loop's options from the optimizer, scheduler, training, checkpoint and logging sections.
TrainerOptions build_trainer_options(const Recipe& recipe, const std::string& recipe_yaml, int64_t total_steps);

// What this build trains with; everything else in the recipe is refused by name, not ignored.
void check_supported(const Recipe& recipe);
// The output directory exists, is writable, and holds no checkpoint unless it may be resumed;
// the model path exists.
void prepare_output_dir(const Recipe& recipe);

// The Jinja chat template file exports store ("" = the model's own), checked before training.
std::string export_chat_template(const Recipe& recipe, const std::string& model_path);
// The PEFT adapter (LoRA) and the recipe's hf, gguf and gguf-lora exports into OUTPUT_DIR/export.
// Returns the adapter directory ("" without LoRA).
std::string write_run_exports(const Recipe& recipe, const TrainedModel& trained, const std::string& chat_template);

}  // namespace retort::run
