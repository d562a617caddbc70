// Tokenizer::decode, the streaming decoder and load_tokenizer: which implementation a path
// gets (docs/formats.md §6: tokenizer.json, SentencePiece or tiktoken tokenizer.model, GGUF).
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/spm.h"
#include "tokenizer/unicode.h"

namespace retort {

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const {
  return tok::utf8_lossy(decode_bytes(ids, skip_special_tokens));
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::put(TokenId id) {
  window_.push_back(id);
  const std::string bytes = tokenizer_.decode_bytes(window_, skip_special_);
  const size_t complete = tok::utf8_complete_prefix(bytes);
  std::string text = complete > emitted_ ? tok::utf8_lossy(std::string_view(bytes).substr(emitted_, complete - emitted_))
                                         : std::string();
  emitted_ = std::max(emitted_, complete);
  if (complete == bytes.size()) {
    // Everything is out: keep only the last token as context for the next one.
    window_.erase(window_.begin(), window_.end() - 1);
    emitted_ = tokenizer_.decode_bytes(window_, skip_special_).size();
  }
  return text;
}

std::string StreamDecoder::finish() {
  const std::string bytes = tokenizer_.decode_bytes(window_, skip_special_);
  std::string text = emitted_ < bytes.size() ? tok::utf8_lossy(std::string_view(bytes).substr(emitted_)) : "";
  window_.clear();
  emitted_ = 0;
  return text;
}

namespace {

namespace fs = std::filesystem;

// Meta's tiktoken files are text lines "<base64> <rank>"; a SentencePiece ModelProto starts
// with the tag byte of field 1 (0x0A) followed by binary lengths.
bool looks_like_tiktoken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!std::getline(in, line) || line.empty()) return false;
  const size_t space = line.find(' ');
  if (space == std::string::npos || space == 0 || space + 1 >= line.size()) return false;
  for (size_t i = 0; i < space; ++i) {
    const char c = line[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')) return false;
  }
  for (size_t i = space + 1; i < line.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) return false;
  }
  return true;
}

std::unique_ptr<Tokenizer> load_model_file(const std::string& path) {
  return looks_like_tiktoken(path) ? tok::load_tiktoken(path) : tok::load_sentencepiece(path);
}

std::unique_ptr<Tokenizer> load_gguf(const std::string& path) {
  const auto gguf = GgufFile::open(path);
  const std::string model = gguf->get_string("tokenizer.ggml.model");
  if (model == "gpt2") return tok::load_gguf_bpe(*gguf);
  if (model == "llama") return tok::load_gguf_spm(*gguf);
  throw bad_input("unsupported GGUF tokenizer model '" + model + "' (implemented: gpt2, llama)")
      .file(path)
      .key("tokenizer.ggml.model");
}

// tokenizer_config.json's special tokens ("<|im_end|>" or {"content": "<|im_end|>", ...}).
void apply_tokenizer_config(Tokenizer& tokenizer, const fs::path& directory) {
  const fs::path path = directory / "tokenizer_config.json";
  if (!fs::exists(path)) return;
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_text_file(path.string()));
  } catch (const nlohmann::json::exception& error) {
    throw bad_input(std::string("invalid JSON: ") + error.what()).file(path.string());
  }
  SpecialTokenIds ids = tokenizer.special_ids();
  for (auto [key, slot] : {std::pair{"bos_token", &ids.bos}, std::pair{"eos_token", &ids.eos},
                           std::pair{"pad_token", &ids.pad}, std::pair{"unk_token", &ids.unk}}) {
    if (!config.contains(key) || config[key].is_null()) continue;
    const nlohmann::json& value = config[key];
    const nlohmann::json& content = value.is_object() ? value.value("content", nlohmann::json()) : value;
    if (!content.is_string()) throw bad_input("expected a token string or {\"content\": ...}").file(path.string()).key(key);
    const auto id = tokenizer.token_to_id(content.get<std::string>());
    if (!id) {
      throw bad_input("token '" + content.get<std::string>() + "' is not in the vocabulary").file(path.string()).key(key);
    }
    *slot = *id;
  }
  tokenizer.set_special_ids(ids);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const std::string json = (fs::path(path) / "tokenizer.json").string();
    const std::string model = (fs::path(path) / "tokenizer.model").string();
    const bool has_json = fs::exists(json), has_model = fs::exists(model);
    std::unique_ptr<Tokenizer> tokenizer;
    // A SentencePiece model's tokenizer.json is not byte-level BPE: use its .model instead.
    if (has_json && (!has_model || tok::is_byte_level_bpe_json(json))) tokenizer = tok::load_bpe_tokenizer_json(json);
    else if (has_model) tokenizer = load_model_file(model);
    else throw bad_input("no tokenizer.json or tokenizer.model in the model directory").file(path);
    apply_tokenizer_config(*tokenizer, path);
    return tokenizer;
  }
  if (!fs::exists(path, ec)) throw bad_input("tokenizer file not found").file(path);
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".gguf") return load_gguf(path);
  if (ext == ".json") return tok::load_bpe_tokenizer_json(path);
  return load_model_file(path);
}

}  // namespace retort

namespace retort {
namespace {

// Whether `text` at `at` spells `piece`, allowing for a SentencePiece dummy prefix (a leading
// space the text does not have); returns the bytes consumed.
std::optional<size_t> spelled_at(std::string_view text, size_t at, std::string_view piece) {
  if (text.substr(at, piece.size()) == piece) return piece.size();
  if (!piece.empty() && piece[0] == ' ' && text.substr(at, piece.size() - 1) == piece.substr(1)) return piece.size() - 1;
  return std::nullopt;
}

bool is_ascii_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

}  // namespace

std::vector<std::pair<size_t, size_t>> token_byte_spans(const Tokenizer& tokenizer, std::string_view text,
                                                        std::span<const TokenId> ids) {
  std::vector<std::pair<size_t, size_t>> spans;
  spans.reserve(ids.size());
  size_t cursor = 0;
  bool fragment_start = true;
  for (const TokenId id : ids) {
    std::string piece = tokenizer.token_bytes(id);
    const bool special = tokenizer.is_special(id);
    // The dummy prefix stands for no text (SentencePiece's own offsets say so).
    if (fragment_start && !special && tokenizer.adds_dummy_prefix() && !piece.empty() && piece[0] == ' ') {
      piece.erase(0, 1);
    }
    fragment_start = special;
    std::optional<size_t> length = piece.empty() ? std::optional<size_t>(0) : spelled_at(text, cursor, piece);
    size_t start = cursor;
    if (!length) {
      // Whitespace a special token swallowed (lstrip/rstrip) is in the text but in no token.
      size_t skipped = cursor;
      while (skipped < text.size() && is_ascii_space(text[skipped])) ++skipped;
      if (skipped > cursor && (length = spelled_at(text, skipped, piece))) start = skipped;
    }
    if (!length && id == tokenizer.special_ids().unk) {
      length = std::max<size_t>(1, tok::utf8_valid_length(text, cursor));  // one character the vocabulary lacks
    }
    if (!length && special) length = 0;  // added by the tokenizer (BOS/EOS), not in the text
    if (!length) {
      throw internal_error("token " + std::to_string(id) + " ('" + tok::utf8_lossy(piece) +
                           "') does not spell the text at byte " + std::to_string(cursor) + " ('" +
                           tok::utf8_lossy(text.substr(cursor, 24)) + "')");
    }
    spans.emplace_back(start, start + *length);
    cursor = start + *length;
  }
  return spans;
}

bool ControlTokenFilter::allows(size_t begin, size_t end) const {
  if (mode == ControlTokens::kParse) return true;
  const auto place = std::lower_bound(at.begin(), at.end(), std::pair<size_t, size_t>{begin, 0});
  return place != at.end() && place->first == begin && place->second == end;
}

void Tokenizer::set_control_strings(const std::vector<std::string>& strings) {
  control_by_first_byte_.assign(256, {});
  for (const std::string& text : strings) {
    if (!text.empty()) control_by_first_byte_[static_cast<unsigned char>(text[0])].push_back(text);
  }
  for (auto& list : control_by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  }
}

std::vector<std::pair<size_t, size_t>> Tokenizer::find_control_strings(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  if (control_by_first_byte_.empty()) return out;
  for (size_t i = 0; i < text.size();) {
    size_t length = 0;
    for (const std::string& control : control_by_first_byte_[static_cast<unsigned char>(text[i])]) {
      if (text.compare(i, control.size(), control) == 0) {
        length = control.size();
        break;
      }
    }
    if (length == 0) {
      ++i;
      continue;
    }
    out.emplace_back(i, i + length);
    i += length;
  }
  return out;
}

}  // namespace retort
