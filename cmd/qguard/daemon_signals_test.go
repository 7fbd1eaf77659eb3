package main

import (
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/engine"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/rules"
)

// offlineDaemon is a daemon around an offline engine (no kernel objects),
// exiting through exit instead of the process.
func offlineDaemon(t *testing.T, log *testutil.SyncBuffer, exit func(int)) *daemon {
	t.Helper()
	l := slog.New(slog.NewTextHandler(log, nil))
	e, err := engine.New(config.Default(), &engine.Options{Offline: true, Logger: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &daemon{log: l, e: e, cmd: &cobra.Command{}, flags: &runFlags{},
		load: loadConfig, grace: forceGrace, exit: exit}
}

// SIGTERM during a reload whose loading hangs stops at once.
func TestStopDuringHungReload(t *testing.T) {
	var log testutil.SyncBuffer
	d := offlineDaemon(t, &log, func(int) { t.Error("exited at once") })
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	d.load = func(string) (*config.File, error) {
		close(entered)
		<-release
		return config.Default(), nil
	}
	sigs := make(chan os.Signal, 4)
	ret := make(chan error, 1)
	go func() { ret <- d.loop(sigs) }()
	sigs <- syscall.SIGHUP
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP did not start a reload")
	}
	sigs <- syscall.SIGTERM
	select {
	case err := <-ret:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the stop waited for the hung reload:\n%s", log.String())
	}
	if s := log.String(); !strings.Contains(s, "the reload is abandoned") || !strings.Contains(s, "msg=stopped") {
		t.Errorf("log does not tell the stop abandoned the reload:\n%s", s)
	}
}

// Signals right after the first stop signal (GNU timeout signals the
// process and its group) are the same request; one after the grace exits
// at once, saying what stays behind.
func TestWatchForce(t *testing.T) {
	var log testutil.SyncBuffer
	exited := make(chan int, 4)
	d := offlineDaemon(t, &log, func(code int) { exited <- code })
	d.grace = time.Hour // "together" whatever the machine's load
	sigs := make(chan os.Signal, 4)
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGHUP
	sigs <- syscall.SIGINT
	close(sigs)
	d.watchForce(sigs, time.Now(), "LEFT-BEHIND")
	select {
	case <-exited:
		t.Fatalf("signals within the grace forced an exit:\n%s", log.String())
	default:
	}
	if !strings.Contains(log.String(), "same request, still stopping") {
		t.Errorf("log does not say the extra signal is ignored:\n%s", log.String())
	}

	d.grace = time.Second
	sigs = make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	close(sigs)
	d.watchForce(sigs, time.Now().Add(-2*time.Second), "LEFT-BEHIND")
	select {
	case code := <-exited:
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
	default:
		t.Fatal("a second signal after the grace did not exit")
	}
	if !strings.Contains(log.String(), "exiting now") || !strings.Contains(log.String(), "LEFT-BEHIND") {
		t.Errorf("the forced exit does not say what stays:\n%s", log.String())
	}
}

func TestLeftBehindMsg(t *testing.T) {
	for _, tc := range []struct {
		rc        rules.Config
		installed bool
		want      []string
	}{
		{rules.Config{Table: "qguard", Bypass: true}, true,
			[]string{"Table inet qguard stays", "queues 3..4 are unbound", "accepts, unfiltered", `"qguard rules flush"`}},
		{rules.Config{Table: "edge", Bypass: false}, true,
			[]string{"Table inet edge stays", "drops (rules.bypass is off", `"qguard rules flush --table edge"`}},
		{rules.Config{}, false, []string{"No table", "queues 3..4 are unbound", "bypass flag"}},
	} {
		got := leftBehindMsg(3, 2, tc.rc, tc.installed)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v installed=%v: %q lacks %q", tc.rc, tc.installed, got, w)
			}
		}
	}
}

// A SIGHUP during a reload is not lost: one more reload follows it.
func TestSIGHUPDuringReload(t *testing.T) {
	var log testutil.SyncBuffer
	d := offlineDaemon(t, &log, func(int) { t.Error("exited at once") })
	loads := make(chan chan struct{}, 4)
	d.load = func(string) (*config.File, error) {
		release := make(chan struct{})
		loads <- release
		<-release
		return config.Default(), nil
	}
	sigs := make(chan os.Signal, 4)
	ret := make(chan error, 1)
	go func() { ret <- d.loop(sigs) }()
	next := func() chan struct{} {
		t.Helper()
		select {
		case r := <-loads:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no reload started:\n%s", log.String())
			return nil
		}
	}
	sigs <- syscall.SIGHUP
	first := next()
	sigs <- syscall.SIGHUP
	sigs <- syscall.SIGHUP // coalesced with the one before
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(log.String(), "SIGHUP during a reload") < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(first)
	close(next()) // the one asked for during the first
	for strings.Count(log.String(), "msg=reloaded") < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	sigs <- syscall.SIGTERM
	if err := <-ret; err != nil {
		t.Fatal(err)
	}
	select {
	case <-loads:
		t.Errorf("three reloads for three SIGHUPs, two of them during the first reload:\n%s", log.String())
	default:
	}
	if n := strings.Count(log.String(), "msg=reloaded"); n != 2 {
		t.Errorf("%d reloads logged, want 2:\n%s", n, log.String())
	}
}
