// SentencePiece `.model` tokenizers (Llama 2, Mistral) through libsentencepiece (formats.md §6.1).
#pragma once

#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace retort::tok {

// Loads a serialized ModelProto; throws bad_input naming the file when it does not parse.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path);

}  // namespace retort::tok
