// A recipe's data section made concrete: the format and encoding options, the train and
// validation splits opened and scanned, and a summary users read before training.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "data/loader.h"
#include "recipe/recipe.h"

namespace retort::data {

FormatOptions format_options(const DataSection& section);

// A recipe's tokenizer (tokenizer.path, else model.path) and chat template (tokenizer.chat_template
// by name, else recognised from the model's own template when the data needs one).
struct RecipeText {
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<chat::ChatTemplate> chat_template;
  const chat::ChatTemplate* template_or_null() const { return chat_template ? &*chat_template : nullptr; }
};
// A model carrying no template of its own takes its family's built-in one (models/family.h), read
// only then; a family without one is refused.
RecipeText load_recipe_text(const Recipe& recipe);
// The chat format for a model: the template stored with `template_path` (the tokenizer's folder or
// file, usually the model itself), else, for a base model without one, its family's format
// (models/family.h), which it is trained and chatted in. The loader's error when neither exists.
chat::ChatTemplate model_chat_template(const std::string& template_path, const std::string& model_path);
EncodeOptions encode_options(const DataSection& section);

struct DatasetSplit {
  std::shared_ptr<const ExampleSource> source;
  ScanResult scan;
};

struct PreparedData {
  DatasetSplit train;
  std::optional<DatasetSplit> validation;  // from data.validation or data.validation_fraction
};

// Opens and scans the training file (and the validation file or held-out share of it, chosen by
// `seed`). Bad examples stop it with file:line unless data.on_bad_example is skip.
PreparedData prepare_data(const DataSection& section, const DataPipeline& pipeline, uint64_t seed);

// "318 of 320 examples kept (2 truncated, 1 dropped: longer than 2048 tokens, 1 skipped) ..."
std::string describe_stats(const DatasetStats& stats, const std::vector<SequenceRef>& sequences, int64_t max_seq_len);

}  // namespace retort::data
