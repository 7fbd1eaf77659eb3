package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/internal/service"
)

func init() {
	var sock, cfgPath string
	c := &cobra.Command{
		Use:   "reload",
		Short: "make a running daemon load its configuration again",
		Long: `NAME
    qguard reload - reload the policy of a running qguard daemon

SYNOPSIS
    qguard reload [--control SOCKET | --config FILE]

DESCRIPTION
    Asks the daemon listening on the control socket to read its configuration
    file again (the one given to "qguard run --config"), the same as sending it
    SIGHUP. The new file is validated and compiled first: a file with errors
    leaves the running policy in place and this command prints why. A good
    file is swapped into every queue's pipeline atomically and the nftables
    rules are replaced in one transaction; no packet is lost or decided twice.

    Settings that need a restart (queue numbers and count, the control socket,
    the metrics address, XDP interfaces) are kept as they were; the daemon logs
    a warning when the file changes them.

OPTIONS
    --control SOCKET   the daemon's control socket (default
                       /run/qguard/control.sock, or
                       /run/qguard/control-netns-INODE.sock outside the
                       initial network namespace)
    --config FILE      find the socket as the daemon running FILE does
                       (its control.socket)

EXIT STATUS
    0 reloaded; 1 the daemon kept its old policy or could not be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := daemonSocket(sock, cfgPath)
			if err != nil {
				return err
			}
			r, err := service.Call(path, "reload", 30*time.Second)
			if err != nil {
				return err
			}
			if !r.OK {
				return errors.New("reload failed, old policy kept: " + r.Error)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "reloaded")
			return nil
		},
	}
	c.Flags().StringVar(&sock, "control", "", "control socket of the running daemon (default: this network namespace's)")
	c.Flags().StringVarP(&cfgPath, "config", "c", "", "the daemon's configuration file, for its control.socket")
	root.AddCommand(c)
}
