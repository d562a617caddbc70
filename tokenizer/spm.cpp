// SentencePiece through libsentencepiece: encoding is the library's; decoding to raw bytes is
// done here from the pieces (byte pieces <0xXX>, `▁` -> space, the dummy prefix dropped from
// the first piece) so that the stream decoder can hold back partial UTF-8 characters, which
// the library's Decode would already have replaced by U+FFFD.
#include "tokenizer/spm.h"

#include <sentencepiece_processor.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "io/error.h"
#include "tokenizer/unicode.h"

namespace retort::tok {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(std::string path, const std::string& proto) : path_(std::move(path)) {
    const auto status = processor_.LoadFromSerializedProto(proto);
    if (!status.ok()) throw bad_input("not a SentencePiece model: " + status.ToString()).file(path_);
    const int n = processor_.GetPieceSize();
    pieces_.resize(n);
    for (int id = 0; id < n; ++id) pieces_[id] = processor_.IdToPiece(id);
    auto maybe = [&](int id) -> std::optional<TokenId> {
      if (id < 0 || id >= n) return std::nullopt;
      return id;
    };
    special_.bos = maybe(processor_.bos_id());
    special_.eos = maybe(processor_.eos_id());
    special_.pad = maybe(processor_.pad_id());
    special_.unk = maybe(processor_.unk_id());
    special_.eot = special_.eos;
    // The dummy prefix shows as a leading ▁ when encoding a word without one.
    const std::vector<std::string> probe = processor_.EncodeAsPieces("a");
    dummy_prefix_ = !probe.empty() && probe[0].rfind(kSpace, 0) == 0;
  }

  using Tokenizer::encode;
  std::vector<TokenId> encode(std::string_view text, bool add_special_tokens,
                              const ControlTokenFilter& controls) const override {
    const std::string valid = utf8_lossy(text);
    if (!controls.at.empty() && valid != text) {
      throw internal_error("control-token places given for text that is not valid UTF-8");
    }
    std::vector<TokenId> out;
    if (add_special_tokens && special_.bos) out.push_back(*special_.bos);
    // Split out special-token strings (longest match at the earliest position); every
    // ordinary fragment is encoded on its own, so it gets the dummy prefix as in llama.cpp.
    size_t start = 0;
    // Each special string's next occurrence, searched again only once the cursor passes it
    // (vocabularies such as Mistral v3 have hundreds of control tokens).
    // A control string where `controls` does not allow it is text: its next occurrence is looked for.
    auto next_allowed = [&](const SplitToken& token, size_t from) {
      size_t at = valid.find(token.piece, from);
      while (at != std::string::npos && token.control && !controls.allows(at, at + token.piece.size())) {
        at = valid.find(token.piece, at + 1);
      }
      return at;
    };
    std::vector<size_t> next_at;
    for (const SplitToken& token : special_strings_) next_at.push_back(next_allowed(token, 0));
    while (start < valid.size()) {
      size_t best_at = std::string::npos, best_len = 0;
      TokenId best_id = -1;
      for (size_t k = 0; k < special_strings_.size(); ++k) {
        const auto& [piece, id, control] = special_strings_[k];
        if (next_at[k] != std::string::npos && next_at[k] < start) next_at[k] = next_allowed(special_strings_[k], start);
        const size_t at = next_at[k];
        if (at < best_at || (at == best_at && at != std::string::npos && piece.size() > best_len)) {
          best_at = at;
          best_len = piece.size();
          best_id = id;
        }
      }
      const size_t end = best_at == std::string::npos ? valid.size() : best_at;
      if (end > start) {
        encode_fragment(std::string_view(valid).substr(start, end - start), controls.mode == ControlTokens::kLiteral, out);
      }
      if (best_at == std::string::npos) break;
      out.push_back(best_id);
      start = best_at + best_len;
      if (rstrip_ids_.count(best_id)) {
        while (start < valid.size() && std::isspace(static_cast<unsigned char>(valid[start]))) ++start;
      }
    }
    return out;
  }

  void set_split_tokens(const std::vector<std::string>& split, const std::vector<std::string>& rstrip,
                        const std::set<std::string>& controls) {
    std::vector<std::string> control_strings;
    for (const std::string& token : split) {
      const auto id = token_to_id(token);
      if (!id || token.empty()) continue;
      special_strings_.push_back({token, *id, controls.count(token) > 0});
      if (special_strings_.back().control) control_strings.push_back(token);
    }
    for (const std::string& token : rstrip) {
      if (const auto id = token_to_id(token)) rstrip_ids_.insert(*id);
    }
    set_control_strings(control_strings);
  }

  void set_literal_model(const std::string& proto) {
    literal_processor_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = literal_processor_->LoadFromSerializedProto(proto);
    if (!status.ok()) throw internal_error("the literal-mode SentencePiece model does not load: " + status.ToString()).file(path_);
  }

  void encode_fragment(std::string_view fragment, bool literal, std::vector<TokenId>& out) const {
    std::vector<int> ids;
    const auto& processor = literal && literal_processor_ ? *literal_processor_ : processor_;
    const auto status = processor.Encode(std::string(fragment), &ids);
    if (!status.ok()) throw internal_error("SentencePiece encode failed: " + status.ToString()).file(path_);
    out.insert(out.end(), ids.begin(), ids.end());
  }

  std::string decode_bytes(std::span<const TokenId> ids, bool skip_special_tokens) const override {
    std::string out;
    bool first = true;
    for (TokenId id : ids) {
      check(id);
      if (processor_.IsControl(id)) continue;  // SentencePiece never prints control pieces
      const std::string& piece = pieces_[id];
      if (processor_.IsUnknown(id)) {
        out += " \xE2\x81\x87 ";  // SentencePiece's unknown surface " ⁇ "
      } else if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece[5] == '>') {
        out.push_back(static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
      } else {
        std::string text = piece;
        for (size_t at = 0; (at = text.find(kSpace, at)) != std::string::npos;) text.replace(at, kSpace.size(), " ");
        if (first && dummy_prefix_ && !text.empty() && text[0] == ' ') text.erase(0, 1);
        out += text;
      }
      first = false;
    }
    return out;
  }

  bool adds_dummy_prefix() const override { return dummy_prefix_; }

  std::string token_bytes(TokenId id) const override {
    check(id);
    const std::string& piece = pieces_[id];
    if (processor_.IsControl(id)) return piece;
    if (processor_.IsUnknown(id)) return "";
    if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece[5] == '>') {
      return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    }
    std::string text = piece;
    for (size_t at = 0; (at = text.find(kSpace, at)) != std::string::npos;) text.replace(at, kSpace.size(), " ");
    return text;
  }

  std::optional<TokenId> token_to_id(std::string_view token) const override {
    const int id = processor_.PieceToId(std::string(token));
    if (id == processor_.unk_id() && token != pieces_[id]) return std::nullopt;
    return id;
  }
  std::string id_to_token(TokenId id) const override {
    check(id);
    return pieces_[id];
  }
  size_t vocab_size() const override { return pieces_.size(); }
  bool is_special(TokenId id) const override {
    return id >= 0 && static_cast<size_t>(id) < pieces_.size() && processor_.IsControl(id);
  }

 private:
  void check(TokenId id) const {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) {
      throw bad_input("token id " + std::to_string(id) + " is outside the vocabulary of " +
                      std::to_string(pieces_.size()))
          .file(path_);
    }
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor processor_;
  // ControlTokens::kLiteral: the same model with llama.cpp's control-looking user-defined pieces
  // typed CONTROL (null when that changes nothing).
  std::unique_ptr<sentencepiece::SentencePieceProcessor> literal_processor_;
  std::vector<std::string> pieces_;
  bool dummy_prefix_ = true;
  struct SplitToken {
    std::string piece;
    TokenId id;
    bool control;  // read as text under ControlTokens::kLiteral
  };
  std::vector<SplitToken> special_strings_;
  std::set<TokenId> rstrip_ids_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad_input("cannot open tokenizer model").file(path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  auto tokenizer = std::make_unique<SentencePieceTokenizer>(path, buffer.str());
  // Control pieces written in text ("<s>", "[INST]" from a chat template) are their tokens, as
  // HF tokenizers treats the added tokens of these models and llama.cpp its control tokens.
  std::vector<std::string> controls;
  for (size_t id = 0; id < tokenizer->vocab_size(); ++id) {
    const auto token = static_cast<TokenId>(id);
    if (tokenizer->is_special(token) || token == tokenizer->special_ids().unk) controls.push_back(tokenizer->id_to_token(token));
  }
  tokenizer->set_split_tokens(controls, {}, std::set<std::string>(controls.begin(), controls.end()));
  return tokenizer;
}

std::unique_ptr<Tokenizer> load_sentencepiece_proto(const std::string& proto, const std::string& source,
                                                    const std::vector<std::string>& split_tokens,
                                                    const std::vector<std::string>& rstrip_tokens,
                                                    const std::vector<std::string>& control_tokens,
                                                    const std::string& literal_proto) {
  auto tokenizer = std::make_unique<SentencePieceTokenizer>(source, proto);
  if (!literal_proto.empty() && literal_proto != proto) tokenizer->set_literal_model(literal_proto);
  tokenizer->set_split_tokens(split_tokens, rstrip_tokens,
                              std::set<std::string>(control_tokens.begin(), control_tokens.end()));
  return tokenizer;
}

}  // namespace retort::tok
