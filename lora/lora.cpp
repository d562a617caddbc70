#include "lora/lora.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <set>

#include "io/atomic_file.h"
#include "lora/dropout.h"
#include "models/gemm.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "io/text.h"

namespace retort {

double LoraSpec::scaling() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

LoraAdapter::LoraAdapter(const Projection& base, const LoraSpec& lora_spec) : spec(lora_spec) {
  // Adapters stay float32 on a bfloat16/float16 base, as peft's autocast_adapter_dtype does.
  const auto options = at::TensorOptions().dtype(at::kFloat).device(base.storage().device());
  lora_a = at::zeros({spec.rank, base.in_features()}, options);
  lora_b = at::zeros({base.out_features(), spec.rank}, options);
}

namespace {

// ||W + delta|| per output row, as peft's DoRA get_weight_norm.
at::Tensor dora_weight_norm(const at::Tensor& weight, const at::Tensor& delta) {
  return at::linalg_vector_norm(weight + delta, 2, /*dim=*/{1}, /*keepdim=*/false, std::nullopt);
}

}  // namespace

at::Tensor LoraAdapter::forward(const at::Tensor& input, const Projection& base) {
  at::Tensor result = base.forward_base(input);
  if (merged) return result;
  // A low-precision base: the adapter path runs in float32 and its output is rounded once.
  const bool mixed = input.scalar_type() != lora_a.scalar_type();
  const at::Tensor x_full = mixed ? input.to(lora_a.scalar_type()) : input;
  const at::Tensor x = (training && spec.dropout > 0) ? lora_dropout(x_full, spec.dropout) : x_full;
  const double scaling = spec.scaling();
  if (!spec.use_dora) {
    const at::Tensor down = gemm_linear(x, lora_a);  // [..., r]
    if (mixed) return result + gemm_linear(down, lora_b * scaling).to(result.scalar_type());
    // result + x A^T (s B)^T in one GEMM that accumulates into the base output; the scale is
    // applied to the small [out, r] matrix, not to an [N, out] activation.
    return gemm_linear_add(result, down, lora_b * scaling);
  }
  const at::Tensor lora = gemm_linear(gemm_linear(x, lora_a), lora_b);
  // DoRA: m / ||W + s B A|| rescales the whole direction; the norm is a constant for autograd.
  const at::Tensor weight = base.dense_weight(lora_a.scalar_type());
  const at::Tensor delta = at::matmul(lora_b, lora_a) * scaling;
  const at::Tensor norm = dora_weight_norm(weight, delta).detach();
  const at::Tensor magnitude_scale = (magnitude / norm).view({1, -1});
  const at::Tensor base_no_bias = gemm_linear(x, weight);
  const at::Tensor update = (magnitude_scale - 1) * base_no_bias + magnitude_scale * lora * scaling;
  return result + (mixed ? update.to(result.scalar_type()) : update);
}

at::Tensor LoraAdapter::merged_delta(const at::Tensor& base_weight) const {
  const at::Tensor delta = at::matmul(lora_b, lora_a) * spec.scaling();
  if (!spec.use_dora) return delta;
  const at::Tensor weight = base_weight.to(lora_a.scalar_type());
  const at::Tensor norm = dora_weight_norm(weight, delta);
  return (magnitude / norm).view({-1, 1}) * (weight + delta) - weight;
}

bool merge_adapter(Projection& projection) {
  auto* lora = dynamic_cast<LoraAdapter*>(projection.adapter.get());
  if (!lora || lora->merged) return false;
  c10::NoGradGuard no_grad;
  const at::ScalarType dtype = projection.storage().compute_dtype();
  lora->merged_weight_delta = lora->merged_delta(projection.dense_weight(dtype)).to(dtype);
  projection.fold_in(lora->merged_weight_delta);
  lora->merged = true;
  return true;
}

bool unmerge_adapter(Projection& projection) {
  auto* lora = dynamic_cast<LoraAdapter*>(projection.adapter.get());
  if (!lora || !lora->merged) return false;
  c10::NoGradGuard no_grad;
  projection.fold_out(lora->merged_weight_delta);
  lora->merged_weight_delta = at::Tensor();
  lora->merged = false;
  return true;
}

int64_t merge_adapters(CausalLM& model) {
  int64_t changed = 0;
  for (auto& [path, projection] : projections_of(model)) changed += merge_adapter(*projection) ? 1 : 0;
  return changed;
}

int64_t unmerge_adapters(CausalLM& model) {
  int64_t changed = 0;
  for (auto& [path, projection] : projections_of(model)) changed += unmerge_adapter(*projection) ? 1 : 0;
  return changed;
}

std::map<std::string, std::shared_ptr<Projection>> projections_of(CausalLM& model) {
  std::map<std::string, std::shared_ptr<Projection>> out;
  for (const auto& item : model.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    if (auto projection = std::dynamic_pointer_cast<Projection>(item.value())) out[item.key()] = projection;
  }
  return out;
}

namespace {

using Json = nlohmann::json;

LoraSpec parse_adapter_config(const Json& config, const std::string& path) {
  auto number = [&](const char* key, double fallback) {
    if (!config.contains(key) || config[key].is_null()) return fallback;
    if (!config[key].is_number()) throw bad_input("expected a number").file(path).key(key);
    return config[key].get<double>();
  };
  auto flag = [&](const char* key) {
    if (!config.contains(key) || config[key].is_null()) return false;
    if (!config[key].is_boolean()) throw bad_input("expected true or false").file(path).key(key);
    return config[key].get<bool>();
  };
  if (config.value("peft_type", "LORA") != "LORA") {
    throw bad_input("only LORA adapters are supported").file(path).key("peft_type");
  }
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (config.contains(key) && config[key].is_object() && !config[key].empty()) {
      throw bad_input("per-module ranks/alphas are not supported yet").file(path).key(key);
    }
  }
  if (flag("fan_in_fan_out")) throw bad_input("fan_in_fan_out is for Conv1D models, not Llama").file(path).key("fan_in_fan_out");
  if (config.contains("bias") && config["bias"] != "none") {
    throw bad_input("adapters with trained biases are not supported").file(path).key("bias");
  }
  if (config.contains("modules_to_save") && !config["modules_to_save"].is_null() &&
      !config["modules_to_save"].empty()) {
    throw bad_input("modules_to_save (full module copies) is not supported").file(path).key("modules_to_save");
  }
  LoraSpec spec;
  spec.rank = static_cast<int64_t>(number("r", 8));
  spec.alpha = number("lora_alpha", 8);
  spec.dropout = number("lora_dropout", 0);
  spec.use_rslora = flag("use_rslora");
  spec.use_dora = flag("use_dora");
  if (spec.rank <= 0) throw bad_input("rank must be positive").file(path).key("r");
  return spec;
}

constexpr const char* kPeftPrefix = "base_model.model.";

}  // namespace

LoadedAdapter load_peft_adapter(CausalLM& model, const std::string& adapter_dir) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(adapter_dir) / "adapter_config.json").string();
  const std::string weights_path = (fs::path(adapter_dir) / "adapter_model.safetensors").string();
  if (!fs::exists(config_path)) throw bad_input("no adapter_config.json in this adapter directory").file(adapter_dir);
  if (!fs::exists(weights_path)) throw bad_input("no adapter_model.safetensors in this adapter directory").file(adapter_dir);
  Json config;
  try {
    config = Json::parse(read_text_file(config_path));
  } catch (const Json::exception& error) {
    throw bad_input(std::string("invalid JSON: ") + error.what()).file(config_path);
  }
  LoadedAdapter loaded;
  loaded.spec = parse_adapter_config(config, config_path);
  if (config.contains("base_model_name_or_path") && config["base_model_name_or_path"].is_string()) {
    loaded.base_model_name_or_path = config["base_model_name_or_path"].get<std::string>();  // may be null
  }
  const auto file = SafetensorsFile::open(weights_path);
  const auto projections = projections_of(model);
  std::set<std::string> used;
  c10::NoGradGuard no_grad;
  for (const auto& [path, projection] : projections) {
    const std::string stem = kPeftPrefix + path;
    const bool has_a = file->find(stem + ".lora_A.weight") != nullptr;
    const bool has_b = file->find(stem + ".lora_B.weight") != nullptr;
    if (!has_a && !has_b) continue;
    if (!has_a || !has_b) {
      throw bad_input("incomplete LoRA pair (needs lora_A and lora_B)").file(weights_path).tensor(stem);
    }
    auto adapter = std::make_shared<LoraAdapter>(*projection, loaded.spec);
    auto assign = [&](at::Tensor& target, const std::string& name) {
      const at::Tensor value = file->view(name);
      if (value.sizes() != target.sizes()) {
        throw bad_input("wrong shape: expected " + shape_text(target.sizes().vec()) + " for rank " +
                        std::to_string(loaded.spec.rank) + ", file has " + shape_text(value.sizes().vec()))
            .file(weights_path)
            .tensor(name);
      }
      target.copy_(value);
      used.insert(name);
    };
    assign(adapter->lora_a, stem + ".lora_A.weight");
    assign(adapter->lora_b, stem + ".lora_B.weight");
    if (loaded.spec.use_dora) {
      std::string name = stem + ".lora_magnitude_vector";
      if (file->find(name) == nullptr) name += ".weight";
      if (file->find(name) == nullptr) throw bad_input("missing DoRA magnitude").file(weights_path).tensor(name);
      adapter->magnitude = at::empty({projection->out_features()},
                                     at::TensorOptions().dtype(at::kFloat).device(projection->storage().device()));
      assign(adapter->magnitude, name);
    }
    projection->adapter = adapter;
    loaded.target_modules.push_back(path);
  }
  for (const auto& info : file->tensors()) {
    if (!used.count(info.name)) {
      throw bad_input("tensor matches no projection of " + model.config().architecture +
                      " (supported: LoRA A/B on linear layers, DoRA magnitudes)")
          .file(weights_path)
          .tensor(info.name);
    }
  }
  if (loaded.target_modules.empty()) throw bad_input("adapter holds no LoRA weights").file(weights_path);
  return loaded;
}

void write_peft_adapter(CausalLM& model, const LoraSpec& spec, const std::vector<std::string>& target_modules,
                        const std::string& base_model_name_or_path, const std::string& directory) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& [path, projection] : projections_of(model)) {
    const auto* lora = dynamic_cast<const LoraAdapter*>(projection->adapter.get());
    if (!lora) continue;
    const std::string stem = kPeftPrefix + path;
    tensors.emplace_back(stem + ".lora_A.weight", lora->lora_a.detach().to(at::kFloat).contiguous());
    tensors.emplace_back(stem + ".lora_B.weight", lora->lora_b.detach().to(at::kFloat).contiguous());
    if (lora->magnitude.defined()) {
      tensors.emplace_back(stem + ".lora_magnitude_vector", lora->magnitude.detach().to(at::kFloat).contiguous());
    }
  }
  if (tensors.empty()) throw internal_error("the model carries no LoRA adapters to write");
  const Json config = {{"peft_type", "LORA"},
                       {"task_type", "CAUSAL_LM"},
                       {"base_model_name_or_path", base_model_name_or_path},
                       {"r", spec.rank},
                       {"lora_alpha", spec.alpha},
                       {"lora_dropout", spec.dropout},
                       {"use_rslora", spec.use_rslora},
                       {"use_dora", spec.use_dora},
                       {"target_modules", target_modules},
                       {"bias", "none"},
                       {"fan_in_fan_out", false},
                       {"inference_mode", true},
                       {"modules_to_save", nullptr}};
  const fs::path final_dir(directory);
  const fs::path temp_dir = final_dir.string() + ".tmp";
  fs::remove_all(temp_dir);
  fs::create_directories(temp_dir);
  write_safetensors((temp_dir / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  write_file_atomic((temp_dir / "adapter_config.json").string(), config.dump(2) + "\n");
  fs::remove_all(final_dir);
  fs::rename(temp_dir, final_dir);
}

std::vector<std::pair<std::string, at::Tensor>> prepare_trainable_parameters(CausalLM& model) {
  std::vector<std::pair<std::string, at::Tensor>> adapter_tensors;
  for (auto& [path, projection] : projections_of(model)) {
    if (auto* lora = dynamic_cast<LoraAdapter*>(projection->adapter.get())) {
      lora->training = true;
      const std::string stem = kPeftPrefix + path;
      adapter_tensors.emplace_back(stem + ".lora_A.weight", lora->lora_a);
      adapter_tensors.emplace_back(stem + ".lora_B.weight", lora->lora_b);
      if (lora->magnitude.defined()) adapter_tensors.emplace_back(stem + ".lora_magnitude_vector", lora->magnitude);
    }
  }
  const bool use_lora = !adapter_tensors.empty();
  for (auto& p : model.parameters()) p.set_requires_grad(!use_lora);
  if (use_lora) {
    for (auto& [name, tensor] : adapter_tensors) tensor.set_requires_grad(true);
    return adapter_tensors;
  }
  std::vector<std::pair<std::string, at::Tensor>> all;
  for (const auto& item : model.named_parameters()) all.emplace_back(item.key(), item.value());
  return all;
}

void set_lora_training(CausalLM& model, bool training) {
  model.train(training);
  for (auto& [path, projection] : projections_of(model)) {
    if (auto* lora = dynamic_cast<LoraAdapter*>(projection->adapter.get())) lora->training = training;
  }
}

int64_t attach_lora(CausalLM& model, const LoraSpec& spec, const std::vector<std::string>& targets, uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  int64_t attached = 0;
  c10::NoGradGuard no_grad;
  for (auto& [path, projection] : projections_of(model)) {
    const std::string leaf = path.substr(path.rfind('.') + 1);
    if (std::find(targets.begin(), targets.end(), leaf) == targets.end()) continue;
    auto adapter = std::make_shared<LoraAdapter>(*projection, spec);
    // nn.Linear's default init (kaiming_uniform with a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)).
    const double bound = 1.0 / std::sqrt(static_cast<double>(projection->in_features()));
    adapter->lora_a.copy_(at::empty(adapter->lora_a.sizes(), at::kFloat).uniform_(-bound, bound, generator));
    if (spec.use_dora) {
      adapter->magnitude = at::linalg_vector_norm(projection->dense_weight(at::kFloat), 2, {1}, false, std::nullopt);
    }
    projection->adapter = adapter;
    ++attached;
  }
  if (attached == 0) throw bad_input("no projection matches lora.target_modules").key("lora.target_modules");
  return attached;
}

}  // namespace retort
