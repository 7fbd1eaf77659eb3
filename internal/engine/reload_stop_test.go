package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/qguard/qguard/config"
)

// A reload whose load hangs (a stalled file system, a slow compile) does
// not hold up Close, nor Stats; when the load finally returns, the reload
// changes nothing and says the engine is closed.
func TestCloseDuringHungReload(t *testing.T) {
	e, err := New(config.Default(), &Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	reloaded := make(chan error, 1)
	go func() {
		reloaded <- e.ReloadFrom(func() (*config.File, error) {
			close(entered)
			<-release
			return config.Default(), nil
		})
	}()
	<-entered
	closed := make(chan error, 1)
	go func() {
		_ = e.Stats()
		closed <- e.Close()
	}()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Close waited for the hung reload")
	}
	close(release)
	if err := <-reloaded; !errors.Is(err, ErrClosed) {
		t.Fatalf("reload finishing after Close: %v, want %v", err, ErrClosed)
	}
	if st := e.Stats(); st.Reloads != 0 || st.Failures != 0 {
		t.Errorf("a reload abandoned by Close counted: %d reloads, %d failures", st.Reloads, st.Failures)
	}
}
