// `retort tokenize` (ids, pieces, chat rendering with per-token roles) and `retort chat`
// (interactive, streaming, multi-turn).
#include "cli/text_commands.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/model_commands.h"
#include "data/dataset.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "models/generate.h"
#include "lora/lora.h"
#include "models/loader.h"

namespace retort::cli {

chat::ChatRenderOptions generation_prompt_options(const ParsedArgs& args, const TextSide& side) {
  chat::ChatRenderOptions options;
  options.add_generation_prompt = true;
  if (args.has("no-think")) {
    if (side.chat_template->family() != chat::ChatFamily::kQwen3) {
      throw bad_input("chat template '" + side.chat_template->name() + "' has no thinking switch (qwen3 has)")
          .key("no-think");
    }
    options.enable_thinking = false;
  }
  return options;
}

namespace {

chat::Json read_chat_file(const std::string& path, chat::Json& tools) {
  chat::Json json;
  try {
    json = chat::Json::parse(read_text_file(path));
  } catch (const chat::Json::exception& error) {
    throw bad_input(std::string("invalid JSON: ") + error.what()).file(path);
  }
  if (json.is_array()) return json;
  if (json.is_object() && json.contains("messages")) {
    if (json.contains("tools")) tools = json["tools"];
    return json["messages"];
  }
  throw bad_input("expected a list of messages or {\"messages\": [...], \"tools\": [...]}").file(path);
}

int run_tokenize(const ParsedArgs& args) {
  const auto model = args.get("model");
  if (!model) throw bad_input("retort tokenize: --model PATH is required");
  const int given = args.has("text") + args.has("file") + args.has("chat");
  if (given != 1) throw bad_input("retort tokenize: give exactly one of --text, --file, --chat");
  TextSide side = load_text_side(*model, args.get_or("template", ""), args.has("chat"));
  const Tokenizer& tokenizer = *side.tokenizer;
  std::string text;
  std::optional<chat::RenderedChat> rendered;
  bool add_special = !args.has("no-special");
  if (args.has("text")) text = *args.get("text");
  if (args.has("file")) text = read_text_file(*args.get("file"));
  if (args.has("chat")) {
    chat::Json tools = chat::Json::array();
    const chat::Json messages = read_chat_file(*args.get("chat"), tools);
    chat::ChatRenderOptions options = generation_prompt_options(args, side);
    options.add_generation_prompt = args.has("add-generation-prompt");
    options.tools = tools;
    rendered = side.chat_template->render(messages, options);
    text = rendered->text;
    add_special = false;  // the template already wrote BOS where the model wants it
  }
  const std::vector<TokenId> ids = rendered ? encode_user_chat(tokenizer, *rendered, control_token_option(args))
                                            : encode_user_text(tokenizer, text, add_special, args);
  std::vector<std::string> roles(ids.size());
  std::vector<bool> trained(ids.size(), false);
  if (rendered) {
    const auto spans = token_byte_spans(tokenizer, text, ids);
    for (size_t i = 0; i < ids.size(); ++i) {
      for (const auto& segment : rendered->segments) {
        if (spans[i].first >= segment.begin && spans[i].first < segment.begin + segment.text.size()) {
          roles[i] = segment.role;
          trained[i] = segment.trainable;
          break;
        }
      }
    }
  }
  if (args.has("json")) {
    nlohmann::json out = {{"ids", ids}};
    nlohmann::json pieces = nlohmann::json::array();
    for (TokenId id : ids) pieces.push_back(tokenizer.id_to_token(id));
    out["pieces"] = pieces;
    if (rendered) {
      out["text"] = rendered->text;
      out["template"] = side.chat_template->name();
      out["roles"] = roles;
      out["trainable"] = trained;
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (rendered) std::cout << "template: " << side.chat_template->name() << "\n" << rendered->text << "\n---\n";
  for (size_t i = 0; i < ids.size(); ++i) {
    std::cout << ids[i] << "\t" << nlohmann::json(tokenizer.id_to_token(ids[i])).dump();
    if (rendered) std::cout << "\t" << (roles[i].empty() ? "-" : roles[i]) << (trained[i] ? "\ttrained" : "");
    std::cout << "\n";
  }
  std::cout << ids.size() << " tokens\n";
  return 0;
}

// One chat turn: renders the history with a generation prompt, generates, streams the text.
std::string chat_turn(CausalLM& model, const TextSide& side, const chat::Json& history, const SamplingOptions& sampling,
                      chat::ControlTokenPolicy policy, const chat::ChatRenderOptions& options) {
  const chat::RenderedChat rendered = side.chat_template->render(history, options);
  const std::vector<TokenId> prompt = encode_user_chat(*side.tokenizer, rendered, policy);
  StreamDecoder stream(*side.tokenizer, /*skip_special_tokens=*/true);
  std::string reply;
  generate(model, {std::vector<int64_t>(prompt.begin(), prompt.end())}, sampling,
           [&](const std::vector<int64_t>& tokens) {
             const int64_t token = tokens.front();
             const auto& stops = sampling.eos_token_ids;
             if (token < 0 || std::find(stops.begin(), stops.end(), token) != stops.end()) return true;
             const std::string piece = stream.put(static_cast<TokenId>(token));
             reply += piece;
             std::fputs(piece.c_str(), stdout);
             std::fflush(stdout);
             return true;
           });
  const std::string tail = stream.finish();
  reply += tail;
  std::fputs((tail + "\n").c_str(), stdout);
  return reply;
}

int run_chat(const ParsedArgs& args) {
  const auto model_path = args.get("model");
  if (!model_path) throw bad_input("retort chat: --model PATH is required");
  TextSide side = load_text_side(*model_path, args.get_or("template", ""), true);
  LoadOptions load;
  load.dtype = parse_dtype(args.get_or("dtype", "float32"));
  load.device = parse_device(args.get_or("device", "cpu"));
  load.quantize = parse_base_quantization(args.get_or("quantize", "none"), "--quantize");
  load.quantize_key = "--quantize";
  const LoadedModel loaded = load_model(*model_path, load);
  if (const auto adapter = args.get("adapter")) load_peft_adapter(*loaded.model, *adapter);
  SamplingOptions sampling = sampling_from_args(args, 256);
  sampling.eos_token_ids = stop_token_ids(side);
  for (int64_t id : loaded.model->config().eos_token_ids) sampling.eos_token_ids.push_back(id);
  const chat::ControlTokenPolicy policy = control_token_option(args);
  const chat::ChatRenderOptions render_options = generation_prompt_options(args, side);
  std::string system = args.get_or("system", "");
  chat::Json history = chat::Json::array();
  auto reset = [&] {
    history = chat::Json::array();
    if (!system.empty()) history.push_back({{"role", "system"}, {"content", system}});
  };
  reset();
  const bool interactive = ::isatty(0);
  if (interactive) {
    std::printf("retort chat (%s, template %s). /reset clears the conversation, /system TEXT sets the system "
                "prompt, /exit quits.\n", model_path->c_str(), side.chat_template->name().c_str());
  }
  std::string line;
  while (true) {
    if (interactive) std::fputs("> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      reset();
      std::puts("(conversation cleared)");
      continue;
    }
    if (line.rfind("/system", 0) == 0) {
      system = line.size() > 8 ? line.substr(8) : "";
      reset();
      std::puts("(system prompt set; conversation cleared)");
      continue;
    }
    if (line.empty()) continue;
    if (policy == chat::ControlTokenPolicy::kSkip && !side.tokenizer->find_control_strings(line).empty()) {
      std::puts("(not sent: the message holds a control-token string; --control-tokens skip)");
      continue;
    }
    history.push_back({{"role", "user"}, {"content", line}});
    const std::string reply = chat_turn(*loaded.model, side, history, sampling, policy, render_options);
    history.push_back({{"role", "assistant"}, {"content", reply}});
  }
  return 0;
}

}  // namespace

chat::ControlTokenPolicy control_token_option(const ParsedArgs& args) {
  return chat::parse_control_token_policy(args.get_or("control-tokens", "literal"), "control-tokens");
}

std::vector<TokenId> encode_user_chat(const Tokenizer& tokenizer, const chat::RenderedChat& chat,
                                      chat::ControlTokenPolicy policy) {
  if (policy == chat::ControlTokenPolicy::kSkip) {
    const auto hits = chat::control_strings_in_messages(tokenizer, chat);
    if (!hits.empty()) {
      const auto& hit = hits.front();
      throw bad_input("the message holds the control-token string '" + chat.text.substr(hit.begin, hit.end - hit.begin) +
                      "' (--control-tokens skip refuses it; literal reads it as text)")
          .key(hit.message_index >= 0 ? "messages[" + std::to_string(hit.message_index) + "]" : std::string("tools"));
    }
  }
  return chat::encode_rendered(tokenizer, chat,
                               policy == chat::ControlTokenPolicy::kParse ? ControlTokens::kParse : ControlTokens::kLiteral);
}

std::vector<TokenId> encode_user_text(const Tokenizer& tokenizer, const std::string& text, bool add_special_tokens,
                                      const ParsedArgs& args) {
  if (!args.has("control-tokens")) return tokenizer.encode(text, add_special_tokens);
  const chat::ControlTokenPolicy policy = control_token_option(args);
  if (policy == chat::ControlTokenPolicy::kSkip && !tokenizer.find_control_strings(text).empty()) {
    throw bad_input("the text holds a control-token string (--control-tokens skip refuses it)").key("control-tokens");
  }
  return tokenizer.encode(text, add_special_tokens,
                          ControlTokenFilter{policy == chat::ControlTokenPolicy::kParse ? ControlTokens::kParse
                                                                                         : ControlTokens::kLiteral, {}});
}

TextSide load_text_side(const std::string& model_path, const std::string& template_name, bool need_template) {
  TextSide side;
  side.tokenizer = load_tokenizer(model_path);
  if (!template_name.empty()) {
    side.chat_template = chat::ChatTemplate::by_name(template_name);
  } else if (need_template) {
    side.chat_template = data::model_chat_template(model_path, model_path);  // as training uses
  }
  return side;
}

std::vector<int64_t> stop_token_ids(const TextSide& side) {
  std::vector<int64_t> ids;
  if (side.chat_template) {
    for (const std::string& stop : side.chat_template->stop_strings()) {
      if (const auto id = side.tokenizer->token_to_id(stop)) ids.push_back(*id);
    }
  }
  if (const auto eos = side.tokenizer->eos_id()) ids.push_back(*eos);
  if (const auto eot = side.tokenizer->eot_id()) ids.push_back(*eot);
  return ids;
}

CommandSpec tokenize_command() {
  return {"tokenize",
          "Show the ids and pieces a model's tokenizer produces; --chat renders a conversation with the model's "
          "chat template and shows each token's role.",
          "retort tokenize --model PATH (--text TEXT | --file FILE | --chat FILE.json) [options]",
          {{"model", "PATH", "model directory, tokenizer file, .gguf or cached Hugging Face id"},
           {"text", "TEXT", "text to tokenize"},
           {"file", "FILE", "file whose contents to tokenize"},
           {"chat", "FILE", "JSON conversation: [messages] or {\"messages\": [...], \"tools\": [...]}"},
           {"template", "NAME", "chat template by name (default: recognised from the model)"},
           {"add-generation-prompt", "", "--chat: end with the assistant header"},
           {"no-think", "", "--chat, Qwen3: the assistant header ends in an empty <think> block (enable_thinking=false)"},
           {"no-special", "", "--text/--file: do not add BOS/EOS"},
           kControlTokensOption,
           {"json", "", "print {\"ids\", \"pieces\"[, \"text\", \"roles\", \"trainable\"]}"}},
          0,
          0,
          run_tokenize};
}

CommandSpec chat_command() {
  return {"chat",
          "Interactive multi-turn chat with streaming output, using the model's chat template.",
          "retort chat --model PATH [options]   (commands: /reset, /system TEXT, /exit)",
          {{"model", "PATH", "model directory, .gguf or cached Hugging Face id"},
           {"adapter", "DIR", "PEFT LoRA/DoRA adapter directory to apply"},
           {"template", "NAME", "chat template by name (default: recognised from the model)"},
           {"system", "TEXT", "system prompt"},
           {"no-think", "", "Qwen3: answer without a <think> block (enable_thinking=false)"},
           {"max-new-tokens", "N", "tokens per reply at most (default 256)"},
           {"temperature", "T", "0 = greedy (default)"},
           {"top-p", "P", "nucleus sampling mass"},
           {"seed", "S", "sampling seed"},
           {"dtype", "TYPE", "float32 (default), bfloat16 or float16"},
           {"quantize", "Q", "keep the decoder projections quantized in memory: none (default), int8, nf4, or keep"},
           {"device", "DEV", "cpu (default), cuda or cuda:N"},
           kControlTokensOption},
          0,
          0,
          run_chat};
}

}  // namespace retort::cli
