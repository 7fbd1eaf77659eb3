package bench

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/rules"
)

// steerTable is the harness's steering table in the firewall namespace.
const steerTable = "qgbsteer"

// steering queues the firewall's forwarded traffic of one protocol to a
// mode's queues, through google/nftables with the queue expression qguard's
// rules use (the native one, or the xtables NFQUEUE target through the
// compat expression on kernels without it: rules.QueueExpr). No bypass: a
// packet with no listener is dropped and counted, never silently
// forwarded. The table exists only while a mode uses it (add, remove): an
// empty base chain left in place would still cost every forwarded packet
// a chain walk, after a daemon's verdict too. It is removed after the
// mode's handler has let go of its queues: removing a base chain
// unregisters its hook, and the kernel then drops every packet still
// queued in the namespace.
type steering struct {
	ns   *os.File
	impl rules.QueueImpl
	on   bool // the table is installed
}

// openSteering probes the firewall namespace for the queue expression.
func openSteering(fw topo.NS) (*steering, error) {
	f, err := os.Open(fw.Path())
	if err != nil {
		return nil, fmt.Errorf("open firewall namespace: %w", err)
	}
	s := &steering{ns: f}
	caps, err := rules.ProbeNS(int(f.Fd()))
	if err == nil {
		s.impl, err = caps.Best()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("probe queue expression in %s: %w", fw.Name, err)
	}
	return s, nil
}

// do runs one batch in the firewall namespace.
func (s *steering) do(build func(c *nftables.Conn)) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(s.ns.Fd())))
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	build(c)
	return c.Flush()
}

// rule appends a rule to the forward chain, installing the table and the
// chain first when they are not there.
func (s *steering) rule(exprs ...expr.Any) error {
	t := &nftables.Table{Name: steerTable, Family: nftables.TableFamilyINet}
	policy := nftables.ChainPolicyAccept
	ch := &nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &policy}
	err := s.do(func(c *nftables.Conn) {
		if !s.on {
			c.AddTable(t)
			c.AddChain(ch)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	})
	if err == nil {
		s.on = true
	}
	return err
}

// add queues forwarded packets of IP protocol proto to queues
// num..num+count-1 (balanced by flow hash, like --queue-balance).
func (s *steering) add(proto uint8, num uint16, count int) error {
	err := s.rule(
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		rules.QueueExpr(s.impl, num, uint16(count), false, false),
	)
	if err != nil {
		return fmt.Errorf("install steering rule: %w", err)
	}
	return nil
}

// addConntrack accepts forwarded packets of tracked connections: the
// ct expression turns connection tracking on in the namespace, which
// qguard's own table does too (ct marks, ct state), so kernel forwarding
// can be measured with it.
func (s *steering) addConntrack() error {
	mask := binary.NativeEndian.AppendUint32(nil, expr.CtStateBitNEW|expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	err := s.rule(
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	)
	if err != nil {
		return fmt.Errorf("install conntrack rule: %w", err)
	}
	return nil
}

// remove deletes the table, if installed.
func (s *steering) remove() error {
	if !s.on {
		return nil
	}
	err := s.do(func(c *nftables.Conn) {
		c.DelTable(&nftables.Table{Name: steerTable, Family: nftables.TableFamilyINet})
	})
	if err != nil {
		return fmt.Errorf("remove steering table: %w", err)
	}
	s.on = false
	return nil
}

// close leaves a table still installed (after an error) to the
// namespace, which goes after every queue is unbound.
func (s *steering) close() { _ = s.ns.Close() }
