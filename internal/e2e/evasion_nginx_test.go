package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

const evNginxPort = 8082

// nginxServer runs nginx in the server namespace on evNginxPort: a real
// HTTP/1.1 server that, unlike Go's, ignores empty lines before a request
// (RFC 9112 section 2.2) and takes an absolute-form target's authority over
// Host. It returns a function listing the hosts nginx served ($host).
func nginxServer(t *testing.T, top *topo.Topology) func() string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed (.ci/run installs nginx-light): it is the real server of this technique")
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  log_format host "$host";
  access_log %[2]s host;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server { listen %[3]d; listen [::]:%[3]d; location / { return 200 "%[4]s"; } }
}
`, dir, logPath, evNginxPort, httpResponse)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := top.Server.Command(context.Background(), bin, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for end := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := dialIn(top.Server, "tcp", hostPort(top.ServerIP4, evNginxPort), time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(end) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s", b)
		}
	}
	return func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
}

// TestIntegrationEvasionHTTPRealServer: the request forms a real server
// accepts beyond Go's (leading empty lines) are judged like any other.
func TestIntegrationEvasionHTTPRealServer(t *testing.T) {
	e := newEvasionEnv(t, "qen")
	served := nginxServer(t, e.top)
	srv := hostPort(e.top.ServerIP4, evNginxPort)
	try := func(t *testing.T, tag string, req func(name string) []byte) {
		blocked, allowed := names(tag)
		for _, name := range []string{allowed, blocked} {
			c := tcpIn(t, e.top.Client, srv)
			segments(c, req(name))
			readResponses(c, 1)
		}
		time.Sleep(200 * time.Millisecond)
		log := served()
		if !strings.Contains(log, allowed+"\n") {
			t.Errorf("allowed variant: nginx never served %q (log %q)", allowed, log)
		}
		if strings.Contains(log, blocked+"\n") {
			t.Errorf("evasion: nginx served %q through the firewall", blocked)
		}
	}
	t.Run("leading-empty-lines", func(t *testing.T) {
		try(t, "ngxcrlf", func(name string) []byte { return append([]byte("\r\n\r\n"), httpReq(name)...) })
	})
	t.Run("absolute-form-target", func(t *testing.T) {
		try(t, "ngxabs", func(name string) []byte {
			return []byte("GET http://" + name + "/ HTTP/1.1\r\nHost: ngxabs-host.ok.test\r\n\r\n")
		})
	})
	t.Run("bare-lf-line-ends", func(t *testing.T) {
		try(t, "ngxlf", func(name string) []byte { return []byte("GET / HTTP/1.1\nHost: " + name + "\n\n") })
	})
	t.Run("host-case-and-spaces", func(t *testing.T) {
		try(t, "ngxcase", func(name string) []byte {
			return []byte("GET / HTTP/1.1\r\nhOsT:   " + strings.ToUpper(name) + "  \r\n\r\n")
		})
	})
}
