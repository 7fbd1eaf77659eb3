// Command qguard is a netfilter user-space packet queue handler: an inline
// firewall daemon, a benchmark harness and a rule-test runner.
//
// Each subcommand lives in its own file and registers itself on root in an
// init function.
package main

import (
	"fmt"
	"os"

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

func main() {
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "qguard:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode lets subcommands choose a status (e.g. `qguard test` exits 1 on a
// failed case, 2 on a usage error).
func exitCode(err error) int {
	type coded interface{ ExitCode() int }
	if c, ok := err.(coded); ok {
		return c.ExitCode()
	}
	return 1
}
