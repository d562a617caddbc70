#include "models/bnb_checkpoint.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "io/atomic_file.h"
#include "io/error.h"

namespace retort {
namespace {

constexpr const char* kQuantStateSuffix = ".quant_state.bitsandbytes__nf4";
const std::vector<std::string> kStateSuffixes = {".absmax", ".nested_absmax", ".nested_quant_map", ".quant_map",
                                                 kQuantStateSuffix};

template <typename T>
T config_value(const nlohmann::json& config, const char* key, T fallback) {
  const auto it = config.find(key);
  return it == config.end() || it->is_null() ? fallback : it->get<T>();
}

at::Tensor table_of(const float* values, int64_t n) {
  return at::from_blob(const_cast<float*>(values), {n}, at::kFloat);
}

}  // namespace

bool is_bnb_4bit_checkpoint(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  if (!std::filesystem::exists(path)) return false;
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception&) {
    return false;  // load_hf_config reports a malformed config.json
  }
  const auto quantization = config.find("quantization_config");
  if (quantization == config.end() || !quantization->is_object()) return false;
  if (config_value<std::string>(*quantization, "quant_method", "") != "bitsandbytes") {
    throw bad_input("quantization method '" + config_value<std::string>(*quantization, "quant_method", "") +
                    "' is not supported (supported: bitsandbytes 4-bit nf4)")
        .file(path)
        .key("quantization_config.quant_method");
  }
  auto refuse = [&](const std::string& what, const std::string& key) {
    throw bad_input(what + "; Retort reads bitsandbytes 4-bit nf4 checkpoints with double quantization (or load "
                           "the unquantized model and set model.quantize)")
        .file(path)
        .key("quantization_config." + key);
  };
  if (config_value<bool>(*quantization, "load_in_8bit", false)) refuse("8-bit (LLM.int8) checkpoints are not supported", "load_in_8bit");
  if (!config_value<bool>(*quantization, "load_in_4bit", false)) refuse("expected load_in_4bit", "load_in_4bit");
  if (config_value<std::string>(*quantization, "bnb_4bit_quant_type", "fp4") != "nf4") {
    refuse("4-bit type '" + config_value<std::string>(*quantization, "bnb_4bit_quant_type", "fp4") + "' is not supported",
           "bnb_4bit_quant_type");
  }
  if (!config_value<bool>(*quantization, "bnb_4bit_use_double_quant", false)) {
    refuse("checkpoints without double quantization are not supported", "bnb_4bit_use_double_quant");
  }
  if (config_value<std::string>(*quantization, "bnb_4bit_quant_storage", "uint8") != "uint8") {
    refuse("quant storage other than uint8 is not supported", "bnb_4bit_quant_storage");
  }
  return true;
}

bool is_bnb_quant_state_tensor(const std::string& name) {
  for (const std::string& suffix : kStateSuffixes) {
    if (name.ends_with(suffix) && name.size() > suffix.size()) return true;
  }
  return false;
}

std::optional<StoredNf4> read_bnb_nf4(const SafetensorsCheckpoint& checkpoint, const std::string& name) {
  if (!checkpoint.contains(name + kQuantStateSuffix)) return std::nullopt;
  const std::string file = checkpoint.file_of(name).path();
  auto malformed = [&](const std::string& what, const std::string& tensor) {
    return bad_input("bitsandbytes quant state: " + what).file(file).tensor(tensor);
  };
  for (const std::string& suffix : kStateSuffixes) {
    if (!checkpoint.contains(name + suffix)) throw malformed("missing", name + suffix);
  }
  const at::Tensor state_bytes = checkpoint.load(name + kQuantStateSuffix).contiguous();
  const std::string text(reinterpret_cast<const char*>(state_bytes.data_ptr<uint8_t>()),
                         static_cast<size_t>(state_bytes.numel()));
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    throw malformed(std::string("not JSON: ") + error.what(), name + kQuantStateSuffix);
  }
  if (state.value("quant_type", "") != "nf4" || state.value("blocksize", 0) != kNf4BlockSize ||
      state.value("nested_blocksize", 0) != kNf4AbsmaxBlockSize || !state.contains("shape") ||
      !state.contains("nested_offset")) {
    throw malformed("expected nf4 with blocksize 64, nested_blocksize 256, shape and nested_offset; got " + text,
                    name + kQuantStateSuffix);
  }
  StoredNf4 stored;
  stored.shape = state["shape"].get<std::vector<int64_t>>();
  if (stored.shape.size() != 2) throw malformed("expected a 2-D shape", name + kQuantStateSuffix);
  const int64_t numel = stored.shape[0] * stored.shape[1];
  stored.tensor.codes = checkpoint.load(name).reshape({-1}).contiguous();
  stored.tensor.absmax_codes = checkpoint.load(name + ".absmax").reshape({-1}).contiguous();
  stored.tensor.absmax_scales = checkpoint.load(name + ".nested_absmax", at::kFloat).reshape({-1}).contiguous();
  stored.tensor.absmax_offset = at::full({1}, state["nested_offset"].get<double>(), at::kFloat);
  const int64_t blocks = numel / kNf4BlockSize;
  if (numel % kNf4BlockSize != 0 || stored.tensor.codes.scalar_type() != at::kByte ||
      stored.tensor.codes.numel() != numel / 2 || stored.tensor.absmax_codes.numel() != blocks ||
      stored.tensor.absmax_scales.numel() != (blocks + kNf4AbsmaxBlockSize - 1) / kNf4AbsmaxBlockSize) {
    throw malformed("sizes do not match the shape in the quant state", name);
  }
  // The code books must be the ones Retort dequantizes with.
  if (!at::equal(checkpoint.load(name + ".quant_map", at::kFloat).reshape({-1}), table_of(nf4_code_values().data(), 16))) {
    throw malformed("the 4-bit code book is not NF4's", name + ".quant_map");
  }
  if (!at::equal(checkpoint.load(name + ".nested_quant_map", at::kFloat).reshape({-1}),
                 table_of(dynamic_map_values().data(), 256))) {
    throw malformed("the absmax code book is not bitsandbytes' dynamic map", name + ".nested_quant_map");
  }
  return stored;
}

}  // namespace retort
