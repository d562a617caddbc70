// Ollama Modelfiles: Ollama renders prompts with Go templates, not Jinja, so the model's chat
// format (recognised from its Jinja source) is written as an Ollama template over .Messages and
// .Tools (export/ollama_template.h), with the format's end-of-turn strings as stop parameters and
// the recipe's system prompt as the default. Reference: ollama docs/modelfile.md, docs/template.md.
#include <ATen/core/Tensor.h>

#include "export/ollama_template.h"
#include "export/writers.h"
#include "io/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace retort {
namespace {

// Ollama's Modelfile parser ends a triple-quoted value at the first """ and drops characters that
// are neither printable nor space, tab or newline, so such text would not reach Ollama intact.
std::string triple_quoted(const std::string& text, const char* what) {
  if (text.find("\"\"\"") != std::string::npos) {
    throw bad_input(std::string("the ") + what + " contains \"\"\", which a Modelfile cannot quote");
  }
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7f) {
      throw bad_input(std::string("the ") + what + " contains a control character, which Ollama's Modelfile parser drops");
    }
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
  out += "TEMPLATE " + triple_quoted(ollama_template(format), "template") + "\n";
  for (const std::string& stop : format.stop_strings()) {
    if (tokenizer.token_to_id(stop)) out += "PARAMETER stop \"" + stop + "\"\n";
  }
  if (!system_prompt.empty()) out += "SYSTEM " + triple_quoted(system_prompt, "system prompt") + "\n";
  return out;
}

}  // namespace retort
