// Ollama Modelfiles: Ollama renders prompts with Go templates, not Jinja, so the model's chat
// format (recognised from its Jinja source) is written in Ollama's template language, with the
// format's end-of-turn strings as stop parameters. Reference: ollama docs/modelfile.md and
// docs/template.md (.System, .Prompt, .Response).
#include <ATen/core/Tensor.h>

#include "export/writers.h"
#include "io/error.h"
#include "tokenizer/chat_template.h"

namespace retort {
namespace {

using chat::ChatFamily;

std::string go_template(ChatFamily family) {
  switch (family) {
    case ChatFamily::kChatML:
    case ChatFamily::kQwen2:
    case ChatFamily::kQwen25:
    case ChatFamily::kSmolLM2:
      return "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
             "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
             "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n";
    case ChatFamily::kLlama3:
    case ChatFamily::kLlama31:
    case ChatFamily::kLlama32:
      // No <|begin_of_text|>: llama.cpp adds BOS itself (add_bos_token).
      return "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
             "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
             "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>";
    case ChatFamily::kLlama2:
      return "[INST] {{ if .System }}<<SYS>>\n{{ .System }}\n<</SYS>>\n\n{{ end }}{{ .Prompt }} [/INST] {{ .Response }}";
    case ChatFamily::kMistralV1:
      return " [INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }} [/INST] {{ .Response }}";
    case ChatFamily::kMistralV3:
      return "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}";
    case ChatFamily::kMistralV3Tekken:
      return "[INST]{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST]{{ .Response }}";
    case ChatFamily::kGemma:
      return "<start_of_turn>user\n{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}<end_of_turn>\n"
             "<start_of_turn>model\n{{ .Response }}<end_of_turn>\n";
  }
  throw internal_error("unhandled chat family");
}

// The system prompt a ChatML template inserts when a conversation has none (SmolLM2, Qwen2.5),
// so Ollama's SYSTEM default matches what the Jinja template would render.
std::string default_system_prompt(const chat::ChatTemplate& format) {
  const auto rendered = format.render(chat::Json::array({chat::Json{{"role", "user"}, {"content", "x"}}}));
  const std::string begin = "<|im_start|>system\n";
  const size_t at = rendered.text.find(begin);
  if (at == std::string::npos) return "";
  const size_t end = rendered.text.find("<|im_end|>", at);
  return rendered.text.substr(at + begin.size(), end - at - begin.size());
}

std::string triple_quoted(const std::string& text, const char* what) {
  if (text.find("\"\"\"") != std::string::npos) {
    throw bad_input(std::string("the ") + what + " contains \"\"\", which a Modelfile cannot quote");
  }
  return "\"\"\"" + text + "\"\"\"";
}

}  // namespace

std::string ollama_modelfile(const std::string& gguf_file_name, const std::string& chat_template_jinja,
                             const std::string& system_prompt) {
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
  out += "TEMPLATE " + triple_quoted(go_template(format.family()), "template") + "\n";
  for (const std::string& stop : format.stop_strings()) out += "PARAMETER stop \"" + stop + "\"\n";
  const std::string system = system_prompt.empty() ? default_system_prompt(format) : system_prompt;
  if (!system.empty()) out += "SYSTEM " + triple_quoted(system, "system prompt") + "\n";
  return out;
}

}  // namespace retort
