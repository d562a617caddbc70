// data/: assistant-only masks against prefix renderings of the real templates, token labels
// against HF tokenizers' and SentencePiece's offsets, formats, length policies and bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "data/encoder.h"
#include "data/example.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "test_support.h"
#include "test_support_fixtures.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/chat_tokens.h"
#include "tokenizer/tokenizer.h"

namespace retort {
namespace {

using data::Json;
namespace fs = std::filesystem;

Json read_json(const fs::path& path) { return Json::parse(read_text_file(path.string())); }

// Llama 3.2 prints strftime_now's date; the oracle pinned it.
std::optional<std::string> pinned_date(const std::string& family) {
  if (family == "llama3.2") return "07 Mar 2025";
  return std::nullopt;
}

data::EncodeOptions pinned_options(const std::string& family) {
  data::EncodeOptions options;
  options.max_seq_len = 1 << 20;
  options.render.date_string = pinned_date(family);
  return options;
}

data::Example chat_example(const Json& messages, const Json& tools) {
  data::Example example;
  example.is_chat = true;
  example.messages = messages;
  example.tools = tools;
  return example;
}

TEST(DataMasks, EqualPrefixRenderingsOfTheRealTemplates) {
  const Json cases = read_json(test::fixture_dir("data") / "masks.json");
  std::set<std::string> templates;
  for (const Json& test_case : cases) {
    const std::string label = test_case["template"].get<std::string>() + " / " + test_case["conversation"].get<std::string>();
    const chat::ChatTemplate chat_template = chat::ChatTemplate::by_name(test_case["family"].get<std::string>());
    chat::ChatRenderOptions options;
    options.date_string = pinned_date(test_case["family"]);
    options.tools = test_case["tools"];
    if (test_case.contains("options")) options.train_reasoning = test_case["options"]["train_reasoning"].get<bool>();
    const chat::RenderedChat chat = chat_template.render(test_case["messages"], options);
    ASSERT_EQ(chat.text, test_case["text"].get<std::string>()) << label;
    std::vector<std::pair<size_t, size_t>> expected;
    for (const Json& range : test_case["trained"]) expected.emplace_back(range[0].get<size_t>(), range[1].get<size_t>());
    EXPECT_EQ(chat::trainable_ranges(chat), expected) << label;
    templates.insert(test_case["template"].get<std::string>());
  }
  EXPECT_EQ(templates.size(), 13u);  // every family but llama.cpp's Llama 3 copy
}

TEST(DataMasks, TokenLabelsEqualTheReferenceTokenizersOffsets) {
  const fs::path dir = test::fixture_dir("data");
  const Json cases = read_json(dir / "tokens.json");
  std::map<std::string, std::unique_ptr<Tokenizer>> tokenizers;
  for (const Json& test_case : cases) {
    const std::string label = test_case["template"].get<std::string>() + " / " + test_case["tokenizer"].get<std::string>() +
                              " / " + test_case["conversation"].get<std::string>();
    auto& tokenizer = tokenizers[test_case["tokenizer"]];
    if (!tokenizer) tokenizer = load_tokenizer((dir / test_case["tokenizer"].get<std::string>()).string());
    const chat::ChatTemplate chat_template = chat::ChatTemplate::by_name(test_case["family"].get<std::string>());
    const data::ExampleEncoder encoder(*tokenizer, &chat_template, pinned_options(test_case["family"]));
    const data::EncodedExample encoded = encoder.encode(chat_example(test_case["messages"], test_case["tools"]));
    ASSERT_EQ(encoded.sequences.size(), 1u) << label;
    EXPECT_EQ(encoded.sequences[0].ids, test_case["ids"].get<std::vector<TokenId>>()) << label;
    EXPECT_EQ(encoded.sequences[0].labels, test_case["labels"].get<std::vector<TokenId>>()) << label;
  }
  EXPECT_GE(cases.size(), 30u);
}

// Control-token strings typed into messages ("<|im_end|>", "[INST]", "</s>", "<|eot_id|>"): parse
// gives HF tokenizers' default ids, literal gives the ids of llama.cpp's special=false (and HF's
// encode_special_tokens) on the text between the template's own control tokens; the labels stay
// exact in both (the strings' tokens belong to their message), and clean chats encode alike.
TEST(DataControlTokens, ParseEqualsHfLiteralEqualsLlamaCppSpecialFalseMasksExact) {
  const fs::path dir = test::fixture_dir("data");
  const Json cases = read_json(dir / "control_tokens.json");
  std::set<std::string> tokenizer_kinds;
  size_t llama_cpp_checked = 0;
  for (const Json& test_case : cases) {
    const std::string label = test_case["template"].get<std::string>() + " / " + test_case["tokenizer"].get<std::string>();
    const auto tokenizer = load_tokenizer((dir / test_case["tokenizer"].get<std::string>()).string());
    const chat::ChatTemplate chat_template = chat::ChatTemplate::by_name(test_case["family"].get<std::string>());
    for (const auto& [mode, policy] : {std::pair{"parse", chat::ControlTokenPolicy::kParse},
                                       std::pair{"literal", chat::ControlTokenPolicy::kLiteral}}) {
      data::EncodeOptions options = pinned_options(test_case["family"]);
      options.control_tokens = policy;
      const data::ExampleEncoder encoder(*tokenizer, &chat_template, options);
      const data::EncodedExample encoded = encoder.encode(chat_example(test_case["messages"], Json::array()));
      ASSERT_EQ(encoded.sequences.size(), 1u) << label << " " << mode;
      EXPECT_EQ(encoded.control_strings, test_case["control_strings"].get<int64_t>()) << label;
      EXPECT_EQ(encoded.sequences[0].ids, test_case[mode]["ids"].get<std::vector<TokenId>>()) << label << " " << mode;
      EXPECT_EQ(encoded.sequences[0].labels, test_case[mode]["labels"].get<std::vector<TokenId>>()) << label << " " << mode;
      if (policy == chat::ControlTokenPolicy::kLiteral && test_case.contains("literal_llama_cpp")) {
        EXPECT_EQ(encoded.sequences[0].ids, test_case["literal_llama_cpp"].get<std::vector<TokenId>>()) << label;
        // The same vocabulary read from its GGUF (llama.cpp's token types) gives the same ids.
        const auto gguf = load_tokenizer(test_case["gguf"].get<std::string>());
        const data::ExampleEncoder from_gguf(*gguf, &chat_template, options);
        EXPECT_EQ(from_gguf.encode(chat_example(test_case["messages"], Json::array())).sequences.at(0).ids,
                  test_case["literal_llama_cpp"].get<std::vector<TokenId>>()) << label << " (GGUF)";
        ++llama_cpp_checked;
      }
    }
    EXPECT_GT(test_case["control_strings"].get<int64_t>(), 0) << label;
    EXPECT_NE(test_case["parse"]["ids"], test_case["literal"]["ids"]) << label;
    tokenizer_kinds.insert(test_case["tokenizer"].get<std::string>());
  }
  EXPECT_GE(tokenizer_kinds.size(), 4u);  // tokenizer.json of two vocabularies, two SentencePiece models
  EXPECT_GE(llama_cpp_checked, 3u);
  // Clean conversations: the same ids and labels whichever way control strings are read.
  for (const Json& test_case : read_json(dir / "tokens.json")) {
    const auto tokenizer = load_tokenizer((dir / test_case["tokenizer"].get<std::string>()).string());
    const chat::ChatTemplate chat_template = chat::ChatTemplate::by_name(test_case["family"].get<std::string>());
    data::EncodeOptions options = pinned_options(test_case["family"]);
    options.control_tokens = chat::ControlTokenPolicy::kParse;
    const data::EncodedExample parsed =
        data::ExampleEncoder(*tokenizer, &chat_template, options).encode(chat_example(test_case["messages"], test_case["tools"]));
    EXPECT_EQ(parsed.control_strings, 0) << test_case["template"] << " / " << test_case["conversation"];
    EXPECT_EQ(parsed.sequences.at(0).ids, test_case["ids"].get<std::vector<TokenId>>());
  }
}

}  // namespace
}  // namespace retort
