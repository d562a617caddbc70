// Tokenizers built from a GGUF file's tokenizer.ggml.* metadata (docs/formats.md §3.5).
#pragma once

#include <memory>
#include <string>
#include <unordered_set>

#include "tokenizer/tokenizer.h"

namespace retort {
class GgufFile;
}

namespace retort::tok {

// Token texts llama.cpp forces to CONTROL whatever their stored type ("control-looking" tokens).
const std::unordered_set<std::string>& control_looking_tokens();

// `tokenizer.ggml.model = gpt2`: byte-level BPE with llama.cpp's pre-tokenizer for `pre`.
std::unique_ptr<Tokenizer> load_gguf_bpe(const GgufFile& gguf);

// `tokenizer.ggml.model = llama`: SentencePiece pieces/scores/types (gguf_spm.cpp).
std::unique_ptr<Tokenizer> load_gguf_spm(const GgufFile& gguf);
// The SentencePiece ModelProto (a tokenizer.model file's bytes) those keys describe.
// `literal`: the proto for reading control-token strings as text, in which the user-defined
// tokens llama.cpp forces to CONTROL are control pieces (SentencePiece never produces those from
// text, as llama.cpp's parse_special=false does not).
std::string spm_model_proto_from_gguf(const GgufFile& gguf, bool literal = false);

}  // namespace retort::tok
