#include "tokenizer/vocab_files.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <string_view>
#include <unordered_map>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/patterns.h"

namespace retort::tok {
namespace {

namespace fs = std::filesystem;
// Plain (key-sorted) JSON: an insertion-ordered object of 150k vocabulary entries builds in quadratic time.
using Json = nlohmann::json;

// One llama.cpp pre-tokenizer and its HF tokenizers spelling: the regex steps in order (the last
// one is what ByteLevel's use_regex would add), NFC or not, and tokenizer model flags.
struct PreTokenizerForm {
  const char* gguf_name;
  std::vector<const char*> splits;
  bool nfc = false;
  bool ignore_merges = false;
  bool last_is_byte_level_regex = false;  // the last split is ByteLevel's own (use_regex true)
  bool digits_step = false;               // the first split is HF's Digits(individual_digits)
};

const std::vector<PreTokenizerForm>& pre_tokenizer_forms() {
  static const std::vector<PreTokenizerForm> forms = {
      {"llama-bpe", {kLlama3Pattern}, false, true},
      {"qwen2", {kQwen2Pattern}, true},
      {"smollm", {kDigitPattern, kGpt2Pattern}, false, false, true, true},
      {"gpt-2", {kGpt2Pattern}, false, false, true},
  };
  return forms;
}

const PreTokenizerForm* form_for_pre(const std::string& name) {
  for (const PreTokenizerForm& form : pre_tokenizer_forms()) {
    if (name == form.gguf_name) return &form;
  }
  if (name == "llama3" || name == "llama-v3") return &pre_tokenizer_forms()[0];
  if (name == "deepseek-r1-qwen") return &pre_tokenizer_forms()[1];
  return nullptr;
}

// Added tokens llama.cpp types CONTROL even when not marked special (convert_hf_to_gguf's
// does_token_look_special, the common cases).
bool looks_special(const std::string& token) {
  const bool bars = token.size() >= 4 && token.starts_with("<|") && token.ends_with("|>");
  return bars || token == "<pad>" || token == "<mask>" || token == "<s>" || token == "</s>" || token == "<unk>";
}

// Just enough of the protobuf wire format to read a SentencePiece ModelProto (docs/formats.md §6.1).
class ProtoReader {
 public:
  ProtoReader(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}
  bool done() const { return at_ >= bytes_.size(); }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (done()) fail();
      const uint8_t byte = static_cast<uint8_t>(bytes_[at_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return value;
    }
    fail();
  }
  // Reads a tag; the value is then read with varint(), fixed32(), bytes() or skip().
  std::pair<int, int> tag() {
    const uint64_t key = varint();
    return {static_cast<int>(key >> 3), static_cast<int>(key & 7)};
  }
  float fixed32() {
    if (at_ + 4 > bytes_.size()) fail();
    float value;
    std::memcpy(&value, bytes_.data() + at_, 4);
    at_ += 4;
    return value;
  }
  std::string_view bytes() {
    const uint64_t size = varint();
    if (size > bytes_.size() - at_) fail();
    const std::string_view out = bytes_.substr(at_, size);
    at_ += size;
    return out;
  }
  void skip(int wire_type) {
    if (wire_type == 0) varint();
    else if (wire_type == 1) at_ += 8;
    else if (wire_type == 2) bytes();
    else if (wire_type == 5) at_ += 4;
    else fail();
    if (at_ > bytes_.size()) fail();
  }

 private:
  [[noreturn]] void fail() const { throw bad_input("not a valid SentencePiece model (protobuf)").file(source_); }
  std::string_view bytes_;
  const std::string& source_;
  size_t at_ = 0;
};

// A SentencePiece tokenizer.model as GGUF `llama` vocabulary keys (gguf-py's
// _create_vocab_sentencepiece): pieces, scores and types as stored, padding as "[PAD<id>]".
VocabularyRecord vocabulary_from_spm_model(const std::string& path, int64_t vocab_size) {
  const std::string data = read_text_file(path);
  VocabularyRecord out;
  out.model = "llama";
  out.pre = "default";
  out.source = path;
  bool add_dummy_prefix = true;
  ProtoReader model(data, path);
  while (!model.done()) {
    const auto [field, wire] = model.tag();
    if (field == 1 && wire == 2) {  // SentencePiece { piece = 1; score = 2; type = 3; }
      ProtoReader piece(model.bytes(), path);
      std::string text;
      float score = 0;
      int32_t type = kTokenNormal;
      while (!piece.done()) {
        const auto [f, w] = piece.tag();
        if (f == 1 && w == 2) text = std::string(piece.bytes());
        else if (f == 2 && w == 5) score = piece.fixed32();
        else if (f == 3 && w == 0) type = static_cast<int32_t>(piece.varint());
        else piece.skip(w);
      }
      out.tokens.push_back(text);
      out.scores.push_back(score);
      out.types.push_back(type);
    } else if (field == 3 && wire == 2) {  // NormalizerSpec { add_dummy_prefix = 3; }
      ProtoReader normalizer(model.bytes(), path);
      while (!normalizer.done()) {
        const auto [f, w] = normalizer.tag();
        if (f == 3 && w == 0) add_dummy_prefix = normalizer.varint() != 0;
        else normalizer.skip(w);
      }
    } else {
      model.skip(wire);
    }
  }
  if (out.tokens.empty()) throw bad_input("the SentencePiece model has no pieces").file(path);
  for (int64_t id = static_cast<int64_t>(out.tokens.size()); id < vocab_size; ++id) {
    out.tokens.push_back("[PAD" + std::to_string(id) + "]");
    out.scores.push_back(-1000.0f);
    out.types.push_back(kTokenUnused);
  }
  out.add_space_prefix = add_dummy_prefix;
  return out;
}

}  // namespace

std::string known_pre_tokenizer_names() {
  std::string names;
  for (const PreTokenizerForm& form : pre_tokenizer_forms()) names += (names.empty() ? "" : ", ") + std::string(form.gguf_name);
  return names;
}

VocabularyRecord vocabulary_from_hf_dir(const std::string& directory, int64_t vocab_size) {
  const std::string path = (fs::path(directory) / "tokenizer.json").string();
  const std::string spm_path = (fs::path(directory) / "tokenizer.model").string();
  if (fs::exists(spm_path) && (!fs::exists(path) || !is_byte_level_bpe_json(path))) {
    // SentencePiece (Llama 2, Mistral): the pieces as stored; special ids and BOS as the
    // directory's tokenizer names them.
    VocabularyRecord out = vocabulary_from_spm_model(spm_path, vocab_size);
    const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(directory);
    out.ids = tokenizer->special_ids();
    const std::vector<TokenId> probe = tokenizer->encode("a", true);
    out.add_bos = !probe.empty() && out.ids.bos && probe.front() == *out.ids.bos;
    out.add_eos = !probe.empty() && out.ids.eos && probe.back() == *out.ids.eos;
    return out;
  }
  if (!fs::exists(path)) {
    throw bad_input("exporting this tokenizer to GGUF needs tokenizer.json (byte-level BPE) or tokenizer.model "
                    "(SentencePiece)")
        .file(directory);
  }
  const BpeSpec spec = bpe_spec_from_tokenizer_json(path);
  VocabularyRecord out;
  out.model = "gpt2";
  out.source = path;
  for (const PreTokenizerForm& form : pre_tokenizer_forms()) {
    if (form.splits.size() != spec.splits.size() || form.nfc != spec.nfc) continue;
    bool same = true;
    for (size_t i = 0; i < form.splits.size(); ++i) {
      same &= spec.splits[i].pattern == form.splits[i] && spec.splits[i].behavior == SplitBehavior::kIsolated;
    }
    if (same) out.pre = form.gguf_name;
  }
  if (out.pre.empty()) {
    throw bad_input("this tokenizer.json's pre-tokenizer matches none llama.cpp knows by name (" +
                    known_pre_tokenizer_names() + "); llama.cpp would tokenize differently")
        .file(path)
        .key("pre_tokenizer");
  }
  const int64_t n = std::max<int64_t>(vocab_size, static_cast<int64_t>(spec.vocab.size()));
  std::unordered_map<TokenId, const AddedToken*> added;
  for (const AddedToken& token : spec.added) added[token.id] = &token;
  out.tokens.resize(n);
  out.types.resize(n);
  for (int64_t id = 0; id < n; ++id) {
    if (id >= static_cast<int64_t>(spec.vocab.size()) || spec.vocab[id].empty()) {
      out.tokens[id] = "[PAD" + std::to_string(id) + "]";
      out.types[id] = kTokenUnused;
      continue;
    }
    out.tokens[id] = spec.vocab[id];
    const auto it = added.find(static_cast<TokenId>(id));
    if (it == added.end()) {
      out.types[id] = kTokenNormal;
    } else {
      out.types[id] = it->second->special || looks_special(spec.vocab[id]) ? kTokenControl : kTokenUserDefined;
    }
  }
  out.merges.reserve(spec.merges.size());
  for (const auto& [left, right] : spec.merges) out.merges.push_back(left + " " + right);
  // Special ids as the model directory names them (tokenizer_config.json).
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(directory);
  out.ids = tokenizer->special_ids();
  out.add_bos = !spec.prefix.empty() && out.ids.bos && spec.prefix.front() == *out.ids.bos;
  out.add_eos = !spec.suffix.empty() && out.ids.eos && spec.suffix.back() == *out.ids.eos;
  return out;
}

VocabularyRecord vocabulary_from_gguf(const GgufFile& gguf) {
  VocabularyRecord out;
  out.source = gguf.path();
  out.model = gguf.get_string("tokenizer.ggml.model");
  out.pre = gguf.find_string("tokenizer.ggml.pre").value_or("default");
  out.tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  out.scores = gguf.find_f32_array("tokenizer.ggml.scores").value_or(std::vector<float>{});
  out.types = gguf.find_i32_array("tokenizer.ggml.token_type").value_or(std::vector<int32_t>(out.tokens.size(), 1));
  if (const auto* merges = gguf.find_string_array("tokenizer.ggml.merges")) out.merges = *merges;
  auto id = [&](const char* key) -> std::optional<TokenId> {
    const auto value = gguf.find_u32(key);
    if (!value || *value >= out.tokens.size()) return std::nullopt;
    return static_cast<TokenId>(*value);
  };
  out.ids.bos = id("tokenizer.ggml.bos_token_id");
  out.ids.eos = id("tokenizer.ggml.eos_token_id");
  out.ids.pad = id("tokenizer.ggml.padding_token_id");
  out.ids.eot = id("tokenizer.ggml.eot_token_id");
  out.ids.unk = id("tokenizer.ggml.unknown_token_id");
  out.add_bos = gguf.find_bool("tokenizer.ggml.add_bos_token").value_or(out.model == "llama");
  out.add_eos = gguf.find_bool("tokenizer.ggml.add_eos_token").value_or(false);
  out.add_space_prefix = gguf.find_bool("tokenizer.ggml.add_space_prefix");
  return out;
}

std::string tokenizer_json_from_vocabulary(const VocabularyRecord& vocabulary) {
  if (vocabulary.model != "gpt2") {
    throw bad_input("writing tokenizer.json is implemented for byte-level BPE vocabularies (tokenizer.ggml.model "
                    "gpt2), not '" + vocabulary.model + "'")
        .file(vocabulary.source)
        .key("tokenizer.ggml.model");
  }
  const PreTokenizerForm* form = form_for_pre(vocabulary.pre);
  if (form == nullptr) {
    throw bad_input("pre-tokenizer '" + vocabulary.pre + "' has no HF tokenizers equivalent here (known: " +
                    known_pre_tokenizer_names() + ")")
        .file(vocabulary.source)
        .key("tokenizer.ggml.pre");
  }
  Json added = Json::array();
  Json vocab = Json::object();
  for (size_t id = 0; id < vocabulary.tokens.size(); ++id) {
    const int32_t type = vocabulary.types[id];
    if (type == kTokenUnused) continue;  // converter padding, not part of the tokenizer
    const std::string& token = vocabulary.tokens[id];
    vocab[token] = id;
    if (type == kTokenControl || type == kTokenUserDefined || type == kTokenUnknown) {
      added.push_back({{"id", id}, {"content", token}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", type != kTokenUserDefined}});
    }
  }
  Json merges = Json::array();
  for (const std::string& merge : vocabulary.merges) {
    const size_t space = merge.find(' ', 1);
    if (space == std::string::npos) {
      throw bad_input("merge '" + merge + "' is not 'left right'").file(vocabulary.source).key("tokenizer.ggml.merges");
    }
    merges.push_back(Json::array({merge.substr(0, space), merge.substr(space + 1)}));
  }
  Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                     {"use_regex", form->last_is_byte_level_regex}};
  Json steps = Json::array();
  const size_t regex_steps = form->splits.size() - (form->last_is_byte_level_regex ? 1 : 0);
  for (size_t i = 0; i < regex_steps; ++i) {
    if (i == 0 && form->digits_step) {
      steps.push_back({{"type", "Digits"}, {"individual_digits", true}});
    } else {
      steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", form->splits[i]}}}, {"behavior", "Isolated"},
                       {"invert", false}});
    }
  }
  steps.push_back(byte_level);
  Json post = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  if ((vocabulary.add_bos && vocabulary.ids.bos) || (vocabulary.add_eos && vocabulary.ids.eos)) {
    Json single = Json::array();
    Json pair = Json::array();
    Json special = Json::object();
    auto special_token = [&](TokenId id) {
      const std::string& token = vocabulary.tokens.at(id);
      special[token] = {{"id", token}, {"ids", {id}}, {"tokens", {token}}};
      return Json{{"SpecialToken", {{"id", token}, {"type_id", 0}}}};
    };
    if (vocabulary.add_bos && vocabulary.ids.bos) single.push_back(special_token(*vocabulary.ids.bos));
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    if (vocabulary.add_eos && vocabulary.ids.eos) single.push_back(special_token(*vocabulary.ids.eos));
    pair = single;
    pair.push_back({{"Sequence", {{"id", "B"}, {"type_id", 1}}}});
    post = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", special}};
  }
  Json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", form->nfc ? Json{{"type", "NFC"}} : Json(nullptr)},
      {"pre_tokenizer", steps.size() == 1 ? steps[0] : Json{{"type", "Sequence"}, {"pretokenizers", steps}}},
      {"post_processor", post},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        {"ignore_merges", form->ignore_merges}, {"vocab", vocab}, {"merges", merges}}},
  };
  return root.dump(2, ' ', false, Json::error_handler_t::strict);
}

}  // namespace retort::tok
