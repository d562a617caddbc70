// The oracle's driver: reads a Modelfile and conversations, renders each conversation as Ollama's
// chat endpoint would (template/template.go Execute; server/routes.go's SYSTEM default), and
// reports what Ollama infers from the template: its capabilities (server/images.go), the tag its
// tool-call parser waits for (tools/template.go) and its thinking tags (thinking/template.go).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

type request struct {
	Modelfile string `json:"modelfile"`
	Cases     []struct {
		Messages []openAIMessage `json:"messages"`
		Tools    []apiTool       `json:"tools"`
		Think    *bool           `json:"think"`
	} `json:"cases"`
}

type rendered struct {
	Text  *string `json:"text,omitempty"`
	Error string  `json:"error,omitempty"`
}

type response struct {
	ToolTag      string     `json:"tool_tag"`
	ThinkingTags []string   `json:"thinking_tags"`
	Capabilities []string   `json:"capabilities"`
	Renders      []rendered `json:"renders"`
}

// modelfileValue is the value of a TEMPLATE or SYSTEM command, triple-quoted as Retort writes it,
// as parser/parser.go ParseFile reads it: runes that are neither printable nor blank are dropped.
func modelfileValue(modelfile, command string) (string, bool) {
	match := regexp.MustCompile(`(?s)(?:^|\n)` + command + ` """(.*?)"""`).FindStringSubmatch(modelfile)
	if match == nil {
		return "", false
	}
	return strings.Map(func(r rune) rune {
		if strconv.IsPrint(r) || r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return r
		}
		return -1
	}, match[1]), true
}

// identifiers is template.Identifiers: every field and variable name a node refers to.
func identifiers(node parse.Node) []string {
	var names []string
	switch n := node.(type) {
	case *parse.ListNode:
		for _, child := range n.Nodes {
			names = append(names, identifiers(child)...)
		}
	case *parse.ActionNode:
		return identifiers(n.Pipe)
	case *parse.TemplateNode:
		return identifiers(n.Pipe)
	case *parse.IfNode:
		return identifiers(&n.BranchNode)
	case *parse.RangeNode:
		return identifiers(&n.BranchNode)
	case *parse.WithNode:
		return identifiers(&n.BranchNode)
	case *parse.BranchNode:
		names = identifiers(n.Pipe)
		names = append(names, identifiers(n.List)...)
		if n.ElseList != nil {
			names = append(names, identifiers(n.ElseList)...)
		}
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, command := range n.Cmds {
			for _, arg := range command.Args {
				names = append(names, identifiers(arg)...)
			}
		}
	case *parse.FieldNode:
		return n.Ident
	case *parse.VariableNode:
		return n.Ident
	}
	return names
}

// vars is Template.Vars: the lower-cased identifiers, which decide between the messages path and
// the legacy one and which capabilities a model announces.
func vars(t *template.Template) map[string]bool {
	set := map[string]bool{}
	for _, tt := range t.Templates() {
		for _, name := range identifiers(tt.Root) {
			set[strings.ToLower(name)] = true
		}
	}
	return set
}

func execute(t *template.Template, messages []templateMessage, tools []apiTool, think *bool) (string, error) {
	system, collated := collate(messages)
	var out bytes.Buffer
	err := t.Execute(&out, map[string]any{
		"System": system, "Messages": collated, "Tools": convertTools(tools), "Response": "",
		"Think": think != nil && *think, "ThinkLevel": "", "IsThinkSet": think != nil,
	})
	return out.String(), err
}

func renderCase(t *template.Template, system string, hasSystem bool, messages []openAIMessage, tools []apiTool,
	think *bool) rendered {
	converted, err := fromOpenAI(messages)
	if err != nil {
		return rendered{Error: err.Error()}
	}
	// server/routes.go: the Modelfile's SYSTEM stands in when a chat does not open with a system message.
	if hasSystem && system != "" && (len(converted) == 0 || converted[0].Role != "system") {
		converted = append([]templateMessage{{Role: "system", Content: system}}, converted...)
	}
	text, err := execute(t, converted, tools, think)
	if err != nil {
		return rendered{Error: err.Error()}
	}
	return rendered{Text: &text}
}

func run(input []byte) (*response, error) {
	var req request
	if err := json.Unmarshal(input, &req); err != nil {
		return nil, err
	}
	source, ok := modelfileValue(req.Modelfile, "TEMPLATE")
	if !ok {
		return nil, errors.New("the Modelfile has no TEMPLATE \"\"\"...\"\"\"")
	}
	t, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(source)
	if err != nil {
		return nil, err
	}
	names := vars(t)
	if !names["messages"] {
		return nil, errors.New("the template does not use .Messages: Ollama would render it as a legacy template")
	}
	system, hasSystem := modelfileValue(req.Modelfile, "SYSTEM")
	resp := &response{ToolTag: parseTag(t), Capabilities: []string{}, Renders: []rendered{}}
	if names["tools"] {
		resp.Capabilities = append(resp.Capabilities, "tools")
	}
	opening, closing := inferThinkingTags(t)
	resp.ThinkingTags = []string{opening, closing}
	if opening != "" && closing != "" {
		resp.Capabilities = append(resp.Capabilities, "thinking")
	}
	sort.Strings(resp.Capabilities)
	for _, c := range req.Cases {
		resp.Renders = append(resp.Renders, renderCase(t, system, hasSystem, c.Messages, c.Tools, c.Think))
	}
	return resp, nil
}

func main() {
	var input bytes.Buffer
	if _, err := input.ReadFrom(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	resp, err := run(input.Bytes())
	if err != nil {
		fmt.Fprintln(os.Stderr, "ollama_render:", err)
		os.Exit(1)
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(resp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
