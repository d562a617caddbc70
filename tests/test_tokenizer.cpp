// Tokenizer parity with the references written by tests/reference/fixture_tokenizer.py:
// llama.cpp's own .inp/.out cases, llama.cpp / HF tokenizers / sentencepiece ids on ~1 MB of
// varied text, round trips, streaming decode, and bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>

#include "io/error.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

const json& manifest() {
  static const json value = read_json(test::fixture_dir("tokenizer") / "manifest.json");
  return value;
}

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> docs =
      read_json(test::fixture_dir("tokenizer") / "corpus.json").get<std::vector<std::string>>();
  return docs;
}

std::vector<std::vector<TokenId>> reference_ids(const std::string& name) {
  const fs::path dir = test::fixture_dir("tokenizer");
  const auto lengths = read_json(dir / (name + ".lengths.json")).get<std::vector<size_t>>();
  std::ifstream in(dir / (name + ".ids.bin"), std::ios::binary);
  std::vector<std::vector<TokenId>> out;
  for (size_t n : lengths) {
    std::vector<TokenId> ids(n);
    in.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(n * sizeof(TokenId)));
    out.push_back(std::move(ids));
  }
  return out;
}

std::string show(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) s += std::to_string(id) + " ";
  return s;
}

// Compares every corpus document; reports the count and the first mismatch with its text.
void expect_corpus_parity(const Tokenizer& tokenizer, const std::string& ref_name, bool add_special,
                          bool check_round_trip, ControlTokens controls = ControlTokens::kParse) {
  const auto expected = reference_ids(ref_name);
  ASSERT_EQ(expected.size(), corpus().size());
  // Round trips are required where the reference itself round-trips (all, unless it says).
  std::vector<bool> reference_round_trips(corpus().size(), true);
  const fs::path round_trips = test::fixture_dir("tokenizer") / (ref_name + ".round_trips.json");
  if (fs::exists(round_trips)) reference_round_trips = read_json(round_trips).get<std::vector<bool>>();
  size_t mismatches = 0, round_trip_failures = 0, bytes = 0;
  std::string first;
  double seconds = 0;
  for (size_t i = 0; i < corpus().size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    const auto ids = tokenizer.encode(corpus()[i], add_special, ControlTokenFilter{controls, {}});
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bytes += corpus()[i].size();
    if (ids != expected[i] && mismatches++ == 0) {
      size_t at = 0;
      while (at < ids.size() && at < expected[i].size() && ids[at] == expected[i][at]) ++at;
      const size_t from = at > 3 ? at - 3 : 0;
      const std::vector<TokenId> ours(ids.begin() + from, ids.begin() + std::min(ids.size(), at + 8));
      const std::vector<TokenId> ref(expected[i].begin() + from, expected[i].begin() + std::min(expected[i].size(), at + 8));
      first = "doc " + std::to_string(i) + " at token " + std::to_string(at) + " (text there: '" +
              tokenizer.decode(ref) + "')\n ours: " + show(ours) + "\n  ref: " + show(ref);
    }
    if (check_round_trip && reference_round_trips[i] && tokenizer.decode(ids, false) != corpus()[i]) {
      ++round_trip_failures;
    }
  }
  EXPECT_EQ(mismatches, 0u) << ref_name << ": " << mismatches << " of " << corpus().size()
                            << " documents differ; first: " << first;
  EXPECT_EQ(round_trip_failures, 0u) << ref_name << ": decode(encode(x)) != x";
  std::printf("[ %s ] %zu/%zu documents equal, %.1f MB/s encode\n", ref_name.c_str(), corpus().size() - mismatches,
              corpus().size(), bytes / 1e6 / seconds);
}

TEST(TokenizerGguf, LlamaCppVocabCasesMatchOutFiles) {
  size_t checked_vocabs = 0;
  for (const auto& name : manifest().at("cases")) {
    const std::string vocab = name.get<std::string>();
    const fs::path gguf = fs::path(manifest().at("vocab_dir").get<std::string>()) / ("ggml-vocab-" + vocab + ".gguf");
    if (vocab == "baichuan") continue;  // not a vocabulary we support (its pre-tokenizer is custom)
    const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(gguf.string());
    const json cases = read_json(test::fixture_dir("tokenizer") / ("cases-" + vocab + ".json"));
    size_t passed = 0;
    std::string first;
    for (const json& c : cases) {
      const auto ids = tokenizer->encode(c.at("text").get<std::string>(), false);
      if (ids == c.at("ids").get<std::vector<TokenId>>()) ++passed;
      else if (first.empty()) first = json(c.at("text")).dump() + " ours: " + show(ids) + " ref: " + c.at("ids").dump();
    }
    EXPECT_EQ(passed, cases.size()) << vocab << ": first mismatch " << first;
    std::printf("[ %s ] %zu/%zu .inp cases\n", vocab.c_str(), passed, cases.size());
    ++checked_vocabs;
  }
  EXPECT_GE(checked_vocabs, 13u);  // the BPE vocabularies plus llama-spm and phi-3
}

TEST(TokenizerGguf, CorpusMatchesLlamaCpp) {
  for (const auto& [name, path] : manifest().at("gguf").items()) {
    SCOPED_TRACE(name);
    const auto tokenizer = load_tokenizer(path.get<std::string>());
    expect_corpus_parity(*tokenizer, "gguf-" + name, false, true);
  }
}

TEST(TokenizerJson, CorpusMatchesHfTokenizers) {
  for (const auto& [name, dir] : manifest().at("json").items()) {
    SCOPED_TRACE(name);
    const auto tokenizer = load_tokenizer((test::fixture_dir("tokenizer") / dir.get<std::string>()).string());
    expect_corpus_parity(*tokenizer, "json-" + name, true, false);
  }
}

TEST(TokenizerSentencePiece, CorpusMatchesSentencePiece) {
  for (const auto& [name, path] : manifest().at("spm").items()) {
    SCOPED_TRACE(name);
    const auto tokenizer = load_tokenizer(path.get<std::string>());
    expect_corpus_parity(*tokenizer, "spm-" + name, true, false);
  }
}

// Gemma 3's tokenizer.json (BPE over characters with byte fallback): HF tokenizers' decode gives
// every corpus document back, and so must ours; its special ids carry Gemma's own names.
TEST(TokenizerJson, Gemma3DecodeOfEncodeIsTheText) {
  const auto tokenizer =
      load_tokenizer((test::fixture_dir("tokenizer") / manifest().at("json").at("gemma3").get<std::string>()).string());
  EXPECT_EQ(tokenizer->bos_id(), 2);
  EXPECT_EQ(tokenizer->eos_id(), 1);
  EXPECT_EQ(tokenizer->pad_id(), 0);
  EXPECT_EQ(tokenizer->special_ids().unk, 3);
  EXPECT_EQ(tokenizer->encode("Hi", true).front(), 2) << "<bos> from the TemplateProcessing post-processor";
  size_t failures = 0, stream_failures = 0;
  std::string first;
  for (size_t i = 0; i < corpus().size(); ++i) {
    const auto ids = tokenizer->encode(corpus()[i], false);
    const std::string decoded = tokenizer->decode(ids);
    if (decoded != corpus()[i] && failures++ == 0) first = "doc " + std::to_string(i) + ": " + decoded.substr(0, 120);
    EXPECT_NO_THROW(token_byte_spans(*tokenizer, corpus()[i], ids)) << "doc " << i;
    if (i % 10 != 0) continue;  // streaming re-decodes a window per token: a sample is enough
    StreamDecoder stream(*tokenizer);
    std::string joined;
    for (TokenId id : ids) joined += stream.put(id);
    stream_failures += joined + stream.finish() != decoded;
  }
  EXPECT_EQ(failures, 0u) << first;
  EXPECT_EQ(stream_failures, 0u);
}

// A SentencePiece-style tokenizer.json made with HF tokenizers 0.23.3 (Llama 2's normalizer and
// decoder; a Metaspace variant): byte fallback for "é" and "\n", unk for what has no byte
// tokens (fused; HF emits the held unk after a byte-fallback character), Prepend after "<s>".
// The ids and decodes are what tokenizers 0.23.3 gave for these files.
TEST(TokenizerJson, SentencePieceStyleMatchesHfTokenizers) {
  json file = json::parse(R"({"version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
       "normalized": false, "special": true},
      {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false,
       "normalized": false, "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
      "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
      "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "<0xC3>": 4, "<0xA9>": 5, "\u2581": 6, "h": 7, "e": 8,
        "l": 9, "o": 10, "w": 11, "r": 12, "d": 13, "\u2581h": 14, "ll": 15, "ell": 16, "\u2581hell": 17,
        "\u2581hello": 18, "or": 19, "wor": 20, "\u2581wor": 21, "ld": 22, "\u2581world": 23},
      "merges": [["\u2581", "h"], ["l", "l"], ["e", "ll"], ["\u2581h", "ell"], ["\u2581hell", "o"], ["o", "r"],
        ["w", "or"], ["\u2581", "wor"], ["l", "d"], ["\u2581wor", "ld"]]}})");
  const std::string text = "hello world\né üé€ x <s>hello  wor";
  test::TempDir dir;
  auto load = [&](const json& contents) {
    const fs::path path = dir.path() / "tokenizer.json";
    std::ofstream(path) << contents.dump();
    return load_tokenizer(path.string());
  };
  {
    SCOPED_TRACE("Prepend + Replace normalizer");
    const auto tokenizer = load(file);
    const auto ids = tokenizer->encode(text, true);
    EXPECT_EQ(ids, (std::vector<TokenId>{1, 18, 23, 3, 4, 5, 6, 4, 5, 0, 6, 0, 6, 1, 18, 6, 21}));
    EXPECT_EQ(tokenizer->decode(ids, false), "<s> hello world\né é<unk> <unk> <s> hello  wor");
    EXPECT_EQ(tokenizer->decode(ids, true), "hello world\né é<unk> <unk>  hello  wor");
    EXPECT_EQ(tokenizer->encode("üü x", true), (std::vector<TokenId>{1, 6, 0, 6, 0}));
    EXPECT_EQ(tokenizer->encode(" ", true), (std::vector<TokenId>{1, 6, 6}));
    EXPECT_EQ(tokenizer->encode("<s>", true), (std::vector<TokenId>{1, 1}));
    EXPECT_EQ(tokenizer->special_ids().unk, 0);
    EXPECT_TRUE(tokenizer->adds_dummy_prefix());
  }
  {
    SCOPED_TRACE("Metaspace pre-tokenizer, prepend_scheme first");
    file["normalizer"] = nullptr;
    file["pre_tokenizer"] = file["decoder"] = json::parse(
        R"({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": true})");
    const auto tokenizer = load(file);
    const auto ids = tokenizer->encode(text, true);
    EXPECT_EQ(ids, (std::vector<TokenId>{1, 18, 23, 3, 4, 5, 6, 4, 5, 0, 6, 0, 6, 1, 7, 16, 10, 6, 21}));
    EXPECT_EQ(tokenizer->decode(ids, false), "<s> hello world<0x0A><0xC3><0xA9> <0xC3><0xA9><unk> <unk> <s>hello  wor");
    EXPECT_EQ(tokenizer->encode(" ", true), (std::vector<TokenId>{1, 6}));
    EXPECT_EQ(tokenizer->encode("üü x", true), (std::vector<TokenId>{1, 6, 0, 6, 0}));
  }
}

// Control-token strings read as text (ControlTokens::kLiteral): llama.cpp's special=false for GGUF
// vocabularies, HF tokenizers' encode_special_tokens for tokenizer.json (and llama.cpp's ids for
// the GGUF it was converted from), SentencePiece itself for .model files, llama.cpp's Llama 3 for
// tiktoken. The literal ids hold no control token, and each document holding a control-token
// string is exactly one whose parse and literal ids differ.
TEST(TokenizerLiteral, ControlStringsAsTextMatchLlamaCppSpecialFalseInEveryFamily) {
  size_t families = 0, holding = 0;
  for (const auto& [name, path] : manifest().at("gguf").items()) {
    SCOPED_TRACE("gguf " + name);
    const auto tokenizer = load_tokenizer(path.get<std::string>());
    expect_corpus_parity(*tokenizer, "gguf-" + name + "-literal", false, false, ControlTokens::kLiteral);
    size_t differing = 0, holding_here = 0;
    for (const std::string& doc : corpus()) {
      const bool holds = !tokenizer->find_control_strings(doc).empty();
      const auto literal = tokenizer->encode(doc, false, ControlTokenFilter{ControlTokens::kLiteral, {}});
      holding_here += holds;
      differing += literal != tokenizer->encode(doc, false);
      if (!holds) {
        EXPECT_EQ(literal, tokenizer->encode(doc, false)) << doc.substr(0, 80);
      }
    }
    EXPECT_LE(differing, holding_here);
    holding += holding_here;
    ++families;
  }
  for (const auto& [name, dir] : manifest().at("json").items()) {
    SCOPED_TRACE("json " + name);
    const auto tokenizer = load_tokenizer((test::fixture_dir("tokenizer") / dir.get<std::string>()).string());
    expect_corpus_parity(*tokenizer, "json-" + name + "-literal", true, false, ControlTokens::kLiteral);
    ++families;
  }
  for (const auto& [name, path] : manifest().at("spm").items()) {
    SCOPED_TRACE("spm " + name);
    const auto tokenizer = load_tokenizer(path.get<std::string>());
    expect_corpus_parity(*tokenizer, "spm-" + name + "-literal", true, false, ControlTokens::kLiteral);
    ++families;
  }
  const auto tiktoken = load_tokenizer(manifest().at("tiktoken").get<std::string>());
  expect_corpus_parity(*tiktoken, "gguf-llama-bpe-literal", false, false, ControlTokens::kLiteral);
  EXPECT_GE(families, 20u);
  EXPECT_GT(holding, 100u) << "the corpus has control-token strings of most vocabularies";
}

// Meta's tiktoken file and llama.cpp's Llama 3 GGUF vocabulary are the same tokenizer.
TEST(TokenizerTiktoken, Llama3RanksEncodeLikeTheLlama3Gguf) {
  const auto tiktoken = load_tokenizer(manifest().at("tiktoken").get<std::string>());
  ASSERT_EQ(tiktoken->vocab_size(), 128256u);
  EXPECT_EQ(tiktoken->token_to_id("<|eot_id|>"), 128009);
  EXPECT_EQ(tiktoken->bos_id(), 128000);
  const auto expected = reference_ids("gguf-llama-bpe");
  size_t mismatches = 0;
  for (size_t i = 0; i < corpus().size(); ++i) {
    auto ids = tiktoken->encode(corpus()[i], false);
    if (ids != expected[i]) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0u);
  const auto with_bos = tiktoken->encode("Hi", true);
  EXPECT_EQ(with_bos.front(), 128000);
}

TEST(TokenizerStream, HoldsBackSplitCharactersAndEqualsDecode) {
  const auto tokenizer = load_tokenizer(manifest().at("gguf").at("llama-bpe").get<std::string>());
  const std::string text = "Hi 👨‍👩‍👧‍👦 and 的一是 e\u0301 done";
  const auto ids = tokenizer->encode(text, false);
  StreamDecoder stream(*tokenizer);
  std::string joined;
  bool held_back = false;
  for (TokenId id : ids) {
    const std::string piece = stream.put(id);
    EXPECT_EQ(tok::utf8_lossy(piece), piece) << "a chunk with a partial character";
    held_back |= piece.empty();
    joined += piece;
  }
  joined += stream.finish();
  EXPECT_EQ(joined, text);
  EXPECT_TRUE(held_back) << "the emoji spans byte tokens; some put() must return nothing";
  const auto spm = load_tokenizer(manifest().at("spm").at("mistral-v1").get<std::string>());
  const std::string spm_text = "Hello world 🤖 ok";
  const auto spm_ids = spm->encode(spm_text, false);
  StreamDecoder spm_stream(*spm);
  std::string spm_joined;
  for (TokenId id : spm_ids) spm_joined += spm_stream.put(id);
  spm_joined += spm_stream.finish();
  EXPECT_EQ(spm_joined, spm->decode(spm_ids));
  EXPECT_EQ(spm_joined, spm_text);
}

TEST(TokenizerBadInput, InvalidUtf8IsReplacedNotFatal) {
  const auto tokenizer = load_tokenizer(manifest().at("gguf").at("qwen2").get<std::string>());
  const std::string bad = std::string("ok \xFF\xC3 x \xE2\x82") + "\xED\xA0\x80 end";
  const auto ids = tokenizer->encode(bad, false);
  EXPECT_EQ(ids, tokenizer->encode(tok::utf8_lossy(bad), false));
  EXPECT_EQ(tokenizer->decode(ids), tok::utf8_lossy(bad));
  EXPECT_THROW(tokenizer->decode(std::vector<TokenId>{-1}), Error);
  const auto spm = load_tokenizer(manifest().at("spm").at("mistral-v3").get<std::string>());
  EXPECT_FALSE(spm->encode(bad, true).empty());
}

TEST(TokenizerBadInput, UnsupportedModelTypeNamesFileAndKey) {
  test::TempDir dir;
  const fs::path path = dir.path() / "tokenizer.json";
  std::ofstream(path) << R"({"model": {"type": "Unigram", "vocab": []}, "added_tokens": []})";
  try {
    load_tokenizer(path.string());
    FAIL() << "expected bad_input";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_EQ(e.context().file, path.string());
    EXPECT_EQ(e.context().key, "model.type");
    EXPECT_NE(e.message().find("Unigram"), std::string::npos);
  }
  EXPECT_THROW(load_tokenizer((dir.path() / "missing.gguf").string()), Error);
}

}  // namespace
}  // namespace retort
