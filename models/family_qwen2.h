// Qwen2 / Qwen2.5: the Llama decoder with q/k/v biases and NEOX-style rope (no q/k row
// permutation in GGUF), optionally sliding-window layers; chat in ChatML.
#pragma once

#include "models/family.h"

namespace retort {

ModelFamily qwen2_family();

// Qwen's sliding-window layers, as transformers' Qwen2Config/Qwen3Config derive them:
// `layer_types` when given, else layers from `max_window_layers` (default 28) on slide by
// `sliding_window` when `use_sliding_window` is true. Sets config.layer_attention when any slides.
void read_qwen_sliding_layers(const HfConfigReader& reader, ModelConfig& config);
// The same keys back (layer_types spelled out), so transformers rebuilds the same layers.
void write_qwen_sliding_layers(const ModelConfig& config, nlohmann::ordered_json& json);

}  // namespace retort
