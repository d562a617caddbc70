// `retort run --plan`: the memory a run needs at its peak, worked out from the recipe and the
// model's config (config.json or the GGUF header) before anything is loaded, split into what
// holds it (base weights, adapters, optimizer state, activations, the loss's logits chunk, ...);
// and the refusal to start on a GPU whose free memory is smaller, naming the recipe knobs that
// would make it fit. The arithmetic follows what Retort's own code allocates (each term says
// where); the CPU figures were calibrated against peak RSS of measured runs (docs/quantized-bases.md).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf_dequant.h"
#include "models/config.h"
#include "recipe/recipe.h"

namespace retort::run {

// How a GGUF file stores one decoder projection weight (what `keep` holds byte for byte).
struct StoredProjection {
  GgmlType type = GgmlType::F32;
  int64_t bytes = 0;
};

// What the plan needs to know of a model without loading its weights.
struct ModelFacts {
  ModelConfig config;
  bool from_gguf = false;
  // GGUF only: each decoder projection by its HF weight name ("model.layers.0.mlp.up_proj.weight").
  std::map<std::string, StoredProjection> stored;
  // Online distillation: the frozen teacher held on the same device (distill.teacher), else null.
  std::shared_ptr<const ModelFacts> teacher;
};

// Reads an HF directory's config.json or a .gguf file's header (metadata and tensor infos);
// bad_input naming the file (and `key`, the recipe setting that named it).
ModelFacts read_model_facts(const std::string& model_path, const std::string& key = "model.path");
// The recipe's model, and its teacher when the method is online distillation (kd) on model.device.
ModelFacts read_run_models(const Recipe& recipe);

struct MemoryPart {
  std::string name;
  int64_t bytes = 0;
  std::string detail;  // what the figure is made of, for the table
};

struct MemoryPlan {
  std::string device;  // the recipe's model.device
  bool on_gpu = false;
  std::vector<MemoryPart> parts;  // what is alive at the training step's peak
  // Loading holds the base weights plus one tensor in flight; when that is larger than the step's
  // peak (large embeddings, short sequences) it is the peak.
  int64_t load_peak_bytes = 0;
  int64_t step_peak_bytes() const;
  int64_t total_bytes() const;  // the larger of the two
};

MemoryPlan plan_memory(const Recipe& recipe, const ModelFacts& model);
MemoryPlan plan_memory(const Recipe& recipe);  // with read_run_models(recipe)

// What one micro-batch's forward pass leaves allocated for its backward pass: the tensors
// autograd keeps in every decoder layer (or, checkpointed, each layer's input), around them, and
// the loss's gradient of the hidden states. Part of the plan's "activations"; tests measure it.
int64_t saved_activation_bytes(const Recipe& recipe, const ModelFacts& model);

// A table: component, bytes, human units, the detail; then the total.
std::string describe_memory_plan(const MemoryPlan& plan);

// Storage sizes, as the storages report them (WeightStorage::bytes()).
// NF4 in bitsandbytes' layout: codes, 8-bit block maxima, their float32 scales per 256, the offset.
int64_t nf4_storage_bytes(int64_t numel);
// int8 per output row: the codes and one scale per row in `scale_bytes` (the compute dtype's size).
int64_t int8_storage_bytes(int64_t rows, int64_t columns, int64_t scale_bytes);

// Recipe settings ("model.quantize: nf4", "training.activation_checkpointing: true",
// "training.micro_batch_size: 2") whose change alone brings the plan within `free_bytes`; when
// none does alone, their combination, if that fits. Empty: nothing the recipe offers fits.
std::vector<std::string> knobs_that_fit(const Recipe& recipe, const ModelFacts& model, int64_t free_bytes);

// bad_input (key: the first knob, else model.device) when the plan exceeds `free_bytes`, naming
// the knobs that would make it fit.
void require_plan_fits(const Recipe& recipe, const ModelFacts& model, const MemoryPlan& plan, int64_t free_bytes);

// The free memory of the recipe's GPU (cuda / cuda:N) now; nullopt on CPU or without a usable GPU.
std::optional<int64_t> free_gpu_memory(const std::string& device);

// `retort run --plan`: the table, then on a GPU the free memory beside it; bad_input after the
// table when it does not fit (require_plan_fits).
void report_memory_plan(const Recipe& recipe, std::ostream& out);
// What `retort run` checks before it loads anything on a GPU: the plan against the free memory
// (require_plan_fits). Returns one line saying both; nullopt on CPU (nothing to check).
std::optional<std::string> check_gpu_memory(const Recipe& recipe);

}  // namespace retort::run
