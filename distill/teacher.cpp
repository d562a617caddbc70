#include "distill/teacher.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "io/error.h"
#include "lora/lora.h"

namespace retort {

std::vector<c10::Device> split_layers(int64_t layers, const std::vector<c10::Device>& devices) {
  if (devices.empty()) throw internal_error("no devices to place the teacher on");
  const int64_t count = static_cast<int64_t>(devices.size());
  if (count > layers) {
    throw bad_input("more teacher devices (" + std::to_string(count) + ") than layers (" + std::to_string(layers) + ")")
        .key("distill.teacher_devices");
  }
  std::vector<c10::Device> placement;
  for (int64_t i = 0; i < layers; ++i) placement.push_back(devices[static_cast<size_t>(i * count / layers)]);
  return placement;
}

LoadedModel load_teacher(const std::string& path, const TeacherLoadOptions& options) {
  LazyModel lazy = open_model_lazily(path);
  CausalLM& model = *lazy.skeleton;
  const std::vector<c10::Device> layers = split_layers(model.config().num_hidden_layers, options.devices);
  // Where a parameter lives: its decoder layer's device; the embedding on the first device and
  // the final norm and output head on the last.
  auto device_of = [&](const std::string& name) {
    const std::string prefix = "model.layers.";
    if (name.rfind(prefix, 0) == 0) return layers[static_cast<size_t>(std::stoll(name.substr(prefix.size())))];
    return name.rfind("model.embed_tokens", 0) == 0 ? options.devices.front() : options.devices.back();
  };
  if (options.quantize == BaseQuantization::kKeep && !lazy.from_gguf) {
    throw bad_input("teacher_quantize 'keep' keeps a GGUF file's own blocks, and this teacher is not a .gguf file")
        .file(path)
        .key("distill.teacher_quantize");
  }
  const std::map<std::string, Projection*> quantized =
      options.quantize == BaseQuantization::kNone ? std::map<std::string, Projection*>{}
                                                  : decoder_projection_weights(model);
  c10::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    at::Tensor& parameter = item.value();
    parameter.set_requires_grad(false);
    const c10::Device device = device_of(item.key());
    try {
      if (auto found = quantized.find(item.key()); found != quantized.end()) {
        LoadOptions load{options.dtype, device, options.quantize, "distill.teacher_quantize"};
        load_quantized_projection(lazy, item.key(), *found->second, load, path);
      } else {
        parameter.set_data(lazy.load(item.key()).to(device, options.dtype));  // CPU, one tensor at a time
      }
    } catch (const Error& error) {
      throw error.with_defaults({path, -1, "", lazy.from_gguf ? model.gguf_tensor_name(item.key()) : item.key()});
    }
  }
  model.set_layer_devices(options.devices.size() > 1 ? layers : std::vector<c10::Device>{});
  model.eval();
  return {lazy.skeleton, path, lazy.from_gguf};
}

int64_t weight_bytes(CausalLM& model) {
  int64_t bytes = 0;
  for (const auto& p : model.parameters()) bytes += static_cast<int64_t>(p.nbytes());
  for (const auto& b : model.buffers()) bytes += static_cast<int64_t>(b.nbytes());
  return bytes;
}

}  // namespace retort
