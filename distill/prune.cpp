#include "distill/prune.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <numeric>
#include <sstream>

#include "io/error.h"
#include "lora/lora.h"
#include "models/registry.h"

namespace retort {
namespace {

// Sits on a down_proj and sums |input| per neuron, passing the input through unchanged.
class ActivationRecorder : public ProjectionAdapter {
 public:
  at::Tensor forward(const at::Tensor& input, const Projection& base) override {
    const at::Tensor flat = input.reshape({-1, input.size(-1)}).to(at::kFloat);
    sum = sum.defined() ? sum + flat.abs().sum(0) : flat.abs().sum(0);
    tokens += flat.size(0);
    return base.forward_base(input);
  }
  at::Tensor sum;
  int64_t tokens = 0;
};

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

}  // namespace

std::vector<int64_t> parse_layer_list(const std::string& spec, int64_t layers) {
  std::vector<int64_t> kept;
  std::stringstream parts(spec);
  for (std::string part; std::getline(parts, part, ',');) {
    const size_t dash = part.find('-');
    int64_t first = 0, last = 0;
    try {
      first = std::stoll(part.substr(0, dash));
      last = dash == std::string::npos ? first : std::stoll(part.substr(dash + 1));
    } catch (const std::exception&) {
      throw bad_input("expected layer indices and ranges like 0-5,9,11, got '" + part + "'").key("keep-layers");
    }
    for (int64_t layer = first; layer <= last; ++layer) {
      if (layer < 0 || layer >= layers) {
        throw bad_input("layer " + std::to_string(layer) + " is outside the model's 0-" + std::to_string(layers - 1))
            .key("keep-layers");
      }
      if (!kept.empty() && layer <= kept.back()) throw bad_input("layers must ascend without repeats").key("keep-layers");
      kept.push_back(layer);
    }
  }
  if (kept.empty()) throw bad_input("no layers to keep").key("keep-layers");
  return kept;
}

std::vector<double> layer_importance(CausalLM& model, const std::vector<std::vector<int64_t>>& calibration) {
  if (calibration.empty()) throw bad_input("layer importance needs calibration text").key("calibration");
  const int64_t layers = model.config().num_hidden_layers;
  std::vector<double> sums(static_cast<size_t>(layers), 0.0);
  int64_t tokens = 0;
  c10::NoGradGuard no_grad;
  for (const auto& ids : calibration) {
    std::vector<at::Tensor> states;
    ForwardOptions options;
    options.layer_states = &states;
    model.forward_hidden(at::tensor(ids, at::kLong).unsqueeze(0).to(model.device()), options);
    for (int64_t layer = 0; layer < layers; ++layer) {
      const at::Tensor in = states[static_cast<size_t>(layer)].to(at::kFloat).reshape({-1, states[0].size(-1)});
      const at::Tensor out = states[static_cast<size_t>(layer) + 1].to(at::kFloat).reshape({-1, states[0].size(-1)});
      sums[static_cast<size_t>(layer)] += (1 - at::cosine_similarity(in, out, 1)).sum().item<double>();
    }
    tokens += static_cast<int64_t>(ids.size());
  }
  for (double& sum : sums) sum /= static_cast<double>(tokens);
  return sums;
}

std::vector<int64_t> most_important_layers(const std::vector<double>& importance, int64_t depth) {
  const int64_t layers = static_cast<int64_t>(importance.size());
  if (depth <= 0 || depth > layers) {
    throw bad_input("--depth must be between 1 and the model's " + std::to_string(layers) + " layers").key("depth");
  }
  std::vector<int64_t> order(static_cast<size_t>(layers));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return importance[static_cast<size_t>(a)] > importance[static_cast<size_t>(b)];
  });
  order.resize(static_cast<size_t>(depth));
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<at::Tensor> mlp_neuron_importance(CausalLM& model, const std::vector<std::vector<int64_t>>& calibration) {
  if (calibration.empty()) throw bad_input("width pruning needs calibration text").key("calibration");
  std::vector<std::shared_ptr<ActivationRecorder>> recorders;
  const auto projections = projections_of(model);
  for (int64_t layer = 0; layer < model.config().num_hidden_layers; ++layer) {
    const auto& down = projections.at(layer_prefix(layer) + "mlp.down_proj");
    if (down->adapter) throw internal_error("importance needs a model without adapters");
    recorders.push_back(std::make_shared<ActivationRecorder>());
    down->adapter = recorders.back();
  }
  {
    c10::NoGradGuard no_grad;
    for (const auto& ids : calibration) {
      model.forward_hidden(at::tensor(ids, at::kLong).unsqueeze(0).to(model.device()), {});
    }
  }
  std::vector<at::Tensor> importance;
  for (int64_t layer = 0; layer < model.config().num_hidden_layers; ++layer) {
    projections.at(layer_prefix(layer) + "mlp.down_proj")->adapter = nullptr;
    const auto& recorder = recorders[static_cast<size_t>(layer)];
    importance.push_back((recorder->sum / static_cast<double>(recorder->tokens)).cpu());
  }
  return importance;
}

std::shared_ptr<CausalLM> prune_model(CausalLM& source, const PruneOptions& options,
                                      const std::vector<at::Tensor>& importance) {
  ModelConfig config = source.config();
  std::vector<int64_t> keep = options.keep_layers;
  if (keep.empty()) {
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) keep.push_back(layer);
  }
  config.num_hidden_layers = static_cast<int64_t>(keep.size());
  if (!config.layer_attention.empty()) {  // kept layers keep their own window and RoPE base
    std::vector<LayerAttention> kept;
    for (const int64_t layer : keep) kept.push_back(config.layer_attention.at(static_cast<size_t>(layer)));
    config.layer_attention = std::move(kept);
  }
  const bool narrow = options.mlp_width > 0 && options.mlp_width != config.intermediate_size;
  if (narrow) {
    if (options.mlp_width > config.intermediate_size) {
      throw bad_input("the MLP width " + std::to_string(options.mlp_width) + " exceeds the model's " +
                      std::to_string(config.intermediate_size))
          .key("mlp-width");
    }
    if (importance.size() != static_cast<size_t>(source.config().num_hidden_layers)) {
      throw internal_error("width pruning needs every layer's neuron importance");
    }
    config.intermediate_size = options.mlp_width;
  }
  std::shared_ptr<CausalLM> pruned = create_model(config, "pruned model");
  auto source_parameters = source.named_parameters();
  c10::NoGradGuard no_grad;
  for (auto& item : pruned->named_parameters()) {
    std::string name = item.key();
    int64_t layer = -1;
    if (name.rfind("model.layers.", 0) == 0) {
      const size_t dot = name.find('.', 13);
      layer = keep[static_cast<size_t>(std::stoll(name.substr(13, dot - 13)))];
      name = layer_prefix(layer) + name.substr(dot + 1);
    }
    const at::Tensor* value = source_parameters.find(name);
    if (value == nullptr) throw internal_error("the source has no parameter").tensor(name);
    at::Tensor weight = value->detach().to(at::kCPU, at::kFloat);
    if (narrow && layer >= 0 && name.find(".mlp.") != std::string::npos) {
      const at::Tensor top = std::get<1>(importance[static_cast<size_t>(layer)].topk(options.mlp_width));
      const at::Tensor neurons = std::get<0>(top.sort());
      if (name.find("down_proj.weight") != std::string::npos) {
        weight = weight.index_select(1, neurons);
      } else if (name.find("down_proj") == std::string::npos) {
        weight = weight.index_select(0, neurons);  // gate/up rows (weights and biases)
      }
    }
    item.value().copy_(weight);
  }
  pruned->eval();
  return pruned;
}

}  // namespace retort
