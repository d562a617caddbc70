// The recipe's field table: one place that names every key, its type, default and choices.
#include "recipe/recipe.h"

#include "io/atomic_file.h"
#include "io/config_visitor.h"
#include "io/error.h"

namespace retort {
namespace {

void describe(Recipe& r, ConfigVisitor& v) {
  v.field("name", r.name, "a name for the run");
  v.field("method", r.method, "sft, kd or kd_offline (default: sft, or what the distill section implies)");
  v.section("model", [&](ConfigVisitor& s) {
    s.field("path", r.model.path, "HF model directory, .gguf file or Hugging Face id (org/name[@revision][/file]) in the local cache");
    s.choice("dtype", r.model.dtype, {"float32", "bfloat16", "float16"}, "weights' dtype");
    s.field("device", r.model.device, "cpu, cuda or cuda:N");
    s.choice("quantize", r.model.quantize, {"none", "int8", "nf4", "keep"},
             "frozen base projections kept quantized in memory (LoRA only): int8 rows, nf4 (QLoRA), or keep "
             "(a .gguf file's own blocks as stored)");
  });
  v.section("tokenizer", [&](ConfigVisitor& s) {
    s.field("path", r.tokenizer.path, "tokenizer file or directory (default: the model's)");
    s.field("chat_template", r.tokenizer.chat_template, "built-in template name (default: recognised)");
  });
  v.section("data", [&](ConfigVisitor& s) {
    s.field("train", r.data.train, "training JSONL (relative paths: from the recipe's folder)");
    s.field("validation", r.data.validation, "validation JSONL");
    s.field("validation_fraction", r.data.validation_fraction, "share of train held out");
    s.choice("format", r.data.format, {"chat", "alpaca", "text"}, "example format");
    s.section("fields", [&](ConfigVisitor& f) {
      f.field("messages", r.data.fields.messages, "chat: the message list");
      f.field("conversations", r.data.fields.conversations, "chat: a ShareGPT turn list");
      f.field("tools", r.data.fields.tools, "chat: tool definitions");
      f.field("text", r.data.fields.text, "text: the document");
      f.field("instruction", r.data.fields.instruction, "alpaca: the instruction");
      f.field("input", r.data.fields.input, "alpaca: the optional input");
      f.field("output", r.data.fields.output, "alpaca: the answer");
    });
    s.field("prompt_template", r.data.prompt_template,
            "alpaca layout: alpaca, chat, or a prompt with {instruction} and {input}");
    s.field("max_seq_len", r.data.max_seq_len, "tokens per example (and per packed row) at most");
    s.choice("length_policy", r.data.length_policy, {"drop", "truncate_turns", "split"},
             "long examples: drop, remove whole turns (chat), split (text)");
    s.field("packing", r.data.packing, "pack examples into full rows");
    s.field("pad_to_multiple", r.data.pad_to_multiple, "pad batch width up to a multiple of this");
    s.choice("train_on", r.data.train_on, {"assistant", "last_assistant", "all"}, "which tokens carry loss");
    s.choice("on_bad_example", r.data.on_bad_example, {"error", "skip"}, "malformed lines");
    s.choice("control_tokens_in_content", r.data.control_tokens_in_content, {"literal", "parse", "skip"},
             "control-token strings in message text: read as text, as control tokens, or drop the example");
    s.field("train_reasoning", r.data.train_reasoning,
            "Qwen3-style <think> blocks in assistant turns: trained (true) or rendered but masked");
    s.field("system_prompt", r.data.system_prompt, "system prompt added where a conversation has none");
    s.field("num_workers", r.data.num_workers, "tokenizing threads (0: one per core)");
  });
  v.section("lora", [&](ConfigVisitor& s) {
    s.field("enabled", r.lora.enabled, "false: full fine-tuning");
    s.field("rank", r.lora.rank, "LoRA rank r");
    s.field("alpha", r.lora.alpha, "LoRA alpha");
    s.field("dropout", r.lora.dropout, "dropout on the LoRA input");
    s.field("use_rslora", r.lora.use_rslora, "scale by alpha/sqrt(r)");
    s.field("use_dora", r.lora.use_dora, "weight-decomposed LoRA");
    s.field("target_modules", r.lora.target_modules, "projection names to adapt");
  });
  v.section("optimizer", [&](ConfigVisitor& s) {
    s.choice("name", r.optimizer.name, {"adamw"}, "optimizer");
    s.field("lr", r.optimizer.lr, "peak learning rate");
    s.field("weight_decay", r.optimizer.weight_decay, "decoupled weight decay (>= 2-D weights only)");
    s.field("beta1", r.optimizer.beta1, "Adam beta1");
    s.field("beta2", r.optimizer.beta2, "Adam beta2");
    s.field("eps", r.optimizer.eps, "Adam epsilon");
    s.field("max_grad_norm", r.optimizer.max_grad_norm, "gradient clipping norm (0: off)");
  });
  v.section("scheduler", [&](ConfigVisitor& s) {
    s.choice("name", r.scheduler.name, {"constant", "linear", "cosine"}, "learning-rate schedule");
    s.field("warmup_steps", r.scheduler.warmup_steps, "linear warmup steps");
    s.field("min_lr_ratio", r.scheduler.min_lr_ratio, "final lr as a share of the peak");
  });
  v.section("training", [&](ConfigVisitor& s) {
    s.field("micro_batch_size", r.training.micro_batch_size, "examples per forward pass");
    s.field("gradient_accumulation", r.training.gradient_accumulation, "micro-batches per optimizer step");
    s.field("max_steps", r.training.max_steps, "optimizer steps (0: use epochs)");
    s.field("epochs", r.training.epochs, "passes over the data");
    s.field("max_minutes", r.training.max_minutes, "wall-time limit (0: none)");
    s.field("seed", r.training.seed, "seed for init, shuffling and dropout");
    s.choice("precision", r.training.precision, {"float32", "bfloat16", "float16"}, "compute precision");
    s.field("activation_checkpointing", r.training.activation_checkpointing, "recompute layers in backward");
    s.field("eval_every_steps", r.training.eval_every_steps, "validation cadence (0: at the end)");
  });
  v.section("checkpoint", [&](ConfigVisitor& s) {
    s.field("output_dir", r.checkpoint.output_dir, "where checkpoints, metrics and exports go");
    s.field("every_steps", r.checkpoint.every_steps, "checkpoint cadence (0: at the end)");
    s.field("keep_last", r.checkpoint.keep_last, "checkpoints kept");
    s.field("resume", r.checkpoint.resume, "resume from the latest checkpoint in output_dir");
    s.field("on_signal", r.checkpoint.on_signal,
            "SIGINT/SIGTERM/SIGUSR1 finish the step, write a checkpoint and exit 130/143/138");
  });
  v.section("logging", [&](ConfigVisitor& s) {
    s.field("every_steps", r.logging.every_steps, "progress line cadence");
    s.field("tensorboard", r.logging.tensorboard, "write TensorBoard event files");
  });
  v.section("distill", [&](ConfigVisitor& s) {
    s.field("teacher", r.distill.teacher, "teacher model (HF directory, .gguf or cached Hugging Face id); empty: supervised fine-tuning");
    s.choice("teacher_dtype", r.distill.teacher_dtype, {"float32", "bfloat16", "float16"},
             "teacher activations (and weights unless quantised)");
    s.choice("teacher_quantize", r.distill.teacher_quantize, {"none", "int8", "nf4", "keep"},
             "int8: the teacher's decoder projections in per-channel weight-only int8 (half of bfloat16)");
    s.field("teacher_devices", r.distill.teacher_devices,
            "devices the teacher's layers are split over in order, e.g. [cuda:0, cuda:1]; empty: model.device");
    s.choice("loss", r.distill.loss, {"forward_kl", "reverse_kl", "jsd", "tv"}, "divergence to the teacher");
    s.field("temperature", r.distill.temperature, "softmax temperature (the loss is scaled by T^2)");
    s.field("alpha", r.distill.alpha, "weight of the KD term (1 - alpha on cross-entropy with the labels)");
    s.field("beta", r.distill.beta, "JSD mixture weight, 0 < beta < 1");
    s.choice("tail", r.distill.tail, {"rest_bucket", "renormalize"},
             "top-k targets: the teacher's remaining mass as one more bucket, or renormalise the k");
    s.field("teacher_cache", r.distill.teacher_cache,
            "offline KD: the cache `retort cache-teacher` writes and `retort run` reads (no teacher loaded)");
    s.field("cache_top_k", r.distill.cache_top_k, "teacher log-probs kept per token in the cache");
    s.choice("cache_log_probs", r.distill.cache_log_probs, {"q16", "float32"},
             "cached log-prob precision: 16-bit fixed point (1/256 nat) or exact float32");
    s.field("cache_shard_sequences", r.distill.cache_shard_sequences, "sequences per cache shard (the resume unit)");
  });
  v.section("export", [&](ConfigVisitor& s) {
    s.field("formats", r.exports.formats, "exports written when the run ends: hf, peft, gguf, gguf-lora");
    s.choice("quant", r.exports.quant, {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"}, "GGUF type");
    s.choice("merge_into", r.exports.merge_into, {"dequantized", "original"},
             "hf/gguf from a quantized base: merge the adapter into the base as trained (dequantized) or into "
             "the checkpoint's own weights (original)");
  });
}

void validate(const Recipe& r, const std::string& source) {
  auto positive = [&](int64_t value, const char* key) {
    if (value <= 0) throw bad_input("must be positive, got " + std::to_string(value)).file(source).key(key);
  };
  positive(r.data.max_seq_len, "data.max_seq_len");
  positive(r.data.pad_to_multiple, "data.pad_to_multiple");
  if (r.data.length_policy == "split" && r.data.format != "text") {
    throw bad_input("length_policy split cuts documents: it needs format text").file(source).key("data.length_policy");
  }
  if (r.data.length_policy == "truncate_turns" && r.data.format == "text") {
    throw bad_input("length_policy truncate_turns removes chat turns; for text use split or drop")
        .file(source)
        .key("data.length_policy");
  }
  positive(r.training.micro_batch_size, "training.micro_batch_size");
  positive(r.training.gradient_accumulation, "training.gradient_accumulation");
  positive(r.checkpoint.keep_last, "checkpoint.keep_last");
  if (r.lora.enabled) positive(r.lora.rank, "lora.rank");
  if (!r.lora.enabled && r.model.quantize != "none") {
    throw bad_input("a quantized base is frozen: quantize " + r.model.quantize +
                    " trains LoRA adapters only (set lora.enabled: true, or model.quantize: none for full fine-tuning)")
        .file(source)
        .key("model.quantize");
  }
  if (r.optimizer.lr <= 0) throw bad_input("must be positive").file(source).key("optimizer.lr");
  if (r.data.validation_fraction < 0 || r.data.validation_fraction >= 1) {
    throw bad_input("must be in [0, 1)").file(source).key("data.validation_fraction");
  }
  if (!r.distill.teacher.empty() || !r.distill.teacher_cache.empty()) {
    positive(r.distill.cache_top_k, "distill.cache_top_k");
    positive(r.distill.cache_shard_sequences, "distill.cache_shard_sequences");
    if (r.distill.temperature <= 0) throw bad_input("must be positive").file(source).key("distill.temperature");
    if (r.distill.alpha < 0 || r.distill.alpha > 1) throw bad_input("must be in [0, 1]").file(source).key("distill.alpha");
    if (r.distill.loss == "jsd" && (r.distill.beta <= 0 || r.distill.beta >= 1)) {
      throw bad_input("must be in (0, 1)").file(source).key("distill.beta");
    }
  }
  for (const std::string& format : r.exports.formats) {
    if (format != "hf" && format != "peft" && format != "gguf" && format != "gguf-lora") {
      throw bad_input("unknown export format '" + format + "' (valid: hf, peft, gguf, gguf-lora)")
          .file(source)
          .key("export.formats");
    }
  }
}

}  // namespace

Recipe parse_recipe(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides) {
  Recipe recipe;
  read_yaml_config(yaml_text, source, overrides, [&](ConfigVisitor& v) { describe(recipe, v); });
  validate(recipe, source);
  return recipe;
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_recipe(read_text_file(path), path, overrides);
}

std::string recipe_to_yaml(const Recipe& recipe) {
  Recipe copy = recipe;
  return write_yaml_config([&](ConfigVisitor& v) { describe(copy, v); });
}

std::vector<std::string> recipe_keys() {
  Recipe recipe;
  return config_keys([&](ConfigVisitor& v) { describe(recipe, v); });
}

}  // namespace retort
