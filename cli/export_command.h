// `retort export`: HF safetensors, PEFT adapters, GGUF models and GGUF LoRA adapters.
#pragma once

#include "cli/args.h"

namespace retort::cli {

CommandSpec export_command();

}  // namespace retort::cli
