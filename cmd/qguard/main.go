// Command qguard is a netfilter user-space packet queue handler: an inline
// firewall daemon, a benchmark harness and a rule-test runner.
//
// Each subcommand lives in its own file and registers itself on root in an
// init function.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/internal/service"
)

var root = &cobra.Command{
	Use:   "qguard",
	Short: "netfilter user-space packet queue handler (NFQUEUE)",
	Long: `qguard receives IPv4 and IPv6 packets over nfnetlink_queue, runs them through
a verdict pipeline, installs the nftables rules that steer traffic into its
queues, and measures its own speed against its peers.`,
	SilenceUsage:      true,
	SilenceErrors:     true,
	DisableAutoGenTag: true, // man pages stay the same from build to build
}

// flagError marks a wrong flag or command line: exit status 2, as for
// other Unix tools, so scripts can tell it from a failed run.
type flagError struct{ err error }

func (u flagError) Error() string { return u.err.Error() }
func (u flagError) Unwrap() error { return u.err }
func (flagError) ExitCode() int   { return 2 }

// usageArgs wraps a cobra.PositionalArgs so that wrong arguments are a usage
// error (exit 2) like wrong flags.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return flagError{fmt.Errorf("%s: %w (see '%s --help')", subPath(c), err, c.CommandPath())}
		}
		return nil
	}
}

// subPath is the command path without the program name, which main prints
// in front of every error already.
func subPath(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	p, _ := strings.CutPrefix(c.CommandPath(), c.Root().Name()+" ")
	return p
}

func setup() {
	root.Version = service.BuildInfo().Version
	root.SetVersionTemplate(versionText(service.BuildInfo()))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if !c.HasParent() {
			return flagError{fmt.Errorf("%w (see 'qguard --help')", err)}
		}
		return flagError{fmt.Errorf("%s: %w (see '%s --help')", subPath(c), err, c.CommandPath())}
	})
	registerCompletions()
}

func main() {
	setup()
	logBefore := slog.Default()
	c, err := root.ExecuteC()
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		err = flagError{err}
	}
	if err != nil {
		reportError(os.Stderr, c, logBefore, err)
		os.Exit(exitCode(err))
	}
}

// reportError prints why the command failed. Under JSON logging (qguard
// run --log-format json, or log.format: json) it is one JSON log record
// like the others, not a plain line among them; otherwise a plain line.
func reportError(w io.Writer, c *cobra.Command, logBefore *slog.Logger, err error) {
	if l := slog.Default(); l != logBefore {
		if _, ok := l.Handler().(*slog.JSONHandler); ok {
			l.Error(err.Error(), "exit_status", exitCode(err))
			return
		}
	}
	if c != nil {
		if f := c.Flags().Lookup("log-format"); f != nil && f.Value.String() == "json" {
			slog.New(slog.NewJSONHandler(w, nil)).Error(err.Error(), "exit_status", exitCode(err))
			return
		}
	}
	fmt.Fprintln(w, "qguard:", err)
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
