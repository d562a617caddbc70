// Model-level commands: generation, logits dumps and evaluation (loss, perplexity).
#include "cli/model_commands.h"

#include "cli/text_commands.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <fstream>
#include <iostream>

#include "distill/synthetic_data.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "io/stop_signal.h"
#include "lora/lora.h"
#include "models/generate.h"
#include "models/loader.h"
#include "finetune/sft_step.h"
#include "train/trainer.h"

namespace retort::cli {
namespace {

const OptionSpec kModelOption{"model", "PATH", "HF model directory (config.json + safetensors), .gguf file or cached Hugging Face id (org/name)"};
const OptionSpec kAdapterOption{"adapter", "DIR", "PEFT LoRA/DoRA adapter directory to apply"};
const OptionSpec kDtypeOption{"dtype", "TYPE", "float32 (default), bfloat16 or float16"};
const OptionSpec kDeviceOption{"device", "DEV", "cpu (default), cuda or cuda:N"};
const OptionSpec kQuantizeOption{"quantize", "Q",
                                 "keep the decoder projections quantized in memory: none (default), int8, nf4, or keep "
                                 "(a .gguf file's own blocks)"};

LoadedModel load_from_args(const ParsedArgs& args) {
  const auto path = args.get("model");
  if (!path) throw bad_input("retort " + args.command + ": --model PATH is required");
  LoadOptions options;
  options.dtype = parse_dtype(args.get_or("dtype", "float32"));
  options.device = parse_device(args.get_or("device", "cpu"));
  options.quantize = parse_base_quantization(args.get_or("quantize", "none"), "--quantize");
  options.quantize_key = "--quantize";
  LoadedModel loaded = load_model(*path, options);
  if (const auto adapter = args.get("adapter")) load_peft_adapter(*loaded.model, *adapter);
  return loaded;
}

std::string ids_text(const std::vector<int64_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out;
}

// Text prompts: through the model's chat template (a user turn, optional system prompt), or
// encoded as they are with --raw.
std::vector<std::vector<int64_t>> text_prompts(const ParsedArgs& args, const TextSide& side) {
  std::vector<std::vector<int64_t>> prompts;
  for (const std::string& text : args.values.at("prompt")) {
    std::vector<TokenId> ids;
    if (args.has("raw")) {
      ids = encode_user_text(*side.tokenizer, text, /*add_special_tokens=*/true, args);
    } else {
      chat::Json messages = chat::Json::array();
      if (args.has("system")) messages.push_back({{"role", "system"}, {"content", *args.get("system")}});
      messages.push_back({{"role", "user"}, {"content", text}});
      const chat::ChatRenderOptions options = generation_prompt_options(args, side);
      ids = encode_user_chat(*side.tokenizer, side.chat_template->render(messages, options), control_token_option(args));
    }
    prompts.emplace_back(ids.begin(), ids.end());
  }
  return prompts;
}

// generate --prompts FILE --out FILE: teacher-written answers as a chat dataset (distill/synthetic_data.h).
int run_generate_dataset(const ParsedArgs& args) {
  SyntheticDataOptions options;
  options.prompts_path = *args.get("prompts");
  const auto out_path = args.get("out");
  if (!out_path) throw bad_input("retort generate --prompts needs --out FILE.jsonl").key("out");
  options.out_path = *out_path;
  options.samples_per_prompt = args.get_int("samples-per-prompt", 1);
  options.batch_size = args.get_int("batch-size", 8);
  read_prompt_conversations(options.prompts_path);  // bad prompts are reported before the model loads
  const TextSide side = load_text_side(*args.get("model"), args.get_or("template", ""), true);
  LoadedModel loaded = load_from_args(args);
  options.sampling = sampling_from_args(args, 256);
  options.sampling.eos_token_ids = loaded.model->config().eos_token_ids;
  for (int64_t id : stop_token_ids(side)) options.sampling.eos_token_ids.push_back(id);
  options.sampling.pad_token_id = loaded.model->config().pad_token_id.value_or(0);
  const chat::ControlTokenPolicy policy = control_token_option(args);
  options.encode_prompt = [&](const nlohmann::ordered_json& messages) {
    const chat::ChatRenderOptions render = generation_prompt_options(args, side);
    const auto ids = encode_user_chat(*side.tokenizer, side.chat_template->render(messages, render), policy);
    return std::vector<int64_t>(ids.begin(), ids.end());
  };
  options.info = [](const std::string& line) { std::cerr << line << "\n"; };
  const SyntheticDataOutcome outcome = write_synthetic_dataset(*loaded.model, *side.tokenizer, options);
  if (outcome.stop_signal == 0) return 0;
  std::cerr << "stopped by " << signal_name(outcome.stop_signal) << " after " << outcome.answers_done << " of "
            << outcome.answers_total << " answers (the batch in progress was dropped)\n";
  std::cout << options.out_path << " holds " << outcome.answers_done << " of " << outcome.answers_total
            << " answers; run the same command again to continue\n";
  return exit_status_for_signal(outcome.stop_signal);
}

int run_generate(const ParsedArgs& args) {
  if (args.has("prompts")) {
    if (args.has("prompt") || args.has("prompt-ids")) throw bad_input("retort generate: --prompts replaces --prompt");
    return run_generate_dataset(args);
  }
  if (args.has("prompt") == args.has("prompt-ids")) {
    throw bad_input("retort generate: give --prompt TEXT or --prompt-ids 1,2,3 (either may repeat for a batch), "
                    "or --prompts FILE.jsonl --out FILE.jsonl");
  }
  std::optional<TextSide> side;
  std::vector<std::vector<int64_t>> prompts;
  if (args.has("prompt")) {
    side = load_text_side(*args.get("model"), args.get_or("template", ""), !args.has("raw"));
    prompts = text_prompts(args, *side);
  } else {
    for (const std::string& text : args.values.at("prompt-ids")) prompts.push_back(parse_id_list(text, "--prompt-ids"));
  }
  SamplingOptions sampling = sampling_from_args(args, 128);
  const LoadedModel loaded = load_from_args(args);
  const ModelConfig& config = loaded.model->config();
  if (!args.has("ignore-eos")) {
    sampling.eos_token_ids = config.eos_token_ids;
    if (side) {
      for (int64_t id : stop_token_ids(*side)) sampling.eos_token_ids.push_back(id);
    }
  }
  sampling.pad_token_id = config.pad_token_id.value_or(0);
  const GenerationResult result = generate(*loaded.model, prompts, sampling);
  for (size_t row = 0; row < result.new_tokens.size(); ++row) {
    const auto& tokens = result.new_tokens[row];
    std::optional<std::string> text;
    if (side) {
      std::vector<TokenId> ids(tokens.begin(), tokens.end() - (result.stopped_on_eos[row] ? 1 : 0));
      text = side->tokenizer->decode(ids, /*skip_special_tokens=*/true);
    }
    if (args.has("json")) {
      nlohmann::json out = {{"ids", tokens}, {"text", nullptr}};
      if (text) out["text"] = *text;
      std::cout << out.dump() << "\n";
    } else {
      std::cout << (text ? *text : ids_text(tokens)) << "\n";
    }
  }
  return 0;
}

int run_logits(const ParsedArgs& args) {
  const auto ids_arg = args.get("prompt-ids");
  const auto out = args.get("out");
  if (!ids_arg || !out) throw bad_input("retort logits: --prompt-ids and --out are required");
  const std::vector<int64_t> ids = parse_id_list(*ids_arg, "--prompt-ids");
  const LoadedModel loaded = load_from_args(args);
  for (int64_t id : ids) {
    if (id >= loaded.model->config().vocab_size) {
      throw bad_input("token id " + std::to_string(id) + " is outside the vocabulary").key("--prompt-ids");
    }
  }
  c10::InferenceMode inference;
  const at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0).to(loaded.model->device());
  at::Tensor hidden = loaded.model->forward_hidden(input, {}).squeeze(0);  // [T, H]
  if (!args.has("all-positions")) hidden = hidden.narrow(0, hidden.size(0) - 1, 1);
  const at::Tensor logits = loaded.model->logits(hidden).to(at::kFloat).to(at::kCPU);
  write_safetensors(*out, {{"logits", logits}});
  std::cerr << "wrote logits " << logits.sizes() << " to " << *out << "\n";
  return 0;
}

// Mean next-token loss over a file of sequences, through the evaluation path validation uses.
int run_eval(const ParsedArgs& args) {
  const auto data = args.get("data");
  if (!data) throw bad_input("retort eval: --data FILE.jsonl is required");
  const int64_t batch_size = args.get_int("batch-size", 8);
  if (batch_size <= 0) throw bad_input("must be positive").key("--batch-size");
  const LoadedModel loaded = load_from_args(args);
  data::TokenSequenceBatches batches(*data, model_tokenizer(*args.get("model")), loaded.model->config().vocab_size,
                                     batch_size);
  SftStep step(*loaded.model);
  c10::InferenceMode inference;
  SingleProcess alone;
  const Evaluation evaluation = evaluate_step(step, batches, alone);
  if (evaluation.normaliser == 0) throw bad_input("no sequence with at least two tokens").file(*data);
  const double mean = evaluation.mean();
  if (args.has("json")) {
    std::cout << nlohmann::json{{"loss", mean}, {"perplexity", std::exp(mean)}, {"tokens", evaluation.normaliser},
                                {"sequences", evaluation.rows}}
                     .dump()
              << "\n";
  } else {
    std::printf("loss %.6f  perplexity %.4f  tokens %lld  sequences %lld\n", mean, std::exp(mean),
                static_cast<long long>(evaluation.normaliser), static_cast<long long>(evaluation.rows));
  }
  return 0;
}

}  // namespace

data::TokenizerSource model_tokenizer(const std::string& model_path) {
  auto tokenizer = std::make_shared<std::unique_ptr<Tokenizer>>();
  return [tokenizer, model_path]() -> const Tokenizer& {
    if (!*tokenizer) *tokenizer = load_tokenizer(model_path);
    return **tokenizer;
  };
}

SamplingOptions sampling_from_args(const ParsedArgs& args, int64_t default_max_new_tokens) {
  SamplingOptions sampling;
  sampling.max_new_tokens = args.get_int("max-new-tokens", default_max_new_tokens);
  if (sampling.max_new_tokens <= 0) throw bad_input("must be positive").key("--max-new-tokens");
  sampling.temperature = args.get_double("temperature", 0.0);
  if (sampling.temperature < 0) throw bad_input("must be >= 0 (0 = greedy)").key("--temperature");
  sampling.greedy = sampling.temperature == 0.0;
  if (sampling.greedy) sampling.temperature = 1.0;
  sampling.top_k = args.get_int("top-k", 0);
  sampling.top_p = args.get_double("top-p", 1.0);
  if (sampling.top_k < 0) throw bad_input("must be >= 0").key("--top-k");
  if (sampling.top_p <= 0 || sampling.top_p > 1) throw bad_input("must be in (0, 1]").key("--top-p");
  sampling.repetition_penalty = args.get_double("repetition-penalty", 1.0);
  if (sampling.repetition_penalty <= 0) throw bad_input("must be positive").key("--repetition-penalty");
  sampling.seed = static_cast<uint64_t>(args.get_int("seed", 0));
  return sampling;
}

std::vector<int64_t> parse_id_list(const std::string& text, const std::string& option) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string piece = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int64_t value = -1;
    const auto [end, ec] = std::from_chars(piece.data(), piece.data() + piece.size(), value);
    if (piece.empty() || ec != std::errc() || end != piece.data() + piece.size() || value < 0) {
      throw bad_input("expected comma-separated token ids like 1,2,3, got '" + text + "'").key(option);
    }
    ids.push_back(value);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ids;
}

CommandSpec generate_command() {
  return {"generate",
          "Generate from a model (HF directory or .gguf) with a KV cache; greedy unless --temperature > 0.",
          "retort generate --model PATH (--prompt TEXT | --prompt-ids 1,2,3 | --prompts FILE.jsonl --out FILE.jsonl) [options]",
          {kModelOption,
           kAdapterOption,
           {"prompt", "TEXT", "a user message, rendered with the model's chat template; repeat for a batch", true},
           {"system", "TEXT", "system prompt for --prompt"},
           {"no-think", "", "Qwen3: answer without a <think> block (enable_thinking=false)"},
           {"template", "NAME", "chat template by name (default: recognised from the model)"},
           {"raw", "", "--prompt is plain text: no chat template (BOS as the tokenizer adds it)"},
           kControlTokensOption,
           {"prompt-ids", "IDS", "comma-separated prompt token ids; repeat for a left-padded batch", true},
           {"max-new-tokens", "N", "tokens to generate at most (default 128)"},
           {"temperature", "T", "0 = greedy (default); > 0 samples"},
           {"top-k", "K", "sample among the K most likely tokens (0 = off)"},
           {"top-p", "P", "nucleus sampling mass (1 = off)"},
           {"repetition-penalty", "R", "HF-style repetition penalty (1 = off)"},
           {"seed", "S", "sampling seed (default 0)"},
           {"ignore-eos", "", "do not stop on the model's EOS ids"},
           {"json", "", "print {\"ids\": [...], \"text\": ...} per prompt (text: null for --prompt-ids)"},
           {"prompts", "FILE", "JSONL of {\"messages\": [...]} or {\"prompt\": ...}: answer each and write a chat dataset"},
           {"out", "FILE", "with --prompts: the JSONL written (resumes when it exists)"},
           {"samples-per-prompt", "N", "with --prompts: answers per prompt (default 1)"},
           {"batch-size", "N", "with --prompts: prompts generated together (default 8)"},
           kDtypeOption,
           kDeviceOption,
           kQuantizeOption},
          0,
          0,
          run_generate};
}

CommandSpec logits_command() {
  return {"logits",
          "Write a model's float32 logits for token ids to a safetensors file (tensor 'logits').",
          "retort logits --model PATH --prompt-ids 1,2,3 --out FILE.safetensors [--all-positions]",
          {kModelOption,
           kAdapterOption,
           {"prompt-ids", "IDS", "comma-separated token ids"},
           {"out", "FILE", "output .safetensors (written atomically)"},
           {"all-positions", "", "logits for every position [T, V] (default: the last one, [1, V])"},
           kDtypeOption,
           kDeviceOption,
           kQuantizeOption},
          0,
          0,
          run_logits};
}

CommandSpec eval_command() {
  return {"eval",
          "Mean loss per token, perplexity and token count of a model on JSONL lines of {\"ids\": [...]} or "
          "{\"text\": \"...\"} (tokenized with the model's tokenizer, BOS as it adds it).",
          "retort eval --model PATH --data FILE.jsonl [--json]",
          {kModelOption,
           kAdapterOption,
           {"data", "FILE", "JSONL, one {\"ids\": [...]} or {\"text\": \"...\"} per line"},
           {"batch-size", "N", "sequences per forward pass (default 8)"},
           {"json", "", "print {\"loss\", \"perplexity\", \"tokens\", \"sequences\"}"},
           kDtypeOption,
           kDeviceOption,
           kQuantizeOption},
          0,
          0,
          run_eval};
}

}  // namespace retort::cli
