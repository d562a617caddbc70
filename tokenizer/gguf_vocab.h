// Tokenizers built from a GGUF file's tokenizer.ggml.* metadata (formats.md §3.5).
#pragma once

#include <memory>

#include "tokenizer/tokenizer.h"

namespace retort {
class GgufFile;
}

namespace retort::tok {

// `tokenizer.ggml.model = gpt2`: byte-level BPE with llama.cpp's pre-tokenizer for `pre`.
std::unique_ptr<Tokenizer> load_gguf_bpe(const GgufFile& gguf);

// `tokenizer.ggml.model = llama`: SentencePiece pieces/scores/types (gguf_spm.cpp).
std::unique_ptr<Tokenizer> load_gguf_spm(const GgufFile& gguf);
// The SentencePiece ModelProto (a tokenizer.model file's bytes) those keys describe.
std::string spm_model_proto_from_gguf(const GgufFile& gguf);

}  // namespace retort::tok
