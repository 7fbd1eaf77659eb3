// Package yamlpos decodes YAML into nodes that keep their line and column,
// for the parsers whose every error says file:line:col: the configuration
// file (package config) and the rule-test files (internal/ruletest). One
// document a file; anchors and aliases are refused, so that every value
// stands where its position says.
package yamlpos

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a file's YAML. Line 0 means the parser
// did not say where; Col 0 means the whole line.
type Problem struct {
	Line, Col int
	Msg       string
	// Syntax: the YAML parser refused the text (Msg is its message).
	Syntax bool
}

// Decode parses data as one YAML document and returns its root node: nil
// for an empty document or one that is only null. Problems are the syntax
// errors, a second document (after ---), anchors and aliases; the root is
// nil when there is a syntax error.
func Decode(data []byte) (*yaml.Node, []Problem) {
	var doc, extra yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, syntax(err)
	}
	var probs []Problem
	switch err := dec.Decode(&extra); {
	case err == nil:
		probs = append(probs, Problem{Line: extra.Line, Col: extra.Column, Msg: "a second YAML document (after ---); expected one document per file"})
	case !errors.Is(err, io.EOF):
		probs = append(probs, syntax(err)...)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, probs
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, probs
	}
	probs = refuseAliases(root, probs)
	return root, probs
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax turns the YAML parser's error (one or more "yaml: line N: ..."
// lines) into problems.
func syntax(err error) []Problem {
	var out []Problem
	for _, m := range strings.Split(err.Error(), "\n") {
		m = strings.TrimSpace(m)
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			out = append(out, Problem{Line: line, Msg: sm[2], Syntax: true})
			continue
		}
		if m != "" && m != "yaml: unmarshal errors:" {
			out = append(out, Problem{Msg: strings.TrimPrefix(m, "yaml: "), Syntax: true})
		}
	}
	return out
}

func refuseAliases(n *yaml.Node, probs []Problem) []Problem {
	if n.Kind == yaml.AliasNode {
		return append(probs, Problem{Line: n.Line, Col: n.Column, Msg: "aliases (*" + n.Value + ") are not supported: write the value out"})
	}
	if n.Anchor != "" {
		probs = append(probs, Problem{Line: n.Line, Col: n.Column, Msg: "anchors (&" + n.Anchor + ") are not supported: write the value out"})
	}
	for _, c := range n.Content {
		probs = refuseAliases(c, probs)
	}
	return probs
}

// Kind describes n for "expected X, found Y" messages.
func Kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!null":
		return "nothing (null)"
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return strconv.Quote(n.Value)
}

// Sections returns a mapping holding only the given keys of the mapping
// root, with their positions, so that one file can carry sections another
// parser reads (a rule test's inline policy, queue and rules).
func Sections(root *yaml.Node, keys ...string) *yaml.Node {
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line, Column: root.Column}
	for i := 0; i+1 < len(root.Content); i += 2 {
		for _, k := range keys {
			if root.Content[i].Value == k {
				out.Content = append(out.Content, root.Content[i], root.Content[i+1])
			}
		}
	}
	return out
}
