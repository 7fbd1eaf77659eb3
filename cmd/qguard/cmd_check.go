package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/engine"
)

// checkFailed makes `qguard check` exit 1 after printing the problems
// itself (main prints nothing more for an empty message).
type checkFailed struct{ n int }

func (c checkFailed) Error() string { return fmt.Sprintf("%d problem(s)", c.n) }
func (checkFailed) ExitCode() int   { return 1 }

func init() {
	c := &cobra.Command{
		Use:   "check FILE...",
		Short: "validate configuration files",
		Long: `NAME
    qguard check - validate qguard configuration files

SYNOPSIS
    qguard check FILE...

DESCRIPTION
    Runs the checks "qguard run --config FILE" makes before it touches the
    kernel, with the same code: the file parsed, every section validated by
    the package that uses it (queue, rules, xdp, names), the flow tables'
    memory against this machine's, and the policy compiled. Every problem is
    printed on its own line as

        file:line:col: message

    (line and column are 1-based), so editors and CI logs can jump to it.
    A file without problems prints "FILE: ok".

    Things only the running kernel can tell (a queue already bound) are not
    checked: "qguard run" reports them at start-up. Interfaces named in
    in_iface/out_iface need not exist: a rule applies once its interface
    appears.

EXIT STATUS
    0 every file is valid; 1 at least one problem; 2 no FILE given or a
    wrong flag (usage error).`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return flagError{errors.New("check: no FILE given: name the configuration file(s) to validate, e.g. qguard check /etc/qguard/qguard.yaml")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			problems := 0
			for _, path := range args {
				lines := checkFile(path)
				for _, l := range lines {
					fmt.Fprintln(cmd.OutOrStdout(), l)
				}
				if len(lines) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
				}
				problems += len(lines)
			}
			if problems > 0 {
				return checkFailed{problems}
			}
			return nil
		},
	}
	root.AddCommand(c)
}

// checkFile returns one "file:line:col: message" line per problem.
func checkFile(path string) []string {
	err := engine.CheckFile(path)
	if err == nil {
		return nil
	}
	var list *config.ErrorList
	if errors.As(err, &list) {
		out := make([]string, len(list.Errs))
		for i, e := range list.Errs {
			out[i] = e.Error()
		}
		return out
	}
	return []string{fmt.Sprintf("%s: %v", path, err)}
}
