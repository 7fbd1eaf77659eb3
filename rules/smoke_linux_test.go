package rules

import "testing"

func TestIntegrationSmoke(t *testing.T) {
	ns, fd := testNS(t)
	cfg := DefaultConfig()
	cfg.NetNS = fd
	cfg.Hooks = []Hook{{Name: "forward"}, {Name: "input", Priority: 10}, {Name: "postrouting", Priority: 5}}
	cfg.Steer.DPorts = []PortRange{{53, 53}, {8000, 8100}}
	cfg.Steer.InIfs = []string{"lo", "eth0"}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(m.Capabilities())
	if err := m.Apply(); err != nil {
		t.Fatal(err)
	}
	t.Log(nft(t, ns, "list", "ruleset"))
}
