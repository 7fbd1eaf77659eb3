package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/daemonlog"
	"github.com/qguard/qguard/internal/engine"
	"github.com/qguard/qguard/internal/metrics"
	"github.com/qguard/qguard/internal/service"
	"github.com/qguard/qguard/rules"
)

type runFlags struct {
	config, queue, metrics, logFormat, logLevel, control string
	noRules, noXDP                                       bool
}

func init() {
	var f runFlags
	c := &cobra.Command{
		Use:   "run",
		Short: "run the inline firewall daemon",
		Long: `NAME
    qguard run - the inline firewall daemon

SYNOPSIS
    qguard run [--config FILE] [--queue N|N:M] [--no-rules] [--no-xdp]
               [--metrics ADDR] [--control SOCKET]
               [--log-format text|json] [--log-level LEVEL]

DESCRIPTION
    Binds the NFQUEUE queues, installs the nftables table that steers traffic
    into them (table "inet qguard" by default), and decides every queued packet
    with the policy in FILE. Without --config it runs the embedded default
    policy: accept and count everything forwarded (observe mode), fail-open.

    Start-up validates the file, probes the kernel, binds every queue (all or
    none), compiles the policy, installs the rules, attaches XDP when
    xdp.interfaces is set, then reports ready (READY=1 to systemd when
    $NOTIFY_SOCKET is set). Any failure prints why, exits with status 1 and
    leaves nothing installed.

SIGNALS
    SIGHUP     reload FILE: it is validated and compiled first; a bad file
               keeps the running policy (the log says why). A good one
               replaces the rules in one nftables transaction and swaps
               every queue's pipeline atomically; no packet is lost. A
               SIGHUP during a reload asks for one more after it.
    SIGTERM, SIGINT
               graceful stop: steer new traffic away from the queues (to
               accept with rules.bypass, else to drop), give every pending
               packet its verdict, unbind, delete the table, detach XDP.
               A reload in progress is abandoned, never waited for.
               Stop signals within 1s of the first are the same request
               (GNU timeout signals the process and then its group). One
               sent later during the stop exits at once, saying what
               stays behind: the table, with the queues unbound (the kernel
               accepts with rules.bypass, else drops, what it queues);
               "qguard rules flush" removes it.
    SIGKILL, crash
               the table stays. With rules.bypass (fail-open, the default)
               the kernel accepts what would have been queued; without it
               (fail-closed) that traffic is dropped until qguard runs again
               or the table is removed.

OPTIONS
    --config FILE        configuration file (see examples/qguard.yaml);
                         "qguard check FILE" validates it
    --queue N|N:M        serve queue N, or queues N..M (overrides queue.num
                         and queue.count)
    --no-rules           install no nftables rules: your own iptables/nft
                         rules send packets to the queues. Rejects become
                         drops and flow offload is off, since both need
                         qguard's chain to act on its marks.
    --no-xdp             ignore xdp.interfaces
    --metrics ADDR       Prometheus endpoint (default metrics.listen,
                         127.0.0.1:9477); "" disables it
    --control SOCKET     control socket for "qguard reload" and "qguard
                         status" (default control.socket, else as in FILES)
    --log-format FORMAT  text or json (default log.format)
    --log-level LEVEL    debug, info, warn or error (default log.level)

FILES
    ` + service.DefaultControlSocket + `
        control socket (mode 0600) in the initial network namespace;
        /run/qguard/control-netns-INODE.sock in any other (INODE: stat -L
        -c %i /proc/self/ns/net), so one daemon per namespace runs without
        flags and "qguard status" there finds it. A stale socket is
        replaced; a live one means another qguard runs; anything else there
        is refused, never removed.

EXIT STATUS
    0 after a clean stop; 1 when start-up failed, the queues failed while
    running, or the stop could not remove everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, &f)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "configuration file (default: embedded observe-mode policy)")
	fl.StringVar(&f.queue, "queue", "", "queue N or range N:M (overrides the file)")
	fl.BoolVar(&f.noRules, "no-rules", false, "install no nftables rules (someone else steers traffic)")
	fl.BoolVar(&f.noXDP, "no-xdp", false, "attach no XDP program")
	fl.StringVar(&f.metrics, "metrics", "", "metrics listen address (overrides the file; \"\" in the file disables)")
	fl.StringVar(&f.control, "control", "", "control socket path (overrides the file)")
	fl.StringVar(&f.logFormat, "log-format", "", "log format: "+strings.Join(daemonlog.FormatNames(), " or ")+" (overrides the file)")
	fl.StringVar(&f.logLevel, "log-level", "", "log level: "+strings.Join(daemonlog.LevelNames(), ", ")+" (overrides the file)")
	root.AddCommand(c)
}

// parseQueueRange parses "N" or "N:M" (inclusive).
func parseQueueRange(s string) (*engine.QueueRange, error) {
	if s == "" {
		return nil, nil
	}
	a, b, isRange := strings.Cut(s, ":")
	lo, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("--queue %q: %q is not a queue number 0-65535", s, a)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.ParseUint(b, 10, 16); err != nil {
			return nil, fmt.Errorf("--queue %q: %q is not a queue number 0-65535", s, b)
		}
	}
	if hi < lo {
		return nil, fmt.Errorf("--queue %q: range ends before it starts", s)
	}
	if hi-lo+1 > 1024 {
		return nil, fmt.Errorf("--queue %q: %d queues is more than 1024", s, hi-lo+1)
	}
	return &engine.QueueRange{Num: uint16(lo), Count: uint16(hi - lo + 1)}, nil
}

// newLogger is the daemon's logger; format and level are the names
// daemonlog takes ("" for the default text and info).
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var f daemonlog.Format
	var l daemonlog.Level
	if format != "" {
		if err := f.UnmarshalText([]byte(format)); err != nil {
			return nil, fmt.Errorf("--log-format: %w", err) // the file's was checked when it was read
		}
	}
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("--log-level: %w", err)
		}
	}
	return daemonlog.New(w, f, l), nil
}

// loadConfig reads path, or returns the embedded default for "".
func loadConfig(path string) (*config.File, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func runDaemon(cmd *cobra.Command, f *runFlags) error {
	// Catch the signals before anything is installed: a SIGTERM during
	// start-up must undo start-up, not kill the process with the table in
	// place.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	qr, err := parseQueueRange(f.queue)
	if err != nil {
		return flagError{err}
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	rs := resolveRun(cmd, f, cfg)
	log, err := newLogger(cmd.ErrOrStderr(), rs.logFormat, rs.logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	// The sockets come first: a second qguard (or a taken port) fails here,
	// before anything in the kernel is touched.
	d := &daemon{log: log, path: f.config, cmd: cmd, flags: f, rs: rs, load: loadConfig, grace: forceGrace, exit: os.Exit}
	if err := d.listen(rs); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	e, err := engine.New(cfg, &engine.Options{Logger: log, Queue: qr, NoRules: f.noRules, NoXDP: f.noXDP})
	if err != nil {
		return errors.Join(fmt.Errorf("start: %w", err), d.stop())
	}
	d.mu.Lock()
	d.e = e
	d.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := e.Start(ctx); err != nil {
		return errors.Join(fmt.Errorf("start: %w", err), d.stop(), e.Close())
	}
	go service.ServeControl(ctx, d.ctl, d, log)
	if d.ms != nil {
		d.ms.SetReady(d.ready)
	}
	num, count := e.Queues()
	log.Info("ready", "queues", fmt.Sprintf("%d..%d", num, num+count-1), "rules", e.RulesInstalled(),
		"policy_rules", len(e.Policy().Rules), "config", configName(f.config), "metrics", d.metricsAddr(), "control", rs.control)
	if err := service.Notify("READY=1\nSTATUS=deciding packets"); err != nil {
		log.Warn("systemd notify failed", "err", err)
	}
	return d.loop(sigs)
}

func configName(p string) string {
	if p == "" {
		return "(embedded default)"
	}
	return p
}

// runSettings are the daemon-level settings after flags override the file.
type runSettings struct {
	metrics, control, logFormat, logLevel string
}

func resolveRun(cmd *cobra.Command, f *runFlags, cfg *config.File) runSettings {
	rs := runSettings{
		metrics:   cfg.Metrics.Listen,
		control:   cfg.Control.Socket,
		logFormat: cfg.Log.Format.String(),
		logLevel:  cfg.Log.Level.String(),
	}
	if cmd.Flags().Changed("metrics") {
		rs.metrics = f.metrics
	}
	if f.control != "" {
		rs.control = f.control
	}
	rs.control = service.ControlPath(rs.control)
	if f.logFormat != "" {
		rs.logFormat = f.logFormat
	}
	if f.logLevel != "" {
		rs.logLevel = f.logLevel
	}
	return rs
}

// forceGrace is how soon after the first stop signal another one still
// counts as the same request. GNU timeout, shells and supervisors may
// signal the process and then its process group, so two copies arrive
// together; only a second signal sent on purpose, later, forces an exit.
const forceGrace = time.Second

// daemon is `qguard run` around an engine: signals, control socket, metrics.
type daemon struct {
	mu       sync.Mutex // guards e while start-up publishes it
	cmd      *cobra.Command
	flags    *runFlags
	rs       runSettings // the daemon-level settings in force
	e        *engine.Engine
	log      *slog.Logger
	path     string
	ctl      net.Listener
	ms       *metrics.Server
	stopping atomic.Bool

	// Replaced by tests: how the file is loaded, how long a second stop
	// signal is taken for the first, and how the process exits at once.
	load  func(string) (*config.File, error)
	grace time.Duration
	exit  func(code int)
}

func (d *daemon) listen(rs runSettings) error {
	var err error
	if d.ctl, err = service.ListenControl(rs.control); err != nil {
		return err
	}
	if rs.metrics != "" {
		b := service.BuildInfo()
		reg := metrics.NewRegistry(d.Stats, metrics.BuildInfo{Version: b.Version, Commit: b.Commit, GoVersion: b.GoVersion})
		if d.ms, err = metrics.Listen(rs.metrics, reg, d.log); err != nil {
			d.ctl.Close()
			return err
		}
	}
	return nil
}

func (d *daemon) metricsAddr() string {
	if d.ms == nil {
		return "off"
	}
	return d.ms.Addr().String()
}

func (d *daemon) stop() error {
	var err error
	if d.ms != nil {
		err = d.ms.Shutdown()
	}
	if d.ctl != nil {
		if cerr := d.ctl.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = errors.Join(err, cerr)
		}
	}
	return err
}

// Reload implements service.ControlHandler: load the file again and swap.
func (d *daemon) Reload() error {
	_ = service.Notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	defer func() {
		if !d.stopping.Load() { // a reload outlived by the stop must not say ready
			_ = service.Notify("READY=1")
		}
	}()
	var cfg *config.File
	err := d.e.ReloadFrom(func() (c *config.File, err error) {
		cfg, err = d.load(d.path)
		return cfg, err
	})
	if err == nil {
		d.warnRestartOnly(cfg)
	}
	return err
}

// warnRestartOnly logs the daemon-level settings a reload cannot change.
func (d *daemon) warnRestartOnly(cfg *config.File) {
	n := resolveRun(d.cmd, d.flags, cfg)
	for _, s := range []struct{ name, running, file string }{
		{"metrics.listen", d.rs.metrics, n.metrics},
		{"control.socket", d.rs.control, n.control},
		{"log.format", d.rs.logFormat, n.logFormat},
		{"log.level", d.rs.logLevel, n.logLevel},
	} {
		if s.running != s.file {
			d.log.Warn(s.name+" changed: takes effect on restart", "running", s.running, "file", s.file)
		}
	}
}

// Stats implements service.ControlHandler; it is empty until the engine is
// up (the metrics endpoint may be scraped during start-up).
func (d *daemon) Stats() engine.Stats {
	d.mu.Lock()
	e := d.e
	d.mu.Unlock()
	if e == nil {
		return engine.Stats{}
	}
	s := e.Stats()
	s.Version = service.BuildInfo().Version
	return s
}

// loop serves signals until a stop signal or a queue failure. A SIGHUP
// reload runs beside it, so a slow or hung reload never delays a stop; a
// SIGHUP during a reload asks for one more after it.
func (d *daemon) loop(sigs chan os.Signal) error {
	var reloading chan struct{} // closed when the running reload ends; nil: none
	again := false
	reload := func() {
		done := make(chan struct{})
		reloading = done
		go func() {
			defer close(done)
			_ = d.Reload() // the engine logs the outcome
		}()
	}
	for {
		select {
		case s := <-sigs:
			if s != syscall.SIGHUP {
				if reloading != nil {
					d.log.Warn("stop signal during a reload: the reload is abandoned", "signal", s.String())
				}
				return d.shutdown(s, sigs)
			}
			if reloading != nil {
				d.log.Info("SIGHUP during a reload: reloading again when it ends")
				again = true
				continue
			}
			d.log.Info("SIGHUP: reloading", "config", configName(d.path))
			reload()
		case <-reloading:
			reloading = nil
			if again {
				again = false
				d.log.Info("reloading again", "config", configName(d.path))
				reload()
			}
		case <-d.e.Done():
			err := d.e.Err()
			d.log.Error("queues stopped", "err", err)
			return errors.Join(fmt.Errorf("queues stopped: %w", err), d.stop(), d.e.Close())
		}
	}
}

func (d *daemon) shutdown(s os.Signal, sigs chan os.Signal) error {
	d.stopping.Store(true)
	t0 := time.Now()
	d.log.Info("stopping", "signal", s.String())
	_ = service.Notify("STOPPING=1")
	go d.watchForce(sigs, t0, d.leftBehind())
	err := errors.Join(d.e.Close(), d.stop())
	if err != nil {
		d.log.Error("stop incomplete", "err", err)
		return err
	}
	var packets uint64
	for _, q := range d.e.Stats().Queues {
		packets += q.Packets
	}
	// The final count: the queues were drained and unbound.
	d.log.Info("stopped", "took", time.Since(t0).Round(time.Millisecond), "packets", packets)
	return nil
}

// watchForce exits at once on a stop signal that comes at least d.grace
// after the first (t0), saying what stays behind; earlier ones are the
// same request delivered twice.
func (d *daemon) watchForce(sigs <-chan os.Signal, t0 time.Time, leave string) {
	for s := range sigs {
		if s == syscall.SIGHUP {
			continue
		}
		if since := time.Since(t0); since < d.grace {
			d.log.Info("another stop signal within "+d.grace.String()+" of the first: same request, still stopping; send one later to exit at once",
				"signal", s.String(), "after", since.Round(time.Millisecond))
			continue
		}
		d.log.Error("second stop signal: exiting now, without finishing the stop. "+leave, "signal", s.String())
		d.exit(1)
	}
}

// leftBehind says what an immediate exit leaves in the kernel and how to
// clean up.
func (d *daemon) leftBehind() string {
	num, count := d.e.Queues()
	rc, installed := d.e.RulesConfig()
	return leftBehindMsg(num, count, rc, installed)
}

func leftBehindMsg(num, count uint16, rc rules.Config, installed bool) string {
	queues := fmt.Sprintf("queues %d..%d", num, num+count-1)
	if !installed {
		return "No table of qguard's is installed; " + queues + " are unbound as the process exits, so the kernel drops " +
			"what your own rules queue to them (unless those rules set the bypass flag) and what is still queued."
	}
	fate := "drops (rules.bypass is off: fail-closed)"
	if rc.Bypass {
		fate = "accepts, unfiltered (rules.bypass: fail-open),"
	}
	flush := "qguard rules flush"
	if rc.Table != "qguard" {
		flush += " --table " + rc.Table
	}
	return fmt.Sprintf("Table inet %s stays (unless the stop got as far as deleting it); %s are unbound as the process exits, so the kernel now %s "+
		"the packets the table queues to them and drops those still queued. Remove the table with %q "+
		"(in this network namespace) or start qguard again.", rc.Table, queues, fate, flush)
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as systemd's
// Type=notify-reload wants next to RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Sec*1e6 + ts.Nsec/1e3
}
