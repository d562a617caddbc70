// Python-style JSON printed by Go templates from Ollama's tool data. Ollama keeps only the fields
// of its own types (template/template.go templateTool, api/types.go ToolProperty) and hands
// properties and arguments to templates as Go maps, so they print in name order; the field order
// below is that of OpenAI tool definitions (and, within a property, Ollama's ToolProperty).
#include "export/ollama_json.h"

#include <vector>

namespace retort::ollama {

std::string JsonLayout::newline(int depth) const { return "\n" + std::string(static_cast<size_t>(indent_ * depth), ' '); }

std::string JsonLayout::open(char bracket, int depth) const {
  // An opening brace written as text right before an action would read as "{{{": print it instead.
  const std::string text = bracket == '{' ? "{{ \"{\" }}" : std::string(1, bracket);
  return indent_ < 0 ? text : text + newline(depth);
}

std::string JsonLayout::separator(int depth) const { return indent_ < 0 ? ", " : "," + newline(depth); }

std::string JsonLayout::close(char bracket, int depth) const {
  return indent_ < 0 ? std::string(1, bracket) : newline(depth - 1) + bracket;
}

std::string go_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out + "\"";
}

namespace {

// A non-empty list of JSON values `expression` (checked by the caller), items at `depth`.
std::string list_json(const JsonLayout& layout, int depth, const std::string& expression) {
  return layout.open('[', depth) + "{{ range $j, $x := " + expression + " }}{{ if $j }}" + layout.separator(depth) +
         "{{ end }}{{ json $x }}{{ end }}" + layout.close(']', depth);
}

// One property (dot: ToolProperty), its fields at `depth`, in Ollama's field order. Nested schemas
// (anyOf, items, properties) print as Go's compact JSON: Ollama holds them as opaque values.
std::string property_json(const JsonLayout& layout, int depth) {
  const std::string separator = go_string(layout.separator(depth));
  auto field = [&](const std::string& name, const std::string& value) {
    const std::string go_field = "." + std::string(1, static_cast<char>(name[0] - 'a' + 'A')) + name.substr(1);
    return "{{ if " + go_field + " }}{{ $sepField }}\"" + name + "\": " + value + "{{ $sepField = " + separator +
           " }}{{ end }}";
  };
  std::string out = "{{ $sepField := \"\" }}{{ if or .AnyOf .Type .Items .Description .Enum .Properties .Required }}";
  out += layout.open('{', depth);
  out += field("anyOf", "{{ json .AnyOf }}");
  out += field("type", "{{ if eq (len .Type) 1 }}{{ json (index .Type 0) }}{{ else }}" +
                           list_json(layout, depth + 1, ".Type") + "{{ end }}");
  out += field("items", "{{ json .Items }}");
  out += field("description", "{{ json .Description }}");
  out += field("enum", list_json(layout, depth + 1, ".Enum"));
  out += field("properties", "{{ json .Properties }}");
  out += field("required", list_json(layout, depth + 1, ".Required"));
  return out + layout.close('}', depth) + "{{ else }}{}{{ end }}";
}

}  // namespace

std::string parameters_json(const JsonLayout& layout, int depth) {
  const std::string properties = "{{ $sepProperty := \"\" }}{{ range $name, $_ := .Function.Parameters.Properties }}"
                                 "{{ $sepProperty }}{{ json $name }}: " +
                                 property_json(layout, depth + 2) + "{{ $sepProperty = " +
                                 go_string(layout.separator(depth + 1)) + " }}{{ end }}";
  return layout.open('{', depth) + "\"type\": {{ json .Function.Parameters.Type }}" + layout.separator(depth) +
         "\"properties\": {{ if .Function.Parameters.Properties }}" + layout.open('{', depth + 1) + properties +
         layout.close('}', depth + 1) + "{{ else }}{}{{ end }}{{ if .Function.Parameters.Required }}" +
         layout.separator(depth) + "\"required\": " + list_json(layout, depth + 1, ".Function.Parameters.Required") +
         "{{ end }}" + layout.close('}', depth);
}

std::string tool_json(const JsonLayout& layout, int depth) {
  return layout.open('{', depth) + "\"type\": {{ json .Type }}" + layout.separator(depth) +
         "\"function\": " + layout.open('{', depth + 1) + "\"name\": {{ json .Function.Name }}" +
         "{{ if .Function.Description }}" + layout.separator(depth + 1) +
         "\"description\": {{ json .Function.Description }}{{ end }}" + layout.separator(depth + 1) +
         "\"parameters\": " + parameters_json(layout, depth + 2) + layout.close('}', depth + 1) +
         layout.close('}', depth);
}

std::string arguments_json() {
  return "{{ \"{\" }}{{ $sepArgument := \"\" }}{{ range $key, $value := .Function.Arguments }}{{ $sepArgument }}"
         "{{ json $key }}: {{ json $value }}{{ $sepArgument = \", \" }}{{ end }}}";
}

}  // namespace retort::ollama
