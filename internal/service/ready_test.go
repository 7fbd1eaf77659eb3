package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/engine"
)

func TestReadyOffline(t *testing.T) {
	cfg := config.Default()
	cfg.Flows.Capacity = 1024 // the default table takes longer to allocate than the test runs
	e, err := engine.New(cfg, &engine.Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := Ready(e); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "starting") {
		t.Errorf("before Start: %v", err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := Ready(e); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "no queues") {
		t.Errorf("offline after Start: %v", err)
	}
}
