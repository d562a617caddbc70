// The one tokenizer interface of Retort (SentencePiece, byte-level BPE from tokenizer.json,
// tiktoken or GGUF metadata), a streaming decoder, and the factory that picks the
// implementation from the files it is given (docs/formats.md §6, §3.5).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace retort {

using TokenId = int32_t;

// Special ids; each is optional because vocabularies differ (Qwen2 has no BOS).
struct SpecialTokenIds {
  std::optional<TokenId> bos, eos, pad, eot, unk;
};

// How control-token strings inside a text ("<|im_end|>", "[INST]", "<|eot_id|>") are read: as
// their control tokens (kParse: HF tokenizers' default, llama.cpp's parse_special) or as ordinary
// text (kLiteral: llama.cpp's parse_special=false, HF's encode_special_tokens). Control tokens are
// HF's special added tokens, all of tiktoken's, llama.cpp's CONTROL and UNKNOWN tokens and
// SentencePiece's control pieces; other added tokens (user-defined ones) are matched either way.
enum class ControlTokens { kParse, kLiteral };

// Where control-token strings are read as control tokens: everywhere (kParse), or with kLiteral
// only where a match spans exactly one of `at` (byte ranges of the text: where a chat template
// wrote its own control tokens), nowhere when `at` is empty.
struct ControlTokenFilter {
  ControlTokens mode = ControlTokens::kParse;
  std::span<const std::pair<size_t, size_t>> at;  // sorted by begin
  bool allows(size_t begin, size_t end) const;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids. Control-token strings inside `text` (e.g. "<|eot_id|>") are recognised as
  // their ids, as HF tokenizers does; add_special_tokens adds BOS/EOS the way the
  // tokenizer's own configuration does. Invalid UTF-8 is first replaced by U+FFFD (as
  // Python's errors="replace" does before HF sees the text); it never throws.
  std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = true) const {
    return encode(text, add_special_tokens, ControlTokenFilter{});
  }
  // The same, reading control-token strings as `controls` says. With kLiteral and places in
  // `controls.at`, the text must be valid UTF-8 (the places are byte offsets into it).
  virtual std::vector<TokenId> encode(std::string_view text, bool add_special_tokens,
                                      const ControlTokenFilter& controls) const = 0;

  // Where `text` holds control-token strings of this vocabulary: [begin, end) byte ranges,
  // leftmost first, the longest at each place, not overlapping.
  std::vector<std::pair<size_t, size_t>> find_control_strings(std::string_view text) const;

  // Ids -> text; invalid UTF-8 from byte tokens becomes U+FFFD (from_utf8_lossy rules).
  std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const;
  // The same without the UTF-8 repair: the raw bytes the tokens stand for.
  virtual std::string decode_bytes(std::span<const TokenId> ids, bool skip_special_tokens) const = 0;
  // The bytes one token stands for in the middle of a text: no leading-space stripping, and a
  // control token as its own string (e.g. "<s>"). Used to align tokens with their source text.
  virtual std::string token_bytes(TokenId id) const { return decode_bytes(std::span<const TokenId>(&id, 1), false); }
  // SentencePiece's dummy prefix: the first piece of the text and of every fragment after a
  // special token carries a space ("▁") the text does not have.
  virtual bool adds_dummy_prefix() const { return false; }

  virtual std::optional<TokenId> token_to_id(std::string_view token) const = 0;
  // The token's string as stored in the vocabulary (byte-level form, `▁` pieces); throws
  // bad_input for an id out of range.
  virtual std::string id_to_token(TokenId id) const = 0;
  virtual size_t vocab_size() const = 0;
  // Control/special tokens (skipped by decode with skip_special_tokens).
  virtual bool is_special(TokenId id) const = 0;

  const SpecialTokenIds& special_ids() const { return special_; }
  // Overrides the guessed special ids (from a model's tokenizer_config.json).
  void set_special_ids(const SpecialTokenIds& ids) { special_ = ids; }
  std::optional<TokenId> bos_id() const { return special_.bos; }
  std::optional<TokenId> eos_id() const { return special_.eos; }
  std::optional<TokenId> pad_id() const { return special_.pad; }
  std::optional<TokenId> eot_id() const { return special_.eot; }

 protected:
  // The control tokens' strings, for find_control_strings (set once by the loader).
  void set_control_strings(const std::vector<std::string>& strings);

  SpecialTokenIds special_;

 private:
  std::vector<std::vector<std::string>> control_by_first_byte_;  // longest first
};

// Where each token of `ids` (the encoding of `text`) came from: [begin, end) byte ranges of
// `text`, in order, tiling it except for whitespace a special token swallowed. A token the text
// does not spell (BOS added by add_special_tokens) gets an empty range. Throws internal_error
// when the tokens do not spell the text.
std::vector<std::pair<size_t, size_t>> token_byte_spans(const Tokenizer& tokenizer, std::string_view text,
                                                        std::span<const TokenId> ids);

// Incremental detokenisation for streaming generation: put() returns the text that became
// complete with this token. A UTF-8 character spread over several byte tokens is held back
// until its last byte arrives; finish() flushes what is left (invalid bytes as U+FFFD).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string put(TokenId id);
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  // The ids since the last point where all text was emitted, plus one token of context so
  // that tokenizers that strip a leading space from the first token (SentencePiece) see
  // the token as a continuation.
  std::vector<TokenId> window_;
  size_t emitted_ = 0;  // bytes of decode_bytes(window_) already returned
};

// Loads a tokenizer from a model directory (tokenizer.json preferred; else tokenizer.model,
// SentencePiece protobuf or tiktoken ranks, detected from the content), a tokenizer.json,
// a tokenizer.model or a .gguf file. In a directory, tokenizer_config.json's bos_token,
// eos_token, pad_token and unk_token name the special ids. Throws bad_input naming the file
// (and key) on failure.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace retort
