// A recipe: the YAML file a user writes to fine-tune (and later distill), parsed into typed
// sections with defaults. Every field is described once in recipe.cpp (read, print, override).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace retort {

struct ModelSection {
  std::string path;  // HF directory or .gguf
  std::string dtype = "float32";
  std::string device = "cpu";
  // none | int8 | nf4 | keep: the decoder projections stay quantized in memory, frozen
  // (docs/quantized-bases.md); keep needs a .gguf model.
  std::string quantize = "none";
};

struct TokenizerSection {
  std::string path;           // default: the model's own tokenizer
  std::string chat_template;  // default: recognised from the model; or a built-in name, or a template file
};

// The JSON keys examples are read from.
struct DataFieldsSection {
  std::string messages = "messages";
  std::string conversations = "conversations";
  std::string tools = "tools";
  std::string text = "text";
  std::string instruction = "instruction";
  std::string input = "input";
  std::string output = "output";
};

struct DataSection {
  std::string train;                 // JSONL (or a JSON array); relative to the recipe's folder
  std::string validation;            // a separate file, or
  double validation_fraction = 0.0;  // a share of `train`
  std::string format = "chat";       // chat | alpaca | text
  DataFieldsSection fields;
  std::string prompt_template = "alpaca";  // alpaca: alpaca | chat | a custom "{instruction}...{input}"
  int64_t max_seq_len = 2048;
  std::string length_policy = "drop";  // drop | truncate_turns (chat) | split (text)
  bool packing = false;
  int64_t pad_to_multiple = 1;
  std::string train_on = "assistant";    // assistant | last_assistant | all
  std::string on_bad_example = "error";  // error | skip
  // Control-token strings ("<|im_end|>") inside chat messages: literal (read as text) | parse (as
  // control tokens, HF's default) | skip (drop the example); docs/data-and-training.md.
  std::string control_tokens_in_content = "literal";
  // Templates with reasoning blocks (Qwen3's <think>): whether assistant reasoning is trained.
  bool train_reasoning = true;
  std::string system_prompt;
  int64_t num_workers = 0;  // tokenizing threads; 0: one per core
};

struct LoraSection {
  bool enabled = true;
  int64_t rank = 16;
  double alpha = 32.0;
  double dropout = 0.05;
  bool use_rslora = false;
  bool use_dora = false;
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"};
};

struct OptimizerSection {
  std::string name = "adamw";
  double lr = 2e-4;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double max_grad_norm = 1.0;  // 0: no clipping
};

struct SchedulerSection {
  std::string name = "cosine";  // constant | linear | cosine
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
};

struct TrainingSection {
  int64_t micro_batch_size = 1;
  int64_t gradient_accumulation = 1;
  int64_t max_steps = 0;  // 0: run `epochs`
  int64_t epochs = 1;
  double max_minutes = 0;  // 0: no wall-time limit
  int64_t seed = 0;
  std::string precision = "float32";  // float32 | bfloat16 | float16
  bool activation_checkpointing = false;
  int64_t eval_every_steps = 0;
};

struct CheckpointSection {
  std::string output_dir = "runs/default";
  int64_t every_steps = 0;  // 0: only at the end
  int64_t keep_last = 2;
  bool resume = true;
  bool on_signal = true;  // SIGINT/SIGTERM/SIGUSR1: finish the step, checkpoint, exit 130/143/138
};

struct LoggingSection {
  int64_t every_steps = 1;
  bool tensorboard = true;
};

struct ExportSection {
  std::vector<std::string> formats;  // hf | peft | gguf | gguf-lora
  std::string quant = "f16";
  // hf/gguf from a quantized base (model.quantize): dequantized (the base as trained) | original
  // (the checkpoint's own weights).
  std::string merge_into = "dequantized";
};

// Logit distillation from a teacher sharing the student's tokenizer (methods kd and kd_offline).
struct DistillSection {
  std::string teacher;              // HF model directory or .gguf
  std::string teacher_dtype = "float32";  // float32 | bfloat16 | float16: activations and unquantised weights
  std::string teacher_quantize = "none";  // none | int8 | nf4 | keep, on the decoder projections (as model.quantize)
  std::vector<std::string> teacher_devices;  // decoder layers split over these in order; empty: model.device
  std::string loss = "forward_kl";  // forward_kl | reverse_kl | jsd | tv
  double temperature = 1.0;
  double alpha = 0.5;  // weight of the KD term; 1 - alpha on the labels' cross-entropy
  double beta = 0.5;   // jsd only
  std::string tail = "rest_bucket";  // top-k targets: rest_bucket | renormalize
  // Offline KD: `retort cache-teacher` runs `teacher` over the data into this directory once;
  // `retort run` then reads the targets from it and never loads the teacher.
  std::string teacher_cache;
  int64_t cache_top_k = 64;
  std::string cache_log_probs = "q16";  // q16 | float32
  int64_t cache_shard_sequences = 512;
};

struct Recipe {
  std::string name;
  // The training method (run/method.h): sft | kd | kd_offline. Empty: what the distill section
  // implies (teacher_cache: kd_offline, teacher: kd, neither: sft).
  std::string method;
  ModelSection model;
  TokenizerSection tokenizer;
  DataSection data;
  LoraSection lora;
  OptimizerSection optimizer;
  SchedulerSection scheduler;
  TrainingSection training;
  CheckpointSection checkpoint;
  LoggingSection logging;
  ExportSection exports;
  DistillSection distill;
};

// Reads a recipe file and applies "a.b=value" overrides; bad_input with file:line and key.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});
Recipe parse_recipe(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
std::string recipe_to_yaml(const Recipe& recipe);
std::vector<std::string> recipe_keys();

}  // namespace retort
