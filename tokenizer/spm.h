// SentencePiece `.model` tokenizers (Llama 2, Mistral) through libsentencepiece (docs/formats.md §6.1).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace retort::tok {

// Loads a serialized ModelProto; throws bad_input naming the file when it does not parse.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path);

// The same from ModelProto bytes made elsewhere (GGUF `llama` vocabularies, gguf_spm.cpp).
// `split_tokens`: token strings matched as their ids before SentencePiece sees the text; each
// fragment between them is encoded on its own (and gets the dummy prefix), as llama.cpp does
// with parse_special. `rstrip_tokens`: those of them that swallow the whitespace after them.
// `control_tokens`: those of them read as text under ControlTokens::kLiteral (parse_special=false).
// `literal_proto`, when not empty: the model that encodes the text between them in that mode.
std::unique_ptr<Tokenizer> load_sentencepiece_proto(const std::string& proto, const std::string& source,
                                                    const std::vector<std::string>& split_tokens,
                                                    const std::vector<std::string>& rstrip_tokens,
                                                    const std::vector<std::string>& control_tokens,
                                                    const std::string& literal_proto = "");

}  // namespace retort::tok
