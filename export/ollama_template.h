// Ollama chat templates (Go text/template over Ollama's .Messages / .Tools data) for the chat
// formats Retort renders, written so that Ollama prompts an exported model as it was trained.
// Reference: ollama/ollama template/template.go (the data a template sees), tools/template.go
// (how the tool-call tag is read from a template) and the formats' own Jinja templates.
#pragma once

#include <string>

#include "tokenizer/chat_template.h"

namespace retort {

// The TEMPLATE of an Ollama Modelfile for `format`: every message in order with its role, the
// format's tool block from .Tools, assistant .ToolCalls, tool results, and the generation prompt
// after a last message that is not the assistant's. The leading BOS is left out (llama.cpp adds it).
std::string ollama_template(const chat::ChatTemplate& format);

}  // namespace retort
