// `retort data inspect`: counts, token statistics, the share of tokens trained, the first example
// whose messages hold control-token strings (marked), and one example rendered with trained
// tokens marked (green on a terminal, [[...]] otherwise); --json prints every kept example's ids
// and labels, one JSON object a line.
#include "cli/data_command.h"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "data/dataset.h"
#include "io/error.h"
#include "recipe/recipe.h"

namespace retort::cli {
namespace {

// The example rendered token by token, trained runs marked.
std::string render_marked(const Tokenizer& tokenizer, const data::TokenizedSequence& sequence, bool colour) {
  const std::string open = colour ? "\x1b[32m" : "[[", close = colour ? "\x1b[0m" : "]]";
  std::string out;
  bool in_trained = false;
  std::vector<TokenId> run;
  auto flush = [&] {
    if (run.empty()) return;
    const std::string text = tokenizer.decode(run, false);
    out += in_trained ? open + text + close : (colour ? "\x1b[2m" + text + "\x1b[0m" : text);
    run.clear();
  };
  for (size_t i = 0; i < sequence.ids.size(); ++i) {
    const bool trained = sequence.labels[i] != data::kIgnoreLabel;
    if (trained != in_trained) flush();
    in_trained = trained;
    run.push_back(sequence.ids[i]);
  }
  flush();
  return out;
}

// Up to `radius` bytes each side of [begin, end), widened to whole UTF-8 characters.
std::pair<size_t, size_t> text_window(const std::string& text, size_t begin, size_t end, size_t radius) {
  size_t from = begin > radius ? begin - radius : 0, to = std::min(text.size(), end + radius);
  while (from > 0 && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) --from;
  while (to < text.size() && (static_cast<unsigned char>(text[to]) & 0xC0) == 0x80) ++to;
  return {from, to};
}

// The first example whose messages hold a control-token string, the strings marked (red on a
// terminal, {!...!} otherwise) in the text around them.
void show_control_strings(const data::DataPipeline& pipeline, const data::ExampleSource& source, int64_t index,
                          const Tokenizer& tokenizer, bool colour) {
  const data::Example example = pipeline.parse(source, index);
  const chat::RenderedChat chat = pipeline.encoder().render(example);
  const auto hits = chat::control_strings_in_messages(tokenizer, chat);
  if (hits.empty()) return;
  const ErrorContext where = source.where(index);
  const std::string open = colour ? "\x1b[1;31m" : "{!", close = colour ? "\x1b[0m" : "!}";
  std::cout << "\ncontrol-token strings in the messages of " << where.file
            << (where.line > 0 ? ":" + std::to_string(where.line) : std::string()) << " (marked "
            << (colour ? "in red" : "{!...!}") << "; data.control_tokens_in_content: "
            << chat::control_token_policy_name(pipeline.encoder().options().control_tokens) << "):\n";
  for (size_t i = 0; i < hits.size(); ++i) {
    const auto& hit = hits[i];
    const auto [from, to] = text_window(chat.text, hit.begin, hit.end, 60);
    std::string shown = chat.text.substr(from, hit.begin - from) + open + chat.text.substr(hit.begin, hit.end - hit.begin) +
                        close + chat.text.substr(hit.end, to - hit.end);
    for (char& c : shown) c = c == '\n' ? ' ' : c;
    const std::string who = hit.message_index >= 0 ? "messages[" + std::to_string(hit.message_index) + "] (" + hit.role + ")"
                                                   : std::string("tool definitions");
    std::cout << "  " << who << ": ..." << shown << "...\n";
  }
}

int run_data(const ParsedArgs& args) {
  if (args.positionals.empty() || args.positionals[0] != "inspect") {
    throw bad_input("retort data: the subcommand is 'inspect' (retort data inspect --help)");
  }
  Recipe recipe;
  if (const auto recipe_path = args.get("recipe")) {
    if (args.has("model") || args.has("data")) throw bad_input("retort data inspect: give --recipe or --model/--data, not both");
    recipe = load_recipe(*recipe_path, std::vector<std::string>(args.positionals.begin() + 1, args.positionals.end()));
  } else {
    if (!args.has("model") || !args.has("data")) {
      throw bad_input("retort data inspect: give --recipe R.yaml, or --model M and --data F");
    }
    if (args.positionals.size() > 1) throw bad_input("retort data inspect: key=value overrides need --recipe");
    recipe.model.path = *args.get("model");
    recipe.data.train = *args.get("data");
    recipe.data.format = args.get_or("format", "chat");
    recipe.data.max_seq_len = args.get_int("max-seq-len", recipe.data.max_seq_len);
    recipe.data.train_on = args.get_or("train-on", recipe.data.train_on);
    recipe.data.length_policy = args.get_or("length-policy", recipe.data.length_policy);
    recipe.data.on_bad_example = args.get_or("on-bad-example", recipe.data.on_bad_example);
    recipe.data.control_tokens_in_content = args.get_or("control-tokens", recipe.data.control_tokens_in_content);
    recipe.data.system_prompt = args.get_or("system-prompt", "");
    recipe.data.prompt_template = args.get_or("prompt-template", recipe.data.prompt_template);
    recipe.tokenizer.chat_template = args.get_or("template", "");
  }
  const data::RecipeText text = data::load_recipe_text(recipe);
  const chat::ChatTemplate* chat_template = text.template_or_null();
  const data::ExampleEncoder encoder(*text.tokenizer, chat_template, data::encode_options(recipe.data));
  const data::DataPipeline pipeline(data::format_options(recipe.data), encoder);

  if (args.has("json")) {
    // Every example in file order, as training would see it before packing.
    const auto source = data::ExampleSource::open(recipe.data.train);
    const bool skip_bad = recipe.data.on_bad_example == "skip";
    for (int64_t index = 0; index < source->size(); ++index) {
      data::EncodedExample encoded;
      try {
        encoded = pipeline.encode(*source, index);
      } catch (const Error& error) {
        if (!skip_bad || error.kind() != ErrorKind::kBadInput) throw;
        continue;
      }
      for (size_t part = 0; part < encoded.sequences.size(); ++part) {
        const nlohmann::json line = {{"line", source->where(index).line}, {"part", part},
                                     {"ids", encoded.sequences[part].ids}, {"labels", encoded.sequences[part].labels}};
        std::cout << line.dump() << "\n";
      }
    }
    return 0;
  }

  const data::PreparedData prepared = data::prepare_data(recipe.data, pipeline, static_cast<uint64_t>(recipe.training.seed));
  std::cout << "dataset: " << recipe.data.train << " (format " << recipe.data.format
            << (chat_template ? ", template " + chat_template->name() : std::string()) << ", max_seq_len "
            << recipe.data.max_seq_len << ", length_policy " << recipe.data.length_policy << ", train_on "
            << recipe.data.train_on << ")\n";
  std::cout << data::describe_stats(prepared.train.scan.stats, prepared.train.scan.sequences, recipe.data.max_seq_len);
  if (prepared.validation) {
    std::cout << "validation (" << prepared.validation->source->path() << "):\n"
              << data::describe_stats(prepared.validation->scan.stats, prepared.validation->scan.sequences,
                                      recipe.data.max_seq_len);
  }
  const bool colour = ::isatty(1) && !std::getenv("NO_COLOR");
  if (const int64_t first = prepared.train.scan.stats.first_control_example; first >= 0) {
    show_control_strings(pipeline, *prepared.train.source, first, *text.tokenizer, colour);
  }
  const auto& sequences = prepared.train.scan.sequences;
  const int64_t shown = args.get_int("example", 0);
  if (sequences.empty()) return 0;
  if (shown < 0 || shown >= static_cast<int64_t>(sequences.size())) {
    throw bad_input("--example must be in [0, " + std::to_string(sequences.size()) + ")");
  }
  const data::SequenceRef& ref = sequences[static_cast<size_t>(shown)];
  const data::EncodedExample encoded = pipeline.encode(*prepared.train.source, ref.example);
  const data::TokenizedSequence& sequence = encoded.sequences[static_cast<size_t>(ref.part)];
  const ErrorContext where = prepared.train.source->where(ref.example);
  const std::string location = where.file + (where.line > 0 ? ":" + std::to_string(where.line) : " " + where.key);
  std::cout << "\nexample " << shown << " (" << location << ", " << sequence.ids.size() << " tokens, "
            << sequence.trained_tokens() << " trained; "
            << (colour ? "trained text in green" : "trained text in [[...]]") << "):\n"
            << render_marked(*text.tokenizer, sequence, colour) << "\n";
  return 0;
}

}  // namespace

CommandSpec data_command() {
  return {"data",
          "Inspect a dataset as a recipe would see it: counts, masking, truncation.",
          "retort data inspect (--recipe R.yaml [key=value ...] | --model M --data F) [options]",
          {{"recipe", "R.yaml", "read the model, tokenizer and data settings from a recipe"},
           {"model", "PATH", "model directory, tokenizer file, .gguf or cached Hugging Face id (with --data)"},
           {"data", "FILE", "JSONL (or JSON array) dataset"},
           {"format", "chat|alpaca|text", "example format (default chat)"},
           {"template", "NAME", "chat template (default: recognised from the model)"},
           {"max-seq-len", "N", "tokens per example at most (default 2048)"},
           {"length-policy", "drop|truncate_turns|split", "what happens to longer examples (default drop)"},
           {"train-on", "assistant|last_assistant|all", "which tokens carry loss (default assistant)"},
           {"on-bad-example", "error|skip", "malformed examples: stop or skip and count (default error)"},
           {"control-tokens", "literal|parse|skip",
            "control-token strings in message text: as text, as control tokens, or drop the example (default literal)"},
           {"system-prompt", "TEXT", "added to conversations that have no system message"},
           {"prompt-template", "alpaca|chat|TEXT", "Alpaca layout (default alpaca)"},
           {"example", "N", "which kept sequence to show (default 0)"},
           {"json", "", "print each example's ids and labels (-100 = not trained), one JSON object a line"}},
          1,
          -1,
          run_data};
}

}  // namespace retort::cli
