// Ollama Go templates, one per chat-format family, each written to print what the family's Jinja
// template prints (and tokenizer/chat_formats_*.cpp render) for the data Ollama passes: .Messages
// (.Role, .Content, .Thinking, .ToolCalls with .ID and .Function.Name/.Arguments, .ToolCallID) and
// .Tools. Go templates have no arithmetic or string functions, so "the next message" is
// `index (slice $.Messages $i) 1`, "is the last" is `eq (len (slice $.Messages $i)) 1`, and a
// suffix is `slice s (len (slice s N))`. Ollama's tool-call parser takes its tag from the first
// text inside the first `if` on .ToolCalls (tools/template.go parseTag), so that `if` comes first
// and starts with the call's opening text; elsewhere the count of calls is tested instead.
#include "export/ollama_template.h"

#include "export/ollama_json.h"
#include "io/error.h"

namespace retort {
namespace {

using chat::ChatFamily;
using ollama::JsonLayout;

constexpr const char* kEachMessage = "{{ range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}";
// The number of tool calls, for conditions that must not name .ToolCalls (see above).
constexpr const char* kCountCalls = "{{ $calls := len .ToolCalls }}";
constexpr const char* kFirstIsSystem = "(and $.Messages (eq (index $.Messages 0).Role \"system\"))";
constexpr const char* kSystemContent = "{{ (index $.Messages 0).Content }}";

std::string go_if(const std::string& condition, const std::string& then, const std::string& otherwise = "") {
  return "{{ if " + condition + " }}" + then + (otherwise.empty() ? "" : "{{ else }}" + otherwise) + "{{ end }}";
}

// The generation prompt, after a last message that is not the assistant's (Ollama has no
// add_generation_prompt: a chat ending in an assistant message is continued, not answered).
std::string generation_prompt(const std::string& prompt) { return go_if("and $last (ne .Role \"assistant\")", prompt); }

// ---- ChatML: plain, Qwen2, SmolLM2 (a default system prompt), Qwen2.5 and Qwen3 (tools) ----

constexpr const char* kImStart = "<|im_start|>";
constexpr const char* kImEnd = "<|im_end|>";

std::string chatml_turn() { return std::string(kImStart) + "{{ .Role }}\n{{ .Content }}" + kImEnd + "\n"; }

std::string chatml(const std::string& default_system) {
  std::string out = kEachMessage;
  if (!default_system.empty()) {
    out += go_if("and (eq $i 0) (ne .Role \"system\")",
               std::string(kImStart) + "system\n" + default_system + kImEnd + "\n");
  }
  out += chatml_turn() + generation_prompt(std::string(kImStart) + "assistant\n");
  return out + "{{ end }}";
}

std::string qwen_tools_block() {
  return "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
         "function signatures within <tools></tools> XML tags:\n<tools>{{ range .Tools }}\n" +
         ollama::tool_json(JsonLayout()) +
         "{{ end }}\n</tools>\n\nFor each function call, return a json object with function name and arguments "
         "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
         "<args-json-object>}\n</tool_call>";
}

// <tool_call> blocks (dot: the message): the `if` Ollama's parser reads its tag from, so each call
// starts with text and what goes between calls follows it.
std::string qwen_tool_calls(const std::string& before_each, const std::string& between) {
  return "{{ if .ToolCalls }}{{ range $j, $_ := .ToolCalls }}" + before_each +
         "<tool_call>\n{\"name\": \"{{ .Function.Name }}\", \"arguments\": " + ollama::arguments_json() +
         "}\n</tool_call>" + (between.empty() ? "" : go_if("ne (len (slice $m.ToolCalls $j)) 1", between)) +
         "{{ end }}{{ end }}";
}

// Consecutive tool results share one user turn of <tool_response> blocks (Qwen2.5 and Qwen3).
std::string qwen_tool_response() {
  return "{{ if ne $previous \"tool\" }}" + std::string(kImStart) +
         "user{{ end }}\n<tool_response>\n{{ .Content }}\n</tool_response>"
         "{{ if or $last (ne (index (slice $.Messages $i) 1).Role \"tool\") }}" +
         kImEnd + "\n{{ end }}";
}

std::string qwen25(const std::string& default_system) {
  const std::string system_text = go_if(kFirstIsSystem, kSystemContent, default_system);
  std::string out = go_if(".Tools", std::string(kImStart) + "system\n" + system_text + "\n\n" + qwen_tools_block() + kImEnd + "\n",
                        std::string(kImStart) + "system\n" + system_text + kImEnd + "\n");
  out += "{{ $previous := \"\" }}" + std::string(kEachMessage) + kCountCalls;
  out += "{{ if eq .Role \"assistant\" }}" + std::string(kImStart) + "assistant" + go_if("or .Content (not $calls)", "\n{{ .Content }}") +
         qwen_tool_calls("\n", "") + kImEnd + "\n";
  out += "{{ else if eq .Role \"tool\" }}" + qwen_tool_response();
  out += "{{ else if not (and (eq $i 0) (eq .Role \"system\")) }}" + chatml_turn() + "{{ end }}";
  out += generation_prompt(std::string(kImStart) + "assistant\n");
  return out + "{{ $previous = .Role }}{{ end }}";
}

// Qwen3: reasoning (.Thinking) is shown only for assistant turns after the last real user query
// (not tool results passed back as a user turn), and then always on the final turn.
std::string qwen3() {
  std::string out = go_if(".Tools", std::string(kImStart) + "system\n" + go_if(kFirstIsSystem, std::string(kSystemContent) + "\n\n") +
                                      qwen_tools_block() + kImEnd + "\n",
                        go_if(kFirstIsSystem, std::string(kImStart) + "system\n" + kSystemContent + kImEnd + "\n"));
  out += "{{ $lastQuery := len .Messages }}{{ range $i, $_ := .Messages }}"
         "{{ if and (eq .Role \"user\") (not (and (ge (len .Content) 16) (eq (slice .Content 0 15) \"<tool_response>\") "
         "(eq (slice .Content (len (slice .Content 16))) \"</tool_response>\"))) }}{{ $lastQuery = $i }}{{ end }}{{ end }}";
  out += "{{ $previous := \"\" }}" + std::string(kEachMessage) + kCountCalls;
  out += "{{ if eq .Role \"assistant\" }}" + std::string(kImStart) + "assistant\n" +
         go_if("and (gt $i $lastQuery) (or $last .Thinking)", "<think>\n{{ .Thinking }}\n</think>\n\n") +
         "{{ .Content }}" + go_if("and .Content $calls", "\n") +
         qwen_tool_calls("", "\n") + kImEnd + "\n";
  out += "{{ else if eq .Role \"tool\" }}" + qwen_tool_response();
  out += "{{ else if not (and (eq $i 0) (eq .Role \"system\")) }}" + chatml_turn() + "{{ end }}";
  out += generation_prompt(std::string(kImStart) + "assistant\n" +
                           go_if("and $.IsThinkSet (not $.Think)", "<think>\n\n</think>\n\n"));
  return out + "{{ $previous = .Role }}{{ end }}";
}

// ---- Llama 2 and 3 ----

constexpr const char* kEot = "<|eot_id|>";

std::string llama3_header(const std::string& role) { return "<|start_header_id|>" + role + "<|end_header_id|>\n\n"; }

std::string llama3() {
  return std::string(kEachMessage) + llama3_header("{{ .Role }}") + "{{ .Content }}" + kEot +
         generation_prompt(llama3_header("assistant")) + "{{ end }}";
}

// The "Today Date" Retort trains with: 26 Jul 2024 for 3.1 / 3.3, the day of training (here, of
// the export) for 3.2, whose template calls strftime_now; Ollama's currentDate prints 2006-01-02.
std::string llama3_date(const chat::ChatTemplate& format) {
  const std::string text = format.render(chat::Json::array({{{"role", "user"}, {"content", "?"}}})).text;
  const std::string label = "Today Date: ";
  const size_t from = text.find(label) + label.size();
  return text.substr(from, text.find('\n', from) - from);
}

// Llama 3.1 / 3.2 / 3.3: the system turn with its date lines; the tool list opens the first
// message after it; a tool call is the assistant's JSON; tool results come back as "ipython".
std::string llama31(const std::string& date) {
  std::string out = llama3_header("system") + "{{ if .Tools }}Environment: ipython\n{{ end }}" +
                    "Cutting Knowledge Date: December 2023\nToday Date: " + date + "\n\n" +
                    go_if(kFirstIsSystem, kSystemContent) + kEot;
  out += "{{ $first := 0 }}" + go_if(kFirstIsSystem, "{{ $first = 1 }}") + kEachMessage + "{{ if lt $i $first }}";
  out += "{{ else if and $.Tools (eq $i $first) }}" + llama3_header("user") +
         "Given the following functions, please respond with a JSON for a function call with its proper arguments "
         "that best answers the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": "
         "dictionary of argument name and its value}.Do not use variables.\n\n{{ range $.Tools }}" +
         ollama::tool_json(JsonLayout(4)) + "\n\n{{ end }}{{ .Content }}" + kEot;
  out += "{{ else if eq .Role \"assistant\" }}" + llama3_header("assistant") +
         "{{ if .ToolCalls }}{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"parameters\": " +
         ollama::arguments_json() + "}{{ end }}{{ else }}{{ .Content }}{{ end }}" + kEot;
  out += "{{ else if or (eq .Role \"tool\") (eq .Role \"ipython\") }}" + llama3_header("ipython") +
         "{{ json .Content }}" + kEot;
  out += "{{ else }}" + llama3_header("{{ .Role }}") + "{{ .Content }}" + kEot + "{{ end }}";
  return out + generation_prompt(llama3_header("assistant")) + "{{ end }}";
}

// Llama 2: BOS before every [INST] but the first (which llama.cpp adds), the system prompt folded
// into the first user turn.
std::string llama2() {
  return "{{ $bos := \"\" }}" + std::string(kEachMessage) + "{{ if eq .Role \"user\" }}{{ $bos }}[INST] " +
         go_if("and (eq $i 1) " + std::string(kFirstIsSystem), "<<SYS>>\n" + std::string(kSystemContent) + "\n<</SYS>>\n\n") +
         "{{ .Content }} [/INST]{{ $bos = \"<s>\" }}{{ else if eq .Role \"assistant\" }} {{ .Content }} </s>{{ end }}{{ end }}";
}

// ---- Mistral ----

std::string mistral_v1() {
  return std::string(kEachMessage) + "{{ if eq .Role \"user\" }} [INST] " +
         go_if("and (eq $i 1) " + std::string(kFirstIsSystem), std::string(kSystemContent) + "\n\n") +
         "{{ .Content }} [/INST]{{ else if eq .Role \"assistant\" }} {{ .Content }}</s>{{ end }}{{ end }}";
}

// A tool as Mistral's template builds it: string fields pasted unquoted, unescaped.
std::string mistral_tool() {
  return "{\"type\": \"function\", \"function\": {\"name\": \"{{ .Function.Name }}\"{{ if .Function.Description }}, "
         "\"description\": \"{{ .Function.Description }}\"{{ end }}, \"parameters\": " +
         ollama::parameters_json(JsonLayout(), 3) + "}}";
}

// Mistral v3 (space " ") and v3-tekken (""): tools before the last user message, the system prompt
// inside it when it is the last message, tool calls and results with their ids.
std::string mistral_v3(const std::string& space) {
  std::string out = "{{ $hasSystem := " + std::string(kFirstIsSystem) + " }}{{ $lastUser := \"\" }}"
                    "{{ range .Messages }}{{ if eq .Role \"user\" }}{{ $lastUser = .Content }}{{ end }}{{ end }}";
  out += std::string(kEachMessage) + "{{ if eq .Role \"user\" }}" +
         go_if("and $.Tools (eq .Content $lastUser)", "[AVAILABLE_TOOLS]" + space +
                                                        "[{{ range $j, $_ := $.Tools }}{{ if $j }}, {{ end }}" +
                                                        mistral_tool() + "{{ end }}][/AVAILABLE_TOOLS]") +
         "[INST]" + space + go_if("and $last $hasSystem", std::string(kSystemContent) + "\n\n") + "{{ .Content }}[/INST]";
  out += "{{ else if .ToolCalls }}[TOOL_CALLS]" + space + "[{{ range $j, $_ := .ToolCalls }}{\"name\": " +
         "{{ json .Function.Name }}, \"arguments\": " + ollama::arguments_json() + ", \"id\": \"{{ .ID }}\"}" +
         go_if("ne (len (slice $m.ToolCalls $j)) 1", ", ") + "{{ end }}]</s>";
  out += "{{ else if eq .Role \"assistant\" }}" + space + "{{ .Content }}</s>";
  out += "{{ else if eq .Role \"tool\" }}[TOOL_RESULTS]" + space +
         "{\"content\": {{ .Content }}, \"call_id\": \"{{ .ToolCallID }}\"}[/TOOL_RESULTS]{{ end }}";
  return out + "{{ end }}";
}

// ---- Gemma: no system role; the system prompt opens the first user turn ----

std::string gemma(bool system_as_written) {
  // Gemma 2 (llama.cpp's folding) leaves out an empty system prompt; Gemma 3 writes it as given.
  const std::string system_condition = "and (eq $i 1) " + std::string(kFirstIsSystem) +
                                       (system_as_written ? "" : " (index $.Messages 0).Content");
  return std::string(kEachMessage) +
         "{{ if ne .Role \"system\" }}<start_of_turn>{{ if eq .Role \"assistant\" }}model{{ else }}{{ .Role }}{{ end }}\n" +
         go_if(system_condition, std::string(kSystemContent) + "\n\n") + "{{ .Content }}<end_of_turn>\n{{ end }}" +
         generation_prompt("<start_of_turn>model\n") + "{{ end }}";
}

// The default system prompt a ChatML format renders when a chat has none ("" if none).
std::string chatml_default_system(const chat::ChatTemplate& format) {
  const std::string prefix = std::string(kImStart) + "system\n";
  const std::string text = format.render(chat::Json::array({{{"role", "user"}, {"content", "?"}}})).text;
  if (!text.starts_with(prefix)) return "";
  return text.substr(prefix.size(), text.find(kImEnd) - prefix.size());
}

}  // namespace

std::string ollama_template(const chat::ChatTemplate& format) {
  switch (format.family()) {
    case ChatFamily::kLlama2: return llama2();
    case ChatFamily::kLlama3: return llama3();
    case ChatFamily::kLlama31:
    case ChatFamily::kLlama32: return llama31(llama3_date(format));
    case ChatFamily::kChatML:
    case ChatFamily::kQwen2:
    case ChatFamily::kSmolLM2: return chatml(chatml_default_system(format));
    case ChatFamily::kQwen25: return qwen25(chatml_default_system(format));
    case ChatFamily::kQwen3: return qwen3();
    case ChatFamily::kMistralV1: return mistral_v1();
    case ChatFamily::kMistralV3: return mistral_v3(" ");
    case ChatFamily::kMistralV3Tekken: return mistral_v3("");
    case ChatFamily::kGemma: return gemma(false);
    case ChatFamily::kGemma3: return gemma(true);
  }
  throw internal_error("chat family '" + format.name() + "' has no Ollama template");
}

}  // namespace retort
