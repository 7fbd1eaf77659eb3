package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/internal/ruletest"
	"github.com/qguard/qguard/rules"
)

// codedError carries `qguard test`'s exit status to main's exitCode.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }
func (e *codedError) ExitCode() int { return e.code }

func usageError(err error) error { return &codedError{code: 2, err: err} }

func init() {
	var (
		jobs    int
		junit   string
		asJSON  bool
		verbose bool
		mode    string
	)
	c := &cobra.Command{
		Use:   "test [FILES or DIRS]...",
		Short: "run declarative policy tests against a real kernel in throwaway namespaces",
		Long: `NAME
    qguard test - run policy test files against the kernel

SYNOPSIS
    qguard test [-j N] [--junit FILE] [--json] [-v] [--mode MODE] FILE|DIR...

DESCRIPTION
    Each test file (YAML, see docs/ruletest.md) names a policy and cases: a
    TCP connect, a UDP datagram, an ICMP echo, a DNS query, a TLS
    ClientHello or an HTTP request, and what must happen to it (delivered,
    dropped, rejected, modified), optionally which rule must match and how
    counters must change. Every file runs in fresh client -> firewall ->
    server network namespaces with its own qguard queue and nftables rules;
    everything is removed afterwards, also on SIGINT/SIGTERM.

    Directories are searched for *.yaml/*.yml files, skipping directories
    named "policies".

OPTIONS
    -j, --jobs N     files run at once (default min(2, files))
    --junit FILE     also write a JUnit XML report to FILE
    --json           print the report as JSON instead of text lines
    -v, --verbose    print the rule trace of passing cases too
    --mode MODE      run every file in rules.mode MODE (kernel-first or
                     queue-all) instead of the file's own; a policy must
                     pass in both

OUTPUT
    One PASS/FAIL line per case; a failure adds what was sent, what
    happened, the expected and the matched rule, and the rule trace. The
    last line is "N passed, N failed".

EXIT STATUS
    0 every case passed; 1 a case failed or a file could not run;
    2 bad usage or a bad test file (file:line:column errors), or not root.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if mode != "" {
				if _, err := rules.ParseMode(mode); err != nil {
					return usageError(fmt.Errorf("test: --mode: %w", err))
				}
			}
			return runRuleTests(cmd, args, jobs, junit, asJSON, verbose, mode)
		},
	}
	c.Flags().IntVarP(&jobs, "jobs", "j", 0, "files run at once (default min(2, files))")
	c.Flags().StringVar(&junit, "junit", "", "write a JUnit XML report to `FILE`")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "print the rule trace of passing cases too")
	c.Flags().StringVar(&mode, "mode", "", "run every file in rules.mode `MODE` (kernel-first or queue-all)")
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.AddCommand(c)
}

func runRuleTests(cmd *cobra.Command, args []string, jobs int, junit string, asJSON, verbose bool, mode string) error {
	if len(args) == 0 {
		return usageError(errors.New("test: name at least one test file or directory (e.g. examples/tests)"))
	}
	if jobs < 0 {
		return usageError(fmt.Errorf("test: --jobs must be positive, not %d", jobs))
	}
	paths, err := ruletest.CollectFiles(args)
	if err != nil {
		return usageError(fmt.Errorf("test: %w", err))
	}
	files, err := ruletest.ParseAll(paths)
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return usageError(fmt.Errorf("test: %d of %d test files are invalid", len(paths)-len(files), len(paths)))
	}
	if os.Geteuid() != 0 {
		return usageError(errors.New("test: needs root (network namespaces, nftables, nfnetlink_queue)"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	opts := &ruletest.Options{Jobs: jobs, Verbose: verbose, Mode: mode}
	if !asJSON {
		opts.OnCase = func(c ruletest.CaseResult) { ruletest.WriteCase(out, c) }
	}
	rep := ruletest.Run(ctx, files, opts)
	interrupted := ctx.Err() != nil
	stop()
	for _, f := range rep.Files {
		if f.Error != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "ERROR %s: %s\n", f.Path, f.Error)
		}
	}
	if junit != "" {
		if err := writeFile(junit, func(w io.Writer) error { return ruletest.WriteJUnit(w, rep) }); err != nil {
			return err
		}
	}
	summaryTo := out
	if asJSON {
		if err := ruletest.WriteJSON(out, rep); err != nil {
			return err
		}
		summaryTo = cmd.ErrOrStderr()
	}
	fmt.Fprintln(summaryTo, rep.Summary())
	if interrupted {
		return &codedError{code: 1, err: errors.New("test: interrupted; namespaces and rules were removed")}
	}
	if rep.Failed > 0 {
		return &codedError{code: 1, err: fmt.Errorf("test: %d of %d cases failed", rep.Failed, rep.Passed+rep.Failed)}
	}
	return nil
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
