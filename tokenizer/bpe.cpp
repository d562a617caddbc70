// BPE encoding and decoding, byte-level or over characters with byte fallback (HF tokenizers
// models/bpe/model.rs, added_vocabulary.rs, normalizers/replace.rs and prepend.rs,
// pre_tokenizers/split.rs and metaspace.rs, decoders/; llama.cpp llm_tokenizer_bpe_session).
// Merges run on a linked list of symbols driven by a priority queue of (rank, position), so a
// long word costs O(n log n), not O(n^2).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/bpe.h"

#include <pcre2.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <queue>

#include "io/error.h"
#include "tokenizer/unicode.h"

namespace retort::tok {

namespace {

constexpr size_t kMaxCacheEntries = 200000;

uint64_t pair_key(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_valid_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// A word character for single_word added tokens: ASCII alphanumerics, '_' and any
// non-ASCII byte (the latter approximates Unicode letters, which is what HF checks).
bool is_word_byte(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) || c == '_';
}

// Every non-overlapping occurrence of `pattern`, left to right (HF Replace with a String pattern).
void replace_all(std::string& text, std::string_view pattern, std::string_view content) {
  size_t at = pattern.empty() ? std::string::npos : text.find(pattern);
  if (at == std::string::npos) return;
  std::string out;
  out.reserve(text.size() + text.size() / 4 * content.size());
  size_t done = 0;
  for (; at != std::string::npos; at = text.find(pattern, done)) {
    out.append(text, done, at - done).append(content);
    done = at + pattern.size();
  }
  out.append(text, done);
  text.swap(out);
}

// HF ByteFallback's byte tokens: "<0xXX>" with two hex digits.
std::optional<char> fallback_byte(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int high = hex(token[3]), low = hex(token[4]);
  if (high < 0 || low < 0) return std::nullopt;
  return static_cast<char>(high * 16 + low);
}

// Per byte: the token of its GPT-2 byte-level character, its <0xXX> byte-fallback token and
// (ASCII only) the token of the character itself; -1 where the vocabulary has none.
void index_byte_tokens(const std::unordered_map<std::string, TokenId>& ids, TokenId vocab_size,
                       std::vector<TokenId>& byte_level, std::vector<TokenId>& fallback,
                       std::vector<TokenId>& ascii) {
  byte_level.assign(256, -1);
  fallback.assign(256, -1);
  ascii.assign(128, -1);
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    append_utf8(ch, byte_to_unicode()[b]);
    if (auto it = ids.find(ch); it != ids.end()) byte_level[b] = it->second;
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);  // HF's format!("<{b:#04X}>")
    if (auto it = ids.find(name); it != ids.end()) fallback[b] = it->second;
    if (b >= 128) continue;
    const auto it = ids.find(std::string(1, static_cast<char>(b)));
    if (it != ids.end() && it->second < vocab_size) ascii[b] = it->second;
  }
}

}  // namespace

struct BpeTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { if (code) pcre2_code_free(code); }
};

BpeTokenizer::~BpeTokenizer() = default;

BpeTokenizer::BpeTokenizer(BpeSpec spec) : spec_(std::move(spec)) {
  const size_t n = spec_.vocab.size();
  spec_.special.resize(n, false);
  spec_.raw_decode.resize(n, false);
  special_ = spec_.ids;
  token_ids_.reserve(n * 2);
  for (size_t id = 0; id < n; ++id) {
    if (!spec_.vocab[id].empty()) token_ids_.emplace(spec_.vocab[id], static_cast<TokenId>(id));
  }
  for (const AddedToken& token : spec_.added) token_ids_[token.content] = token.id;
  index_byte_tokens(token_ids_, static_cast<TokenId>(n), byte_ids_, fallback_ids_, ascii_ids_);
  merges_.reserve(spec_.merges.size() * 2);
  for (size_t rank = 0; rank < spec_.merges.size(); ++rank) {
    const auto& [left, right] = spec_.merges[rank];
    const auto l = token_ids_.find(left), r = token_ids_.find(right);
    if (l == token_ids_.end() || r == token_ids_.end()) continue;  // can never apply
    TokenId merged;
    if (auto m = token_ids_.find(left + right); m != token_ids_.end()) {
      merged = m->second;
    } else {
      merged = static_cast<TokenId>(n + virtual_tokens_.size());
      virtual_tokens_.push_back(left + right);
      token_ids_.emplace(left + right, merged);
    }
    merges_.emplace(pair_key(l->second, r->second), std::make_pair(static_cast<int32_t>(rank), merged));
  }
  for (const SplitStep& step : spec_.splits) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    auto regex = std::make_unique<Regex>();
    regex->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(step.pattern.data()), step.pattern.size(),
                                PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (!regex->code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      throw bad_input("pre-tokenizer regex does not compile at offset " + std::to_string(offset) + ": " +
                      reinterpret_cast<char*>(message))
          .file(spec_.source);
    }
    pcre2_jit_compile(regex->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
    regexes_.push_back(std::move(regex));
  }
  added_raw_.resize(256);
  added_norm_.resize(256);
  has_normalizer_ = spec_.nfc || !spec_.rewrites.empty();
  normalized_added_.reserve(spec_.added.size());  // no reallocation: the tables point into it
  for (const AddedToken& token : spec_.added) {
    if (token.content.empty()) continue;
    // Without a normaliser both kinds match the same text, so one pass is enough.
    const bool norm = token.normalized && has_normalizer_;
    has_normalized_added_ |= norm;
    const AddedToken* entry = &token;
    if (norm) {
      normalized_added_.push_back(token);
      normalized_added_.back().content = normalize(token.content);
      entry = &normalized_added_.back();
      if (entry->content.empty()) continue;
    }
    (norm ? added_norm_ : added_raw_)[static_cast<unsigned char>(entry->content[0])].push_back(entry);
  }
  for (auto* table : {&added_raw_, &added_norm_}) {
    for (auto& list : *table) {
      std::stable_sort(list.begin(), list.end(), [](const AddedToken* a, const AddedToken* b) {
        return a->content.size() > b->content.size();
      });
    }
  }
  std::vector<std::string> controls;
  for (const AddedToken& token : spec_.added) {
    if (token.control) controls.push_back(token.content);
  }
  set_control_strings(controls);
}

// Splits `text` into added tokens and the text between them: leftmost match first, the
// longest token at that position (HF's aho-corasick LeftmostLongest), with lstrip/rstrip
// swallowing the neighbouring whitespace.
// Control tokens match only where `controls` allows (a place in the normalised pass never is one).
void BpeTokenizer::split_added(std::string_view text, bool normalized_pass, const ControlTokenFilter& controls,
                               std::vector<Segment>& out) const {
  const auto& table = normalized_pass ? added_norm_ : added_raw_;
  const bool all_controls = controls.mode == ControlTokens::kParse;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const AddedToken* found = nullptr;
    for (const AddedToken* token : table[static_cast<unsigned char>(text[i])]) {
      if (text.compare(i, token->content.size(), token->content) != 0) continue;
      if (token->control && !all_controls && (normalized_pass || !controls.allows(i, i + token->content.size()))) {
        continue;
      }
      if (token->single_word) {
        const size_t end = i + token->content.size();
        if ((i > 0 && is_word_byte(text[i - 1])) || (end < text.size() && is_word_byte(text[end]))) continue;
      }
      found = token;
      break;
    }
    if (!found) {
      ++i;
      continue;
    }
    size_t left = i, right = i + found->content.size();
    if (found->lstrip) while (left > start && is_space(text[left - 1])) --left;
    if (found->rstrip) while (right < text.size() && is_space(text[right])) ++right;
    if (left > start) out.push_back({text.substr(start, left - start), -1});
    out.push_back({{}, found->id});
    start = i = right;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});
}

std::vector<TokenId> BpeTokenizer::encode(std::string_view text, bool add_special_tokens,
                                          const ControlTokenFilter& controls) const {
  std::string repaired;
  if (!is_valid_utf8(text)) {
    if (!controls.at.empty()) throw internal_error("control-token places given for text that is not valid UTF-8");
    repaired = utf8_lossy(text);
    text = repaired;
  }
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special_tokens) out.insert(out.end(), spec_.prefix.begin(), spec_.prefix.end());
  std::vector<Segment> raw;
  split_added(text, false, controls, raw);
  std::deque<std::string> normalized;  // owns normalised text the segments point into
  std::vector<Segment> inner;
  for (const Segment& segment : raw) {
    if (segment.id >= 0) {
      out.push_back(segment.id);
      continue;
    }
    // Metaspace's prepend_scheme "first" looks at whether a piece starts the original text.
    const bool at_text_start = segment.text.data() == text.data();
    std::string_view piece = segment.text;
    if (has_normalizer_) piece = normalized.emplace_back(normalize(piece));
    if (!has_normalized_added_) {
      encode_text(piece, at_text_start, out);
      continue;
    }
    inner.clear();
    split_added(piece, true, controls, inner);
    for (const Segment& s : inner) {
      if (s.id >= 0) out.push_back(s.id);
      else encode_text(s.text, at_text_start && s.text.data() == piece.data(), out);
    }
  }
  if (add_special_tokens) out.insert(out.end(), spec_.suffix.begin(), spec_.suffix.end());
  return out;
}

// NFC, then the Replace/Prepend normalizers in order; HF runs them on each piece of text
// between added tokens, so a Prepend lands after every added token too.
std::string BpeTokenizer::normalize(std::string_view text) const {
  std::string out = spec_.nfc ? nfc(text) : std::string(text);
  for (const TextRewrite& rewrite : spec_.rewrites) {
    if (rewrite.kind == TextRewrite::Kind::kReplace) replace_all(out, rewrite.pattern, rewrite.content);
    else if (!out.empty()) out.insert(0, rewrite.content);
  }
  return out;
}

void BpeTokenizer::encode_text(std::string_view text, bool at_text_start, std::vector<TokenId>& out) const {
  std::string prefixed;
  if (spec_.add_prefix_space && !text.empty() && text[0] != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  if (spec_.metaspace && !text.empty()) {
    const Metaspace& metaspace = *spec_.metaspace;
    prefixed = text;
    replace_all(prefixed, " ", metaspace.replacement);
    const bool prepend = metaspace.prepend == PrependScheme::kAlways ||
                         (metaspace.prepend == PrependScheme::kFirst && at_text_start);
    if (prepend && prefixed.rfind(metaspace.replacement, 0) != 0) prefixed.insert(0, metaspace.replacement);
    text = prefixed;
  }
  std::vector<std::string_view> words;
  pre_tokenize(text, words);
  for (std::string_view word : words) encode_word(word, out);
}

// Runs the split steps in order. Each step looks at one piece at a time (a lookahead
// cannot see past the piece, as in llama.cpp's unicode_regex_split and HF's Sequence).
void BpeTokenizer::pre_tokenize(std::string_view text, std::vector<std::string_view>& words) const {
  words.assign(1, text);
  if (text.empty()) words.clear();
  pcre2_match_data* match = regexes_.empty() ? nullptr : pcre2_match_data_create(1, nullptr);
  std::vector<std::string_view> next;
  for (size_t k = 0; k < regexes_.size(); ++k) {
    const SplitBehavior behavior = spec_.splits[k].behavior;
    next.clear();
    for (std::string_view piece : words) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t pos = 0, last = 0;  // pos: search start; last: end of what was emitted
      bool pending_merge = false;  // MergedWithNext: a match waiting for the piece after it
      size_t merge_start = 0;
      bool prev_match = false, piece_has_output = false;
      // HF split.rs: a MergedWith* match joins its neighbour only when that is not a match.
      auto emit = [&](size_t a, size_t b, bool is_match) {
        if (b <= a) return;
        const bool after_match = prev_match;
        prev_match = is_match;
        bool join = false;
        switch (behavior) {
          case SplitBehavior::kRemoved:
            if (is_match) return;
            break;
          case SplitBehavior::kMergedWithPrevious:
            join = is_match && piece_has_output && !after_match;
            break;
          case SplitBehavior::kMergedWithNext:
            if (pending_merge && is_match) next.push_back(piece.substr(merge_start, a - merge_start));
            if (is_match) { pending_merge = true; merge_start = a; return; }
            if (pending_merge) { a = merge_start; pending_merge = false; }
            break;
          case SplitBehavior::kContiguous:
            join = is_match && after_match && piece_has_output;
            break;
          case SplitBehavior::kIsolated:
            break;
        }
        if (join) {
          next.back() = std::string_view(next.back().data(), piece.data() + b - next.back().data());
        } else {
          next.push_back(piece.substr(a, b - a));
          piece_has_output = true;
        }
      };
      while (pos <= piece.size()) {
        const int rc = pcre2_match(regexes_[k]->code, subject, piece.size(), pos, 0, match, nullptr);
        if (rc < 0) break;
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
        const size_t a = ov[0], b = ov[1];
        if (b == a) {  // empty match: step over one character and search again
          pos = a + std::max<size_t>(1, utf8_valid_length(piece, std::min(a, piece.size() - 1)));
          if (a >= piece.size()) break;
          continue;
        }
        emit(last, a, false);
        emit(a, b, true);
        last = pos = b;
      }
      emit(last, piece.size(), false);
      if (pending_merge) next.push_back(piece.substr(merge_start));
    }
    words.swap(next);
  }
  if (match) pcre2_match_data_free(match);
}

void BpeTokenizer::encode_word(std::string_view word_bytes, std::vector<TokenId>& out) const {
  std::string key(word_bytes);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<TokenId> ids;
  const std::string word = spec_.byte_level ? bytes_to_byte_level(word_bytes) : std::string();
  auto direct = spec_.ignore_merges ? token_ids_.find(spec_.byte_level ? word : key) : token_ids_.end();
  if (direct != token_ids_.end() && direct->second < static_cast<TokenId>(spec_.vocab.size())) {
    ids.push_back(direct->second);
  } else {
    std::vector<TokenId> initial;
    if (spec_.byte_level) {
      initial.reserve(key.size());
      for (char c : key) initial.push_back(byte_ids_[static_cast<unsigned char>(c)]);
    } else {
      char_symbols(key, initial);
    }
    merge_word(initial, ids);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(std::move(key), std::move(ids));
}

// The symbols a word starts from when BPE runs over characters (HF model.rs merge_word): a
// character's own token, else its bytes' <0xXX> tokens when byte fallback has them all, else
// unk (consecutive ones fused with fuse_unk), else nothing.
void BpeTokenizer::char_symbols(std::string_view word, std::vector<TokenId>& ids) const {
  const auto vocab_size = static_cast<TokenId>(spec_.vocab.size());
  bool unk_pending = false;  // HF holds one unk back until a character found in the vocabulary
  for (size_t i = 0; i < word.size();) {
    const size_t length = std::max<size_t>(1, utf8_valid_length(word, i));
    const std::string_view ch = word.substr(i, length);
    i += length;
    TokenId id = -1;
    if (static_cast<unsigned char>(ch[0]) < 0x80) {
      id = ascii_ids_[static_cast<unsigned char>(ch[0])];
    } else if (auto it = token_ids_.find(std::string(ch)); it != token_ids_.end() && it->second < vocab_size) {
      id = it->second;
    }
    if (id >= 0) {
      if (unk_pending) ids.push_back(*spec_.unk);
      unk_pending = false;
      ids.push_back(id);
      continue;
    }
    if (spec_.byte_fallback &&
        std::all_of(ch.begin(), ch.end(), [&](char c) { return fallback_ids_[static_cast<unsigned char>(c)] >= 0; })) {
      for (char c : ch) ids.push_back(fallback_ids_[static_cast<unsigned char>(c)]);  // a held unk stays held
      continue;
    }
    if (!spec_.unk) continue;
    if (unk_pending && !spec_.fuse_unk) ids.push_back(*spec_.unk);
    unk_pending = true;
  }
  if (unk_pending) ids.push_back(*spec_.unk);
}

// Rank-ordered merging: symbols form a doubly linked list over the word's initial tokens; the
// queue holds candidate pairs ordered by (rank, left position) and stale entries are skipped
// when popped (the left or right symbol changed since the pair was pushed).
void BpeTokenizer::merge_word(const std::vector<TokenId>& initial, std::vector<TokenId>& out) const {
  struct Symbol {
    TokenId id;
    int prev, next;
  };
  struct Candidate {
    int32_t rank;
    int pos;
    TokenId left, right, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Symbol> symbols(initial.size());
  for (size_t i = 0; i < initial.size(); ++i) {
    symbols[i] = {initial[i], static_cast<int>(i) - 1, i + 1 < initial.size() ? static_cast<int>(i) + 1 : -1};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push = [&](int left) {
    if (left < 0) return;
    const int right = symbols[left].next;
    if (right < 0 || symbols[left].id < 0 || symbols[right].id < 0) return;
    auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it == merges_.end()) return;
    queue.push({it->second.first, left, symbols[left].id, symbols[right].id, it->second.second});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) push(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.pos];
    if (left.id != c.left || left.next < 0 || symbols[left.next].id != c.right) continue;
    const int right = left.next;
    left.id = c.merged;
    left.next = symbols[right].next;
    if (left.next >= 0) symbols[left.next].prev = c.pos;
    symbols[right].id = -2;  // removed
    push(left.prev);
    push(c.pos);
  }
  const auto vocab_size = static_cast<TokenId>(spec_.vocab.size());
  for (int i = initial.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    const TokenId id = symbols[i].id;
    if (id < 0) continue;  // a byte with no token: dropped, as llama.cpp and HF without unk do
    if (id < vocab_size) {
      out.push_back(id);
      continue;
    }
    // A merge result missing from the vocabulary: llama.cpp emits it character by character.
    const std::string& text = virtual_tokens_[id - vocab_size];
    for (size_t k = 0; k < text.size();) {
      const size_t n = std::max<size_t>(1, utf8_valid_length(text, k));
      if (auto it = token_ids_.find(text.substr(k, n)); it != token_ids_.end() && it->second < vocab_size) {
        out.push_back(it->second);
      }
      k += n;
    }
  }
}

void BpeTokenizer::check_id(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= spec_.vocab.size()) {
    throw bad_input("token id " + std::to_string(id) + " is outside the vocabulary of " +
                    std::to_string(spec_.vocab.size()))
        .file(spec_.source);
  }
}

std::string BpeTokenizer::decode_bytes(std::span<const TokenId> ids, bool skip_special_tokens) const {
  if (!spec_.byte_level) return decode_chars(ids, skip_special_tokens, true);
  std::string out;
  for (TokenId id : ids) {
    check_id(id);
    if (skip_special_tokens && spec_.special[id]) continue;
    const std::string& text = spec_.vocab[id];
    // HF's ByteLevel decoder: a token whose characters are not all byte-level ones is
    // taken as written (added tokens such as "<|eot_id|>" come out unchanged either way).
    std::string bytes;
    if (!spec_.raw_decode[id] && byte_level_to_bytes(text, bytes)) out += bytes;
    else out += text;
  }
  return out;
}

// HF's decoder chain over the token strings, added tokens included (tokenizer/mod.rs decode).
// ByteFallback leaves the bytes as they are, even when they are not valid UTF-8: decode()
// repairs them and StreamDecoder holds a split character back. Mid-text (`whole_text` false),
// the steps that only touch the start of a text (Strip, Metaspace's first token) are skipped.
std::string BpeTokenizer::decode_chars(std::span<const TokenId> ids, bool skip_special_tokens, bool whole_text) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (TokenId id : ids) {
    check_id(id);
    if (!skip_special_tokens || !spec_.special[id]) tokens.push_back(spec_.vocab[id]);
  }
  if (spec_.decoders.empty()) {  // HF without a decoder
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const DecodeStep& step : spec_.decoders) {
    switch (step.kind) {
      case DecodeStep::Kind::kReplace:
        for (std::string& token : tokens) replace_all(token, step.pattern, step.content);
        break;
      case DecodeStep::Kind::kByteFallback: {
        std::vector<std::string> joined;
        bool in_bytes = false;  // the last of `joined` collects a run of byte tokens
        for (std::string& token : tokens) {
          const std::optional<char> byte = fallback_byte(token);
          if (byte && in_bytes) joined.back().push_back(*byte);
          else if (byte) joined.emplace_back(1, *byte);
          else joined.push_back(std::move(token));
          in_bytes = byte.has_value();
        }
        tokens.swap(joined);
        break;
      }
      case DecodeStep::Kind::kFuse: {
        std::string fused;
        for (const std::string& token : tokens) fused += token;
        tokens.assign(1, std::move(fused));
        break;
      }
      case DecodeStep::Kind::kStrip:
        if (!whole_text) break;
        for (std::string& token : tokens) {
          const std::string& c = step.content;
          size_t begin = 0, end = token.size();
          for (size_t k = 0; k < step.start && token.compare(begin, c.size(), c) == 0; ++k) begin += c.size();
          for (size_t k = 0; k < step.stop && end >= begin + c.size(); ++k) {
            if (token.compare(end - c.size(), c.size(), c) != 0) break;
            end -= c.size();
          }
          token = token.substr(begin, end - begin);
        }
        break;
      case DecodeStep::Kind::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          // HF drops every replacement character of the first token, not only a leading one.
          replace_all(tokens[i], step.pattern, i == 0 && whole_text && step.strip_first ? "" : " ");
        }
        break;
    }
  }
  std::string out;
  for (const std::string& token : tokens) out += token;
  return out;
}

std::string BpeTokenizer::token_bytes(TokenId id) const {
  if (spec_.byte_level) return decode_bytes(std::span<const TokenId>(&id, 1), false);
  return decode_chars(std::span<const TokenId>(&id, 1), false, false);
}

bool BpeTokenizer::adds_dummy_prefix() const {
  if (spec_.byte_level) return false;
  if (spec_.metaspace && spec_.metaspace->prepend != PrependScheme::kNever) return true;
  return std::any_of(spec_.rewrites.begin(), spec_.rewrites.end(),
                     [](const TextRewrite& r) { return r.kind == TextRewrite::Kind::kPrepend; });
}

std::optional<TokenId> BpeTokenizer::token_to_id(std::string_view token) const {
  auto it = token_ids_.find(std::string(token));
  if (it == token_ids_.end() || it->second >= static_cast<TokenId>(spec_.vocab.size())) return std::nullopt;
  return it->second;
}

std::string BpeTokenizer::id_to_token(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= spec_.vocab.size()) {
    throw bad_input("token id " + std::to_string(id) + " is outside the vocabulary").file(spec_.source);
  }
  return spec_.vocab[id];
}

bool BpeTokenizer::is_special(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < spec_.special.size() && spec_.special[id];
}

}  // namespace retort::tok
