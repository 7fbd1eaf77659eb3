package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/qguard/qguard/internal/service"
)

// manSection is where qguard's pages go: system administration commands.
const manSection = "8"

func init() {
	c := &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "write the man pages (one per command) to DIR",
		Hidden: true, // for make install and the package build
		Args:   usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return genMan(args[0])
		},
	}
	root.AddCommand(c)
}

// genMan writes qguard.8, qguard-run.8, ... from the commands' help, so
// that `man qguard-run` says what `qguard run --help` says.
func genMan(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Long = manLong(c.Long)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	root.InitDefaultVersionFlag() // cobra adds --version when it executes
	h := &doc.GenManHeader{
		Title:   "QGUARD",
		Section: manSection,
		Source:  "qguard " + service.BuildInfo().Version,
		Manual:  "qguard manual",
	}
	if err := doc.GenManTree(root, h, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*."+manSection))
	if len(m) == 0 {
		return fmt.Errorf("man pages: none written to %s", dir)
	}
	return nil
}

// manLong turns a command's Long help into the markdown cobra's man
// generator reads. The help is laid out for a terminal already (man-page
// sections in capitals, bodies indented by four), so every body stays
// preformatted; NAME, SYNOPSIS and OPTIONS are left out because the
// generator writes them from the command itself.
func manLong(long string) string {
	if long == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(long, "\n"), "\n")
	if lines[0] != "NAME" {
		return indent(lines)
	}
	var b strings.Builder
	var title string
	var body []string
	flush := func() {
		switch title {
		case "", "NAME", "SYNOPSIS", "OPTIONS":
		case "DESCRIPTION":
			b.WriteString(strings.Join(body, "\n") + "\n\n")
		default:
			fmt.Fprintf(&b, "# %s\n\n%s\n\n", title, strings.Join(body, "\n"))
		}
		body = body[:0]
	}
	for _, l := range lines {
		if l != "" && l[0] != ' ' && strings.ToUpper(l) == l {
			flush()
			title = l
			continue
		}
		body = append(body, l)
	}
	flush()
	return strings.TrimRight(b.String(), "\n")
}

// indent makes lines one markdown code block (shown as they are).
func indent(lines []string) string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if l != "" {
			l = "    " + l
		}
		out[i] = l
	}
	return strings.Join(out, "\n")
}
