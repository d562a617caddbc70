#include "run/memory_plan.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/CachingDeviceAllocator.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <sstream>

#include "io/error.h"
#include "io/gguf.h"
#include "io/hub_cache.h"
#include "models/family.h"
#include "models/gguf_model.h"
#include "models/loader.h"
#include "models/quantized_storage.h"
#include "run/method.h"

namespace retort::run {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// The process before the first weight: LibTorch's libraries and thread pools, the tokenizer and the
// scanned data. Measured: RSS of `retort run recipes/creator_persona_lora.yaml` right after the data
// scan, 363 MB (190 MB anonymous, 172 MB of mapped libraries), 2-core VM, torch 2.11 wheel.
constexpr int64_t kCpuProcessBytes = 363 * kMiB;
// What a CPU training step holds beyond the tensors counted here: oneDNN's primitive caches and
// scratchpads, the autograd engine's thread, and the pages glibc's allocator keeps after freeing
// the activations and logits that every step allocates anew (fragmentation grows with that churn).
// Fitted by least squares to the peak RSS of the eight SmolLM2-135M persona LoRA runs of
// bench/compare_quantized.py (model.quantize none/int8/nf4/keep, with and without activation
// checkpointing; 2-core AMD EPYC VM): 269 MiB plus a third of the activations and the logits chunk.
constexpr int64_t kCpuStepRuntimeBytes = 269 * kMiB;
constexpr double kCpuChurnShare = 0.335;
// A GPU's CUDA context is already gone from its free memory when the plan asks; what remains is
// cuBLAS's workspaces and the caching allocator's rounding. Not measured here (no GPU on the machine
// that calibrated the plan): 5% of the tensors, at least 256 MiB.
constexpr int64_t kGpuRuntimeMinBytes = 256 * kMiB;
constexpr double kGpuRuntimeShare = 0.05;
// train/losses.cpp: the chunked cross-entropy takes 2^26 / vocabulary rows (64 to 1024) at a time.
constexpr int64_t kChunkLogits = int64_t{1} << 26;

std::string layer_weight_name(int64_t layer, const char* module, const char* projection) {
  return "model.layers." + std::to_string(layer) + "." + module + "." + projection + ".weight";
}

struct ProjectionShape {
  const char* module;  // self_attn | mlp
  const char* name;    // q_proj ...
  int64_t out = 0, in = 0;
  int64_t numel() const { return out * in; }
};

// The seven projections of every decoder layer (models/llama.cpp, models/gemma3.cpp): [out, in].
std::vector<ProjectionShape> layer_projections(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  const int64_t inner = c.intermediate_size;
  return {{"self_attn", "q_proj", q, h},       {"self_attn", "k_proj", kv, h},   {"self_attn", "v_proj", kv, h},
          {"self_attn", "o_proj", h, q},       {"mlp", "gate_proj", inner, h},   {"mlp", "up_proj", inner, h},
          {"mlp", "down_proj", h, inner}};
}

bool is_gemma3(const ModelConfig& c) { return c.model_type.rfind("gemma3", 0) == 0; }

// Dense weights outside the projections: embedding, output head (unless tied), RMSNorm weights
// (two per layer, four in Gemma 3, plus q/k norms), the final norm, and projection biases.
int64_t dense_weight_elements(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  int64_t per_layer = (is_gemma3(c) ? 4 : 2) * h;
  if (c.qk_norm || is_gemma3(c)) per_layer += 2 * c.head_dim;
  if (c.attention_bias) per_layer += q + 2 * kv;
  if (c.o_proj_bias) per_layer += h;
  if (c.mlp_bias) per_layer += 2 * c.intermediate_size + h;
  const int64_t embeddings = c.vocab_size * h * (c.tie_word_embeddings ? 1 : 2);
  return embeddings + per_layer * c.num_hidden_layers + h;
}

int64_t dtype_bytes(const std::string& name) { return static_cast<int64_t>(c10::elementSize(parse_dtype(name))); }

// What one training step is made of, read off the recipe.
struct StepShape {
  int64_t rows = 1;    // training.micro_batch_size
  int64_t length = 0;  // data.max_seq_len (packed rows are that long; others at most)
  int64_t tokens() const { return rows * length; }
  int64_t act = 4;  // bytes per activation and frozen weight (training.precision)
  bool mixed() const { return act != 4; }
  BaseQuantization quantize = BaseQuantization::kNone;
  bool lora = true, dropout = true, dora = false;
  int64_t rank = 16;
  std::vector<std::string> targets;
  std::string quantize_key = "model.quantize";  // names the setting in errors
  bool checkpointing = false;
  bool on_gpu = false;
  bool targeted(const std::string& projection) const {
    return lora && std::find(targets.begin(), targets.end(), projection) != targets.end();
  }
};

bool is_gpu_device(const std::string& device) { return device.rfind("cuda", 0) == 0; }

StepShape step_shape(const Recipe& recipe) {
  StepShape s;
  s.rows = recipe.training.micro_batch_size;
  s.length = recipe.data.max_seq_len;
  s.act = dtype_bytes(recipe.training.precision);
  s.quantize = parse_base_quantization(recipe.model.quantize, "model.quantize");
  s.lora = recipe.lora.enabled;
  s.dropout = recipe.lora.dropout > 0;
  s.dora = recipe.lora.use_dora;
  s.rank = recipe.lora.rank;
  s.targets = recipe.lora.target_modules;
  s.checkpointing = recipe.training.activation_checkpointing;
  s.on_gpu = is_gpu_device(recipe.model.device);
  return s;
}

// One projection's weight as `quantize` keeps it (WeightStorage::bytes()).
int64_t projection_bytes(const ProjectionShape& p, const std::string& weight_name, const ModelFacts& model,
                         const StepShape& s) {
  const int64_t act = s.act;
  switch (s.quantize) {
    case BaseQuantization::kNone: return p.numel() * act;
    case BaseQuantization::kInt8: return int8_storage_bytes(p.out, p.in, act);
    case BaseQuantization::kNf4: return nf4_storage_bytes(p.numel());
    case BaseQuantization::kKeep: break;
  }
  if (!model.from_gguf) {
    throw bad_input("quantize 'keep' keeps a GGUF file's own blocks, and this model is not a .gguf file; use nf4 or "
                    "int8 to quantize its weights at load")
        .key(s.quantize_key);
  }
  const auto stored = model.stored.find(weight_name);
  if (stored == model.stored.end()) throw internal_error("no stored type for " + weight_name);
  const GgmlType type = stored->second.type;
  if (type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16) return p.numel() * act;  // stays dense
  if (!keepable_ggml_type(type)) {
    throw bad_input("block type " + ggml_type_name(type) + " cannot be kept as stored (supported: " +
                    keepable_ggml_type_names() + "); use nf4 or int8 instead")
        .tensor(weight_name)
        .key(s.quantize_key);
  }
  return stored->second.bytes;
}

struct BaseWeights {
  int64_t projections = 0;
  int64_t dense = 0;
  int64_t largest_projection = 0;  // elements
};

BaseWeights base_weights(const ModelFacts& model, const StepShape& s) {
  const ModelConfig& c = model.config;
  BaseWeights base;
  base.dense = dense_weight_elements(c) * s.act;
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    for (const ProjectionShape& p : layer_projections(c)) {
      base.projections += projection_bytes(p, layer_weight_name(layer, p.module, p.name), model, s);
      base.largest_projection = std::max(base.largest_projection, p.numel());
    }
  }
  return base;
}

int64_t adapter_parameters(const ModelConfig& c, const StepShape& s) {
  int64_t count = 0;
  for (const ProjectionShape& p : layer_projections(c)) {
    if (s.targeted(p.name)) count += s.rank * (p.in + p.out) + (s.dora ? p.out : 0);
  }
  return count * c.num_hidden_layers;
}

// Bytes autograd keeps for one decoder layer's backward, read off the forward code
// (models/llama.cpp, models/decoder.cpp, lora/lora.cpp, models/gemm.cpp): n = tokens.
int64_t layer_saved_bytes(const ModelConfig& c, const StepShape& s, bool first_layer) {
  const int64_t n = s.tokens(), h = c.hidden_size, inner = c.intermediate_size;
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  // RMSNorm keeps its input as float32 (below float32 the copy it normalises, not the input) and,
  // when its weight trains, the normalised values.
  const auto norm = [&](int64_t width) { return n * width * ((s.mixed() ? 4 : s.act) + (s.lora ? 0 : s.act)); };
  // The first layer's input norm has nothing to keep under LoRA: the frozen embedding needs no gradient.
  int64_t bytes = (first_layer && s.lora ? 1 : 2) * norm(h);
  if (is_gemma3(c)) bytes += 2 * norm(h);  // its norms of the attention and MLP outputs
  if (c.qk_norm || is_gemma3(c)) bytes += norm(q) + norm(kv);
  // Attention (flash kernels): rotated queries and keys, values, the output, the log-sum-exp.
  bytes += n * s.act * (2 * q + 2 * kv) + n * c.num_attention_heads * 4;
  bytes += 3 * n * inner * s.act;  // the MLP's gate and up outputs and act(gate)
  struct ProjectionInput {
    int64_t width;
    std::vector<ProjectionShape> readers;
  };
  const std::vector<ProjectionShape> all = layer_projections(c);
  const std::vector<ProjectionInput> inputs = {
      {h, {all[0], all[1], all[2]}}, {q, {all[3]}}, {h, {all[4], all[5]}}, {inner, {all[6]}}};
  for (const ProjectionInput& input : inputs) {
    bool shared_input_kept = false;
    for (const ProjectionShape& p : input.readers) {
      if (!s.lora) {  // a trainable weight keeps its input for dW
        shared_input_kept = true;
        continue;
      }
      if (!s.targeted(p.name)) continue;
      // The adapter's own float32 input (dropped out, or cast from a lower precision), else the shared one.
      if (s.dropout || s.mixed()) bytes += n * input.width * 4;
      else shared_input_kept = true;
      bytes += 4 * s.rank * (n + p.out);  // x A^T and the scaled B
      // DoRA: the base product and the adapter's output as float32, and the dense float32 weight
      // itself where the base is not already one.
      if (s.dora) bytes += 2 * n * p.out * 4 + (s.quantize != BaseQuantization::kNone || s.mixed() ? p.numel() * 4 : 0);
    }
    if (shared_input_kept) bytes += n * input.width * s.act;
  }
  return bytes;
}

// Beyond what is kept, the backward pass of a layer holds its gradients in flight: the MLP's
// [n, intermediate] ones (down's input, act(gate), gate, up) and a few [n, hidden] ones.
int64_t layer_backward_bytes(const ModelConfig& c, const StepShape& s) {
  return s.tokens() * (4 * c.intermediate_size + 4 * c.hidden_size) * std::max<int64_t>(s.act, s.lora ? 4 : s.act);
}

std::string human_bytes(int64_t bytes) {
  char text[32];
  if (bytes >= int64_t{1} << 30) std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  else std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / kMiB);
  return text;
}

// Outside the layers: the final norm's input (its float32 copy below float32), the RoPE tables
// ([B, 1, T, head_dim] cos and sin) and the attention mask of packed rows ([B, 1, T, T] booleans).
int64_t kept_around_layers(const ModelConfig& c, const StepShape& s, bool packing) {
  const int64_t n = s.tokens();
  return n * c.hidden_size * (s.mixed() ? 4 : s.act) + 2 * n * c.head_dim * s.act +
         (packing ? s.rows * s.length * s.length : 0);
}

// train/losses.cpp: the loss keeps the gradient of the counted positions' hidden states, [n, H].
int64_t counted_positions(const StepShape& s) { return s.rows * std::max<int64_t>(1, s.length - 1); }

// What the forward pass leaves for the backward pass, and what the backward pass adds on top.
struct Activations {
  int64_t kept = 0;      // at the end of the forward pass (the loss included)
  int64_t backward = 0;  // at its peak, during the backward pass of one layer
  int64_t per_layer = 0;
};

Activations activations(const ModelConfig& c, const StepShape& s, bool packing) {
  const int64_t layers = c.num_hidden_layers, n = s.tokens();
  Activations a;
  a.per_layer = layer_saved_bytes(c, s, false);
  const int64_t loss = counted_positions(s) * c.hidden_size * s.act;
  a.kept = kept_around_layers(c, s, packing) + loss;
  const int64_t gradients = layer_backward_bytes(c, s);
  if (s.checkpointing) {
    // models/decoder.cpp CheckpointedLayer: each layer keeps its input; the backward pass
    // recomputes one layer at a time with autograd.
    a.kept += layers * n * c.hidden_size * s.act;
    a.backward = a.per_layer + gradients;
  } else {
    a.kept += layer_saved_bytes(c, s, true) + (layers - 1) * a.per_layer;
    a.backward = gradients;
  }
  return a;
}

void add_activation_parts(MemoryPlan& plan, const ModelConfig& c, const StepShape& s, bool packing) {
  const Activations a = activations(c, s, packing);
  const std::string shape = std::to_string(s.rows) + " x " + std::to_string(s.length) + " tokens, " +
                            std::to_string(c.num_hidden_layers) + " layers";
  plan.parts.push_back({"activations", a.kept + a.backward,
                        shape + (s.checkpointing ? "; checkpointed: layer inputs kept, one layer recomputed "
                                                 : "; kept for backward ") +
                            human_bytes(a.per_layer) + " a layer, gradients in flight " +
                            human_bytes(a.backward - (s.checkpointing ? a.per_layer : 0))});
}

// train/losses.cpp: one chunk of float32 logits and their log-softmax (reused as the gradient),
// the counted positions' hidden states and their gradient, and the head in float32 below float32.
void add_loss_part(MemoryPlan& plan, const ModelConfig& c, const StepShape& s) {
  const int64_t vocab = c.vocab_size, h = c.hidden_size;
  const int64_t positions = counted_positions(s);
  const int64_t rows = std::min(std::clamp<int64_t>(kChunkLogits / std::max<int64_t>(1, vocab), 64, 1024), positions);
  // The hidden states' gradient is counted with the activations (it outlives the forward pass).
  int64_t bytes = 2 * rows * vocab * 4 + positions * h * s.act;
  std::string detail = std::to_string(rows) + " rows x " + std::to_string(vocab) + " float32 logits and their gradient";
  if (s.mixed()) {
    bytes += vocab * h * 4;
    detail += "; the output head in float32";
  }
  if (!s.lora) bytes += vocab * h * (4 + s.act);  // the head's weight gradient, accumulated in float32
  plan.parts.push_back({"logits chunk", bytes, detail});
}

// models/quantized_storage.cpp: a quantized weight is widened for each product. NF4 and GGUF
// blocks on the CPU go into a per-thread float32 scratch (plus a copy in a lower compute dtype); on
// a GPU NF4 unpacks with ATen operations (int64 code indices, their two nibbles stacked: about 20
// bytes per weight) and GGUF blocks arrive as float32 from the host. int8 codes are widened to the
// compute dtype, a new tensor per product, freed after it.
void add_dequantization_part(MemoryPlan& plan, const StepShape& s, const BaseWeights& base) {
  if (s.quantize == BaseQuantization::kNone) return;
  const int64_t n = base.largest_projection;
  int64_t per_weight = 4 + s.act;
  if (s.quantize == BaseQuantization::kInt8) per_weight = s.act;
  else if (!s.on_gpu) per_weight = 4 + (s.mixed() ? s.act : 0);
  else if (s.quantize == BaseQuantization::kNf4) per_weight = 20 + s.act;
  plan.parts.push_back({"dequantization scratch", n * per_weight,
                        "the largest projection (" + std::to_string(n) + " weights) widened for one product"});
}

// models/loader.cpp: tensors load one at a time, each read (GGUF: dequantized to float32) and
// converted, projections quantized on the way; the largest in flight beside everything loaded so far.
int64_t load_peak(const ModelFacts& model, const StepShape& s, const BaseWeights& base) {
  const ModelConfig& c = model.config;
  const int64_t stored = model.from_gguf ? 4 : (c.torch_dtype.empty() ? 4 : dtype_bytes(c.torch_dtype));
  const int64_t dense_in_flight = stored == s.act ? 0 : stored;  // per element, beyond the kept tensor
  const int64_t embedding = c.vocab_size * c.hidden_size * dense_in_flight;
  // A projection quantized at load: its float32 weight and the quantizer's float32 temporaries.
  const bool quantizing = s.quantize == BaseQuantization::kInt8 || s.quantize == BaseQuantization::kNf4;
  const int64_t projection = base.largest_projection * (quantizing ? stored + 3 * 4 : dense_in_flight);
  return base.projections + base.dense + std::max(embedding, projection);
}

void add_trainable_parts(MemoryPlan& plan, const ModelFacts& model, const StepShape& s) {
  if (s.lora) {
    const int64_t count = adapter_parameters(model.config, s);
    plan.parts.push_back({"LoRA adapters", count * 4, std::to_string(count) + " float32 weights"});
    plan.parts.push_back({"adapter gradients", count * 4, "float32"});
    plan.parts.push_back({"optimizer state", count * 8, "AdamW's two float32 moments"});
    return;
  }
  const int64_t count = dense_weight_elements(model.config) +
                        model.config.num_hidden_layers * [&] {
                          int64_t layer = 0;
                          for (const ProjectionShape& p : layer_projections(model.config)) layer += p.numel();
                          return layer;
                        }();
  plan.parts.push_back({"gradients", count * s.act, "every weight (full fine-tuning)"});
  plan.parts.push_back({"optimizer state", count * (s.mixed() ? 12 : 8),
                        s.mixed() ? "AdamW's two float32 moments and a float32 master copy" : "AdamW's two float32 moments"});
}

bool online_distillation(const Recipe& recipe) {
  try {
    return resolve_method(recipe).name == "kd";
  } catch (const Error&) {
    return false;  // the run itself reports a bad method
  }
}

}  // namespace

int64_t nf4_storage_bytes(int64_t numel) {
  const int64_t blocks = (numel + 63) / 64;
  return numel / 2 + blocks + 4 * ((blocks + 255) / 256) + 4;
}

int64_t int8_storage_bytes(int64_t rows, int64_t columns, int64_t scale_bytes) { return rows * columns + rows * scale_bytes; }

int64_t saved_activation_bytes(const Recipe& recipe, const ModelFacts& model) {
  return activations(model.config, step_shape(recipe), recipe.data.packing).kept;
}

int64_t MemoryPlan::step_peak_bytes() const {
  int64_t total = 0;
  for (const MemoryPart& part : parts) total += part.bytes;
  return total;
}

int64_t MemoryPlan::total_bytes() const { return std::max(step_peak_bytes(), load_peak_bytes); }

ModelFacts read_model_facts(const std::string& model_path, const std::string& key) {
  ModelFacts facts;
  if (!fs::exists(model_path)) throw bad_input("the model path does not exist").file(model_path).key(key);
  if (fs::is_directory(model_path) || fs::path(model_path).filename() == "config.json") {
    facts.config = load_hf_config(fs::is_directory(model_path) ? model_path : fs::path(model_path).parent_path().string());
    return facts;
  }
  if (fs::path(model_path).extension() != ".gguf") {
    throw bad_input("expected a model directory (config.json + safetensors) or a .gguf file").file(model_path).key(key);
  }
  const std::shared_ptr<GgufFile> file = GgufFile::open(model_path);
  facts.config = config_from_gguf(*file);
  facts.from_gguf = true;
  const ModelFamily& family = family_for_gguf(file->get_string("general.architecture"), model_path);
  for (int64_t layer = 0; layer < facts.config.num_hidden_layers; ++layer) {
    for (const ProjectionShape& p : layer_projections(facts.config)) {
      const std::string name = layer_weight_name(layer, p.module, p.name);
      const GgufTensorInfo* info = file->find_tensor(family.gguf_tensor_name(name));
      if (info == nullptr) throw bad_input("no such tensor").file(model_path).tensor(family.gguf_tensor_name(name));
      facts.stored[name] = {info->type, static_cast<int64_t>(info->n_bytes)};
    }
  }
  return facts;
}

MemoryPlan plan_memory(const Recipe& recipe, const ModelFacts& model) {
  const StepShape s = step_shape(recipe);
  MemoryPlan plan;
  plan.device = recipe.model.device;
  plan.on_gpu = s.on_gpu;
  const BaseWeights base = base_weights(model, s);
  const std::string compute = recipe.training.precision;
  plan.parts.push_back({"base weights: decoder projections", base.projections,
                        "model.quantize: " + recipe.model.quantize +
                            (s.quantize == BaseQuantization::kNone ? " (" + compute + ")" : std::string())});
  plan.parts.push_back({"base weights: embeddings, norms, head", base.dense, compute});
  if (model.teacher) {
    // The frozen teacher's weights as distill.teacher_dtype / teacher_quantize keep them.
    Recipe as_teacher = recipe;
    as_teacher.model.quantize = recipe.distill.teacher_quantize;
    as_teacher.training.precision = recipe.distill.teacher_dtype;
    StepShape teacher_shape = step_shape(as_teacher);
    teacher_shape.quantize_key = "distill.teacher_quantize";
    const BaseWeights teacher = base_weights(*model.teacher, teacher_shape);
    plan.parts.push_back({"teacher weights", teacher.projections + teacher.dense,
                          "distill.teacher, frozen (its forward pass and KD logits not counted)"});
  }
  add_trainable_parts(plan, model, s);
  add_activation_parts(plan, model.config, s, recipe.data.packing);
  add_loss_part(plan, model.config, s);
  add_dequantization_part(plan, s, base);
  plan.load_peak_bytes = load_peak(model, s, base);
  if (s.on_gpu) {
    const int64_t tensors = plan.step_peak_bytes();
    plan.parts.push_back({"runtime", std::max(kGpuRuntimeMinBytes, static_cast<int64_t>(tensors * kGpuRuntimeShare)),
                          "cuBLAS workspaces, allocator rounding (estimated)"});
  } else {
    int64_t churn = 0;  // what each step allocates and frees again
    for (const MemoryPart& part : plan.parts) {
      if (part.name == "activations" || part.name == "logits chunk") churn += part.bytes;
    }
    plan.parts.push_back({"runtime", kCpuProcessBytes + kCpuStepRuntimeBytes + static_cast<int64_t>(kCpuChurnShare * churn),
                          "LibTorch, tokenizer and data pipeline; oneDNN caches and the allocator's freed pages "
                          "(fitted to measured peaks)"});
    plan.load_peak_bytes += kCpuProcessBytes;
  }
  return plan;
}

ModelFacts read_run_models(const Recipe& recipe) {
  const std::string model_path = resolve_model_path(recipe.model.path, "model.path");
  if (model_path.empty()) throw bad_input("no model: set model.path").key("model.path");
  ModelFacts facts = read_model_facts(model_path);
  if (online_distillation(recipe) && recipe.distill.teacher_devices.empty()) {
    const std::string teacher_path = resolve_model_path(recipe.distill.teacher, "distill.teacher");
    facts.teacher = std::make_shared<const ModelFacts>(read_model_facts(teacher_path, "distill.teacher"));
  }
  return facts;
}

MemoryPlan plan_memory(const Recipe& recipe) { return plan_memory(recipe, read_run_models(recipe)); }

std::string describe_memory_plan(const MemoryPlan& plan) {
  std::ostringstream out;
  out << "memory plan on " << plan.device << (plan.on_gpu ? " (GPU memory)" : " (peak resident memory)") << "\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-36s %15s %11s  %s\n", "component", "bytes", "", "");
  out << line;
  for (const MemoryPart& part : plan.parts) {
    std::snprintf(line, sizeof line, "  %-36s %15lld %11s  %s\n", part.name.c_str(), static_cast<long long>(part.bytes),
                  human_bytes(part.bytes).c_str(), part.detail.c_str());
    out << line;
  }
  std::snprintf(line, sizeof line, "  %-36s %15lld %11s  %s\n", "total at the training step's peak",
                static_cast<long long>(plan.step_peak_bytes()), human_bytes(plan.step_peak_bytes()).c_str(), "");
  out << line;
  if (plan.load_peak_bytes > plan.step_peak_bytes()) {
    std::snprintf(line, sizeof line, "  %-36s %15lld %11s  %s\n", "loading (the larger: the peak)",
                  static_cast<long long>(plan.load_peak_bytes), human_bytes(plan.load_peak_bytes).c_str(),
                  "the weights with the largest tensor in flight");
    out << line;
  }
  return out.str();
}

std::vector<std::string> knobs_that_fit(const Recipe& recipe, const ModelFacts& model, int64_t free_bytes) {
  const auto fits = [&](const Recipe& changed) { return plan_memory(changed, model).total_bytes() <= free_bytes; };
  const bool can_nf4 = recipe.lora.enabled && (recipe.model.quantize == "none" || recipe.model.quantize == "int8");
  const bool can_checkpoint = !recipe.training.activation_checkpointing;
  // The largest micro batch below the recipe's that fits with `base` (0: none does).
  const auto smaller_batch = [&](Recipe base) -> int64_t {
    for (int64_t rows = recipe.training.micro_batch_size - 1; rows >= 1; --rows) {
      base.training.micro_batch_size = rows;
      if (fits(base)) return rows;
    }
    return 0;
  };
  const auto batch_knob = [&](int64_t rows) {
    const int64_t accumulation =
        (recipe.training.micro_batch_size * recipe.training.gradient_accumulation + rows - 1) / rows;
    return "training.micro_batch_size: " + std::to_string(rows) + " (with training.gradient_accumulation: " +
           std::to_string(accumulation) + " for the same batch)";
  };
  std::vector<std::string> knobs;
  Recipe changed = recipe;
  changed.model.quantize = "nf4";
  if (can_nf4 && fits(changed)) knobs.push_back("model.quantize: nf4");
  changed = recipe;
  changed.training.activation_checkpointing = true;
  if (can_checkpoint && fits(changed)) knobs.push_back("training.activation_checkpointing: true");
  if (const int64_t rows = smaller_batch(recipe); rows > 0) knobs.push_back(batch_knob(rows));
  if (!knobs.empty()) return knobs;
  // Nothing alone: all of them together.
  std::vector<std::string> together;
  changed = recipe;
  if (can_nf4) {
    changed.model.quantize = "nf4";
    together.push_back("model.quantize: nf4");
  }
  if (can_checkpoint) {
    changed.training.activation_checkpointing = true;
    together.push_back("training.activation_checkpointing: true");
  }
  if (!fits(changed)) {
    const int64_t rows = smaller_batch(changed);
    if (rows == 0) return {};
    together.push_back(batch_knob(rows));
  }
  if (together.empty()) return {};
  std::string combined = together.front();
  for (size_t i = 1; i < together.size(); ++i) combined += (i + 1 == together.size() ? " and " : ", ") + together[i];
  return {combined + " (together)"};
}

void require_plan_fits(const Recipe& recipe, const ModelFacts& model, const MemoryPlan& plan, int64_t free_bytes) {
  if (plan.total_bytes() <= free_bytes) return;
  const std::vector<std::string> knobs = knobs_that_fit(recipe, model, free_bytes);
  std::string message = "the run needs about " + human_bytes(plan.total_bytes()) + " on " + plan.device + " and " +
                        human_bytes(free_bytes) + " is free; ";
  if (knobs.empty()) {
    message += "no setting of model.quantize, training.activation_checkpointing or training.micro_batch_size fits: "
               "shorten data.max_seq_len, choose a smaller model or a GPU with more memory (retort run --plan shows "
               "the split)";
    throw bad_input(message).key("model.device");
  }
  message += "it would fit with ";
  for (size_t i = 0; i < knobs.size(); ++i) message += (i == 0 ? "" : i + 1 == knobs.size() ? ", or " : ", ") + knobs[i];
  message += " (retort run --plan shows the split)";
  const std::string& first = knobs.front();
  throw bad_input(message).key(first.substr(0, first.find(':')));
}

std::optional<int64_t> free_gpu_memory(const std::string& device) {
  if (!is_gpu_device(device)) return std::nullopt;
  if (!at::detail::getCUDAHooks().isBuilt() || at::detail::getCUDAHooks().getNumGPUs() == 0) return std::nullopt;
  const c10::Device parsed = parse_device(device);
  const c10::DeviceIndex index = parsed.has_index() ? parsed.index() : 0;
  return static_cast<int64_t>(c10::getDeviceAllocator(c10::DeviceType::CUDA)->getMemoryInfo(index).first);
}

void report_memory_plan(const Recipe& recipe, std::ostream& out) {
  const ModelFacts model = read_run_models(recipe);
  const MemoryPlan plan = plan_memory(recipe, model);
  out << describe_memory_plan(plan);
  if (!plan.on_gpu) return;
  const std::optional<int64_t> free = free_gpu_memory(recipe.model.device);
  if (!free) {
    out << "no usable GPU here: the plan was not compared with free memory\n";
    return;
  }
  out << human_bytes(*free) << " free on " << recipe.model.device << "\n";
  out.flush();
  require_plan_fits(recipe, model, plan, *free);
  out << "fits\n";
}

std::optional<std::string> check_gpu_memory(const Recipe& recipe) {
  const std::optional<int64_t> free = free_gpu_memory(recipe.model.device);
  if (!free) return std::nullopt;
  const ModelFacts model = read_run_models(recipe);
  const MemoryPlan plan = plan_memory(recipe, model);
  require_plan_fits(recipe, model, plan, *free);
  return "memory plan: about " + human_bytes(plan.total_bytes()) + " of the " + human_bytes(*free) + " free on " +
         recipe.model.device;
}

}  // namespace retort::run
