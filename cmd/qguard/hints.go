package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/qguard/qguard/internal/engine"
)

// needNetAdmin turns the kernel's EPERM/EACCES from nftables into what is
// missing and what to do (engine.ErrPrivilege names the capability).
// sub is the subcommand ("rules show"), as main prefixes "qguard: ".
func needNetAdmin(sub string, err error) error {
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return fmt.Errorf("%s: %w: nftables answers only a process with it (run as root: sudo qguard %s): %w", sub, engine.ErrPrivilege, sub, err)
}
