#include "models/loader.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>

#include <filesystem>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <map>
#include <set>

#include "io/error.h"
#include "io/safetensors.h"
#include "io/text.h"
#include "models/bnb_checkpoint.h"
#include "models/gguf_model.h"
#include "models/nf4.h"
#include "models/registry.h"

namespace retort {


namespace {

bool is_ignorable_extra(const std::string& name, const ModelConfig& config) {
  if (name.find("rotary_emb.inv_freq") != std::string::npos) return true;  // old checkpoints
  return config.tie_word_embeddings && name == "lm_head.weight";          // tied copy
}

// Every parameter of `model` is in the checkpoint with its shape, and nothing else is (but a
// bitsandbytes checkpoint's quant states, `bnb_4bit`).
void check_hf_tensors(CausalLM& model, const SafetensorsCheckpoint& checkpoint, const std::string& dir,
                      bool bnb_4bit = false) {
  const ModelConfig& config = model.config();
  std::set<std::string> expected;
  for (const auto& item : model.named_parameters()) {
    expected.insert(item.key());
    if (!checkpoint.contains(item.key())) {
      throw bad_input("missing tensor in the checkpoint (needed by " + config.architecture + ")")
          .file(dir)
          .tensor(item.key());
    }
    const std::optional<StoredNf4> nf4 = bnb_4bit ? read_bnb_nf4(checkpoint, item.key()) : std::nullopt;
    const std::vector<int64_t> shape = nf4 ? nf4->shape : checkpoint.info(item.key()).shape;
    if (shape != item.value().sizes().vec()) {
      throw bad_input("wrong shape for the config: expected " + shape_text(item.value().sizes().vec()) + ", file has " +
                      shape_text(shape))
          .file(checkpoint.file_of(item.key()).path())
          .tensor(item.key());
    }
  }
  for (const std::string& name : checkpoint.names()) {
    if (bnb_4bit && is_bnb_quant_state_tensor(name)) continue;
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
  const bool bnb_4bit = is_bnb_4bit_checkpoint(dir);
  check_hf_tensors(*lazy.skeleton, *checkpoint, dir, bnb_4bit);
  lazy.load = [checkpoint](const std::string& name) { return checkpoint->load(name); };  // stored dtype
  if (bnb_4bit) {
    lazy.load_nf4 = [checkpoint](const std::string& name) { return read_bnb_nf4(*checkpoint, name); };
    lazy.load = [checkpoint](const std::string& name) {
      const std::optional<StoredNf4> nf4 = read_bnb_nf4(*checkpoint, name);
      if (!nf4) return checkpoint->load(name);
      return dequantize_nf4(nf4->tensor, nf4->shape[0] * nf4->shape[1]).view(nf4->shape);
    };
  }
  return lazy;
}

std::map<std::string, Projection*> decoder_projection_weights(CausalLM& model) {
  std::map<std::string, Projection*> found;
  for (const auto& item : model.named_modules()) {
    auto* projection = dynamic_cast<Projection*>(item.value().get());
    if (projection != nullptr && item.key().rfind("model.layers.", 0) == 0) found[item.key() + ".weight"] = projection;
  }
  return found;
}

namespace {

// Loading streams one float32 tensor at a time through the allocator; glibc keeps the freed
// blocks in its heap (its mmap threshold rises to the size of freed large blocks) and reuses
// them for the next, so without this the pages the float32 tensors touched accumulate and a
// quantized model peaks at the float32 model's footprint while loading. Handing the free heap
// pages back after each projection keeps the peak near the quantized size.
void release_freed_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace

void load_quantized_projection(LazyModel& lazy, const std::string& name, Projection& projection,
                               const LoadOptions& options, const std::string& path) {
  if (options.quantize == BaseQuantization::kKeep) {
    auto [type, blocks] = lazy.load_blocks(name);
    if (type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16) {
      projection.weight.set_data(lazy.load(name).to(options.device, options.dtype));
      projection.weight.set_requires_grad(false);
      return;
    }
    if (!keepable_ggml_type(type)) {
      throw bad_input("block type " + ggml_type_name(type) + " cannot be kept as stored (supported: " +
                      keepable_ggml_type_names() + "); use nf4 or int8 instead")
          .file(path)
          .tensor(lazy.skeleton->gguf_tensor_name(name))
          .key(options.quantize_key);
    }
    keep_projection_blocks(projection, type, blocks, options.dtype, options.device);
    release_freed_memory();
    return;
  }
  if (options.quantize == BaseQuantization::kNf4 && lazy.load_nf4) {
    if (std::optional<StoredNf4> stored = lazy.load_nf4(name)) {  // bitsandbytes' own codes, as stored
      use_nf4_tensor(projection, std::move(stored->tensor), options.dtype, options.device);
      return;
    }
  }
  if (options.quantize == BaseQuantization::kNone) {
    projection.weight.set_data(lazy.load(name).to(options.device, options.dtype));
    return;
  }
  projection.weight.set_data(lazy.load(name).to(at::kFloat));  // CPU, one tensor at a time
  if (options.quantize == BaseQuantization::kNf4) {
    quantize_projection_nf4(projection, options.dtype, options.device);
  } else {
    projection.quantize_int8(options.dtype, options.device);
  }
  release_freed_memory();
}

namespace {

LoadedModel load_quantized_model(const std::string& path, const LoadOptions& options) {
  LazyModel lazy = open_model_lazily(path);
  if (options.quantize == BaseQuantization::kKeep && !lazy.from_gguf) {
    throw bad_input("quantize 'keep' keeps a GGUF file's own blocks, and this model is not a .gguf file; use nf4 or "
                    "int8 to quantize its weights at load")
        .file(path)
        .key(options.quantize_key);
  }
  CausalLM& model = *lazy.skeleton;
  const std::map<std::string, Projection*> projections = decoder_projection_weights(model);
  c10::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    try {
      if (auto found = projections.find(item.key()); found != projections.end()) {
        load_quantized_projection(lazy, item.key(), *found->second, options, path);
      } else {
        item.value().set_data(lazy.load(item.key()).to(options.device, options.dtype));
      }
    } catch (const Error& error) {
      throw error.with_defaults({path, -1, "", lazy.from_gguf ? model.gguf_tensor_name(item.key()) : item.key()});
    }
  }
  model.eval();
  return {lazy.skeleton, path, lazy.from_gguf};
}

}  // namespace

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw bad_input("no such file or directory").file(path);
  // Quantized storages, and bitsandbytes checkpoints (their weights are not plain tensors), load
  // one tensor at a time through the lazy reader.
  if (options.quantize != BaseQuantization::kNone || (fs::is_directory(path) && is_bnb_4bit_checkpoint(path))) {
    return load_quantized_model(path, options);
  }
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
