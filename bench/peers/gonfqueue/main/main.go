// Command main is the go-nfqueue peer as a program of its own: the
// benchmark harness builds it with `go build` when its caller names no
// peer command (Config.GoPeer).
package main

import (
	"fmt"
	"os"

	"github.com/qguard/qguard/bench/peers/gonfqueue"
)

func main() {
	if err := gonfqueue.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "peer-gonfqueue:", err)
		os.Exit(1)
	}
}
