// Command qguard is a netfilter user-space packet queue handler: an inline
// firewall daemon, a benchmark harness and a rule-test runner.
//
// Each subcommand lives in its own file and registers itself on root in an
// init function.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

var root = &cobra.Command{
	Use:   "qguard",
	Short: "netfilter user-space packet queue handler (NFQUEUE)",
	Long: `qguard receives IPv4 and IPv6 packets over nfnetlink_queue, runs them through
a verdict pipeline, installs the nftables rules that steer traffic into its
queues, and measures its own speed against its peers.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// flagError marks a wrong flag or command line: exit status 2, as for
// other Unix tools, so scripts can tell it from a failed run.
type flagError struct{ err error }

func (u flagError) Error() string { return u.err.Error() }
func (u flagError) Unwrap() error { return u.err }
func (flagError) ExitCode() int   { return 2 }

func main() {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return flagError{fmt.Errorf("%s: %w (see '%s --help')", c.CommandPath(), err, c.CommandPath())}
	})
	err := root.Execute()
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		err = flagError{err}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "qguard:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode lets subcommands choose a status (e.g. `qguard test` exits 1 on a
// failed case, 2 on a usage error).
func exitCode(err error) int {
	var c interface{ ExitCode() int }
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return 1
}
