// BPE from HF tokenizer.json (docs/formats.md §6.2, §6.2.1: BPE model, both merge forms,
// Sequence/Split/ByteLevel/Metaspace pre-tokenizers, NFC/Replace/Prepend normalizers, the
// decoders of SentencePiece-converted vocabularies, added_tokens, TemplateProcessing) and from
// Meta's tiktoken rank files (§6.3: base64 token + rank; merges recovered by replaying BPE
// over the ranks, as HF's TikTokenConverter does; Llama 3 special tokens as in llama-models).
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "io/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/patterns.h"
#include "tokenizer/unicode.h"

namespace retort::tok {

namespace {

using nlohmann::json;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad_input("cannot open tokenizer file").file(path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

json parse_json(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw bad_input(std::string("not valid JSON: ") + e.what()).file(path);
  }
}

// Escapes a literal string for PCRE2 (HF Split with pattern {"String": ...}).
std::string quote_regex(const std::string& text) { return "\\Q" + text + "\\E"; }

SplitBehavior parse_behavior(const std::string& name, const std::string& path) {
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  throw bad_input("unsupported Split behavior '" + name + "'").file(path).key("pre_tokenizer.behavior");
}

// HF's prepend_scheme, or the add_prefix_space flag of files written before it existed.
PrependScheme parse_prepend_scheme(const json& node, const std::string& path, const std::string& key) {
  if (!node.contains("prepend_scheme")) {
    return node.value("add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
  }
  const std::string name = node.at("prepend_scheme").get<std::string>();
  if (name == "always") return PrependScheme::kAlways;
  if (name == "first") return PrependScheme::kFirst;
  if (name == "never") return PrependScheme::kNever;
  throw bad_input("unsupported Metaspace prepend_scheme '" + name + "'").file(path).key(key);
}

// A Replace normalizer's or decoder's literal pattern ({"String": ...}; regexes are not supported).
std::string literal_pattern(const json& node, const std::string& path, const std::string& key) {
  const json& pattern = node.at("pattern");
  if (!pattern.contains("String")) throw bad_input("only String patterns are supported in Replace").file(path).key(key);
  return pattern.at("String").get<std::string>();
}

// Flattens the pre_tokenizer tree into split steps; returns whether a ByteLevel step exists.
bool add_pre_tokenizer(const json& node, BpeSpec& spec, const std::string& path) {
  if (node.is_null()) return false;
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    bool byte_level = false;
    for (const json& step : node.at("pretokenizers")) byte_level |= add_pre_tokenizer(step, spec, path);
    return byte_level;
  }
  if (type == "Split") {
    if (node.value("invert", false)) {
      throw bad_input("Split with invert=true is not supported").file(path).key("pre_tokenizer.invert");
    }
    const json& pattern = node.at("pattern");
    SplitStep step;
    step.pattern = pattern.contains("Regex") ? pattern.at("Regex").get<std::string>()
                                             : quote_regex(pattern.at("String").get<std::string>());
    step.behavior = parse_behavior(node.value("behavior", "Isolated"), path);
    spec.splits.push_back(step);
    return false;
  }
  if (type == "Digits") {  // HF splits digits off (one by one with individual_digits)
    spec.splits.push_back({node.value("individual_digits", false) ? kDigitPattern : kDigitRunPattern, SplitBehavior::kIsolated});
    return false;
  }
  if (type == "ByteLevel") {
    spec.add_prefix_space = node.value("add_prefix_space", false);
    if (node.value("use_regex", true)) spec.splits.push_back({kGpt2Pattern, SplitBehavior::kIsolated});
    return true;
  }
  if (type == "Metaspace") {
    // Its rewrite runs before every split step, so it has to come first.
    if (!spec.splits.empty() || spec.metaspace) {
      throw bad_input("Metaspace is only supported as the first pre-tokenizer").file(path).key("pre_tokenizer");
    }
    Metaspace metaspace;
    metaspace.replacement = node.value("replacement", metaspace.replacement);
    metaspace.prepend = parse_prepend_scheme(node, path, "pre_tokenizer.prepend_scheme");
    spec.metaspace = metaspace;
    if (node.value("split", true)) {
      spec.splits.push_back({quote_regex(metaspace.replacement), SplitBehavior::kMergedWithNext});
    }
    return false;
  }
  throw bad_input("unsupported pre_tokenizer type '" + type + "'").file(path).key("pre_tokenizer.type");
}

void add_normalizer(const json& node, BpeSpec& spec, const std::string& path) {
  if (node.is_null()) return;
  const std::string type = node.value("type", "");
  if (type == "NFC") {
    // NFC runs before the rewrites (BpeTokenizer::normalize).
    if (!spec.rewrites.empty()) {
      throw bad_input("NFC after Replace or Prepend is not supported").file(path).key("normalizer");
    }
    spec.nfc = true;
  } else if (type == "Sequence") {
    for (const json& step : node.at("normalizers")) add_normalizer(step, spec, path);
  } else if (type == "Replace") {
    spec.rewrites.push_back({TextRewrite::Kind::kReplace, literal_pattern(node, path, "normalizer.pattern"),
                             node.at("content").get<std::string>()});
  } else if (type == "Prepend") {
    spec.rewrites.push_back({TextRewrite::Kind::kPrepend, "", node.at("prepend").get<std::string>()});
  } else {
    throw bad_input("unsupported normalizer type '" + type + "'").file(path).key("normalizer.type");
  }
}

// The decoder of a vocabulary that is not byte-level, flattened into steps.
void add_decoder(const json& node, BpeSpec& spec, const std::string& path) {
  if (node.is_null()) return;
  const std::string type = node.value("type", "");
  DecodeStep step;
  if (type == "Sequence") {
    for (const json& inner : node.at("decoders")) add_decoder(inner, spec, path);
    return;
  }
  if (type == "Replace") {
    step.kind = DecodeStep::Kind::kReplace;
    step.pattern = literal_pattern(node, path, "decoder.pattern");
    step.content = node.at("content").get<std::string>();
  } else if (type == "ByteFallback") {
    step.kind = DecodeStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecodeStep::Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecodeStep::Kind::kStrip;
    step.content = node.at("content").get<std::string>();
    step.start = node.value("start", size_t{0});
    step.stop = node.value("stop", size_t{0});
  } else if (type == "Metaspace") {
    step.kind = DecodeStep::Kind::kMetaspace;
    step.pattern = node.value("replacement", Metaspace().replacement);
    step.strip_first = parse_prepend_scheme(node, path, "decoder.prepend_scheme") != PrependScheme::kNever;
  } else {
    throw bad_input("unsupported decoder type '" + type + "' for a BPE that is not byte-level")
        .file(path)
        .key("decoder.type");
  }
  spec.decoders.push_back(step);
}

// TemplateProcessing "single": the special tokens before and after the sequence $A.
void add_post_processor(const json& node, BpeSpec& spec, const std::string& path) {
  if (node.is_null()) return;
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    for (const json& step : node.at("processors")) add_post_processor(step, spec, path);
    return;
  }
  if (type == "ByteLevel") return;  // offsets only
  if (type != "TemplateProcessing") {
    throw bad_input("unsupported post_processor type '" + type + "'").file(path).key("post_processor.type");
  }
  bool after = false;
  for (const json& piece : node.at("single")) {
    if (piece.contains("Sequence")) {
      after = true;
      continue;
    }
    const std::string name = piece.at("SpecialToken").at("id").get<std::string>();
    const json& entry = node.at("special_tokens").at(name);
    for (const json& id : entry.at("ids")) (after ? spec.suffix : spec.prefix).push_back(id.get<TokenId>());
  }
}

void add_merges(const json& merges, BpeSpec& spec) {
  spec.merges.reserve(merges.size());
  for (const json& merge : merges) {
    if (merge.is_array()) {
      spec.merges.emplace_back(merge.at(0).get<std::string>(), merge.at(1).get<std::string>());
      continue;
    }
    const std::string text = merge.get<std::string>();
    if (text.rfind("#version", 0) == 0) continue;
    const size_t space = text.find(' ');
    if (space == std::string::npos) continue;
    spec.merges.emplace_back(text.substr(0, space), text.substr(space + 1));
  }
}

// Special ids named by their usual token strings (the tokenizer_config.json is not read).
void guess_special_ids(BpeSpec& spec, const std::unordered_map<std::string, TokenId>& ids) {
  auto find = [&](std::initializer_list<const char*> names) -> std::optional<TokenId> {
    for (const char* name : names) {
      if (auto it = ids.find(name); it != ids.end()) return it->second;
    }
    return std::nullopt;
  };
  // Gemma's vocabulary also has "<s>" and "</s>" (as ordinary HTML tags): its own names go first.
  if (!spec.prefix.empty()) spec.ids.bos = spec.prefix.front();
  if (!spec.ids.bos) spec.ids.bos = find({"<|begin_of_text|>", "<bos>", "<s>", "<|startoftext|>"});
  spec.ids.eos = find({"<|end_of_text|>", "<|endoftext|>", "<eos>", "</s>", "<|im_end|>"});
  spec.ids.eot = find({"<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<end_of_turn>"});
  spec.ids.pad = find({"<|finetune_right_pad_id|>", "<pad>", "<|pad|>", "<|endoftext|>"});
  spec.ids.unk = spec.byte_level || !spec.unk ? find({"<unk>", "<|unk|>"}) : spec.unk;
}

}  // namespace

bool is_byte_level_bpe_json(const std::string& path) {
  const json root = parse_json(path);
  if (!root.contains("model") || root["model"].value("type", "") != "BPE") return false;
  const std::string dump = root.value("pre_tokenizer", json()).dump() + root.value("decoder", json()).dump();
  return dump.find("\"ByteLevel\"") != std::string::npos;
}

namespace {

// The model's BPE options beyond vocab and merges.
void add_model_options(const json& model, BpeSpec& spec, const std::unordered_map<std::string, TokenId>& ids,
                       const std::string& path) {
  spec.ignore_merges = model.value("ignore_merges", false);
  spec.byte_fallback = model.value("byte_fallback", false);
  spec.fuse_unk = model.value("fuse_unk", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    if (auto it = ids.find(model["unk_token"].get<std::string>()); it != ids.end()) spec.unk = it->second;
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!spec.byte_level && model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
      throw bad_input(std::string("BPE with a ") + key + " is not supported")
          .file(path)
          .key(std::string("model.") + key);
    }
  }
}

BpeSpec spec_from_json(const std::string& path) {
  const json root = parse_json(path);
  try {
    const json& model = root.at("model");
    const std::string type = model.value("type", "");
    if (type != "BPE") {
      throw bad_input("unsupported tokenizer model type '" + type + "' (only BPE is implemented)")
          .file(path)
          .key("model.type");
    }
    BpeSpec spec;
    spec.source = path;
    std::unordered_map<std::string, TokenId> ids;
    for (const auto& [token, id] : model.at("vocab").items()) ids.emplace(token, id.get<TokenId>());
    for (const json& added : root.value("added_tokens", json::array())) {
      AddedToken token{added.at("content").get<std::string>(), added.at("id").get<TokenId>(),
                       added.value("special", false),         added.value("lstrip", false),
                       added.value("rstrip", false),          added.value("single_word", false),
                       added.value("normalized", false)};
      token.control = token.special;
      ids[token.content] = token.id;
      spec.added.push_back(token);
    }
    TokenId max_id = -1;
    for (const auto& [token, id] : ids) max_id = std::max(max_id, id);
    spec.vocab.assign(max_id + 1, "");
    spec.special.assign(max_id + 1, false);
    spec.raw_decode.assign(max_id + 1, false);
    for (const auto& [token, id] : ids) spec.vocab[id] = token;
    for (const AddedToken& token : spec.added) {
      spec.special[token.id] = token.special;
      spec.raw_decode[token.id] = true;
    }
    add_merges(model.value("merges", json::array()), spec);
    add_normalizer(root.value("normalizer", json()), spec, path);
    // Without a ByteLevel step BPE runs over characters (SentencePiece vocabularies converted by HF).
    spec.byte_level = add_pre_tokenizer(root.value("pre_tokenizer", json()), spec, path);
    if (!spec.byte_level) add_decoder(root.value("decoder", json()), spec, path);
    add_model_options(model, spec, ids, path);
    add_post_processor(root.value("post_processor", json()), spec, path);
    guess_special_ids(spec, ids);
    return spec;
  } catch (const json::exception& e) {
    throw bad_input(std::string("malformed tokenizer.json: ") + e.what()).file(path);
  }
}

}  // namespace

BpeSpec bpe_spec_from_tokenizer_json(const std::string& path) {
  BpeSpec spec = spec_from_json(path);
  if (!spec.byte_level) {
    throw bad_input("not a byte-level BPE tokenizer.json (no ByteLevel pre-tokenizer)").file(path).key("pre_tokenizer");
  }
  return spec;
}

std::unique_ptr<Tokenizer> load_bpe_tokenizer_json(const std::string& path) {
  return std::make_unique<BpeTokenizer>(spec_from_json(path));
}

namespace {

std::string base64_decode(std::string_view text, bool& ok) {
  static const std::array<int8_t, 256> table = [] {
    std::array<int8_t, 256> t;
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  ok = true;
  for (char c : text) {
    if (c == '=') break;
    const int8_t v = table[static_cast<unsigned char>(c)];
    if (v < 0) {
      ok = false;
      return out;
    }
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

// The merge that builds `token`: tiktoken's BPE over its bytes using only lower ranks ends in
// exactly two parts for every token reachable by merging (HF TikTokenConverter).
std::optional<std::pair<std::string, std::string>> recover_merge(
    const std::string& token, int32_t rank, const std::unordered_map<std::string, int32_t>& ranks) {
  std::vector<std::string> parts;
  for (char c : token) parts.emplace_back(1, c);
  while (parts.size() > 2) {
    int32_t best = rank;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = ranks.find(parts[i] + parts[i + 1]);
      if (it != ranks.end() && it->second < best) {
        best = it->second;
        best_i = i;
      }
    }
    if (best == rank) return std::nullopt;
    parts[best_i] += parts[best_i + 1];
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
  }
  if (parts.size() != 2) return std::nullopt;
  return std::make_pair(parts[0], parts[1]);
}

// Llama 3's special tokens (llama-models llama3/tokenizer.py): 256 ids from 128000.
std::vector<std::string> llama3_special_tokens() {
  std::vector<std::string> names = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                                    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                                    "<|python_tag|>", "<|image|>"};
  const size_t fixed = names.size();
  for (size_t i = 0; i < 256 - fixed; ++i) names.push_back("<|reserved_special_token_" + std::to_string(2 + i) + "|>");
  return names;
}

constexpr size_t kLlama3BaseTokens = 128000;

}  // namespace

std::unique_ptr<Tokenizer> load_tiktoken(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<std::string> tokens;  // raw bytes, by rank
  std::unordered_map<std::string, int32_t> ranks;
  std::istringstream lines(text);
  std::string line;
  int64_t line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    bool ok = space != std::string::npos;
    const std::string bytes = ok ? base64_decode(std::string_view(line).substr(0, space), ok) : "";
    int32_t rank = -1;
    if (ok) rank = static_cast<int32_t>(std::strtol(line.c_str() + space + 1, nullptr, 10));
    if (!ok || rank != static_cast<int32_t>(tokens.size())) {
      throw bad_input("expected '<base64 token> <rank>' with ranks 0, 1, 2, ...").file(path).line(line_no);
    }
    ranks.emplace(bytes, rank);
    tokens.push_back(bytes);
  }
  if (tokens.size() != kLlama3BaseTokens) {
    throw bad_input("tiktoken file with " + std::to_string(tokens.size()) +
                    " ranks: only Llama 3's (128000 ranks) special tokens are known")
        .file(path);
  }
  BpeSpec spec;
  spec.source = path;
  spec.ignore_merges = true;  // tiktoken looks a whole piece up before merging
  spec.splits.push_back({kLlama3Pattern, SplitBehavior::kIsolated});
  for (size_t rank = 0; rank < tokens.size(); ++rank) {
    spec.vocab.push_back(bytes_to_byte_level(tokens[rank]));
    if (tokens[rank].size() < 2) continue;
    if (auto merge = recover_merge(tokens[rank], static_cast<int32_t>(rank), ranks)) {
      spec.merges.emplace_back(bytes_to_byte_level(merge->first), bytes_to_byte_level(merge->second));
    }
  }
  std::unordered_map<std::string, TokenId> ids;
  for (const std::string& name : llama3_special_tokens()) {
    const auto id = static_cast<TokenId>(spec.vocab.size());
    spec.vocab.push_back(name);
    AddedToken token{name, id, true};
    token.control = true;
    spec.added.push_back(token);
    ids.emplace(name, id);
  }
  spec.special.assign(spec.vocab.size(), false);
  spec.raw_decode.assign(spec.vocab.size(), false);
  for (const AddedToken& token : spec.added) spec.special[token.id] = spec.raw_decode[token.id] = true;
  spec.prefix = {ids.at("<|begin_of_text|>")};  // Meta's encode(bos=True)
  guess_special_ids(spec, ids);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace retort::tok
