// data/: formats, masking options, length policies, packing equivalence on a tiny model,
// loader resume, validation splits, bad input, and `retort data inspect`.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <fstream>

#include "data/dataset.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "models/family.h"
#include "models/loader.h"
#include "test_support.h"
#include "test_support_fixtures.h"
#include "tokenizer/chat_template.h"
#include "train/losses.h"

namespace retort {
namespace {

using data::Json;
namespace fs = std::filesystem;

// SmolLM2's tokenizer (converted by transformers in the data oracle) with plain ChatML.
struct ChatMLSide {
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer((test::fixture_dir("data") / "tokenizer-smollm2").string());
  chat::ChatTemplate chat_template = chat::ChatTemplate::by_name("chatml");
};

ChatMLSide& side() {
  static ChatMLSide instance;
  return instance;
}

data::EncodedExample encode(const Json& line, data::FormatOptions format = {}, data::EncodeOptions options = {}) {
  const data::ExampleEncoder encoder(*side().tokenizer, &side().chat_template, options);
  return encoder.encode(data::parse_example(line, format));
}

// The trained text, runs joined by "|".
std::string trained_text(const data::TokenizedSequence& sequence) {
  std::string out;
  std::vector<TokenId> run;
  for (size_t i = 0; i <= sequence.ids.size(); ++i) {
    if (i < sequence.ids.size() && sequence.labels[i] != data::kIgnoreLabel) {
      EXPECT_EQ(sequence.labels[i], sequence.ids[i]);
      run.push_back(sequence.ids[i]);
    } else if (!run.empty()) {
      out += side().tokenizer->decode(run) + "|";
      run.clear();
    }
  }
  return out;
}

const Json kConversation = Json::parse(R"({"messages": [
  {"role": "system", "content": "Be kind."},
  {"role": "user", "content": "First question?"}, {"role": "assistant", "content": "First answer."},
  {"role": "user", "content": "Second question?"}, {"role": "assistant", "content": "Second answer."},
  {"role": "user", "content": "Third question?"}, {"role": "assistant", "content": "Third answer."}]})");

TEST(DataFormats, ShareGptMapsOntoMessages) {
  const Json sharegpt = Json::parse(R"({"conversations": [{"from": "system", "value": "Be kind."},
    {"from": "human", "value": "First question?"}, {"from": "gpt", "value": "First answer."}]})");
  Json messages = kConversation;
  messages["messages"] = Json(kConversation["messages"].begin(), kConversation["messages"].begin() + 3);
  EXPECT_EQ(encode(sharegpt).sequences[0].ids, encode(messages).sequences[0].ids);
  EXPECT_EQ(encode(sharegpt).sequences[0].labels, encode(messages).sequences[0].labels);
}

TEST(DataFormats, AlpacaPromptIsNotTrainedItsOutputAndEosAre) {
  data::FormatOptions format;
  format.format = data::ExampleFormat::kAlpaca;
  const Json line = {{"instruction", "Name a fruit."}, {"input", ""}, {"output", "An apple."}};
  const data::TokenizedSequence sequence = encode(line, format).sequences[0];
  const std::string eos = side().tokenizer->id_to_token(*side().tokenizer->eos_id());
  EXPECT_EQ(trained_text(sequence), "An apple." + eos + "|");
  const std::string all = side().tokenizer->decode(sequence.ids);
  EXPECT_NE(all.find("### Instruction:\nName a fruit.\n\n### Response:\nAn apple."), std::string::npos) << all;
  EXPECT_EQ(all.find("### Input:"), std::string::npos);  // the no-input layout

  format.prompt_template = "Q: {instruction} ({input})\nA: ";
  const Json with_input = {{"instruction", "Add"}, {"input", "2+2"}, {"output", "4"}};
  EXPECT_EQ(side().tokenizer->decode(encode(with_input, format).sequences[0].ids), "Q: Add (2+2)\nA: 4" + eos);

  format.prompt_template = "chat";
  const Json as_chat = {{"messages", {{{"role", "user"}, {"content", "Add\n\n2+2"}}, {{"role", "assistant"}, {"content", "4"}}}}};
  EXPECT_EQ(encode(with_input, format).sequences[0].labels, encode(as_chat).sequences[0].labels);
}

TEST(DataFormats, TextTrainsEveryTokenAndEndsWithEos) {
  data::FormatOptions format;
  format.format = data::ExampleFormat::kText;
  format.fields.text = "body";
  const data::TokenizedSequence sequence = encode({{"body", "Salt the pasta water well."}}, format).sequences[0];
  EXPECT_EQ(sequence.trained_tokens(), static_cast<int64_t>(sequence.ids.size()));
  EXPECT_EQ(sequence.ids.back(), *side().tokenizer->eos_id());
  EXPECT_THROW(encode({{"text", "x"}}, format), Error);  // the field is named "body" here
}

TEST(DataMasking, EveryAssistantTurnWithItsEndOfTurnByDefault) {
  EXPECT_EQ(trained_text(encode(kConversation).sequences[0]),
            "First answer.<|im_end|>|Second answer.<|im_end|>|Third answer.<|im_end|>|");
}

TEST(DataMasking, LastAssistantAllAndPerMessageFlags) {
  data::EncodeOptions options;
  options.train_on = data::TrainOn::kLastAssistant;
  EXPECT_EQ(trained_text(encode(kConversation, {}, options).sequences[0]), "Third answer.<|im_end|>|");
  options.train_on = data::TrainOn::kAll;
  const data::TokenizedSequence all = encode(kConversation, {}, options).sequences[0];
  EXPECT_EQ(all.trained_tokens(), static_cast<int64_t>(all.ids.size()));

  Json flagged = kConversation;
  flagged["messages"][2]["train"] = false;  // the first answer
  flagged["messages"][3]["train"] = true;   // the second question
  EXPECT_EQ(trained_text(encode(flagged).sequences[0]),
            "<|im_start|>user\nSecond question?<|im_end|>\n|Second answer.<|im_end|>|Third answer.<|im_end|>|");
}

// data.train_reasoning reaches the renderer: Qwen3's <think> block is trained by default and only
// rendered (masked) when the recipe says false.
TEST(DataMasking, ReasoningIsTrainedUnlessTheRecipeSaysNot) {
  const chat::ChatTemplate qwen3 = chat::ChatTemplate::by_name("qwen3");
  const Json chat = Json::parse(R"({"messages": [{"role": "user", "content": "2 + 2?"},
    {"role": "assistant", "reasoning_content": "Two and two.", "content": "4"}]})");
  auto trained = [&](const std::string& recipe_yaml) {
    const Recipe recipe = parse_recipe(recipe_yaml, "recipe.yaml");
    const data::ExampleEncoder encoder(*side().tokenizer, &qwen3, data::encode_options(recipe.data));
    return trained_text(encoder.encode(data::parse_example(chat, {})).sequences[0]);
  };
  EXPECT_EQ(trained("data:\n  train: chats.jsonl\n"), "<think>\nTwo and two.\n</think>\n\n4<|im_end|>|");
  EXPECT_EQ(trained("data:\n  train: chats.jsonl\n  train_reasoning: false\n"), "4<|im_end|>|");
}

TEST(DataLength, DropTruncateTurnsAndSplitAreCounted) {
  const int64_t full = static_cast<int64_t>(encode(kConversation).sequences[0].ids.size());
  data::EncodeOptions options;
  options.max_seq_len = full - 1;
  EXPECT_EQ(encode(kConversation, {}, options).status, data::EncodeStatus::kDropped);

  options.length_policy = data::LengthPolicy::kTruncateTurns;
  const data::EncodedExample truncated = encode(kConversation, {}, options);
  ASSERT_EQ(truncated.status, data::EncodeStatus::kTruncated);
  EXPECT_EQ(truncated.original_tokens, full);
  const std::string text = side().tokenizer->decode(truncated.sequences[0].ids);
  EXPECT_EQ(text.rfind("<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nSecond question?", 0), 0u) << text;
  EXPECT_EQ(trained_text(truncated.sequences[0]), "Second answer.<|im_end|>|Third answer.<|im_end|>|");

  options.max_seq_len = 8;  // not even the last turn fits: dropped, never cut mid-answer
  EXPECT_EQ(encode(kConversation, {}, options).status, data::EncodeStatus::kDropped);

  data::FormatOptions text_format;
  text_format.format = data::ExampleFormat::kText;
  const Json document = {{"text", "one two three four five six seven eight nine ten eleven twelve"}};
  const data::TokenizedSequence whole = encode(document, text_format).sequences[0];
  options.length_policy = data::LengthPolicy::kSplit;
  options.max_seq_len = 5;
  const data::EncodedExample pieces = encode(document, text_format, options);
  std::vector<TokenId> joined;
  for (const auto& piece : pieces.sequences) {
    EXPECT_LE(piece.ids.size(), 5u);
    joined.insert(joined.end(), piece.ids.begin(), piece.ids.end());
  }
  EXPECT_EQ(joined, whole.ids);
}

// Per-example summed losses of rows [B, T] with labels, on the tiny Llama of the model oracle.
std::vector<double> segment_losses(CausalLM& model, const Batch& batch, bool mask_segments = true) {
  ForwardOptions options;
  options.position_ids = batch.position_ids;
  if (mask_segments) options.segment_ids = batch.segment_ids;
  options.attention_mask = batch.attention_mask;
  const at::Tensor logits = model.forward_logits(batch.input_ids, options).to(at::kDouble);  // [B, T, V]
  const at::Tensor losses = at::cross_entropy_loss(logits.slice(1, 0, -1).flatten(0, 1),
                                                   batch.labels.slice(1, 1).flatten(), {}, at::Reduction::None, -100)
                                .view({batch.input_ids.size(0), -1});  // [B, T-1]
  const at::Tensor segments = batch.segment_ids.defined() ? batch.segment_ids.slice(1, 1)
                                                          : at::zeros_like(batch.labels.slice(1, 1));
  std::vector<double> out;
  for (int64_t b = 0; b < losses.size(0); ++b) {
    const int64_t count = segments[b].max().item<int64_t>() + 1;
    for (int64_t s = 0; s < count; ++s) out.push_back((losses[b] * (segments[b] == s)).sum().item<double>());
  }
  return out;
}

TEST(DataPacking, PackedRowGivesEachExampleItsUnpackedLoss) {
  LoadedModel loaded = load_model((test::fixture_dir("models") / "llama_gqa").string());
  c10::NoGradGuard no_grad;
  at::manual_seed(7);
  const int64_t vocab = loaded.model->config().vocab_size;
  std::vector<data::TokenizedSequence> sequences;
  for (int64_t length : {5, 9, 4, 7}) {
    data::TokenizedSequence sequence;
    const at::Tensor ids = at::randint(vocab, {length}, at::kLong);
    for (int64_t i = 0; i < length; ++i) {
      sequence.ids.push_back(static_cast<TokenId>(ids[i].item<int64_t>()));
      sequence.labels.push_back(i < 2 ? data::kIgnoreLabel : sequence.ids.back());  // a masked prompt
    }
    sequences.push_back(sequence);
  }
  data::RowPacker packer(32);
  std::vector<double> alone;
  for (const auto& sequence : sequences) {
    packer.add(sequence);
    const std::vector<double> loss = segment_losses(*loaded.model, data::collate({data::single_row(sequence)}, 0, 1, false));
    alone.push_back(loss[0]);
  }
  // Two rows: the packed one next to a shorter one, so padding is exercised too.
  data::RowPacker second(32);
  second.add(sequences[0]);
  const Batch packed = data::collate({packer.take(), second.take()}, 0, 8, true);
  EXPECT_EQ(packed.input_ids.size(1), 32);
  const std::vector<double> together = segment_losses(*loaded.model, packed);
  ASSERT_EQ(together.size(), 5u);
  for (size_t i = 0; i < alone.size(); ++i) EXPECT_NEAR(together[i], alone[i], 1e-5 * std::max(1.0, alone[i])) << i;
  EXPECT_NEAR(together[4], alone[0], 1e-5 * std::max(1.0, alone[0]));
  // Without the segment mask the later examples see the earlier ones: the test can fail.
  const std::vector<double> leaky = segment_losses(*loaded.model, packed, /*mask_segments=*/false);
  EXPECT_GT(std::abs(leaky[1] - alone[1]), 1e-3);
}

fs::path write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& line : lines) out << line << "\n";
  return path;
}

std::vector<std::string> numbered_chats(int count) {
  std::vector<std::string> lines;
  for (int i = 0; i < count; ++i) {
    Json line = {{"messages", {{{"role", "user"}, {"content", "Question " + std::to_string(i) + std::string(i % 5, '?')}},
                               {{"role", "assistant"}, {"content", "Answer " + std::to_string(i * 7)}}}}};
    lines.push_back(line.dump());
  }
  return lines;
}

struct LoaderFixture {
  test::TempDir dir;
  data::ExampleEncoder encoder{*side().tokenizer, &side().chat_template, {}};
  data::DataPipeline pipeline{{}, encoder};
  std::shared_ptr<const data::ExampleSource> source;
  data::ScanResult scan;
  explicit LoaderFixture(int count) {
    source = data::ExampleSource::open(write_lines(dir.path() / "chats.jsonl", numbered_chats(count)).string());
    scan = data::scan_dataset(*source, pipeline, {}, false, 2);
  }
  std::unique_ptr<data::DataLoader> loader(bool packing) const {
    data::LoaderOptions options;
    options.batch_size = 3;
    options.packing = packing;
    options.row_length = 64;
    options.seed = 11;
    options.epochs = 3;
    return std::make_unique<data::DataLoader>(source, pipeline, scan.sequences, options);
  }
};

bool same_batch(const Batch& a, const Batch& b) {
  auto same = [](const at::Tensor& x, const at::Tensor& y) { return x.defined() == y.defined() && (!x.defined() || at::equal(x, y)); };
  return same(a.input_ids, b.input_ids) && same(a.labels, b.labels) && same(a.attention_mask, b.attention_mask) &&
         same(a.position_ids, b.position_ids) && same(a.segment_ids, b.segment_ids);
}

TEST(DataLoader, RestoredStateGivesTheSameNextBatches) {
  const LoaderFixture fixture(20);
  for (const bool packing : {false, true}) {
    const int64_t per_epoch = fixture.loader(packing)->batches_per_epoch();
    for (const int64_t stop : {int64_t{2}, per_epoch, per_epoch + 1}) {
      auto original = fixture.loader(packing);
      for (int64_t i = 0; i < stop; ++i) ASSERT_TRUE(original->next());
      const std::string state = original->state();
      auto resumed = fixture.loader(packing);
      resumed->restore(state);
      for (int i = 0; i < per_epoch + 2; ++i) {
        const auto expected = original->next();
        const auto actual = resumed->next();
        ASSERT_EQ(expected.has_value(), actual.has_value());
        if (!expected) break;
        EXPECT_TRUE(same_batch(*expected, *actual)) << "packing " << packing << ", stopped at " << stop << ", batch " << i;
      }
    }
  }
}

// Data parallel: ranks take consecutive slices of each global batch, so any world size walks the
// rows of one rank in the same order, and a checkpoint's row resumes under another world size.
TEST(DataLoader, RanksSliceEachGlobalBatchInOrderAndResumeAcrossWorldSizes) {
  const LoaderFixture fixture(20);
  const auto loader = [&](int64_t batch_size, int64_t rank, int64_t world_size) {
    data::LoaderOptions options;
    options.batch_size = batch_size;
    options.seed = 11;
    options.rank = rank;
    options.world_size = world_size;
    return std::make_unique<data::DataLoader>(fixture.source, fixture.pipeline, fixture.scan.sequences, options);
  };
  auto whole = loader(2, 0, 1);
  auto rank0 = loader(1, 0, 2), rank1 = loader(1, 1, 2);
  ASSERT_EQ(whole->batches_per_epoch(), 10);
  ASSERT_EQ(rank0->batches_per_epoch(), 10);
  for (int64_t b = 0; b < 10; ++b) {
    const auto global = whole->next();
    const auto first = rank0->next(), second = rank1->next();
    ASSERT_TRUE(global && first && second) << b;
    ASSERT_EQ(global->sequence_ids.size(), 2u);
    EXPECT_EQ(first->sequence_ids[0], global->sequence_ids[0]) << b;
    EXPECT_EQ(second->sequence_ids[0], global->sequence_ids[1]) << b;
  }
  EXPECT_FALSE(whole->next());
  EXPECT_FALSE(rank1->next());
  // Three ranks of three rows: two global batches; rows 18 and 19 cannot reach every rank.
  EXPECT_EQ(loader(3, 2, 3)->batches_per_epoch(), 2);
  // After 3 batches of 2 rows (row 6), two ranks of one row continue at global batch 3.
  auto before = loader(2, 0, 1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(before->next());
  const std::string state = before->state();
  const auto expected = before->next();
  auto resumed = loader(1, 1, 2);
  resumed->restore(state);
  EXPECT_EQ(resumed->next()->sequence_ids[0], expected->sequence_ids[1]);
  // Four ranks cannot start at row 6.
  auto four = loader(1, 0, 4);
  try {
    four->restore(state);
    FAIL() << "row 6 restored into batches of 4 rows";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("row 6"), std::string::npos) << error.what();
  }
}

TEST(DataLoader, ShufflesBySeedAndEpochCoversEveryExampleAndEnds) {
  const LoaderFixture fixture(20);
  auto loader = fixture.loader(false);
  std::vector<std::vector<int64_t>> epochs(3);
  int64_t batches = 0;
  while (auto batch = loader->next()) {
    epochs[static_cast<size_t>(loader->epoch())].push_back(batch->input_ids[0][8].item<int64_t>());
    ++batches;
  }
  EXPECT_EQ(batches, 3 * loader->batches_per_epoch());  // 7 batches of 3 (the last has 2) per epoch
  EXPECT_EQ(loader->batches_per_epoch(), 7);
  EXPECT_NE(epochs[0], epochs[1]);
  auto again = fixture.loader(false);
  std::vector<int64_t> first;
  for (int i = 0; i < 7; ++i) first.push_back(again->next()->input_ids[0][8].item<int64_t>());
  EXPECT_EQ(first, epochs[0]);
  // Packed rows hold several examples and never exceed the row length.
  auto packed = fixture.loader(true);
  const auto batch = packed->next();
  EXPECT_LE(batch->input_ids.size(1), 64);
  EXPECT_GT(batch->segment_ids.max().item<int64_t>(), 0);
}

TEST(DataLoader, ValidationFractionHoldsOutDisjointExamples) {
  const auto [train, validation] = data::split_examples(100, 0.1, 3);
  EXPECT_EQ(validation.size(), 10u);
  EXPECT_EQ(train.size(), 90u);
  std::vector<int64_t> all = train;
  all.insert(all.end(), validation.begin(), validation.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(all[static_cast<size_t>(i)], i);
  EXPECT_EQ(data::split_examples(100, 0.1, 3).second, validation);
  EXPECT_NE(data::split_examples(100, 0.1, 4).second, validation);
}

// The error of scanning `lines` as chat data, or "" when it succeeds.
std::string scan_error(const std::vector<std::string>& lines, bool skip = false, data::DatasetStats* stats = nullptr) {
  test::TempDir dir;
  const auto path = write_lines(dir.path() / "bad.jsonl", lines);
  const data::ExampleEncoder encoder(*side().tokenizer, &side().chat_template, {});
  const data::DataPipeline pipeline({}, encoder);
  try {
    const auto result = data::scan_dataset(*data::ExampleSource::open(path.string()), pipeline, {}, skip, 1);
    if (stats) *stats = result.stats;
    return "";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kBadInput) << error.what();
    std::string what = error.what();
    return what.substr(what.find("bad.jsonl"));
  }
}

TEST(DataBadInput, ErrorsNameTheFileLineAndField) {
  const std::string good = numbered_chats(1)[0];
  EXPECT_EQ(scan_error({good, "", "{\"messages\": [}"}).rfind("bad.jsonl:3: invalid JSON: parse error at line 1, column 15", 0), 0u);
  EXPECT_EQ(scan_error({good, R"({"messages": [{"role": "bot", "content": "x"}]})"}),
            "bad.jsonl:2: key 'messages[0].role': unknown role 'bot'; expected one of: system, user, assistant, tool");
  EXPECT_EQ(scan_error({R"({"messages": []})"}), "bad.jsonl:1: key 'messages': the conversation has no messages");
  EXPECT_EQ(scan_error({R"({"messages": [{"role": "user", "content": "hi"}]})"}),
            "bad.jsonl:1: key 'messages': the conversation has no assistant turn to learn from");
  EXPECT_EQ(scan_error({R"({"messages": [{"role": "user", "content": 5}]})"}),
            "bad.jsonl:1: key 'messages[0].content': content must be a string, null or a list of text parts, not number");
  EXPECT_EQ(scan_error({R"({"messages": {"role": "user"}})"}),
            "bad.jsonl:1: key 'messages': must be a list of messages, not object");
  EXPECT_EQ(scan_error({R"({"prompt": "x"})"}),
            "bad.jsonl:1: key 'messages': a chat example needs the field \"messages\" (it has: prompt)");
  EXPECT_EQ(scan_error({R"({"conversations": [{"from": "robot", "value": "x"}]})"}),
            "bad.jsonl:1: key 'conversations[0].from': unknown speaker 'robot'; expected one of: system, human, user, "
            "gpt, assistant, tool, observation, function_response");
  EXPECT_EQ(scan_error({"[1, 2]"}).rfind("bad.jsonl: key '[0]': an example must be a JSON object", 0), 0u);
  data::DatasetStats stats;
  EXPECT_EQ(scan_error({good, "{oops", good, R"({"messages": []})"}, true, &stats), "");
  EXPECT_EQ(stats.kept, 2);
  EXPECT_EQ(stats.skipped, 2);
  ASSERT_EQ(stats.skip_reasons.size(), 2u);
  EXPECT_NE(stats.skip_reasons[0].find("bad.jsonl:2: invalid JSON"), std::string::npos);
}

TEST(DataInspectCli, JsonEqualsTheOracleAndBadLinesExitTwo) {
  const fs::path dir = test::fixture_dir("data");
  const auto result = test::run_retort({"data", "inspect", "--model", (dir / "model-llama3").string(), "--data",
                                        (dir / "chat-llama3.jsonl").string(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const Json expected = Json::parse(read_text_file((dir / "chat-llama3.expected.json").string()));
  std::istringstream lines(result.out);
  std::string line;
  size_t count = 0;
  while (std::getline(lines, line)) {
    const Json got = Json::parse(line);
    ASSERT_LT(count, expected.size());
    EXPECT_EQ(got["ids"], expected[count]["ids"]) << count;
    EXPECT_EQ(got["labels"], expected[count]["labels"]) << count;
    ++count;
  }
  EXPECT_EQ(count, expected.size());

  const auto summary = test::run_retort({"data", "inspect", "--model", (dir / "model-llama3").string(), "--data",
                                         (dir / "chat-llama3.jsonl").string()});
  ASSERT_EQ(summary.exit_code, 0) << summary.err;
  EXPECT_NE(summary.out.find("examples: 5 read, 5 kept"), std::string::npos) << summary.out;
  EXPECT_NE(summary.out.find("[[Hi there<|eot_id|>]]"), std::string::npos) << summary.out;

  test::TempDir temp;
  const auto bad = write_lines(temp.path() / "bad.jsonl", {numbered_chats(1)[0], "{\"messages\": 3"});
  const auto failed = test::run_retort({"data", "inspect", "--model", (dir / "model-llama3").string(), "--data", bad.string()});
  EXPECT_EQ(failed.exit_code, 2);
  EXPECT_NE(failed.err.find("bad.jsonl:2: invalid JSON"), std::string::npos) << failed.err;
}

// A customer who typed "<|im_end|>": literal (the default) trains the string as the speaker's
// words, one end-of-turn token a turn; parse reads it as an end of turn in mid-message, as HF does.
TEST(DataControlTokens, LiteralTrainsTheStringAsTheSpeakersWords) {
  const Json line = Json::parse(R"({"messages": [
    {"role": "user", "content": "Why does it print <|im_end|> here?"},
    {"role": "assistant", "content": "Type <|im_end|> to stop."}]})");
  const TokenId im_end = *side().tokenizer->token_to_id("<|im_end|>");
  auto count_im_end = [&](const std::vector<TokenId>& ids) { return std::count(ids.begin(), ids.end(), im_end); };
  const data::EncodedExample literal = encode(line);
  ASSERT_EQ(literal.sequences.size(), 1u);
  EXPECT_EQ(literal.control_strings, 2);
  EXPECT_EQ(count_im_end(literal.sequences[0].ids), 2) << "one end-of-turn token per turn";
  EXPECT_EQ(trained_text(literal.sequences[0]), "Type <|im_end|> to stop.<|im_end|>|");
  // The trained end of turn is the assistant's last trained token, not the one inside its text.
  const auto& labels = literal.sequences[0].labels;
  EXPECT_EQ(std::count(labels.begin(), labels.end(), im_end), 1);
  data::EncodeOptions parse_options;
  parse_options.control_tokens = chat::ControlTokenPolicy::kParse;
  const data::EncodedExample parsed = encode(line, {}, parse_options);
  EXPECT_EQ(count_im_end(parsed.sequences[0].ids), 4) << "HF's reading: two more ends of turn";
  EXPECT_EQ(trained_text(parsed.sequences[0]), "Type <|im_end|> to stop.<|im_end|>|");
  EXPECT_EQ(std::count(parsed.sequences[0].labels.begin(), parsed.sequences[0].labels.end(), im_end), 2);
}

// A file with such lines: counted in every mode, dropped and counted under skip, summarised.
TEST(DataControlTokens, CountedSkippedAndSummarised) {
  test::TempDir dir;
  std::vector<std::string> lines = numbered_chats(4);
  lines.insert(lines.begin() + 1, R"({"messages": [{"role": "user", "content": "It says <|im_start|>assistant"}, {"role": "assistant", "content": "Odd."}]})");
  lines.push_back(R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Bye <|endoftext|>"}]})");
  lines.push_back(R"({"messages": [{"role": "user", "content": "[INST] is not a token of this vocabulary"}, {"role": "assistant", "content": "Right."}]})");
  const auto path = write_lines(dir.path() / "control.jsonl", lines);
  for (const auto policy : {chat::ControlTokenPolicy::kLiteral, chat::ControlTokenPolicy::kParse, chat::ControlTokenPolicy::kSkip}) {
    SCOPED_TRACE(chat::control_token_policy_name(policy));
    data::EncodeOptions options;
    options.control_tokens = policy;
    const data::ExampleEncoder encoder(*side().tokenizer, &side().chat_template, options);
    const data::DataPipeline pipeline({}, encoder);
    const auto scan = data::scan_dataset(*data::ExampleSource::open(path.string()), pipeline, {}, false, 1);
    EXPECT_EQ(scan.stats.examples, 7);
    EXPECT_EQ(scan.stats.control_examples, 2);
    EXPECT_EQ(scan.stats.first_control_example, 1);
    const bool skip = policy == chat::ControlTokenPolicy::kSkip;
    EXPECT_EQ(scan.stats.control_skipped, skip ? 2 : 0);
    EXPECT_EQ(scan.stats.kept, skip ? 5 : 7);
    const std::string summary = data::describe_stats(scan.stats, scan.sequences, 2048);
    EXPECT_NE(summary.find(std::string("control-token strings in message text: 2 examples (") +
                           chat::control_token_policy_name(policy)),
              std::string::npos) << summary;
  }
  // `retort data inspect` says the same and shows the first such example, the string marked.
  const auto result = test::run_retort({"data", "inspect", "--model", (test::fixture_dir("data") / "tokenizer-smollm2").string(),
                                        "--template", "chatml", "--data", path.string(), "--control-tokens", "skip"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("examples: 7 read, 5 kept"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("control-token strings in message text: 2 examples (skip: dropped"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("control.jsonl:2"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("messages[0] (user): ...") , std::string::npos) << result.out;
  EXPECT_NE(result.out.find("It says {!<|im_start|>!}assistant"), std::string::npos) << result.out;
}

// A model folder with no chat template of its own trains chats in its family's default (Qwen2:
// ChatML); a family without one (Llama) is refused as before.
TEST(DataTokenizerConfig, AModelWithoutATemplateTakesItsFamilysDefault) {
  test::TempDir dir;
  std::filesystem::copy_file(test::fixture_dir("data") / "tokenizer-smollm2" / "tokenizer.json",
                             dir.path() / "tokenizer.json");
  Recipe recipe;
  recipe.model.path = dir.path().string();
  recipe.data.format = "chat";
  const auto config = [&](const std::string& architecture) {
    write_file_atomic((dir.path() / "config.json").string(),
                      "{\"architectures\": [\"" + architecture + "\"], \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                      "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 49152}");
  };
  config("Qwen2ForCausalLM");
  const std::string family_template = family_chat_template_of(dir.path().string());
  EXPECT_EQ(family_template, "chatml");
  const data::RecipeText text = data::load_recipe_text(recipe);
  ASSERT_TRUE(text.chat_template);
  EXPECT_EQ(text.chat_template->name(), "chatml");
  config("LlamaForCausalLM");
  EXPECT_EQ(family_chat_template_of(dir.path().string()), "");
  EXPECT_THROW(data::load_recipe_text(recipe), Error);
}

// tokenizer.chat_template takes a built-in name or a template file, as `retort export
// --chat-template` does: the file's format is recognised from its Jinja source.
TEST(DataTokenizerConfig, ARecipeChatTemplateMayBeAJinjaFile) {
  test::TempDir dir;
  std::filesystem::copy_file(test::fixture_dir("data") / "tokenizer-smollm2" / "tokenizer.json",
                             dir.path() / "tokenizer.json");
  Recipe recipe;
  recipe.model.path = dir.path().string();
  recipe.data.format = "chat";
  const std::string file = (dir.path() / "gemma3.jinja").string();
  const std::optional<std::string> source = chat::ChatTemplate::by_name("gemma3").jinja_source();
  ASSERT_TRUE(source);
  write_file_atomic(file, *source);
  recipe.tokenizer.chat_template = file;
  const data::RecipeText text = data::load_recipe_text(recipe);
  ASSERT_TRUE(text.chat_template);
  EXPECT_EQ(text.chat_template->name(), "gemma3");
  recipe.tokenizer.chat_template = "qwen2.5";
  EXPECT_EQ(data::load_recipe_text(recipe).chat_template->name(), "qwen2.5");
  recipe.tokenizer.chat_template = (dir.path() / "missing.jinja").string();
  try {
    data::load_recipe_text(recipe);
    ADD_FAILURE() << "a missing template file was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.context().key, "tokenizer.chat_template");
  }
}

TEST(DataTokenizerConfig, SpecialTokensComeFromTokenizerConfigJson) {
  test::TempDir temp;
  fs::copy(test::fixture_dir("data") / "tokenizer-smollm2", temp.path() / "model", fs::copy_options::recursive);
  write_file_atomic((temp.path() / "model" / "tokenizer_config.json").string(),
                    R"({"eos_token": {"content": "<|im_end|>", "special": true}, "pad_token": "<|endoftext|>"})");
  const auto tokenizer = load_tokenizer((temp.path() / "model").string());
  EXPECT_EQ(tokenizer->eos_id(), tokenizer->token_to_id("<|im_end|>"));
  EXPECT_EQ(tokenizer->pad_id(), tokenizer->token_to_id("<|endoftext|>"));
  write_file_atomic((temp.path() / "model" / "tokenizer_config.json").string(), R"({"eos_token": "<|nope|>"})");
  try {
    load_tokenizer((temp.path() / "model").string());
    ADD_FAILURE() << "an unknown token was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.context().key, "eos_token");
    EXPECT_NE(error.context().file.find("tokenizer_config.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace retort
