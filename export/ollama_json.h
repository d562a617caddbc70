// Go template pieces that print Ollama's tool data (.Tools entries, tool-call arguments) the way
// Python's json.dumps prints them in the Jinja templates (transformers' `tojson`): ", " and ": "
// on one line, or indent=4. Ollama's own `json` helper and String() methods print Go's compact
// JSON instead, which the models were never trained on.
#pragma once

#include <string>

namespace retort::ollama {

// json.dumps on one line (indent < 0) or with `indent` spaces a level.
class JsonLayout {
 public:
  explicit JsonLayout(int indent = -1) : indent_(indent) {}
  // What follows an opening bracket, for items at `depth`.
  std::string open(char bracket, int depth) const;
  std::string separator(int depth) const;
  // The closing bracket of a container whose items are at `depth`.
  std::string close(char bracket, int depth) const;

 private:
  std::string newline(int depth) const;
  int indent_;
};

// A Go string literal (for separators kept in template variables).
std::string go_string(const std::string& text);

// One tool (dot: Ollama's templateTool) as {"type": ..., "function": {"name", "description",
// "parameters": {"type", "properties", "required"}}}; `depth` is the nesting of its own fields.
std::string tool_json(const JsonLayout& layout, int depth = 1);
// The tool's parameters object alone (dot: templateTool), its fields at `depth`.
std::string parameters_json(const JsonLayout& layout, int depth);
// A tool call's arguments (dot: templateToolCall) on one line.
std::string arguments_json();

}  // namespace retort::ollama
