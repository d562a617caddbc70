// `tokenizer.ggml.model = llama` vocabularies (SentencePiece pieces, scores and types stored
// in GGUF metadata, docs/formats.md §3.5/§6.1): the ModelProto is rebuilt from them and run by
// libsentencepiece, the tokenizer llama.cpp's SPM code reproduces. Reference: sentencepiece
// src/sentencepiece_model.proto (field numbers), llama.cpp src/llama-vocab.cpp (defaults).
#include "io/error.h"
#include "io/gguf.h"
#include "io/protobuf_writer.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/spm.h"

namespace retort::tok {

std::string spm_model_proto_from_gguf(const GgufFile& gguf, bool literal) {
  const std::vector<std::string>& tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  const auto scores = gguf.find_f32_array("tokenizer.ggml.scores");
  const auto types = gguf.find_i32_array("tokenizer.ggml.token_type");
  if (!scores || scores->size() != tokens.size()) {
    throw bad_input("a SentencePiece vocabulary needs one score per token").file(gguf.path()).key("tokenizer.ggml.scores");
  }
  if (!types || types->size() != tokens.size()) {
    throw bad_input("a SentencePiece vocabulary needs one type per token").file(gguf.path()).key("tokenizer.ggml.token_type");
  }
  ProtoWriter model;
  // SentencePiece allows one UNKNOWN piece; converters also type vocabulary padding
  // ("[PAD32011]") as unknown, so all but the declared unknown token become UNUSED.
  // The unknown token is the declared one (some converters type it CONTROL), else the first.
  int64_t unk = -1;
  if (const auto declared = gguf.find_u32("tokenizer.ggml.unknown_token_id"); declared && *declared < tokens.size()) {
    unk = *declared;
  } else {
    for (size_t id = 0; id < tokens.size() && unk < 0; ++id) {
      if ((*types)[id] == 2) unk = static_cast<int64_t>(id);
    }
  }
  int byte_pieces = 0;
  for (size_t id = 0; id < tokens.size(); ++id) {
    int type = (*types)[id];
    if (type < 1 || type > 6) {
      throw bad_input("token type " + std::to_string(type) + " of token " + std::to_string(id) + " is not 1..6")
          .file(gguf.path())
          .key("tokenizer.ggml.token_type");
    }
    if (static_cast<int64_t>(id) == unk) {
      type = 2;
    } else if (type == 2) {
      type = 5;
    } else if (literal && type == 4 && control_looking_tokens().count(tokens[id])) {
      type = 3;
    }
    if (type == 6) ++byte_pieces;
    ProtoWriter piece;
    piece.bytes_field(1, tokens[id]);
    piece.float_field(2, (*scores)[id]);
    piece.int_field(3, type);
    model.bytes_field(1, piece.bytes());
  }
  auto id_or = [&](const char* key, int64_t fallback) {
    const auto value = gguf.find_u32(key);
    return value ? static_cast<int64_t>(*value) : fallback;
  };
  ProtoWriter trainer;
  trainer.int_field(3, 2);  // model_type BPE (llama.cpp's SPM is the BPE variant)
  trainer.int_field(4, static_cast<int64_t>(tokens.size()));
  trainer.int_field(35, byte_pieces == 256 ? 1 : 0);  // byte_fallback
  trainer.int_field(40, unk >= 0 ? unk : 0);
  trainer.int_field(41, id_or("tokenizer.ggml.bos_token_id", 1));
  trainer.int_field(42, id_or("tokenizer.ggml.eos_token_id", 2));
  trainer.int_field(43, id_or("tokenizer.ggml.padding_token_id", -1));
  // SentencePiece finds its special ids by piece (bos_id() looks up bos_piece, "<s>" by default):
  // name the pieces, or a vocabulary whose BOS is "<bos>" (Gemma) would have none.
  for (const auto& [field, id] : {std::pair{45, unk}, std::pair{46, id_or("tokenizer.ggml.bos_token_id", 1)},
                                  std::pair{47, id_or("tokenizer.ggml.eos_token_id", 2)},
                                  std::pair{48, id_or("tokenizer.ggml.padding_token_id", -1)}}) {
    if (id >= 0 && id < static_cast<int64_t>(tokens.size())) trainer.bytes_field(field, tokens[id]);
  }
  model.bytes_field(2, trainer.bytes());
  ProtoWriter normalizer;
  normalizer.bytes_field(1, "identity");
  normalizer.int_field(3, gguf.find_bool("tokenizer.ggml.add_space_prefix").value_or(true) ? 1 : 0);
  normalizer.int_field(4, 0);  // remove_extra_whitespaces: llama.cpp keeps every space
  normalizer.int_field(5, 1);  // escape_whitespaces: ' ' -> U+2581
  model.bytes_field(3, normalizer.bytes());
  return model.bytes();
}

std::unique_ptr<Tokenizer> load_gguf_spm(const GgufFile& gguf) {
  const std::vector<std::string>& tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  const std::vector<int32_t> types = gguf.get_i32_array("tokenizer.ggml.token_type");
  const std::string proto = spm_model_proto_from_gguf(gguf);
  // llama.cpp matches control, user-defined and unknown tokens in the text (parse_special) and
  // gives Phi-3's RSTRIP (whitespace after them dropped), except <unk>, <s>, <|endoftext|>
  // (llama-vocab.cpp: cache_special_tokens, attributes by architecture).
  // CONTROL and UNKNOWN ones (and llama.cpp's control-looking names) are read as text when
  // parse_special is off; user-defined ones are always split out.
  std::vector<std::string> split, rstrip, control;
  const std::string arch = gguf.find_string("general.architecture").value_or("");
  const bool phi3 = arch == "phi3" || arch == "phi-3";
  for (size_t id = 0; id < tokens.size(); ++id) {
    const int type = types[id];
    if (type != 2 && type != 3 && type != 4) continue;
    const std::string& token = tokens[id];
    split.push_back(token);
    if (type == 2 || type == 3 || control_looking_tokens().count(token)) control.push_back(token);
    if (phi3 && token != "<unk>" && token != "<s>" && token != "<|endoftext|>") rstrip.push_back(token);
  }
  return load_sentencepiece_proto(proto, gguf.path(), split, rstrip, control, spm_model_proto_from_gguf(gguf, true));
}

}  // namespace retort::tok
