//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package xdp

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// The build constraint above is the little-endian list of the generated
// filter_bpfel.go: the committed object is little-endian BPF.

// Probe reports whether XDP programs can be loaded here: nil, or an error
// matching ErrUnsupported (and ErrPermission when privileges are missing).
func Probe() error {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK. Raising it
	// needs CAP_SYS_RESOURCE, which a capability-trimmed service may lack
	// while still being able to load programs on a newer kernel: only the
	// probe's verdict counts, the memlock error merely explains it.
	memErr := rlimit.RemoveMemlock()
	if err := features.HaveProgramType(ebpf.XDP); err != nil {
		if memErr != nil {
			err = fmt.Errorf("%w (and raising RLIMIT_MEMLOCK failed: %v)", err, memErr)
		}
		return classify("probe XDP program type", err)
	}
	return nil
}

// New loads the program and its maps without attaching them anywhere
// (cfg.Interfaces is ignored). Attach is New plus attachment; New alone
// serves tests and benchmarks that drive the program with Run.
func New(cfg *Config) (*Filter, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return load(&c)
}

// Attach loads the program and attaches it to every interface in
// cfg.Interfaces, in cfg.Mode. It attaches everywhere or nowhere: on error
// nothing stays loaded or attached. Interfaces are looked up in the
// calling thread's network namespace.
func Attach(cfg *Config) (*Filter, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(c.Interfaces) == 0 {
		return nil, fmt.Errorf("xdp: attach: no interfaces configured: %w", ErrInvalid)
	}
	f, err := load(&c)
	if err != nil {
		return nil, err
	}
	for _, name := range c.Interfaces {
		a, err := attachOne(f.prog, name, c.Mode)
		if err != nil {
			return nil, errors.Join(err, f.Close())
		}
		f.links = append(f.links, a)
	}
	return f, nil
}

func load(c *Config) (*Filter, error) {
	if err := Probe(); err != nil {
		return nil, err
	}
	spec, err := loadFilter()
	if err != nil {
		return nil, fmt.Errorf("xdp: parse embedded object: %w", err)
	}
	spec.Maps[filterMapSrcBlocks].MaxEntries = uint32(c.MaxSources)
	spec.Maps[filterMapFlowBlocks].MaxEntries = uint32(c.MaxFlows)
	var objs filterObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, classify("load program", err)
	}
	f := &Filter{prog: objs.QguardXdp, src: objs.SrcBlocks, flow: objs.FlowBlocks, counters: objs.Counters}
	if c.ExpireInterval > 0 { // negative: the caller expires by hand
		f.stop, f.done = make(chan struct{}), make(chan struct{})
		go f.expireLoop(c.ExpireInterval, c.Logger)
	}
	return f, nil
}

func attachOne(prog *ebpf.Program, name string, mode Mode) (attached, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return attached{}, fmt.Errorf("xdp: attach to %q: %w", name, ErrNoInterface)
	}
	a := attached{Attachment: Attachment{Interface: name, Index: ifc.Index, Mode: mode}}
	if mode == ModeAuto {
		a.Mode = ModeNative
	}
	a.link, err = attachLink(prog, ifc.Index, a.Mode)
	if err != nil && mode == ModeAuto {
		a.Mode, a.Fallback = ModeGeneric, err.Error()
		var gerr error
		if a.link, gerr = attachLink(prog, ifc.Index, ModeGeneric); gerr != nil {
			err = errors.Join(fmt.Errorf("native: %w", err), fmt.Errorf("generic: %w", gerr))
		} else {
			err = nil
		}
	}
	if err != nil {
		return attached{}, classify(fmt.Sprintf("attach to %q (%s mode)", name, mode), err)
	}
	return a, nil
}

// attachLink attaches through a bpf_link (kernel 5.9+). The link is not
// pinned: it lives as long as its file descriptor, so the kernel detaches
// the program when qguard closes it or exits, however it exits.
func attachLink(prog *ebpf.Program, index int, mode Mode) (link.Link, error) {
	flags := link.XDPDriverMode
	if mode == ModeGeneric {
		flags = link.XDPGenericMode
	}
	return link.AttachXDP(link.XDPOptions{Program: prog, Interface: index, Flags: flags})
}

// monoNow is CLOCK_MONOTONIC in nanoseconds, the clock of
// bpf_ktime_get_ns.
func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
