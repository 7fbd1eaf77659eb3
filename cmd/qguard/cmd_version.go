package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/internal/service"
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
    qguard --version

DESCRIPTION
    Prints the qguard version, the VCS commit it was built from (with
    "+dirty" when the tree had local changes) and the Go toolchain version.
    "make build" and the package build stamp the version (git describe) and
    the commit at link time; a plain "go build" falls back to what the Go
    toolchain recorded (runtime/debug: module version, vcs.revision).

OPTIONS
    --json    print one JSON object instead of text

EXIT STATUS
    0 always.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := service.BuildInfo()
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(b)
			}
			_, err := io.WriteString(cmd.OutOrStdout(), versionText(b))
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	root.AddCommand(c)
}

// versionText is what `qguard version` and `qguard --version` print.
func versionText(b service.Build) string {
	commit := b.Commit
	if b.Modified {
		commit += "+dirty"
	}
	return fmt.Sprintf("qguard %s\ncommit %s\n%s\n", b.Version, commit, b.GoVersion)
}
