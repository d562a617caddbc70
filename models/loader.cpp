#include "models/loader.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>

#include <filesystem>
#include <set>

#include "io/error.h"
#include "io/safetensors.h"
#include "io/text.h"
#include "models/gguf_model.h"
#include "models/registry.h"

namespace retort {


namespace {

bool is_ignorable_extra(const std::string& name, const ModelConfig& config) {
  if (name.find("rotary_emb.inv_freq") != std::string::npos) return true;  // old checkpoints
  return config.tie_word_embeddings && name == "lm_head.weight";          // tied copy
}

// Every parameter of `model` is in the checkpoint with its shape, and nothing else is.
void check_hf_tensors(CausalLM& model, const SafetensorsCheckpoint& checkpoint, const std::string& dir) {
  const ModelConfig& config = model.config();
  std::set<std::string> expected;
  for (const auto& item : model.named_parameters()) {
    expected.insert(item.key());
    if (!checkpoint.contains(item.key())) {
      throw bad_input("missing tensor in the checkpoint (needed by " + config.architecture + ")")
          .file(dir)
          .tensor(item.key());
    }
    const SafetensorsTensorInfo& info = checkpoint.info(item.key());
    if (info.shape != item.value().sizes().vec()) {
      throw bad_input("wrong shape for the config: expected " + shape_text(item.value().sizes().vec()) + ", file has " +
                      shape_text(info.shape))
          .file(checkpoint.file_of(item.key()).path())
          .tensor(item.key());
    }
  }
  for (const std::string& name : checkpoint.names()) {
    if (!expected.count(name) && !is_ignorable_extra(name, config)) {
      throw bad_input("unexpected tensor: not part of " + config.architecture + " with this config.json")
          .file(checkpoint.file_of(name).path())
          .tensor(name);
    }
  }
}

LoadedModel load_hf_model(const std::string& dir, const LoadOptions& options) {
  const ModelConfig config = load_hf_config(dir);
  std::shared_ptr<CausalLM> model = create_model(config, (std::filesystem::path(dir) / "config.json").string());
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir);
  check_hf_tensors(*model, checkpoint, dir);
  model->to(options.device, options.dtype);  // before loading: converts while copying, no float32 detour
  for (const auto& item : model->named_parameters()) {
    const SafetensorsFile& file = checkpoint.file_of(item.key());
    assign_parameter(*model, item.key(), file.view(item.key()), file.path());
  }
  model->eval();
  return {model, dir, false};
}

}  // namespace

void assign_parameter(CausalLM& model, const std::string& name, const at::Tensor& value, const std::string& source) {
  auto parameters = model.named_parameters();  // find() points into this dict: keep it alive
  at::Tensor* parameter = parameters.find(name);
  if (parameter == nullptr) throw internal_error("model has no parameter").tensor(name);
  if (parameter->sizes() != value.sizes()) {
    throw bad_input("wrong shape for the config: expected " + shape_text(parameter->sizes().vec()) + ", file has " +
                    shape_text(value.sizes().vec()))
        .file(source)
        .tensor(name);
  }
  if (!at::isFloatingType(value.scalar_type())) {
    throw bad_input(std::string("expected floating-point weights, file has ") + c10::toString(value.scalar_type()))
        .file(source)
        .tensor(name);
  }
  c10::NoGradGuard no_grad;
  parameter->copy_(value);
}

LazyModel open_model_lazily(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw bad_input("no such file or directory").file(path);
  if (fs::path(path).extension() == ".gguf") return open_gguf_model_lazily(path);
  const std::string dir = fs::is_directory(path) ? path : fs::path(path).parent_path().string();
  const ModelConfig config = load_hf_config(dir);
  LazyModel lazy;
  lazy.skeleton = create_model(config, (fs::path(dir) / "config.json").string());
  auto checkpoint = std::make_shared<SafetensorsCheckpoint>(SafetensorsCheckpoint::open(dir));
  check_hf_tensors(*lazy.skeleton, *checkpoint, dir);
  lazy.load = [checkpoint](const std::string& name) { return checkpoint->load(name); };  // stored dtype
  return lazy;
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw bad_input("no such file or directory").file(path);
  if (fs::is_directory(path)) return load_hf_model(path, options);
  if (fs::path(path).extension() == ".gguf") return load_gguf_model(path, options);
  if (fs::path(path).filename() == "config.json") return load_hf_model(fs::path(path).parent_path().string(), options);
  throw bad_input("expected a model directory (config.json + safetensors) or a .gguf file").file(path);
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "f32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "f16" || name == "half") return at::kHalf;
  throw bad_input("unknown dtype '" + name + "' (expected float32, bfloat16 or float16)").key("--dtype");
}

c10::Device parse_device(const std::string& name) {
  c10::Device device = c10::kCPU;
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw bad_input("unknown device '" + name + "' (expected cpu, cuda or cuda:N)").key("--device");
  }
  if (device.is_cuda()) {
    const int count = at::detail::getCUDAHooks().isBuilt() ? at::detail::getCUDAHooks().getNumGPUs() : 0;
    if (count == 0) throw bad_input("device '" + name + "' asked for, but no CUDA GPU is usable here").key("--device");
    if (device.has_index() && device.index() >= count) {
      throw bad_input("device '" + name + "' does not exist (" + std::to_string(count) + " GPUs)").key("--device");
    }
  } else if (!device.is_cpu()) {
    throw bad_input("unsupported device '" + name + "' (expected cpu, cuda or cuda:N)").key("--device");
  }
  return device;
}

}  // namespace retort
