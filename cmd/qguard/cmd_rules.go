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

// refuseOwned fails when a running qguard owns table in this namespace,
// unless force; with force it only warns.
func refuseOwned(cmd *cobra.Command, verb, table string, force bool) error {
	if table == "" {
		table = "qguard"
	}
	h, err := rules.TableHolder(0, table)
	if err != nil || h == nil {
		return err
	}
	if !force {
		return fmt.Errorf("rules %s: table inet %s is owned by a running qguard (%s): stop it first, or use --force", verb, table, h)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "qguard: warning: table inet %s is owned by a running qguard (%s); "+
		"with rules.guard: true it puts its own table back within a second\n", table, h)
	return nil
}

func init() {
	var table, path, control string
	var force bool
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "show, apply or remove qguard's nftables table",
		Long: `NAME
    qguard rules - show, apply or remove qguard's nftables table

SYNOPSIS
    qguard rules show  [--config FILE] [--table NAME] [--control SOCKET]
    qguard rules apply --config FILE [--force]
    qguard rules flush [--config FILE] [--table NAME] [--force]

DESCRIPTION
    qguard keeps every rule it installs in one nftables table of its own
    (inet qguard unless rules.table says otherwise) and touches nothing else.
    At start it probes the kernel for the native nftables queue expression and
    falls back to the xtables NFQUEUE target through nftables' compat
    expression where the kernel lacks it.

    show   prints the probe result, the table's sets, chains and rules with
           their counters (each rule as "nft list ruleset" prints it, with
           its comment saying what it is for), the running qguard that owns
           the table (pid, queues), the XDP programs attached in this
           namespace and what a running daemon reports about its own. On
           kernels that need the xtables NFQUEUE target it explains nft's
           "managed by iptables-nft" and "libxtables" messages.
    apply  installs the table the configuration describes in one transaction
           (replacing an earlier one of the same name) without starting a
           handler: queued packets then pass when rules.bypass is true and are
           dropped otherwise.
    flush  deletes the table and nothing else, e.g. after qguard was killed.

    apply and flush refuse while a running qguard owns the table in this
    network namespace and name it (pid, queues). --force goes ahead anyway;
    the daemon then sees a foreign change, logs it and, with rules.guard:
    true (the default), puts its own table back within a second. To take
    the table away from a daemon for good, stop it.

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
				return needNetAdmin("rules show", err)
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			if h, err := rules.TableHolder(0, name); err == nil && h != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "# owned by a running qguard (%s)\n", h)
			}
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
			if err := refuseOwned(cmd, "apply", f.Rules.Table, force); err != nil {
				return err
			}
			m, err := rules.New(engine.RulesConfig(f))
			if err != nil {
				return needNetAdmin("rules apply", err)
			}
			if err := m.Apply(); err != nil {
				return needNetAdmin("rules apply", err)
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
			if err := refuseOwned(cmd, "flush", name, force); err != nil {
				return err
			}
			return needNetAdmin("rules flush", rules.RemoveTable(0, name))
		},
	}
	for _, c := range []*cobra.Command{show, apply, flush} {
		c.Flags().StringVarP(&path, "config", "c", "", "configuration file (for the table name and, with apply, the rules)")
		cmd.AddCommand(c)
	}
	show.Flags().StringVar(&table, "table", "", "table name (default: the configuration's, else qguard)")
	show.Flags().StringVar(&control, "control", "", "a running daemon's control socket, asked what XDP it attached (default: the configuration's)")
	flush.Flags().StringVar(&table, "table", "", "table name (default: the configuration's, else qguard)")
	for _, c := range []*cobra.Command{apply, flush} {
		c.Flags().BoolVar(&force, "force", false, "go ahead although a running qguard owns the table")
	}
	root.AddCommand(cmd)
}
