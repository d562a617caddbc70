// What Ollama reads out of a template besides rendering it, ported from ollama/ollama:
// tools/template.go (parseTag: the text its tool-call parser waits for in the model's output) and
// thinking/template.go (InferTags: the tags around reasoning, which make `think` available).
package main

import (
	"bytes"
	"strings"
	"text/template"
	"text/template/parse"
)

// parseTag: the first non-blank text inside the first `if` on .ToolCalls, cut before any '{';
// "{" when there is none (then only output that starts with a JSON object is parsed as a call).
func parseTag(t *template.Template) string {
	call := findToolCallNode(t.Tree.Root.Nodes)
	if call == nil {
		return "{"
	}
	text := findTextNode(call.List.Nodes)
	if text == nil {
		return "{"
	}
	tag := strings.ReplaceAll(string(text.Text), "\r\n", "\n")
	tag, _, _ = strings.Cut(tag, "{")
	tag = strings.TrimSpace(tag)
	if tag == "" {
		tag = "{"
	}
	return tag
}

func isToolCallsNode(n *parse.IfNode) bool {
	for _, command := range n.Pipe.Cmds {
		for _, arg := range command.Args {
			if field, ok := arg.(*parse.FieldNode); ok {
				for _, ident := range field.Ident {
					if ident == "ToolCalls" {
						return true
					}
				}
			}
		}
	}
	return false
}

func findToolCallNode(nodes []parse.Node) *parse.IfNode {
	for _, node := range nodes {
		var lists []*parse.ListNode
		switch n := node.(type) {
		case *parse.IfNode:
			if isToolCallsNode(n) {
				return n
			}
			lists = []*parse.ListNode{n.List, n.ElseList}
		case *parse.ListNode:
			lists = []*parse.ListNode{n}
		case *parse.RangeNode:
			lists = []*parse.ListNode{n.List, n.ElseList}
		case *parse.WithNode:
			lists = []*parse.ListNode{n.List, n.ElseList}
		}
		for _, list := range lists {
			if list != nil {
				if found := findToolCallNode(list.Nodes); found != nil {
					return found
				}
			}
		}
	}
	return nil
}

// findTextNode: depth first, but a branch or an action ends the search.
func findTextNode(nodes []parse.Node) *parse.TextNode {
	for _, node := range nodes {
		var lists []*parse.ListNode
		switch n := node.(type) {
		case *parse.TextNode:
			if len(bytes.TrimSpace(n.Text)) == 0 {
				continue
			}
			return n
		case *parse.ListNode:
			if text := findTextNode(n.Nodes); text != nil {
				return text
			}
			continue
		case *parse.IfNode:
			lists = []*parse.ListNode{n.List, n.ElseList}
		case *parse.RangeNode:
			lists = []*parse.ListNode{n.List, n.ElseList}
		case *parse.WithNode:
			lists = []*parse.ListNode{n.List, n.ElseList}
		case *parse.ActionNode:
			return nil
		default:
			continue
		}
		for _, list := range lists {
			if list != nil {
				if text := findTextNode(list.Nodes); text != nil {
					return text
				}
			}
		}
		return nil
	}
	return nil
}

// inferThinkingTags: for each .Thinking inside a range over .Messages, the first and last text of
// the nearest enclosing list; the last such reference wins.
func inferThinkingTags(t *template.Template) (string, string) {
	var ancestors []parse.Node
	opening, closing := "", ""
	var visit func(parse.Node)
	visit = func(node parse.Node) {
		if node == nil {
			return
		}
		ancestors = append(ancestors, node)
		defer func() { ancestors = ancestors[:len(ancestors)-1] }()
		switch n := node.(type) {
		case *parse.FieldNode:
			if len(n.Ident) > 0 && n.Ident[0] == "Thinking" && insideMessagesRange(ancestors) {
				for i := len(ancestors) - 1; i >= 0; i-- {
					if list, ok := ancestors[i].(*parse.ListNode); ok {
						if text, ok := list.Nodes[0].(*parse.TextNode); ok {
							opening = strings.TrimSpace(text.String())
						}
						if text, ok := list.Nodes[len(list.Nodes)-1].(*parse.TextNode); ok {
							closing = strings.TrimSpace(text.String())
						}
						break
					}
				}
			}
		case *parse.ListNode:
			for _, child := range n.Nodes {
				visit(child)
			}
		case *parse.BranchNode:
			if n.Pipe != nil {
				visit(n.Pipe)
			}
			if n.List != nil {
				visit(n.List)
			}
			if n.ElseList != nil {
				visit(n.ElseList)
			}
		case *parse.ActionNode:
			visit(n.Pipe)
		case *parse.IfNode:
			visit(&n.BranchNode)
		case *parse.RangeNode:
			visit(&n.BranchNode)
		case *parse.WithNode:
			visit(&n.BranchNode)
		case *parse.TemplateNode:
			if n.Pipe != nil {
				visit(n.Pipe)
			}
		case *parse.PipeNode:
			for _, command := range n.Cmds {
				visit(command)
			}
		case *parse.CommandNode:
			for _, arg := range n.Args {
				visit(arg)
			}
		}
	}
	visit(t.Root)
	return opening, closing
}

// insideMessagesRange: the nearest enclosing range iterates over a field named Messages.
func insideMessagesRange(ancestors []parse.Node) bool {
	for i := len(ancestors) - 1; i >= 0; i-- {
		if r, ok := ancestors[i].(*parse.RangeNode); ok {
			for _, command := range r.Pipe.Cmds {
				for _, arg := range command.Args {
					if field, ok := arg.(*parse.FieldNode); ok {
						for _, ident := range field.Ident {
							if ident == "Messages" {
								return true
							}
						}
					}
				}
			}
			return false
		}
	}
	return false
}
