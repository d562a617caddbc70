// Ollama Modelfiles: Ollama renders prompts with Go templates, not Jinja, so the model's chat
// format (recognised from its Jinja source) is rendered with placeholders and written in Ollama's
// template language, with the format's end-of-turn strings as stop parameters. Reference: ollama
// docs/modelfile.md and docs/template.md (.System, .Prompt, .Response, if/else/end).
#include <ATen/core/Tensor.h>

#include "export/writers.h"
#include "io/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace retort {
namespace {

// Placeholders no conversation contains, rendered through our chat format to find where Ollama's
// variables go.
constexpr const char* kSystemMark = "\x01SYSTEM\x01";
constexpr const char* kPromptMark = "\x01PROMPT\x01";
constexpr const char* kResponseMark = "\x01RESPONSE\x01";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

std::string go_variables(std::string text) {
  if (text.find("{{") != std::string::npos) throw bad_input("the chat template's text contains '{{'");
  return replace_all(replace_all(text, kSystemMark, "{{ .System }}"), kPromptMark, "{{ .Prompt }}");
}

// Ollama's template for one exchange, derived from the chat format itself: the rendering with a
// system message, the one without (which may carry a default system prompt), and what follows
// the answer. BOS is left out: llama.cpp adds it.
std::string go_template(const chat::ChatTemplate& format) {
  chat::ChatRenderOptions prompt_only;
  prompt_only.add_generation_prompt = true;
  const chat::Json system = {{"role", "system"}, {"content", kSystemMark}};
  const chat::Json user = {{"role", "user"}, {"content", kPromptMark}};
  const chat::Json answer = {{"role", "assistant"}, {"content", kResponseMark}};
  const std::string bos = format.bos_token();
  auto render = [&](const chat::Json& messages, const chat::ChatRenderOptions& options) {
    std::string text = format.render(messages, options).text;
    if (!bos.empty() && text.rfind(bos, 0) == 0) text.erase(0, bos.size());
    return text;
  };
  const std::string with_system = render(chat::Json::array({system, user}), prompt_only);
  const std::string without = render(chat::Json::array({user}), prompt_only);
  const std::string full = render(chat::Json::array({system, user, answer}), {});
  const size_t response = full.find(kResponseMark);
  if (full.rfind(with_system, 0) != 0 || response == std::string::npos) {
    throw bad_input("the chat format's generation prompt is not a prefix of its rendered answer");
  }
  const std::string after = full.substr(response + std::string(kResponseMark).size());
  std::string out;
  if (with_system.find(kSystemMark) != std::string::npos) {
    out = "{{ if .System }}" + go_variables(with_system) + "{{ else }}" + go_variables(without) + "{{ end }}";
  } else {
    out = go_variables(without);  // the format has no system turn
  }
  return out + "{{ .Response }}" + go_variables(after);
}

std::string triple_quoted(const std::string& text, const char* what) {
  if (text.find("\"\"\"") != std::string::npos) {
    throw bad_input(std::string("the ") + what + " contains \"\"\", which a Modelfile cannot quote");
  }
  return "\"\"\"" + text + "\"\"\"";
}

}  // namespace

std::string ollama_modelfile(const std::string& gguf_file_name, const std::string& chat_template_jinja,
                             const std::string& system_prompt, const Tokenizer& tokenizer) {
  std::string out = "# Ollama Modelfile written by retort export: ollama create NAME -f THIS_FILE\n";
  out += "FROM ./" + gguf_file_name + "\n";
  if (chat_template_jinja.empty()) {
    if (!system_prompt.empty()) out += "SYSTEM " + triple_quoted(system_prompt, "system prompt") + "\n";
    return out;
  }
  const auto name = chat::detect_chat_template_name(chat_template_jinja);
  if (!name) {
    throw bad_input("the chat template is not one Retort can write as an Ollama template (known: chatml, llama2, "
                    "llama3, mistral, gemma families); pass --no-modelfile to skip the Modelfile");
  }
  const chat::ChatTemplate format = chat::ChatTemplate::by_name(*name);
  out += "TEMPLATE " + triple_quoted(go_template(format), "template") + "\n";
  for (const std::string& stop : format.stop_strings()) {
    if (tokenizer.token_to_id(stop)) out += "PARAMETER stop \"" + stop + "\"\n";
  }
  if (!system_prompt.empty()) out += "SYSTEM " + triple_quoted(system_prompt, "system prompt") + "\n";
  return out;
}

}  // namespace retort
