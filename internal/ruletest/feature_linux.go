package ruletest

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/qguard/qguard/queue"
)

// missingFeature returns why a file is skipped when the engine could not
// start because the kernel lacks a feature the file's configuration asks
// for, or "" when err is a real failure. A kernel whose configuration says
// it has the feature never skips: there the error is a regression.
func missingFeature(err error) string {
	if !errors.Is(err, queue.ErrFlagUnsupported) {
		return ""
	}
	const opt = "CONFIG_NETFILTER_NETLINK_GLUE_CT"
	switch v := kernelConfig(opt); v {
	case "y", "m":
		return ""
	case "":
		return fmt.Sprintf("the kernel refused a queue flag (queue.conntrack needs %s, whose state is unknown here): %v", opt, err)
	default:
		return fmt.Sprintf("the kernel lacks %s: queue.conntrack (ct matchers) cannot work here", opt)
	}
}

// kernelConfig reads one option from /proc/config.gz: "y", "m", "n", or
// "" when the configuration is not available.
func kernelConfig(opt string) string {
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return ""
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(z)
	for sc.Scan() {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, opt+"="); ok {
			return v
		}
		if l == "# "+opt+" is not set" {
			return "n"
		}
	}
	return ""
}
