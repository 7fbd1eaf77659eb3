package metrics

import (
	"errors"
	"io"
	"net/http"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthEndpoints(t *testing.T) {
	s, err := Listen("127.0.0.1:0", NewRegistry(fakeStats, BuildInfo{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	base := "http://" + s.Addr().String()
	check := func(path string, code int, body string) {
		t.Helper()
		if c, b := get(t, base+path); c != code || b != body {
			t.Errorf("GET %s: %d %q, want %d %q", path, c, b, code, body)
		}
	}
	check("/healthz", 200, "ok\n")
	check("/readyz", 503, "not ready: starting\n")
	s.SetReady(func() error { return nil })
	check("/readyz", 200, "ready\n")
	check("/healthz", 200, "ok\n")
	s.SetReady(func() error { return errors.New("not ready: nftables table not as qguard installed it (rule deleted)") })
	check("/readyz", 503, "not ready: nftables table not as qguard installed it (rule deleted)\n")
	check("/nothing", 404, "404 page not found\n")
}
