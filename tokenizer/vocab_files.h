// A vocabulary in the form GGUF stores it (tokenizer.ggml.*, docs/formats.md §3.5), built from an HF
// model directory or read from a GGUF file, and written back as an HF tokenizer.json: what the
// exporters need to carry a tokenizer from one format to the other without changing a single id.
// Reference: llama.cpp convert_hf_to_gguf.py (get_vocab_base), gguf-py vocab.py.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace retort {
class GgufFile;
}

namespace retort::tok {

// GGUF token types.
inline constexpr int32_t kTokenNormal = 1, kTokenUnknown = 2, kTokenControl = 3, kTokenUserDefined = 4,
                         kTokenUnused = 5, kTokenByte = 6;

struct VocabularyRecord {
  std::string model;  // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece)
  std::string pre;    // tokenizer.ggml.pre: llama.cpp's pre-tokenizer name
  std::vector<std::string> tokens;
  std::vector<float> scores;   // SentencePiece only
  std::vector<int32_t> types;  // kToken*
  std::vector<std::string> merges;  // "left right", rank order (gpt2 only)
  SpecialTokenIds ids;
  bool add_bos = false;
  bool add_eos = false;
  std::optional<bool> add_space_prefix;
  std::string source;  // for messages
};

// From an HF model directory's byte-level BPE tokenizer.json (+ tokenizer_config.json for the
// special tokens), with the token list padded to `vocab_size` as llama.cpp's converter pads it
// ("[PAD<id>]", unused). bad_input naming the file when the pre-tokenizer has no llama.cpp name.
VocabularyRecord vocabulary_from_hf_dir(const std::string& directory, int64_t vocab_size);

// From a GGUF file's tokenizer.ggml.* keys.
VocabularyRecord vocabulary_from_gguf(const GgufFile& gguf);

// The HF tokenizers form of a `gpt2` vocabulary: tokenizer.json text that HF tokenizers loads
// and that tokenizes as llama.cpp does for the vocabulary's pre-tokenizer. bad_input for other
// vocabularies or pre-tokenizers without an HF equivalent.
std::string tokenizer_json_from_vocabulary(const VocabularyRecord& vocabulary);

// The llama.cpp pre-tokenizer names tokenizer_json_from_vocabulary and vocabulary_from_hf_dir
// know ("gpt-2, llama-bpe, qwen2, smollm").
std::string known_pre_tokenizer_names();

}  // namespace retort::tok
