package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// daemonSpec is the configuration a daemon mode runs `qguard run` with.
type daemonSpec struct {
	mode    string // rules.mode: queue-all or kernel-first
	rules   int    // L3/L4 rules that never match the benchmark's traffic
	l7      bool   // DNS, TLS and HTTP rules (on their own ports)
	l7Flood bool   // a payload rule on the flood port: every flood packet needs the queue
	offload bool   // one rule deciding each UDP flow as a whole (flow offload)
	batch   int    // queue.batch_size
}

// daemonTable is the daemon's nftables table in the firewall namespace.
const daemonTable = "qgbench"

// yaml is the configuration file of mode m on queue q: the bench's queue
// settings, the mode's steering (its traffic's protocol), nothing that
// listens or records, and the policy.
func (d daemonSpec) yaml(e *env, m *Mode, q uint16) string {
	proto := "udp"
	if m.Traffic.isTCP() {
		proto = "tcp"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# qguard bench: mode %s
queue:
  num: %d
  count: 1
  max_len: %d
  rcvbuf: %d
  fail_open: false
  batch_size: %d
rules:
  mode: %s
  table: %s
  protocols: [%s]
  bypass: false
  offload: %t
metrics:
  listen: ""
log:
  format: json
  level: info
  decisions: "off"
record:
  output: ""
flows:
  max: 65536
policy:
  default: accept
  rules:
`, m.Name, q, e.cfg.QueueMaxLen, e.cfg.RcvBuf, max(d.batch, 1), d.mode, daemonTable, proto, d.offload)
	d.policy(&b)
	return b.String()
}

// policy writes the rules: L3/L4 rules that never match the benchmark's
// traffic (other sources, other ports, mixed protocols), so a flow's first
// packet walks all of them, as a real policy's would; then the L7 rules.
func (d daemonSpec) policy(b *strings.Builder) {
	if d.rules == 0 && !d.l7 && !d.l7Flood && !d.offload {
		b.WriteString("    []\n")
		return
	}
	for i := range d.rules {
		fmt.Fprintf(b, "    - name: r%d\n      action: drop\n", i)
		switch i % 3 {
		case 0:
			fmt.Fprintf(b, "      match: {proto: udp, src: [\"203.0.%d.%d/32\"]}\n", i>>8&0xff, i&0xff)
		case 1:
			fmt.Fprintf(b, "      match: {proto: tcp, dport: [%d]}\n", 1000+i)
		default:
			fmt.Fprintf(b, "      match: {proto: udp, dport: [%d]}\n", 20000+i)
		}
	}
	if d.l7 {
		b.WriteString(`    - name: dns-block
      match: {dns: ["*.blocked.example", "tracker.example"]}
      action: drop
    - name: tls-block
      match: {proto: tcp, dport: [443], sni: ["*.bad.example"]}
      action: drop
    - name: http-block
      match: {proto: tcp, dport: [80], http_host: ["ads.example"]}
      action: drop
`)
	}
	if d.l7Flood {
		fmt.Fprintf(b, `    - name: flood-payload
      match: {proto: udp, dport: [%d], payload: ["never-in-the-flood"]}
      action: drop
`, portSink)
	}
	if d.offload {
		b.WriteString(`    - name: udp-flows
      match: {proto: udp}
      action: accept
      flow: true
`)
	}
}

// daemon starts `qguard run` in the firewall namespace with spec's
// configuration file, written to a temp dir, its own rules and its own
// control socket there, pinned to the handler CPU like every handler.
func daemon(spec daemonSpec) startFunc {
	return func(ctx context.Context, e *env, m *Mode, q uint16) (handler, error) {
		bin, err := e.daemonCommand(ctx)
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp(e.tmp, "daemon-")
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", m.Name, err)
		}
		cfg := filepath.Join(dir, "qguard.yaml")
		if err := os.WriteFile(cfg, []byte(spec.yaml(e, m, q)), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("write configuration of %s: %w", m.Name, err)
		}
		argv := append(bin, "run", "--config", cfg, "--control", filepath.Join(dir, "control.sock"))
		p, err := startProc(ctx, e.t.Firewall, procSpec{th: e.thread(e.handlerCPU(0)), env: e.cfg.DaemonEnv, argv: argv,
			ready: func(line string) bool { return strings.Contains(line, `"msg":"ready"`) }})
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p.cleanup = func() { os.RemoveAll(dir) }
		return p, nil
	}
}

// daemonCommand is the command that runs the qguard binary: Config.Daemon,
// or cmd/qguard built from this package's source tree once per run.
func (e *env) daemonCommand(ctx context.Context) ([]string, error) {
	return builtCommand(&e.cfg.Daemon, &e.daemonSkip, func() (string, string) {
		return goBuild(ctx, e.tmp, "./cmd/qguard", "qguard", "qguard daemon", "Config.Daemon")
	})
}

// builtCommand returns a copy of *cmd. When the configuration names no
// command, build makes the binary once per run and *cmd becomes it followed
// by args; a build that failed leaves its reason in *skip, and this call
// and every later one skip the mode for it.
func builtCommand(cmd *[]string, skip *string, build func() (path, skip string), args ...string) ([]string, error) {
	if len(*cmd) == 0 && *skip == "" {
		path, why := build()
		if why != "" {
			*skip = why
		} else {
			*cmd = append([]string{path}, args...)
		}
	}
	if *skip != "" {
		return nil, skipf("%s", *skip)
	}
	return slices.Clone(*cmd), nil
}
