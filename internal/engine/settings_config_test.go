package engine

import (
	"testing"

	"github.com/qguard/qguard/config"
)

// Connection tracking costs every forwarded packet of the namespace, so the
// table asks for it only when something reads it: the queue's conntrack
// metadata or flow records that have an output to go to.
func TestRulesConfigConntrack(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want bool
	}{
		{"rules: {mode: queue-all}\n", false},
		{"rules: {mode: queue-all}\nrecord: {flows: true}\n", false},
		{"rules: {mode: queue-all}\nrecord: {output: stdout}\n", true},
		{"rules: {mode: queue-all}\nrecord: {output: stdout, flows: false}\n", false},
		{"rules: {mode: queue-all}\nqueue: {conntrack: true}\n", true},
	} {
		f, err := config.Parse("t.yaml", []byte(c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if got := RulesConfig(f).Conntrack; got != c.want {
			t.Errorf("%q: rules Conntrack %t, want %t", c.yaml, got, c.want)
		}
	}
}
