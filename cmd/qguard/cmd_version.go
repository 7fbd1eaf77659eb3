package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/internal/engine"
)

func init() {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "print the version, commit and Go version",
		Long: `NAME
    qguard version - print what this binary is

SYNOPSIS
    qguard version [--json]

DESCRIPTION
    Prints the qguard version, the VCS commit it was built from (with
    "+dirty" when the tree had local changes) and the Go toolchain version,
    as stamped into the binary by the Go toolchain (runtime/debug).

OPTIONS
    --json    print one JSON object instead of text

EXIT STATUS
    0 always.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := engine.BuildInfo()
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(b)
			}
			commit := b.Commit
			if b.Modified {
				commit += "+dirty"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "qguard %s\ncommit %s\n%s\n", b.Version, commit, b.GoVersion)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	root.AddCommand(c)
}
