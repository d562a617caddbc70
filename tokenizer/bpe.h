// Byte-level BPE (GPT-2 family: Llama 3, Qwen2, SmolLM2, ...): added-token splitting,
// optional NFC, regex pre-tokenisation through PCRE2, rank-ordered merges with a per-word
// cache. Mirrors HF tokenizers (models/bpe, pre_tokenizers/split, added_vocabulary.rs) and
// llama.cpp's llm_tokenizer_bpe (docs/formats.md §6.2-6.4).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace retort::tok {

// HF pre_tokenizers::split::SplitDelimiterBehavior.
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

// One regex split step; steps run in order, each on the pieces the previous one produced.
struct SplitStep {
  std::string pattern;  // PCRE2 syntax, compiled in UTF + UCP mode
  SplitBehavior behavior = SplitBehavior::kIsolated;
};

struct AddedToken {
  std::string content;
  TokenId id = 0;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false;
  bool normalized = false;  // matched after normalisation instead of on the raw text
  // A control token: its string in a text is read as ordinary text under ControlTokens::kLiteral
  // (HF: special; llama.cpp: CONTROL or UNKNOWN). Other added tokens are always matched.
  bool control = false;
};

struct BpeSpec {
  std::vector<std::string> vocab;  // id -> token (byte-level form); "" for holes
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  std::vector<SplitStep> splits;
  bool nfc = false;
  bool add_prefix_space = false;  // ByteLevel add_prefix_space
  bool ignore_merges = false;
  std::vector<AddedToken> added;
  std::vector<TokenId> prefix, suffix;  // added around the text when add_special_tokens
  std::vector<bool> special;            // per id: skipped by decode(skip_special_tokens)
  std::vector<bool> raw_decode;         // per id: decoded as its text, not byte-level
  SpecialTokenIds ids;
  std::string source;  // file name for messages
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeSpec spec);
  ~BpeTokenizer() override;

  using Tokenizer::encode;
  std::vector<TokenId> encode(std::string_view text, bool add_special_tokens,
                              const ControlTokenFilter& controls) const override;
  std::string decode_bytes(std::span<const TokenId> ids, bool skip_special_tokens) const override;
  std::optional<TokenId> token_to_id(std::string_view token) const override;
  std::string id_to_token(TokenId id) const override;
  size_t vocab_size() const override { return spec_.vocab.size(); }
  bool is_special(TokenId id) const override;

 private:
  struct Regex;
  struct Segment {
    std::string_view text;  // when id < 0
    TokenId id = -1;
  };
  void split_added(std::string_view text, bool normalized_pass, const ControlTokenFilter& controls,
                   std::vector<Segment>& out) const;
  void encode_text(std::string_view text, std::vector<TokenId>& out) const;
  void pre_tokenize(std::string_view text, std::vector<std::string_view>& words) const;
  void encode_word(std::string_view word_bytes, std::vector<TokenId>& out) const;
  void merge_word(const std::string& word, std::vector<TokenId>& out) const;

  BpeSpec spec_;
  std::unordered_map<std::string, TokenId> token_ids_;
  std::unordered_map<uint64_t, std::pair<int32_t, TokenId>> merges_;  // (left,right) -> rank, id
  std::vector<TokenId> byte_ids_;  // byte -> token of its byte-level character (-1 if none)
  // Merge results missing from the vocabulary (llama.cpp merges them anyway and spells
  // them out per character at the end); their ids start at vocab.size().
  std::vector<std::string> virtual_tokens_;
  std::vector<std::unique_ptr<Regex>> regexes_;
  // Added tokens by first byte, longest first, for the raw and the normalised pass.
  std::vector<std::vector<const AddedToken*>> added_raw_, added_norm_;
  bool has_normalized_added_ = false;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache_;
};

// Loaders (bpe_loaders.cpp).
std::unique_ptr<Tokenizer> load_bpe_tokenizer_json(const std::string& path);
// The parsed form of a byte-level BPE tokenizer.json (what load_bpe_tokenizer_json runs).
BpeSpec bpe_spec_from_tokenizer_json(const std::string& path);
std::unique_ptr<Tokenizer> load_tiktoken(const std::string& path);
// Whether the tokenizer.json at path describes a byte-level BPE this file implements.
bool is_byte_level_bpe_json(const std::string& path);

}  // namespace retort::tok
