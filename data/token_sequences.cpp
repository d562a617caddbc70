#include "data/token_sequences.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "io/error.h"

namespace retort::data {
namespace {

// One line's ids; nullopt for a blank line.
std::optional<std::vector<int64_t>> parse_line(const std::string& line, const std::string& path, int64_t line_number,
                                               const TokenizerSource& tokenizer, int64_t vocab_size) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) return std::nullopt;
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& error) {
    throw bad_input(std::string("invalid JSON: ") + error.what()).file(path).line(line_number);
  }
  if (!record.is_object() || (!record.contains("ids") && !record.contains("text"))) {
    throw bad_input("expected an object with \"ids\": [...] or \"text\": \"...\"").file(path).line(line_number);
  }
  std::vector<int64_t> ids;
  if (record.contains("text")) {
    if (!record["text"].is_string()) throw bad_input("\"text\" must be a string").file(path).line(line_number).key("text");
    for (TokenId id : tokenizer().encode(record["text"].get<std::string>(), /*add_special_tokens=*/true)) {
      ids.push_back(id);
    }
  }
  for (const auto& id : record.value("ids", nlohmann::json::array())) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab_size) {
      throw bad_input("\"ids\" must hold token ids in [0, " + std::to_string(vocab_size) + ")")
          .file(path)
          .line(line_number)
          .key("ids");
    }
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

}  // namespace

void for_each_token_sequence(const std::string& path, const TokenizerSource& tokenizer, int64_t vocab_size,
                             const std::function<void(std::vector<int64_t>)>& sequence) {
  std::ifstream in(path);
  if (!in) throw bad_input("cannot read").file(path);
  std::string line;
  for (int64_t line_number = 1; std::getline(in, line); ++line_number) {
    if (auto ids = parse_line(line, path, line_number, tokenizer, vocab_size)) sequence(std::move(*ids));
  }
}

TokenSequenceBatches::TokenSequenceBatches(std::string path, TokenizerSource tokenizer, int64_t vocab_size,
                                           int64_t batch_size)
    : path_(std::move(path)), tokenizer_(std::move(tokenizer)), vocab_size_(vocab_size), batch_size_(batch_size) {
  if (batch_size_ <= 0) throw bad_input("must be positive").key("--batch-size");
  restore(R"({"line": 0})");
}

std::optional<std::vector<int64_t>> TokenSequenceBatches::next_sequence() {
  std::string line;
  while (std::getline(in_, line)) {
    ++line_;
    auto ids = parse_line(line, path_, line_, tokenizer_, vocab_size_);
    if (ids && ids->size() >= 2) return ids;  // one token predicts nothing
  }
  return std::nullopt;
}

std::optional<Batch> TokenSequenceBatches::next() {
  std::vector<std::vector<int64_t>> rows;
  while (static_cast<int64_t>(rows.size()) < batch_size_) {
    auto ids = next_sequence();
    if (!ids) break;
    rows.push_back(std::move(*ids));
  }
  if (rows.empty()) return std::nullopt;
  size_t longest = 0;
  for (const auto& ids : rows) longest = std::max(longest, ids.size());
  const int64_t count = static_cast<int64_t>(rows.size()), width = static_cast<int64_t>(longest);
  Batch batch{at::zeros({count, width}, at::kLong), at::full({count, width}, kIgnoreIndex, at::kLong),
              at::zeros({count, width}, at::kLong), {}, {}};
  for (int64_t r = 0; r < count; ++r) {  // right padding: padded keys are masked, labels ignored
    const at::Tensor ids = at::tensor(rows[static_cast<size_t>(r)], at::kLong);
    batch.input_ids[r].narrow(0, 0, ids.numel()).copy_(ids);
    batch.labels[r].narrow(0, 0, ids.numel()).copy_(ids);
    batch.attention_mask[r].narrow(0, 0, ids.numel()).fill_(1);
  }
  return batch;
}

std::string TokenSequenceBatches::state() const { return nlohmann::json{{"line", line_}}.dump(); }

void TokenSequenceBatches::restore(const std::string& state) {
  const int64_t line = nlohmann::json::parse(state).at("line").get<int64_t>();
  in_ = std::ifstream(path_);
  if (!in_) throw bad_input("cannot read").file(path_);
  std::string skipped;
  for (line_ = 0; line_ < line && std::getline(in_, skipped);) ++line_;
}

}  // namespace retort::data
