// Tokenizers from GGUF metadata (docs/formats.md §3.5): `tokenizer.ggml.model = gpt2` byte-level
// BPE with the pre-tokenizer regexes of llama.cpp's llm_tokenizer_bpe for each
// `tokenizer.ggml.pre` name (src/llama-vocab.cpp; the rewritten `'[sS]` contractions are kept
// in their original `(?i:...)` form, which PCRE2 supports).
#include "tokenizer/gguf_vocab.h"

#include <unordered_set>

#include "io/error.h"
#include "io/gguf.h"
#include "tokenizer/bpe.h"

namespace retort::tok {

namespace {

constexpr int32_t kTypeUnknown = 2, kTypeControl = 3, kTypeUserDefined = 4;

constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen35 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kCjk = "[一-龥ࠀ-一가-퟿]+";

struct PreTokenizer {
  std::vector<std::string> names;
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  bool add_bos = false;
};

// llama.cpp's table, for the names our vocabularies and llama.cpp's test vocabularies use.
const std::vector<PreTokenizer>& pre_tokenizers() {
  static const std::vector<PreTokenizer> table = {
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"}, {kLlama3}, true, true},
      {{"dbrx", "smaug-bpe"}, {kLlama3}},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2"}, {kQwen2}},
      {{"qwen35"}, {kQwen35}},
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais"}, {kGpt2}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone"}, {R"(\p{N})", kGpt2}},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}},
      {{"deepseek-coder"}, {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, R"(\p{N})"}},
      // llama.cpp runs these (no \p{..} classes) through std::wregex on a copy of the text whose
      // non-ASCII whitespace is replaced by U+000B, so the ideographic space U+3000 never matches
      // the punctuation class it opens in deepseek's tokenizer.json ("　-。"): the class here
      // starts at U+3001. (\s still matches U+3000 in both.)
      {{"deepseek-llm"},
       {"[\r\n]",
        "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
        "\\s?[!-/:-~！-／：-～‘-‟、-。]+", "\\s+$", kCjk, R"(\p{N}+)"}},
      {{"default"}, {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}},
  };
  return table;
}

const PreTokenizer& find_pre_tokenizer(const std::string& name, const std::string& path) {
  for (const PreTokenizer& pre : pre_tokenizers()) {
    for (const std::string& known : pre.names) {
      if (known == name) return pre;
    }
  }
  throw bad_input("unsupported BPE pre-tokenizer '" + name + "'").file(path).key("tokenizer.ggml.pre");
}

std::optional<TokenId> find_id(const GgufFile& gguf, const char* key, size_t n) {
  auto id = gguf.find_u32(key);
  if (!id || *id >= n) return std::nullopt;
  return static_cast<TokenId>(*id);
}

}  // namespace

// Token texts llama.cpp recognises as end-of-generation / FIM / pad markers and forces to
// CONTROL whatever their stored type (llama_vocab::impl::load, "control-looking token").
const std::unordered_set<std::string>& control_looking_tokens() {
  static const std::unordered_set<std::string> names = {"</s>","<EOT>","<MID>","<PAD>","<PRE>","<REPO>","<SUF>","<end_of_turn>","<end_of_utterance>","<eos>","<fim-middle>","<fim-pad>","<fim-prefix>","<fim-repo>","<fim-suffix>","<fim_middle>","<fim_pad>","<fim_prefix>","<fim_suffix>","<reponame>","<turn|>","<|calls|>","<|call|>","<|channel|>","<|code_middle|>","<|code_prefix|>","<|code_suffix|>","<|constrain|>","<|end_of_text|>","<|endoftext|>","<|end|>","<|eom_id|>","<|eot_id|>","<|file_sep|>","<|fim_middle|>","<|fim_pad|>","<|fim_prefix|>","<|fim_repo|>","<|fim_suffix|>","<|flush|>","<|im_end|>","<|message|>","<|middle|>","<|prefix|>","<|repo_name|>","<|return|>","<|start|>","<|suffix|>","<|tool_response>","<｜end▁of▁sentence｜>","<｜fim▁begin｜>","<｜fim▁end｜>","<｜fim▁hole｜>","[EOS]","[EOT]","[PAD]","_<EOT>","▁<MID>","▁<PRE>","▁<SUF>"};
  return names;
}

std::unique_ptr<Tokenizer> load_gguf_bpe(const GgufFile& gguf) {
  const std::string& path = gguf.path();
  BpeSpec spec;
  spec.source = path;
  spec.vocab = gguf.get_string_array("tokenizer.ggml.tokens");
  const size_t n = spec.vocab.size();
  const auto types = gguf.find_i32_array("tokenizer.ggml.token_type").value_or(std::vector<int32_t>(n, 1));
  if (types.size() != n) {
    throw bad_input("token_type has " + std::to_string(types.size()) + " entries for " + std::to_string(n) +
                    " tokens")
        .file(path)
        .key("tokenizer.ggml.token_type");
  }
  const auto& merges = gguf.get_string_array("tokenizer.ggml.merges");
  spec.merges.reserve(merges.size());
  for (const std::string& merge : merges) {
    const size_t space = merge.find(' ', 1);  // the left part may itself start with a space
    if (space == std::string::npos) {
      throw bad_input("merge '" + merge + "' is not 'left right'").file(path).key("tokenizer.ggml.merges");
    }
    spec.merges.emplace_back(merge.substr(0, space), merge.substr(space + 1));
  }
  const std::string pre_name = gguf.find_string("tokenizer.ggml.pre").value_or("default");
  const PreTokenizer& pre = find_pre_tokenizer(pre_name, path);
  for (const std::string& regex : pre.regexes) spec.splits.push_back({regex, SplitBehavior::kIsolated});
  spec.ignore_merges = pre.ignore_merges;
  spec.special.assign(n, false);
  spec.raw_decode.assign(n, false);
  // llama.cpp's cache_special_tokens: control, user-defined and unknown tokens are split out
  // of the text before BPE; control ones are "special" (dropped when skipping specials).
  for (size_t id = 0; id < n; ++id) {
    const int32_t type = control_looking_tokens().count(spec.vocab[id]) ? kTypeControl : types[id];
    if (type != kTypeControl && type != kTypeUserDefined && type != kTypeUnknown) continue;
    AddedToken token{spec.vocab[id], static_cast<TokenId>(id), type == kTypeControl};
    token.control = type == kTypeControl || type == kTypeUnknown;  // llama.cpp's parse_special=false skips both
    spec.added.push_back(token);
    spec.special[id] = type == kTypeControl;
    spec.raw_decode[id] = true;
  }
  spec.ids.bos = find_id(gguf, "tokenizer.ggml.bos_token_id", n);
  spec.ids.eos = find_id(gguf, "tokenizer.ggml.eos_token_id", n);
  spec.ids.pad = find_id(gguf, "tokenizer.ggml.padding_token_id", n);
  spec.ids.eot = find_id(gguf, "tokenizer.ggml.eot_token_id", n);
  spec.ids.unk = find_id(gguf, "tokenizer.ggml.unknown_token_id", n);
  if (!gguf.find("tokenizer.ggml.bos_token_id") && n > 11) spec.ids.bos = 11;  // llama.cpp's gpt2 default
  if (!gguf.find("tokenizer.ggml.eos_token_id") && n > 11) spec.ids.eos = 11;
  const bool add_bos = gguf.find_bool("tokenizer.ggml.add_bos_token").value_or(pre.add_bos);
  const bool add_eos = gguf.find_bool("tokenizer.ggml.add_eos_token").value_or(false);
  if (add_bos && spec.ids.bos) spec.prefix = {*spec.ids.bos};
  if (add_eos && spec.ids.eos) spec.suffix = {*spec.ids.eos};
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace retort::tok
