// GGUF models and GGUF LoRA adapters for llama.cpp and Ollama: metadata as llama.cpp's converter
// writes it (docs/formats.md §3.4, §3.5, §3.9), HF -> GGUF tensor names from the model family, the Q/K
// row permutation for arch llama, rope_freqs for Llama 3.1 scaling, tensor types per --quant.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <ostream>

#include "export/gguf_writer.h"
#include "export/quantize.h"
#include "export/writers.h"
#include "io/error.h"
#include "io/gguf.h"
#include "models/family.h"
#include "models/decoder.h"
#include "tokenizer/vocab_files.h"

namespace retort {
namespace {

std::vector<int64_t> gguf_dims(at::IntArrayRef shape) { return std::vector<int64_t>(shape.rbegin(), shape.rend()); }

// One output tensor: where its values come from and how they are written.
struct GgufTensorJob {
  PlannedTensor planned;
  std::vector<int64_t> ne;
  GgmlType type;
  std::function<at::Tensor()> values;  // float32, PyTorch shape, contiguous
};

ExportPlan plan_of(const std::vector<GgufTensorJob>& jobs, const std::string& file) {
  ExportPlan plan;
  plan.files.push_back(file);
  for (const GgufTensorJob& job : jobs) {
    plan.tensors.push_back(job.planned);
    plan.total_bytes += job.planned.bytes;
  }
  // One warning per distinct fallback, naming how many tensors it hit (SmolLM2's 576-wide rows
  // would otherwise print 180 lines).
  std::vector<std::pair<std::string, std::vector<std::string>>> notes;
  for (const GgufTensorJob& job : jobs) {
    if (job.planned.note.empty()) continue;
    auto it = std::find_if(notes.begin(), notes.end(), [&](const auto& n) { return n.first == job.planned.note; });
    if (it == notes.end()) it = notes.insert(notes.end(), {job.planned.note, {}});
    it->second.push_back(job.planned.name);
  }
  for (const auto& [note, names] : notes) {
    plan.warnings.push_back(note + " (" + std::to_string(names.size()) + " tensor" + (names.size() == 1 ? "" : "s") +
                            ", e.g. " + names.front() + "; as llama-quantize does)");
  }
  return plan;
}

void add_job(std::vector<GgufTensorJob>& jobs, const std::string& name, const std::string& source,
             std::vector<int64_t> ne, GgmlType type, std::string note, std::function<at::Tensor()> values) {
  int64_t elements = 1;
  for (int64_t n : ne) elements *= n;
  PlannedTensor planned{name, source, ne, ggml_type_name(type), ggml_row_bytes(type, elements), std::move(note)};
  jobs.push_back({std::move(planned), std::move(ne), type, std::move(values)});
}

void write_jobs(GgufWriter& writer, const std::vector<GgufTensorJob>& jobs, std::ostream& log) {
  for (const GgufTensorJob& job : jobs) writer.add_tensor(job.planned.name, job.ne, job.type);
  std::vector<uint8_t> buffer;
  for (const GgufTensorJob& job : jobs) {
    const at::Tensor values = job.values().to(at::kFloat).contiguous();
    buffer.resize(job.planned.bytes);
    quantize_from_float(job.type, values.data_ptr<float>(), values.numel(), buffer.data());
    writer.write_tensor_data(job.planned.name, buffer.data(), buffer.size());
  }
  writer.commit();
  log << "wrote " << writer.path() << " (" << jobs.size() << " tensors, " << writer.bytes_written() / 1e6 << " MB)\n";
}

// Llama 3.1-style rope scaling as llama.cpp stores it: per-frequency divisors [hd/2].
std::optional<at::Tensor> rope_frequency_divisors(const ModelConfig& config) {
  if (!config.rope.frequency_divisors.empty()) return at::tensor(config.rope.frequency_divisors, at::kFloat);
  if (config.rope.type != RopeScaling::kLlama3) return std::nullopt;
  ModelConfig plain = config;
  plain.rope.type = RopeScaling::kDefault;
  return rope_inverse_frequencies(plain) / rope_inverse_frequencies(config);
}

void write_architecture_metadata(GgufWriter& writer, const CausalLM& model) {
  for (auto& [key, value] : gguf_architecture_metadata(model.family(), model.config())) writer.set(key, value);
}

template <class T>
GgufValue array_value(std::vector<T> items) {
  return GgufValue{GgufArray{std::move(items)}};
}

void write_tokenizer_metadata(GgufWriter& writer, const ExportContext& context) {
  const ModelConfig& config = context.model->config();
  if (context.source_gguf) {
    // llama.cpp's own metadata: carried over verbatim, so the runtime sees what it saw before.
    for (const std::string& key : context.source_gguf->keys()) {
      if (key.rfind("tokenizer.", 0) != 0) continue;
      if (key == "tokenizer.chat_template" && context.chat_template) continue;
      writer.set(key, *context.source_gguf->find(key));
    }
  } else {
    const tok::VocabularyRecord vocab = tok::vocabulary_from_hf_dir(context.options.model_path, config.vocab_size);
    if (static_cast<int64_t>(vocab.tokens.size()) != config.vocab_size) {
      throw bad_input("the tokenizer has " + std::to_string(vocab.tokens.size()) + " tokens but the model's vocab_size is " +
                      std::to_string(config.vocab_size) + "; llama.cpp needs one token per embedding row")
          .file(vocab.source);
    }
    writer.set_string("tokenizer.ggml.model", vocab.model);
    writer.set_string("tokenizer.ggml.pre", vocab.pre);
    writer.set("tokenizer.ggml.tokens", array_value(vocab.tokens));
    if (!vocab.scores.empty()) writer.set("tokenizer.ggml.scores", array_value(vocab.scores));
    writer.set("tokenizer.ggml.token_type", array_value(vocab.types));
    if (!vocab.merges.empty()) writer.set("tokenizer.ggml.merges", array_value(vocab.merges));
    const std::pair<const char*, std::optional<TokenId>> ids[] = {
        {"tokenizer.ggml.bos_token_id", vocab.ids.bos}, {"tokenizer.ggml.eos_token_id", vocab.ids.eos},
        {"tokenizer.ggml.unknown_token_id", vocab.ids.unk}, {"tokenizer.ggml.padding_token_id", vocab.ids.pad},
        {"tokenizer.ggml.eot_token_id", vocab.ids.eot}};
    for (const auto& [key, id] : ids) {
      if (id) writer.set_u32(key, static_cast<uint32_t>(*id));
    }
    writer.set_bool("tokenizer.ggml.add_bos_token", vocab.add_bos);
    writer.set_bool("tokenizer.ggml.add_eos_token", vocab.add_eos);
    if (vocab.add_space_prefix) writer.set_bool("tokenizer.ggml.add_space_prefix", *vocab.add_space_prefix);
  }
  if (context.chat_template) writer.set_string("tokenizer.chat_template", *context.chat_template);
}

}  // namespace

at::Tensor permute_for_gguf(const at::Tensor& weight, int64_t heads) {
  const auto shape = weight.sizes().vec();
  const int64_t half = shape[0] / heads / 2;
  std::vector<int64_t> split = {heads, 2, half};
  split.insert(split.end(), shape.begin() + 1, shape.end());
  return weight.reshape(split).transpose(1, 2).reshape(shape).contiguous();
}

ExportPlan export_gguf_model(const ExportContext& context, bool write, std::ostream& log) {
  const CausalLM& model = *context.model;
  const ModelConfig& config = model.config();
  const QuantScheme scheme = parse_quant_scheme(context.options.quant.empty() ? "f16" : context.options.quant);
  const std::string arch = model.gguf_architecture();
  QuantContext quant_context{config.num_hidden_layers, !config.tie_word_embeddings,
                             arch == "llama" && config.num_hidden_layers == 80};
  std::vector<GgufTensorJob> jobs;
  if (const auto divisors = rope_frequency_divisors(config)) {
    const at::Tensor values = *divisors;
    add_job(jobs, "rope_freqs.weight", "(rope scaling)", {values.numel()}, GgmlType::F32, "", [values] { return values; });
  }
  for (const auto& item : context.model->named_parameters()) {
    const std::string& hf_name = item.key();
    const std::string name = model.gguf_tensor_name(hf_name);
    const std::vector<int64_t> ne = gguf_dims(item.value().sizes());
    const TensorTypeChoice choice = choose_tensor_type(scheme, name, ne, quant_context);
    const std::optional<int64_t> heads = model.gguf_permuted_heads(hf_name);
    const double offset = model.family().gguf_value_offset(hf_name);
    const auto& weight = context.weight;
    add_job(jobs, name, hf_name, ne, choice.type, choice.fallback_note, [&weight, hf_name, heads, offset] {
      at::Tensor value = weight(hf_name);
      if (offset != 0.0) value = value.to(at::kFloat) + offset;
      return heads ? permute_for_gguf(value, *heads) : value.contiguous();
    });
  }
  for (int64_t layer = 0; layer < config.num_hidden_layers && !model.family().gguf_has_sliding_windows; ++layer) {
    if (const std::optional<int64_t> window = config.attention_of(layer).sliding_window) {
      log << "warning: the model's sliding window (" << *window << ", layer " << layer
          << ") is not expressed in GGUF for arch " << arch << "; llama.cpp attends to the full context\n";
      break;
    }
  }
  ExportPlan plan = plan_of(jobs, context.options.out);
  if (context.options.modelfile) plan.files.push_back(context.options.out + ".Modelfile");
  if (!write) return plan;

  GgufWriter writer(context.options.out);
  writer.set_string("general.architecture", arch);
  writer.set_string("general.type", "model");
  writer.set_string("general.name", context.model_name);
  writer.set_u32("general.file_type", quant_scheme_file_type(scheme));
  writer.set_u32("general.quantization_version", 2);
  write_architecture_metadata(writer, model);
  write_tokenizer_metadata(writer, context);
  write_jobs(writer, jobs, log);
  return plan;
}

ExportPlan export_gguf_lora(const ExportContext& context, bool write, std::ostream& log) {
  if (!context.adapter) throw bad_input("gguf-lora needs --adapter (a PEFT LoRA adapter directory)");
  const LoraSpec& spec = context.adapter->spec;
  if (spec.use_dora) {
    throw bad_input("llama.cpp cannot apply DoRA adapters (no magnitude vectors in GGUF LoRA); export the merged "
                    "model with --format gguf instead")
        .file(context.options.adapter_path);
  }
  const QuantScheme scheme = parse_quant_scheme(context.options.quant.empty() ? "f32" : context.options.quant);
  if (scheme != QuantScheme::kF32 && scheme != QuantScheme::kF16 && scheme != QuantScheme::kBF16 &&
      scheme != QuantScheme::kQ8_0) {
    throw bad_input("GGUF LoRA adapters are written as f32, f16, bf16 or q8_0 (llama.cpp's converter choices), not " +
                    quant_scheme_name(scheme))
        .key("quant");
  }
  CausalLM& model = *context.model;
  std::vector<GgufTensorJob> jobs;
  for (const auto& [path, projection] : projections_of(model)) {
    const auto* lora = dynamic_cast<const LoraAdapter*>(projection->adapter.get());
    if (lora == nullptr) continue;
    const std::string hf_weight = path + ".weight";
    const std::string base = model.gguf_tensor_name(hf_weight);
    const std::optional<int64_t> heads = model.gguf_permuted_heads(hf_weight);
    const at::Tensor a = lora->lora_a.detach();  // [r, in]  -> ne [in, r]
    const at::Tensor b = lora->lora_b.detach();  // [out, r] -> ne [r, out], rows permuted like the base
    for (const auto& [suffix, tensor, permute] :
         {std::tuple{".lora_a", a, false}, std::tuple{".lora_b", b, heads.has_value()}}) {
      const std::vector<int64_t> ne = gguf_dims(tensor.sizes());
      TensorTypeChoice choice = choose_tensor_type(scheme, base, ne, {});
      const int64_t head_count = heads.value_or(0);
      add_job(jobs, base + suffix, path + (suffix == std::string(".lora_a") ? ".lora_A.weight" : ".lora_B.weight"), ne,
              choice.type, choice.fallback_note, [tensor = tensor, permute = permute, head_count] {
                const at::Tensor value = tensor.to(at::kFloat);
                return permute ? permute_for_gguf(value, head_count) : value.contiguous();
              });
    }
  }
  if (jobs.empty()) throw bad_input("the adapter holds no LoRA weights").file(context.options.adapter_path);
  ExportPlan plan = plan_of(jobs, context.options.out);
  if (!write) return plan;
  GgufWriter writer(context.options.out);
  writer.set_string("general.architecture", model.gguf_architecture());
  writer.set_string("general.type", "adapter");
  writer.set_string("general.name", context.model_name);
  writer.set_string("adapter.type", "lora");
  // llama.cpp scales by alpha / rank; rsLoRA's alpha / sqrt(rank) is alpha * sqrt(rank) / rank.
  const double alpha = spec.use_rslora ? spec.alpha * std::sqrt(static_cast<double>(spec.rank)) : spec.alpha;
  writer.set_f32("adapter.lora.alpha", static_cast<float>(alpha));
  write_jobs(writer, jobs, log);
  return plan;
}

}  // namespace retort
