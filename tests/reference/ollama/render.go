// Oracle for export/ollama_template.*: renders the TEMPLATE of an Ollama Modelfile with Go's own
// text/template, given the data Ollama gives it. The data model, helper functions and message
// handling are copied from ollama/ollama (template/template.go: Parse, Execute, collate,
// convertMessagesForTemplate, convertToolsForTemplate; api/types.go: Message, Tool, ToolProperty;
// openai/openai.go: FromChatRequest; server/routes.go: the Modelfile SYSTEM default;
// tools/template.go: parseTag), so a template that renders right here renders right in Ollama.
//
// Usage: ollama_render < request.json > response.json, where the request is
//
//	{"modelfile": "...", "cases": [{"messages": [...], "tools": [...], "think": true|false|null}]}
//
// with OpenAI-style messages, and the response is
//
//	{"tool_tag": "...", "capabilities": [...], "renders": [{"text": "..."} or {"error": "..."}]}.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"
)

// ---- api/types.go: what Ollama decodes a request's tools into ----

// propertyType is api.PropertyType: a JSON Schema type, a string or a list of strings.
type propertyType []string

func (pt *propertyType) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*pt = []string{s}
		return nil
	}
	var a []string
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	*pt = a
	return nil
}

func (pt propertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

func (pt propertyType) String() string {
	if len(pt) == 0 {
		return ""
	}
	if len(pt) == 1 {
		return pt[0]
	}
	return fmt.Sprintf("%v", []string(pt))
}

// toolProperty is api.ToolProperty: fields it does not name (default, minimum, ...) are dropped.
type toolProperty struct {
	AnyOf       []toolProperty `json:"anyOf,omitempty"`
	Type        propertyType   `json:"type,omitempty"`
	Items       any            `json:"items,omitempty"`
	Description string         `json:"description,omitempty"`
	Enum        []any          `json:"enum,omitempty"`
	Properties  *propertiesMap `json:"properties,omitempty"`
	Required    []string       `json:"required,omitempty"`
}

// propertiesMap is api.ToolPropertiesMap: properties in the order given.
type propertiesMap struct {
	keys   []string
	values map[string]toolProperty
}

func (m *propertiesMap) UnmarshalJSON(data []byte) error {
	decoder := json.NewDecoder(bytes.NewReader(data))
	if _, err := decoder.Token(); err != nil { // '{'
		return err
	}
	m.values = map[string]toolProperty{}
	for decoder.More() {
		token, err := decoder.Token()
		if err != nil {
			return err
		}
		key := token.(string)
		var value toolProperty
		if err := decoder.Decode(&value); err != nil {
			return err
		}
		if _, seen := m.values[key]; !seen {
			m.keys = append(m.keys, key)
		}
		m.values[key] = value
	}
	return nil
}

func (m propertiesMap) MarshalJSON() ([]byte, error) {
	var out bytes.Buffer
	out.WriteByte('{')
	for i, key := range m.keys {
		if i > 0 {
			out.WriteByte(',')
		}
		name, _ := json.Marshal(key)
		value, err := json.Marshal(m.values[key])
		if err != nil {
			return nil, err
		}
		out.Write(name)
		out.WriteByte(':')
		out.Write(value)
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// toMap is ToolPropertiesMap.ToMap: a plain map, so templates see the properties sorted by name.
func (m *propertiesMap) toMap() map[string]toolProperty {
	if m == nil {
		return nil
	}
	return m.values
}

type apiTool struct {
	Type     string `json:"type"`
	Items    any    `json:"items,omitempty"`
	Function struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		Parameters  struct {
			Type       string         `json:"type"`
			Defs       any            `json:"$defs,omitempty"`
			Items      any            `json:"items,omitempty"`
			Required   []string       `json:"required,omitempty"`
			Properties *propertiesMap `json:"properties"`
		} `json:"parameters"`
	} `json:"function"`
}

// ---- template/template.go: what a template sees ----

type templateProperties map[string]toolProperty

func (t templateProperties) String() string {
	if t == nil {
		return "{}"
	}
	bts, _ := json.Marshal(t)
	return string(bts)
}

type templateToolFunctionParameters struct {
	Type       string             `json:"type"`
	Defs       any                `json:"$defs,omitempty"`
	Items      any                `json:"items,omitempty"`
	Required   []string           `json:"required,omitempty"`
	Properties templateProperties `json:"properties"`
}

type templateToolFunction struct {
	Name        string                         `json:"name"`
	Description string                         `json:"description"`
	Parameters  templateToolFunctionParameters `json:"parameters"`
}

type templateTool struct {
	Type     string               `json:"type"`
	Items    any                  `json:"items,omitempty"`
	Function templateToolFunction `json:"function"`
}

func (t templateTool) String() string {
	bts, _ := json.Marshal(t)
	return string(bts)
}

type templateTools []templateTool

func (t templateTools) String() string {
	bts, _ := json.Marshal(t)
	return string(bts)
}

type templateArgs map[string]any

func (t templateArgs) String() string {
	if t == nil {
		return "{}"
	}
	bts, _ := json.Marshal(t)
	return string(bts)
}

type templateToolCallFunction struct {
	Index     int
	Name      string
	Arguments templateArgs
}

type templateToolCall struct {
	ID       string
	Function templateToolCallFunction
}

type templateMessage struct {
	Role       string
	Content    string
	Thinking   string
	Images     []any
	ToolCalls  []templateToolCall
	ToolName   string
	ToolCallID string
}

func convertTools(tools []apiTool) templateTools {
	if tools == nil {
		return nil
	}
	result := make(templateTools, len(tools))
	for i, tool := range tools {
		p := tool.Function.Parameters
		result[i] = templateTool{Type: tool.Type, Items: tool.Items, Function: templateToolFunction{
			Name: tool.Function.Name, Description: tool.Function.Description,
			Parameters: templateToolFunctionParameters{Type: p.Type, Defs: p.Defs, Items: p.Items,
				Required: p.Required, Properties: templateProperties(p.Properties.toMap())}}}
	}
	return result
}

var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate": func(args ...string) string {
		return time.Now().Format("2006-01-02")
	},
	"yesterdayDate": func(args ...string) string {
		return time.Now().AddDate(0, 0, -1).Format("2006-01-02")
	},
	"toTypeScriptType": func(v any) string { return "any" },
}

// collate: system messages are also joined into .System; consecutive messages of one role (but
// tool results) are merged with a blank line.
func collate(messages []templateMessage) (string, []*templateMessage) {
	var system []string
	var collated []*templateMessage
	for i := range messages {
		if messages[i].Role == "system" {
			system = append(system, messages[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == messages[i].Role && messages[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + messages[i].Content
		} else {
			collated = append(collated, &messages[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

// ---- openai/openai.go: an OpenAI-style chat request as Ollama's API messages ----

type openAIMessage struct {
	Role             string  `json:"role"`
	Content          *string `json:"content"`
	Reasoning        string  `json:"reasoning"`
	ReasoningContent string  `json:"reasoning_content"` // the field transformers' templates read
	ToolCallID       string  `json:"tool_call_id"`
	ToolCalls        []struct {
		ID       string `json:"id"`
		Function struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

func fromOpenAI(messages []openAIMessage) ([]templateMessage, error) {
	var out []templateMessage
	for _, m := range messages {
		message := templateMessage{Role: strings.ToLower(m.Role), ToolCallID: m.ToolCallID, Thinking: m.Reasoning}
		if m.ReasoningContent != "" {
			message.Thinking = m.ReasoningContent
		}
		if m.Content != nil {
			message.Content = *m.Content
		} else if m.ToolCalls == nil {
			return nil, errors.New("content is only optional when tool calls are present")
		}
		for _, call := range m.ToolCalls {
			raw := call.Function.Arguments
			var text string
			if json.Unmarshal(raw, &text) == nil { // OpenAI sends arguments as a JSON string
				raw = []byte(text)
			}
			var arguments map[string]any
			if err := json.Unmarshal(raw, &arguments); err != nil {
				return nil, errors.New("invalid tool call arguments")
			}
			message.ToolCalls = append(message.ToolCalls, templateToolCall{
				ID: call.ID, Function: templateToolCallFunction{Name: call.Function.Name, Arguments: arguments}})
		}
		out = append(out, message)
	}
	return out, nil
}
