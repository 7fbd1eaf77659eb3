package config

import "github.com/qguard/qguard/rules"

// Config is the rules package's Config for the rules section, steering to
// queues num to num+count-1: the table `qguard run` and `qguard rules
// apply` install, and what Check validates.
func (r *Rules) Config(num, count uint16) *rules.Config {
	c := &rules.Config{
		Table: r.Table, QueueNum: num, QueueCount: count, Fanout: false,
		Bypass: r.Bypass, Offload: r.Offload, BlockSetTimeout: r.BlockTimeout,
		Marks: rules.Marks{Mask: r.Marks.Mask, AcceptFlow: r.Marks.AcceptFlow, DropFlow: r.Marks.DropFlow, Reject: r.Marks.Reject},
		Steer: rules.Steer{
			Protocols: append([]string(nil), r.Protocols...),
			DPorts:    append([]rules.PortRange(nil), r.DPorts...), SPorts: append([]rules.PortRange(nil), r.SPorts...),
			InIfs: append([]string(nil), r.InIfaces...), OutIfs: append([]string(nil), r.OutIfaces...),
			NewOnly: r.NewOnly,
		},
	}
	for _, h := range r.Hooks {
		c.Hooks = append(c.Hooks, rules.Hook{Name: h.Hook, Priority: h.Priority})
	}
	return c
}
