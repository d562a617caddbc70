#include "data/dataset.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "io/hub_cache.h"
#include "io/error.h"
#include "io/text.h"
#include "models/family.h"

namespace retort::data {

FormatOptions format_options(const DataSection& section) {
  FormatOptions options;
  options.format = parse_example_format(section.format);
  options.fields = {section.fields.messages, section.fields.conversations, section.fields.tools,
                    section.fields.text,     section.fields.instruction,   section.fields.input,
                    section.fields.output};
  options.system_prompt = section.system_prompt;
  options.prompt_template = section.prompt_template;
  if (options.format == ExampleFormat::kAlpaca && options.prompt_template != "alpaca" &&
      options.prompt_template != "chat" && options.prompt_template.find("{instruction}") == std::string::npos) {
    throw bad_input("a custom prompt_template needs an {instruction} placeholder").key("data.prompt_template");
  }
  return options;
}

namespace fs = std::filesystem;

chat::ChatTemplate model_chat_template(const std::string& template_path, const std::string& model_path) {
  std::string source;
  try {
    source = chat::load_chat_template_source(template_path);
  } catch (const Error&) {
    const std::string family_template = family_chat_template_of(model_path);
    if (family_template.empty()) throw;
    return chat::ChatTemplate::by_name(family_template);
  }
  return chat::ChatTemplate::detect(source);
}

RecipeText load_recipe_text(const Recipe& recipe) {
  const std::string model_path = resolve_model_path(recipe.model.path, "model.path");
  const std::string path =
      recipe.tokenizer.path.empty() ? model_path : resolve_model_path(recipe.tokenizer.path, "tokenizer.path");
  if (path.empty()) throw bad_input("no tokenizer: set model.path or tokenizer.path").key("model.path");
  RecipeText text;
  text.tokenizer = load_tokenizer(path);
  const FormatOptions format = format_options(recipe.data);
  const std::string& named = recipe.tokenizer.chat_template;
  if (!named.empty() && (fs::exists(named) || named.find('/') != std::string::npos || named.ends_with(".jinja"))) {
    // A template file (.jinja, tokenizer_config.json, .gguf) as `retort export --chat-template` takes.
    try {
      text.chat_template = chat::ChatTemplate::detect(chat::load_chat_template_source(named));
    } catch (const Error& error) {
      ErrorContext where;
      where.key = "tokenizer.chat_template";
      throw error.with_defaults(where);
    }
  } else if (!named.empty()) {
    text.chat_template = chat::ChatTemplate::by_name(named);
  } else if (format.format == ExampleFormat::kChat || format.prompt_template == "chat") {
    text.chat_template = model_chat_template(path, model_path);
  }
  return text;
}

EncodeOptions encode_options(const DataSection& section) {
  EncodeOptions options;
  options.max_seq_len = section.max_seq_len;
  options.length_policy = parse_length_policy(section.length_policy);
  options.train_on = parse_train_on(section.train_on);
  options.render.train_reasoning = section.train_reasoning;
  options.control_tokens = chat::parse_control_token_policy(section.control_tokens_in_content,
                                                            "data.control_tokens_in_content");
  return options;
}

PreparedData prepare_data(const DataSection& section, const DataPipeline& pipeline, uint64_t seed) {
  if (section.train.empty()) throw bad_input("no training data: set data.train").key("data.train");
  const bool skip_bad = section.on_bad_example == "skip";
  const int threads = static_cast<int>(section.num_workers);
  PreparedData data;
  data.train.source = ExampleSource::open(section.train);
  if (!section.validation.empty()) {
    data.train.scan = scan_dataset(*data.train.source, pipeline, {}, skip_bad, threads);
    DatasetSplit validation;
    validation.source = ExampleSource::open(section.validation);
    validation.scan = scan_dataset(*validation.source, pipeline, {}, skip_bad, threads);
    data.validation = std::move(validation);
  } else if (section.validation_fraction > 0) {
    auto [train, held_out] = split_examples(data.train.source->size(), section.validation_fraction, seed);
    if (train.empty()) throw bad_input("validation_fraction leaves no training example").key("data.validation_fraction");
    data.train.scan = scan_dataset(*data.train.source, pipeline, train, skip_bad, threads);
    DatasetSplit validation;
    validation.source = data.train.source;
    validation.scan = scan_dataset(*validation.source, pipeline, held_out, skip_bad, threads);
    data.validation = std::move(validation);
  } else {
    data.train.scan = scan_dataset(*data.train.source, pipeline, {}, skip_bad, threads);
  }
  return data;
}

std::string describe_stats(const DatasetStats& stats, const std::vector<SequenceRef>& sequences, int64_t max_seq_len) {
  int64_t longest = 0;
  for (const SequenceRef& ref : sequences) longest = std::max<int64_t>(longest, ref.length);
  char line[512];
  std::string out;
  std::snprintf(line, sizeof line, "examples: %lld read, %lld kept (%lld truncated), %lld dropped (over %lld tokens), %lld skipped as bad\n",
                static_cast<long long>(stats.examples), static_cast<long long>(stats.kept),
                static_cast<long long>(stats.truncated), static_cast<long long>(stats.dropped),
                static_cast<long long>(max_seq_len), static_cast<long long>(stats.skipped));
  out += line;
  const double mean = stats.sequences ? static_cast<double>(stats.tokens) / static_cast<double>(stats.sequences) : 0.0;
  const double share = stats.tokens ? 100.0 * static_cast<double>(stats.trained_tokens) / static_cast<double>(stats.tokens) : 0.0;
  std::snprintf(line, sizeof line, "tokens: %lld in %lld sequences (mean %.1f, longest %lld); trained: %lld (%.1f%%)\n",
                static_cast<long long>(stats.tokens), static_cast<long long>(stats.sequences), mean,
                static_cast<long long>(longest), static_cast<long long>(stats.trained_tokens), share);
  out += line;
  if (stats.control_examples > 0) {
    const char* how = stats.control_policy == chat::ControlTokenPolicy::kParse     ? "parse: read as control tokens"
                      : stats.control_policy == chat::ControlTokenPolicy::kLiteral ? "literal: read as text"
                                                                                   : "skip: dropped";
    std::snprintf(line, sizeof line, "control-token strings in message text: %lld examples (%s; data.control_tokens_in_content)\n",
                  static_cast<long long>(stats.control_examples), how);
    out += line;
  }
  for (const std::string& reason : stats.skip_reasons) out += "  skipped: " + reason + "\n";
  if (stats.skipped > static_cast<int64_t>(stats.skip_reasons.size())) {
    out += "  (and " + std::to_string(stats.skipped - static_cast<int64_t>(stats.skip_reasons.size())) + " more)\n";
  }
  return out;
}

}  // namespace retort::data
