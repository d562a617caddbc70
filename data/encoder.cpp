#include "data/encoder.h"

#include <algorithm>
#include <ctime>

#include "io/error.h"

namespace retort::data {

TrainOn parse_train_on(const std::string& name) {
  if (name == "assistant") return TrainOn::kAssistant;
  if (name == "last_assistant") return TrainOn::kLastAssistant;
  if (name == "all") return TrainOn::kAll;
  throw bad_input("unknown train_on '" + name + "'; expected assistant, last_assistant or all").key("train_on");
}

LengthPolicy parse_length_policy(const std::string& name) {
  if (name == "drop") return LengthPolicy::kDrop;
  if (name == "truncate_turns") return LengthPolicy::kTruncateTurns;
  if (name == "split") return LengthPolicy::kSplit;
  throw bad_input("unknown length_policy '" + name + "'; expected drop, truncate_turns or split").key("length_policy");
}

int64_t TokenizedSequence::trained_tokens() const {
  return std::count_if(labels.begin(), labels.end(), [](TokenId label) { return label != kIgnoreLabel; });
}

namespace {

// Labels for `ids`: a token is trained when its byte span overlaps a trained byte. A token that
// spells no byte (a dummy-prefix piece, an added BOS) is trained when it sits strictly inside
// trained text, or when everything is.
std::vector<TokenId> labels_from_bytes(const Tokenizer& tokenizer, std::string_view text, const std::vector<TokenId>& ids,
                                       const std::vector<uint8_t>& trained_bytes, bool train_unspelled) {
  // trained_before[i]: trained bytes in text[0, i)
  std::vector<int64_t> trained_before(text.size() + 1, 0);
  for (size_t i = 0; i < text.size(); ++i) trained_before[i + 1] = trained_before[i] + trained_bytes[i];
  const auto spans = token_byte_spans(tokenizer, text, ids);
  std::vector<TokenId> labels(ids.size(), kIgnoreLabel);
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto [begin, end] = spans[i];
    const bool inside = begin > 0 && begin < text.size() && trained_bytes[begin - 1] && trained_bytes[begin];
    const bool trained = begin == end ? train_unspelled || inside : trained_before[end] > trained_before[begin];
    if (trained) labels[i] = ids[i];
  }
  return labels;
}

}  // namespace

ExampleEncoder::ExampleEncoder(const Tokenizer& tokenizer, const chat::ChatTemplate* chat_template,
                               EncodeOptions options)
    : tokenizer_(tokenizer), chat_template_(chat_template), options_(options) {
  if (options_.max_seq_len < 2) throw bad_input("max_seq_len must be at least 2").key("max_seq_len");
  if (chat_template_ && chat_template_->family() == chat::ChatFamily::kLlama32 && !options_.render.date_string) {
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%d %b %Y", &local);  // as the template's strftime_now
    options_.render.date_string = buffer;
  }
  options_.render.add_generation_prompt = false;
}

chat::RenderedChat ExampleEncoder::render(const Example& example) const {
  return render_messages(example.messages, example.tools);
}

chat::RenderedChat ExampleEncoder::render_messages(const Json& messages, const Json& tools) const {
  if (!chat_template_) throw bad_input("chat examples need a chat template (tokenizer.chat_template)");
  chat::ChatRenderOptions render_options = options_.render;
  render_options.tools = tools;
  return chat_template_->render(messages, render_options);
}

TokenizedSequence ExampleEncoder::encode_chat(const Json& messages, const Json& tools, int64_t* control_strings) const {
  const chat::RenderedChat chat = render_messages(messages, tools);
  if (control_strings) {
    *control_strings = static_cast<int64_t>(chat::control_strings_in_messages(tokenizer_, chat).size());
  }
  int last_assistant = -1;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].value("role", "") == "assistant") last_assistant = static_cast<int>(i);
  }
  std::vector<uint8_t> trained_bytes(chat.text.size(), 0);
  for (const chat::ChatSegment& segment : chat.segments) {
    bool trained = options_.train_on == TrainOn::kAll;
    if (segment.message_index >= 0) {
      const Json& message = messages[segment.message_index];
      const bool assistant = message.value("role", "") == "assistant";
      if (message.contains("train")) {
        // An explicit flag: false masks the message; true trains it (for an assistant, its
        // output and end-of-turn; for any other role, its whole turn).
        trained = message["train"].get<bool>() && (trained || !assistant || segment.trainable);
      } else if (!trained) {
        trained = segment.trainable &&
                  (options_.train_on == TrainOn::kAssistant || segment.message_index == last_assistant);
      }
    }
    if (trained) std::fill_n(trained_bytes.begin() + segment.begin, segment.text.size(), 1);
  }
  TokenizedSequence sequence;
  // The template wrote BOS; its control tokens are its special segments.
  const ControlTokens mode = options_.control_tokens == chat::ControlTokenPolicy::kParse ? ControlTokens::kParse
                                                                                        : ControlTokens::kLiteral;
  sequence.ids = chat::encode_rendered(tokenizer_, chat, mode);
  sequence.labels = labels_from_bytes(tokenizer_, chat.text, sequence.ids, trained_bytes,
                                      options_.train_on == TrainOn::kAll);
  if (sequence.trained_tokens() == 0) {
    if (last_assistant < 0 && options_.train_on != TrainOn::kAll) {
      throw bad_input("the conversation has no assistant turn to learn from").key("messages");
    }
    throw bad_input("no token of the conversation is trained (every candidate turn has \"train\": false)")
        .key("messages");
  }
  return sequence;
}

TokenizedSequence ExampleEncoder::encode_text(const Example& example) const {
  const std::string text = example.prompt + example.completion;
  if (example.completion.empty()) throw bad_input("the example has no text to learn from");
  TokenizedSequence sequence;
  sequence.ids = tokenizer_.encode(text, /*add_special_tokens=*/true);
  std::vector<uint8_t> trained_bytes(text.size(), 0);
  const size_t first_trained = options_.train_on == TrainOn::kAll ? 0 : example.prompt.size();
  std::fill(trained_bytes.begin() + first_trained, trained_bytes.end(), 1);
  sequence.labels = labels_from_bytes(tokenizer_, text, sequence.ids, trained_bytes,
                                      options_.train_on == TrainOn::kAll);
  // The end of a document is learned too, so generation stops.
  if (const auto eos = tokenizer_.eos_id(); eos && (sequence.ids.empty() || sequence.ids.back() != *eos)) {
    sequence.ids.push_back(*eos);
    sequence.labels.push_back(*eos);
  }
  return sequence;
}

EncodedExample ExampleEncoder::truncate_turns(const Example& example, int64_t original_tokens,
                                              int64_t control_strings) const {
  const Json& messages = example.messages;
  size_t first_turn = 0;
  while (first_turn < messages.size() && messages[first_turn].value("role", "") == "system") ++first_turn;
  // A turn starts at each user message: removing whole turns never cuts an answer.
  std::vector<size_t> turn_starts;
  for (size_t i = first_turn + 1; i < messages.size(); ++i) {
    if (messages[i].value("role", "") == "user") turn_starts.push_back(i);
  }
  EncodedExample result;
  result.original_tokens = original_tokens;
  result.control_strings = control_strings;
  for (const size_t start : turn_starts) {
    Json kept(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(first_turn));
    kept.insert(kept.end(), messages.begin() + static_cast<std::ptrdiff_t>(start), messages.end());
    TokenizedSequence sequence;
    try {
      sequence = encode_chat(kept, example.tools);
    } catch (const Error& error) {
      if (error.kind() == ErrorKind::kBadInput) break;  // nothing trained is left
      throw;
    }
    if (static_cast<int64_t>(sequence.ids.size()) <= options_.max_seq_len) {
      result.status = EncodeStatus::kTruncated;
      result.sequences.push_back(std::move(sequence));
      return result;
    }
  }
  result.status = EncodeStatus::kDropped;
  return result;
}

EncodedExample ExampleEncoder::encode(const Example& example) const {
  int64_t control_strings = 0;
  TokenizedSequence sequence =
      example.is_chat ? encode_chat(example.messages, example.tools, &control_strings) : encode_text(example);
  EncodedExample result;
  result.control_strings = control_strings;
  if (control_strings > 0 && options_.control_tokens == chat::ControlTokenPolicy::kSkip) {
    result.status = EncodeStatus::kControlSkipped;
    return result;
  }
  const int64_t length = static_cast<int64_t>(sequence.ids.size());
  result.original_tokens = length;
  if (length <= options_.max_seq_len) {
    result.sequences.push_back(std::move(sequence));
    return result;
  }
  if (options_.length_policy == LengthPolicy::kTruncateTurns && example.is_chat) {
    return truncate_turns(example, length, control_strings);
  }
  if (options_.length_policy == LengthPolicy::kSplit && !example.is_chat) {
    result.status = EncodeStatus::kTruncated;
    for (int64_t begin = 0; begin < length; begin += options_.max_seq_len) {
      const int64_t end = std::min(length, begin + options_.max_seq_len);
      TokenizedSequence piece;
      piece.ids.assign(sequence.ids.begin() + begin, sequence.ids.begin() + end);
      piece.labels.assign(sequence.labels.begin() + begin, sequence.labels.begin() + end);
      if (end - begin >= 2 && piece.trained_tokens() > 0) result.sequences.push_back(std::move(piece));
    }
    return result;
  }
  result.status = EncodeStatus::kDropped;
  return result;
}

}  // namespace retort::data
