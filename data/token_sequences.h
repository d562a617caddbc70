// Plain token sequences for evaluation and calibration (`retort eval`, `retort prune`): JSONL
// lines of {"ids": [...]} or {"text": "..."} (encoded with the tokenizer's special tokens, as
// transformers' tokenizer(text) does); bad lines name the file and line.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "tokenizer/tokenizer.h"

namespace retort::data {

// The tokenizer a {"text"} line needs, loaded on first use (files of ids need none).
using TokenizerSource = std::function<const Tokenizer&()>;

// Calls `sequence` with each line's ids in file order.
void for_each_token_sequence(const std::string& path, const TokenizerSource& tokenizer, int64_t vocab_size,
                             const std::function<void(std::vector<int64_t>)>& sequence);

// The sequences with at least two tokens (something to predict), `batch_size` at a time, right
// padded: labels are the ids (padding kIgnoreIndex) and the attention mask hides the padding.
class TokenSequenceBatches : public BatchSource {
 public:
  TokenSequenceBatches(std::string path, TokenizerSource tokenizer, int64_t vocab_size, int64_t batch_size);

  std::optional<Batch> next() override;
  std::string state() const override;  // {"line": lines read}
  void restore(const std::string& state) override;

 private:
  std::optional<std::vector<int64_t>> next_sequence();

  std::string path_;
  TokenizerSource tokenizer_;
  int64_t vocab_size_;
  int64_t batch_size_;
  std::ifstream in_;
  int64_t line_ = 0;
};

}  // namespace retort::data
