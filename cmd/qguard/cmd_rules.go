package main

import (
	"fmt"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/engine"
	"github.com/qguard/qguard/rules"
	"github.com/spf13/cobra"
)

// tableName picks the table: --table, else the configuration's, else qguard.
func tableName(table, path string) (string, error) {
	if table != "" || path == "" {
		return table, nil
	}
	f, err := config.Load(path)
	if err != nil {
		return "", err
	}
	return f.Rules.Table, nil
}

func init() {
	var table, path, control string
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "show, apply or remove qguard's nftables table",
		Long: `NAME
    qguard rules - show, apply or remove qguard's nftables table

SYNOPSIS
    qguard rules show  [--config FILE] [--table NAME] [--control SOCKET]
    qguard rules apply --config FILE
    qguard rules flush [--config FILE] [--table NAME]

DESCRIPTION
    qguard keeps every rule it installs in one nftables table of its own
    (inet qguard unless rules.table says otherwise) and touches nothing else.
    At start it probes the kernel for the native nftables queue expression and
    falls back to the xtables NFQUEUE target through nftables' compat
    expression where the kernel lacks it.

    show   prints the probe result, the table's sets, chains and rules with
           their counters, the XDP programs attached in this namespace and
           what a running daemon reports about its own.
    apply  installs the table the configuration describes in one transaction
           (replacing an earlier one of the same name) without starting a
           handler: queued packets then pass when rules.bypass is true and are
           dropped otherwise.
    flush  deletes the table and nothing else, e.g. after qguard was killed.

EXIT STATUS
    0 on success, 1 on failure (the message says what and where), 2 for
    wrong flags.`,
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "print the kernel's queue capabilities and the installed table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, err := tableName(table, path)
			if err != nil {
				return err
			}
			out, err := rules.Show(name)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			if control == "" {
				control = controlSocket(path)
			}
			return showXDP(cmd.OutOrStdout(), control)
		},
	}
	apply := &cobra.Command{
		Use:   "apply --config FILE",
		Short: "install (or bring up to date) the table the configuration describes",
		Long: `apply installs the table in one transaction, replacing an earlier one of the
same name. Without a running qguard, queued packets pass when rules.bypass
is true and are dropped otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return fmt.Errorf("rules apply: --config is required")
			}
			f, err := config.Load(path)
			if err != nil {
				return err
			}
			if !f.Rules.Install {
				return fmt.Errorf("rules apply: %s sets rules.install: false", path)
			}
			m, err := rules.New(engine.RulesConfig(f))
			if err != nil {
				return err
			}
			if err := m.Apply(); err != nil {
				return err
			}
			out, err := rules.Show(f.Rules.Table)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			return nil
		},
	}
	flush := &cobra.Command{
		Use:   "flush",
		Short: "delete qguard's table (and nothing else)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, err := tableName(table, path)
			if err != nil {
				return err
			}
			return rules.RemoveTable(0, name)
		},
	}
	for _, c := range []*cobra.Command{show, apply, flush} {
		c.Flags().StringVarP(&path, "config", "c", "", "configuration file (for the table name and, with apply, the rules)")
		cmd.AddCommand(c)
	}
	show.Flags().StringVar(&table, "table", "", "table name (default: the configuration's, else qguard)")
	show.Flags().StringVar(&control, "control", "", "a running daemon's control socket, asked what XDP it attached (default: the configuration's)")
	flush.Flags().StringVar(&table, "table", "", "table name (default: the configuration's, else qguard)")
	root.AddCommand(cmd)
}
