package main

import (
	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/service"
)

// daemonSocket is where status and reload find the daemon: --control, else
// control.socket of the configuration it runs (--config), else this network
// namespace's default, as `qguard run` chooses it.
func daemonSocket(control, cfgPath string) (string, error) {
	if control != "" || cfgPath == "" {
		return service.ControlPath(control), nil
	}
	f, err := config.Load(cfgPath)
	if err != nil {
		return "", err
	}
	return service.ControlPath(f.Control.Socket), nil
}
