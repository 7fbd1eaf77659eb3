package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/bench"
	"github.com/qguard/qguard/internal/daemonlog"
)

// registerCompletions teaches the shell completions (qguard completion
// bash|zsh|fish) the values of flags that take one of a few words, and
// which files the file flags want. It runs once every command has been
// added, so the commands' own files stay about what they do.
func registerCompletions() {
	words := func(ws ...string) cobra.CompletionFunc {
		return cobra.FixedCompletions(ws, cobra.ShellCompDirectiveNoFileComp)
	}
	yaml := func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
	}
	for _, r := range []struct {
		cmd, flag string
		fn        cobra.CompletionFunc
	}{
		{"run", "log-format", words(daemonlog.FormatNames()...)},
		{"run", "log-level", words(daemonlog.LevelNames()...)},
		{"run", "config", yaml},
		{"rules show", "config", yaml},
		{"status", "config", yaml},
		{"reload", "config", yaml},
		{"rules apply", "config", yaml},
		{"rules flush", "config", yaml},
		{"bench", "modes", completeModes},
		{"bench", "generator", words("packet", "udp")},
		{"bench", "sink", words("nft", "socket")},
		{"bench", "from-json", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return []cobra.Completion{"json"}, cobra.ShellCompDirectiveFilterFileExt
		}},
	} {
		c, _, err := root.Find(strings.Fields(r.cmd))
		if err != nil || c.Flags().Lookup(r.flag) == nil {
			panic("completion for a missing flag: qguard " + r.cmd + " --" + r.flag)
		}
		if err := c.RegisterFlagCompletionFunc(r.flag, r.fn); err != nil {
			panic(err)
		}
	}
	if c, _, err := root.Find([]string{"check"}); err == nil {
		c.ValidArgsFunction = yaml
	}
}

// completeModes completes the word after the last comma of --modes with
// the mode names and groups not given yet.
func completeModes(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	i := strings.LastIndexByte(toComplete, ',')
	done, prefix := toComplete[:i+1], toComplete[i+1:]
	given := strings.Split(done, ",")
	var out []cobra.Completion
	add := func(name string) {
		if strings.HasPrefix(name, prefix) && !slices.Contains(given, name) && !slices.Contains(out, done+name) {
			out = append(out, done+name)
		}
	}
	for _, g := range []string{bench.GroupLimit, bench.GroupPeer, bench.GroupQGuard, bench.GroupDaemon, bench.GroupFlood} {
		add(g)
	}
	for _, m := range bench.AllModes(&bench.Config{}) {
		add(m.Name)
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}
