#include "models/gguf_model.h"

#include <ATen/ATen.h>

#include <cstring>
#include <set>

#include "io/error.h"
#include "io/text.h"
#include "models/family.h"
#include "models/registry.h"

namespace retort {
namespace {

void add_eos(ModelConfig& config, std::optional<uint32_t> id) {
  if (id && std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), *id) == config.eos_token_ids.end()) {
    config.eos_token_ids.push_back(*id);
  }
}

}  // namespace

ModelConfig config_from_gguf(const GgufFile& file) {
  const std::string arch = file.get_string("general.architecture");
  const ModelFamily& family = family_for_gguf(arch, file.path());
  ModelConfig config;
  config.architecture = family.hf_architectures.front();
  config.model_type = arch;
  const std::string p = arch + ".";
  config.hidden_size = file.get_u32(p + "embedding_length");
  config.num_hidden_layers = file.get_u32(p + "block_count");
  config.intermediate_size = file.get_u32(p + "feed_forward_length");
  config.num_attention_heads = file.get_u32(p + "attention.head_count");
  config.num_key_value_heads = file.find_u32(p + "attention.head_count_kv").value_or(config.num_attention_heads);
  config.head_dim = file.find_u32(p + "attention.key_length")
                        .value_or(file.find_u32(p + "rope.dimension_count")
                                      .value_or(config.hidden_size / std::max<int64_t>(1, config.num_attention_heads)));
  config.max_position_embeddings = file.find_u32(p + "context_length").value_or(2048);
  config.rms_norm_eps = file.get_f32(p + "attention.layer_norm_rms_epsilon");
  config.rope.theta = file.find_f32(p + "rope.freq_base").value_or(10000.0f);
  if (const auto scaling = file.find_string(p + "rope.scaling.type"); scaling && *scaling != "none") {
    if (*scaling != "linear") {
      throw bad_input("rope scaling '" + *scaling + "' is not supported (supported: linear, rope_freqs)")
          .file(file.path())
          .key(p + "rope.scaling.type");
    }
    config.rope.type = RopeScaling::kLinear;
    config.rope.factor = file.get_f32(p + "rope.scaling.factor");
  }
  if (const GgufTensorInfo* freqs = file.find_tensor("rope_freqs.weight")) {
    const at::Tensor divisors = file.load_float(freqs->name).flatten();
    if (divisors.numel() != config.head_dim / 2) {
      throw bad_input("expected head_dim/2 = " + std::to_string(config.head_dim / 2) + " values")
          .file(file.path())
          .tensor(freqs->name);
    }
    config.rope.type = RopeScaling::kFrequencyDivisors;
    config.rope.frequency_divisors.assign(divisors.data_ptr<float>(), divisors.data_ptr<float>() + divisors.numel());
  }
  const GgufTensorInfo* embedding = file.find_tensor("token_embd.weight");
  if (embedding == nullptr) throw bad_input("missing tensor").file(file.path()).tensor("token_embd.weight");
  config.vocab_size = file.find_u32(p + "vocab_size").value_or(static_cast<uint32_t>(embedding->torch_shape()[0]));
  config.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  config.attention_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
  if (const auto bos = file.find_u32("tokenizer.ggml.bos_token_id")) config.bos_token_id = *bos;
  add_eos(config, file.find_u32("tokenizer.ggml.eos_token_id"));
  add_eos(config, file.find_u32("tokenizer.ggml.eot_token_id"));
  add_eos(config, file.find_u32("tokenizer.ggml.eom_token_id"));
  if (const auto pad = file.find_u32("tokenizer.ggml.padding_token_id")) config.pad_token_id = *pad;
  if (family.read_gguf_config) family.read_gguf_config(file, config);
  config.validate(file.path());
  return config;
}

at::Tensor unpermute_gguf_qk(const at::Tensor& weight, int64_t heads) {
  const auto shape = weight.sizes().vec();
  const int64_t half = shape[0] / heads / 2;
  std::vector<int64_t> split = {heads, half, 2};
  split.insert(split.end(), shape.begin() + 1, shape.end());
  return weight.reshape(split).transpose(1, 2).reshape(shape).contiguous();
}

LazyModel open_gguf_model_lazily(const std::string& path) {
  const std::shared_ptr<GgufFile> file = GgufFile::open(path);
  const ModelConfig config = config_from_gguf(*file);
  LazyModel lazy;
  lazy.skeleton = create_model(config, path);
  lazy.from_gguf = true;
  std::set<std::string> used = {"rope_freqs.weight"};
  for (const auto& item : lazy.skeleton->named_parameters()) {
    const std::string gguf_name = lazy.skeleton->gguf_tensor_name(item.key());
    const GgufTensorInfo* info = file->find_tensor(gguf_name);
    if (info == nullptr) throw bad_input("missing tensor (needed for " + item.key() + ")").file(path).tensor(gguf_name);
    if (info->torch_shape() != item.value().sizes().vec()) {
      throw bad_input("wrong shape for the metadata: expected " + shape_text(item.value().sizes().vec()) +
                      ", file has " + shape_text(info->torch_shape()))
          .file(path)
          .tensor(gguf_name);
    }
    used.insert(gguf_name);
  }
  for (const GgufTensorInfo& info : file->tensors()) {
    if (!used.count(info.name)) {
      throw bad_input("unexpected tensor: not part of " + config.architecture + " as described by the metadata")
          .file(path)
          .tensor(info.name);
    }
  }
  std::shared_ptr<CausalLM> skeleton = lazy.skeleton;
  lazy.load = [file, skeleton, path](const std::string& name) {
    const std::string gguf_name = skeleton->gguf_tensor_name(name);
    at::Tensor value;
    try {
      value = file->load_float(gguf_name);
    } catch (const Error& error) {
      throw error.with_defaults({path, -1, "", gguf_name});
    }
    if (const auto heads = skeleton->gguf_permuted_heads(name)) {
      if (value.dim() < 1 || value.size(0) % (2 * *heads) != 0) {
        throw bad_input("first dimension is not heads x head_dim").file(path).tensor(gguf_name);
      }
      value = unpermute_gguf_qk(value, *heads);
    }
    if (const double offset = skeleton->family().gguf_value_offset(name); offset != 0.0) value = value - offset;
    return value;
  };
  lazy.load_blocks = [file, skeleton, path](const std::string& name) {
    const GgufTensorInfo& info = *file->find_tensor(skeleton->gguf_tensor_name(name));
    const int64_t rows = info.n_elements() / info.ne[0];
    const int64_t row_bytes = static_cast<int64_t>(info.n_bytes) / rows;
    at::Tensor blocks = at::empty({rows, row_bytes}, at::kByte);
    std::memcpy(blocks.data_ptr<uint8_t>(), file->tensor_data(info), info.n_bytes);
    if (const auto heads = skeleton->gguf_permuted_heads(name)) {
      if (rows % (2 * *heads) != 0) throw bad_input("first dimension is not heads x head_dim").file(path).tensor(info.name);
      blocks = unpermute_gguf_qk(blocks, *heads);  // whole rows move; the blocks are unchanged
    }
    return std::make_pair(info.type, blocks);
  };
  return lazy;
}

LoadedModel load_gguf_model(const std::string& path, const LoadOptions& options) {
  LazyModel lazy = open_gguf_model_lazily(path);
  std::shared_ptr<CausalLM> model = lazy.skeleton;
  model->to(options.device, options.dtype);
  for (const auto& item : model->named_parameters()) {
    try {
      assign_parameter(*model, item.key(), lazy.load(item.key()), path);
    } catch (const Error& error) {
      throw error.with_defaults({path, -1, "", model->gguf_tensor_name(item.key())});
    }
  }
  model->eval();
  return {model, path, true};
}

}  // namespace retort
