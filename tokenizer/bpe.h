// BPE from HF tokenizer.json, tiktoken and GGUF vocabularies: added-token splitting,
// normalisation, regex pre-tokenisation through PCRE2, rank-ordered merges with a per-word
// cache. Byte-level (GPT-2 family: Llama 3, Qwen2, SmolLM2, ...) or over characters with byte
// fallback (SentencePiece vocabularies converted by HF: Gemma 3, Llama 2, Mistral). Mirrors HF
// tokenizers (models/bpe, normalizers, pre_tokenizers/split.rs and metaspace.rs, decoders,
// added_vocabulary.rs) and llama.cpp's llm_tokenizer_bpe (docs/formats.md §6.2-6.4, §6.2.1).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <span>
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

// HF normalizers Replace (a literal string) and Prepend, run in order after NFC on each piece
// of text between added tokens.
struct TextRewrite {
  enum class Kind { kReplace, kPrepend };
  Kind kind = Kind::kReplace;
  std::string pattern;  // kReplace: the string replaced
  std::string content;  // its replacement; kPrepend: the prefix of every non-empty piece
};

// HF pre_tokenizers::metaspace::PrependScheme.
enum class PrependScheme { kAlways, kFirst, kNever };

// HF's Metaspace pre-tokenizer: spaces become `replacement` and the piece gets it in front;
// its split (on `replacement`, merged with the next piece) is a SplitStep after it.
struct Metaspace {
  std::string replacement = "\xE2\x96\x81";  // U+2581
  PrependScheme prepend = PrependScheme::kAlways;
};

// One HF decoder of a non-byte-level vocabulary; they run in order over the token strings.
struct DecodeStep {
  enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  Kind kind = Kind::kFuse;
  std::string pattern;  // kReplace: the string replaced; kMetaspace: the replacement character
  std::string content;  // kReplace: its replacement; kStrip: the character stripped
  size_t start = 0, stop = 0;  // kStrip: at most this many from the start / end of each token
  bool strip_first = true;     // kMetaspace: drop the replacement in the first token (scheme != never)
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

  // Byte-level (text bytes mapped to GPT-2's printable characters) or, when false, BPE over
  // the text's characters with byte fallback and unk (HF models/bpe/model.rs merge_word).
  bool byte_level = true;
  std::vector<TextRewrite> rewrites;  // after nfc
  std::optional<Metaspace> metaspace;  // the first pre-tokenizer step, before `splits`
  bool byte_fallback = false;  // a character missing from the vocabulary becomes <0xXX> tokens
  bool fuse_unk = false;       // consecutive unknown characters become one unk
  std::optional<TokenId> unk;  // the model's unk_token; without it unknown characters vanish
  std::vector<DecodeStep> decoders;  // !byte_level: HF's decoder (none: tokens joined by spaces)
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
  std::string token_bytes(TokenId id) const override;
  bool adds_dummy_prefix() const override;

 private:
  struct Regex;
  struct Segment {
    std::string_view text;  // when id < 0
    TokenId id = -1;
  };
  void split_added(std::string_view text, bool normalized_pass, const ControlTokenFilter& controls,
                   std::vector<Segment>& out) const;
  std::string normalize(std::string_view text) const;
  void encode_text(std::string_view text, bool at_text_start, std::vector<TokenId>& out) const;
  void pre_tokenize(std::string_view text, std::vector<std::string_view>& words) const;
  void encode_word(std::string_view word_bytes, std::vector<TokenId>& out) const;
  void char_symbols(std::string_view word, std::vector<TokenId>& ids) const;
  void merge_word(const std::vector<TokenId>& initial, std::vector<TokenId>& out) const;
  std::string decode_chars(std::span<const TokenId> ids, bool skip_special_tokens, bool whole_text) const;
  void check_id(TokenId id) const;

  BpeSpec spec_;
  std::unordered_map<std::string, TokenId> token_ids_;
  std::unordered_map<uint64_t, std::pair<int32_t, TokenId>> merges_;  // (left,right) -> rank, id
  std::vector<TokenId> byte_ids_;  // byte -> token of its byte-level character (-1 if none)
  std::vector<TokenId> fallback_ids_;  // !byte_level: byte -> its <0xXX> token (-1 if none)
  std::vector<TokenId> ascii_ids_;     // !byte_level: ASCII character -> its token (-1 if none)
  // Merge results missing from the vocabulary (llama.cpp merges them anyway and spells
  // them out per character at the end); their ids start at vocab.size().
  std::vector<std::string> virtual_tokens_;
  std::vector<std::unique_ptr<Regex>> regexes_;
  // Added tokens by first byte, longest first, for the raw and the normalised pass (the latter
  // spelled as the normaliser rewrites them, as HF's added_vocabulary.rs matches them).
  std::vector<std::vector<const AddedToken*>> added_raw_, added_norm_;
  std::vector<AddedToken> normalized_added_;
  bool has_normalizer_ = false;
  bool has_normalized_added_ = false;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache_;
};

// Loaders (bpe_loaders.cpp).
std::unique_ptr<Tokenizer> load_bpe_tokenizer_json(const std::string& path);
// The parsed form of a byte-level BPE tokenizer.json; throws bad_input for other BPE kinds,
// which GGUF's gpt2 vocabulary cannot express (load_bpe_tokenizer_json takes both).
BpeSpec bpe_spec_from_tokenizer_json(const std::string& path);
std::unique_ptr<Tokenizer> load_tiktoken(const std::string& path);
// Whether the tokenizer.json at path describes a byte-level BPE this file implements.
bool is_byte_level_bpe_json(const std::string& path);

}  // namespace retort::tok
