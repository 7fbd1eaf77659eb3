package service

import (
	"fmt"
	"net"
	"os"
)

// Notify sends state (e.g. "READY=1", "RELOADING=1", "STOPPING=1") to the
// service manager named by $NOTIFY_SOCKET, as sd_notify(3) does. Without
// the variable it does nothing: qguard runs the same under systemd, under
// another supervisor, or in a terminal. The protocol is one datagram on a
// unix socket, so no library is needed; an '@' prefix names an abstract
// socket.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify service manager: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify service manager: %w", err)
	}
	return nil
}
