// Merged HF checkpoints (config.json, generation_config.json, sharded safetensors, tokenizer
// files with the chat template) and PEFT adapters, each written into a temp directory that is
// renamed into place. Reference: transformers save_pretrained, docs/formats.md §1.6, §2.3, §4.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <ostream>
#include <unistd.h>

#include "export/writers.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "models/decoder.h"
#include "models/loader.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_files.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

// Files an HF tokenizer may consist of, copied as they are from an HF source.
constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer.model", "special_tokens_map.json",
                                           "added_tokens.json", "vocab.json", "merges.txt"};

at::ScalarType hf_dtype(const ExportContext& context) {
  if (!context.options.quant.empty()) return parse_dtype(context.options.quant);
  const std::string& source = context.model->config().torch_dtype;
  if (source == "bfloat16" || source == "float16" || source == "float32") return parse_dtype(source);
  return at::kFloat;
}

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: return "float32";
  }
}

// Writes into a fresh temp directory beside `out`; commit() swaps it into place.
class StagingDirectory {
 public:
  explicit StagingDirectory(std::string out) : out_(std::move(out)) {
    temp_ = out_ + ".tmp." + std::to_string(::getpid());
    fs::remove_all(temp_);
    std::error_code error;
    fs::create_directories(temp_, error);
    if (error) throw bad_input("cannot create the output directory: " + error.message()).file(out_);
  }
  ~StagingDirectory() {
    std::error_code ignored;
    if (!committed_) fs::remove_all(temp_, ignored);
  }
  std::string path(const std::string& name) const { return (fs::path(temp_) / name).string(); }
  void commit() {
    std::error_code error;
    fs::remove_all(out_, error);
    fs::rename(temp_, out_, error);
    if (error) throw bad_input("cannot move the export into place: " + error.message()).file(out_);
    committed_ = true;
  }

 private:
  std::string out_, temp_;
  bool committed_ = false;
};

std::string token_text(const tok::VocabularyRecord& vocab, std::optional<TokenId> id) {
  return id && *id < static_cast<TokenId>(vocab.tokens.size()) ? vocab.tokens[*id] : std::string();
}

// tokenizer.json + tokenizer_config.json made from a GGUF file's vocabulary.
void write_tokenizer_from_gguf(const ExportContext& context, const StagingDirectory& staging) {
  const tok::VocabularyRecord vocab = tok::vocabulary_from_gguf(*context.source_gguf);
  Json config = Json::object();
  if (vocab.model == "llama") {  // SentencePiece: the tokenizer.model the GGUF keys were made from
    write_file_atomic(staging.path("tokenizer.model"), tok::spm_model_proto_from_gguf(*context.source_gguf));
    config["tokenizer_class"] = "LlamaTokenizer";
    config["legacy"] = true;  // llama.cpp gives every fragment after a special token the dummy prefix
  } else {
    write_file_atomic(staging.path("tokenizer.json"), tok::tokenizer_json_from_vocabulary(vocab));
    config["tokenizer_class"] = "PreTrainedTokenizerFast";
  }
  for (const auto& [key, id] : {std::pair{"bos_token", vocab.ids.bos}, std::pair{"eos_token", vocab.ids.eos},
                                std::pair{"pad_token", vocab.ids.pad}, std::pair{"unk_token", vocab.ids.unk}}) {
    if (id) config[key] = token_text(vocab, id);
  }
  config["add_bos_token"] = vocab.add_bos;
  config["add_eos_token"] = vocab.add_eos;
  config["clean_up_tokenization_spaces"] = false;
  config["model_max_length"] = context.model->config().max_position_embeddings;
  if (context.chat_template) config["chat_template"] = *context.chat_template;
  write_file_atomic(staging.path("tokenizer_config.json"), config.dump(2) + "\n");
}

// The HF source's tokenizer files, with the chosen chat template in tokenizer_config.json.
void copy_tokenizer_from_dir(const ExportContext& context, const StagingDirectory& staging) {
  const fs::path source(context.options.model_path);
  for (const char* name : kTokenizerFiles) {
    if (fs::exists(source / name)) fs::copy_file(source / name, staging.path(name));
  }
  Json config = Json::object();
  if (fs::exists(source / "tokenizer_config.json")) {
    try {
      config = Json::parse(read_text_file((source / "tokenizer_config.json").string()));
    } catch (const Json::exception& error) {
      throw bad_input(std::string("invalid JSON: ") + error.what()).file((source / "tokenizer_config.json").string());
    }
  }
  if (context.chat_template) config["chat_template"] = *context.chat_template;
  write_file_atomic(staging.path("tokenizer_config.json"), config.dump(2) + "\n");
}

// Every id generation should stop at: the config's EOS ids, the tokenizer's end-of-turn token and
// the chat format's stop tokens (transformers stops at any id in generation_config's list).
std::vector<int64_t> stop_token_ids(const ExportContext& context) {
  std::vector<int64_t> ids = context.model->config().eos_token_ids;
  auto add = [&](std::optional<TokenId> id) {
    if (id && std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  };
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(context.options.model_path);
  if (ids.empty()) add(tokenizer->eos_id());
  add(tokenizer->eot_id());
  if (context.chat_template) {
    if (const auto name = chat::detect_chat_template_name(*context.chat_template)) {
      for (const std::string& stop : chat::ChatTemplate::by_name(*name).stop_strings()) add(tokenizer->token_to_id(stop));
    }
  }
  return ids;
}

// A GGUF stores Llama 3.1-style rope scaling only as the divisors it yields (rope_freqs); config.json
// needs the parameters. With Meta's low/high frequency factors (1 and 4), the largest divisor is
// the factor and any interpolated one gives the original context length; the result must
// reproduce every stored divisor.
RopeConfig recover_rope_parameters(const ModelConfig& config) {
  const std::vector<float>& stored = config.rope.frequency_divisors;
  ModelConfig plain = config;
  plain.rope.frequency_divisors.clear();
  plain.rope.type = RopeScaling::kDefault;
  const at::Tensor inv_freq = rope_inverse_frequencies(plain);
  RopeConfig rope = plain.rope;
  rope.type = RopeScaling::kLlama3;
  rope.low_freq_factor = 1.0;
  rope.high_freq_factor = 4.0;
  rope.factor = *std::max_element(stored.begin(), stored.end());
  std::vector<int64_t> candidates = {8192, 4096, 2048, 16384, 32768, 131072};
  for (size_t i = 0; i < stored.size(); ++i) {
    if (stored[i] > 1.0001f && stored[i] < rope.factor * 0.9999f) {
      const double smooth = (1.0 / stored[i] - 1.0 / rope.factor) / (1.0 - 1.0 / rope.factor);
      const double wavelen = 2 * M_PI / inv_freq[static_cast<int64_t>(i)].item<double>();
      candidates.insert(candidates.begin(), std::llround(wavelen * (rope.low_freq_factor + smooth * 3.0)));
      break;
    }
  }
  const at::Tensor expected = at::tensor(stored, at::kFloat);
  for (const int64_t original : candidates) {
    ModelConfig candidate = plain;
    candidate.rope = rope;
    candidate.rope.original_max_position_embeddings = original;
    const at::Tensor divisors = inv_freq / rope_inverse_frequencies(candidate);
    if (divisors.sizes() == expected.sizes() && at::allclose(divisors, expected, 1e-4, 1e-6)) return candidate.rope;
  }
  throw bad_input("the GGUF's rope_freqs divisors match no Llama 3.x rope scaling, so config.json cannot describe "
                  "them; export from the original HF checkpoint instead")
      .tensor("rope_freqs.weight");
}

}  // namespace

ExportPlan export_hf_model(const ExportContext& context, bool write, std::ostream& log) {
  const at::ScalarType dtype = hf_dtype(context);
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
  ExportPlan plan;
  for (const auto& item : context.model->named_parameters()) {
    tensors.emplace_back(item.key(), item.value().sizes().vec());
    const uint64_t bytes = static_cast<uint64_t>(item.value().numel()) * c10::elementSize(dtype);
    plan.tensors.push_back({item.key(), item.key(), item.value().sizes().vec(), safetensors_dtype_name(dtype), bytes, ""});
    plan.total_bytes += bytes;
  }
  plan.files = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"};
  plan.files.push_back(plan.total_bytes > context.options.max_shard_bytes ? "model-000NN-of-000NN.safetensors + index"
                                                                          : "model.safetensors");
  if (!write) return plan;

  ModelConfig config = context.model->config();
  if (!config.rope.frequency_divisors.empty()) config.rope = recover_rope_parameters(config);
  const std::vector<int64_t> stops = stop_token_ids(context);
  StagingDirectory staging(context.options.out);
  write_file_atomic(staging.path("config.json"), hf_config_json(config, dtype_name(dtype)));
  write_file_atomic(staging.path("generation_config.json"), hf_generation_config_json(config, stops));
  if (context.source_gguf) {
    write_tokenizer_from_gguf(context, staging);
  } else {
    copy_tokenizer_from_dir(context, staging);
  }
  const fs::path staging_dir = fs::path(staging.path("config.json")).parent_path();
  const auto files = write_sharded_safetensors(staging_dir.string(), tensors, context.weight,
                                               context.options.max_shard_bytes, "model", dtype);
  staging.commit();
  log << "wrote " << context.options.out << " (" << files.size() << " safetensors file" << (files.size() == 1 ? "" : "s")
      << ", " << dtype_name(dtype) << ", " << plan.total_bytes / 1e6 << " MB)\n";
  return plan;
}

ExportPlan export_peft_adapter(const ExportContext& context, bool write, std::ostream& log) {
  if (!context.adapter) throw bad_input("peft export needs --adapter (a PEFT LoRA adapter directory)");
  if (context.adapter->spec.use_dora && !context.options.allow_dora) {
    throw bad_input("this is a DoRA adapter: peft and transformers load it, but vLLM and llama.cpp reject adapters "
                    "with lora_magnitude_vector tensors; pass --allow-dora to write it anyway, or export the merged "
                    "model (--format hf or gguf) for those runtimes")
        .file(context.options.adapter_path);
  }
  ExportPlan plan;
  plan.files = {"adapter_config.json", "adapter_model.safetensors"};
  for (const auto& [path, projection] : projections_of(*context.model)) {
    const auto* lora = dynamic_cast<const LoraAdapter*>(projection->adapter.get());
    if (lora == nullptr) continue;
    for (const auto& [suffix, tensor] : {std::pair{".lora_A.weight", lora->lora_a}, std::pair{".lora_B.weight", lora->lora_b},
                                         std::pair{".lora_magnitude_vector", lora->magnitude}}) {
      if (!tensor.defined()) continue;
      const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * 4;
      plan.tensors.push_back({"base_model.model." + path + suffix, path, tensor.sizes().vec(), "F32", bytes, ""});
      plan.total_bytes += bytes;
    }
  }
  if (!write) return plan;
  const std::string base = context.adapter->base_model_name_or_path.empty() ? context.options.model_path
                                                                            : context.adapter->base_model_name_or_path;
  write_peft_adapter(*context.model, context.adapter->spec, context.adapter->target_modules, base, context.options.out);
  log << "wrote " << context.options.out << " (" << plan.tensors.size() << " tensors)\n";
  return plan;
}

}  // namespace retort
