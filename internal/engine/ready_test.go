package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestReadyOffline(t *testing.T) {
	e := offline(t, testPolicy(), false)
	if err := e.Ready(); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "starting") {
		t.Errorf("before Start: %v", err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "no queues") {
		t.Errorf("offline after Start: %v", err)
	}
}
