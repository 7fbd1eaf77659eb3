package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/qguard/qguard/internal/topo"
)

// evasionPolicy blocks names under blocked.test for DNS, TLS and HTTP, and
// UDP port 9002. Every technique of the evasion suite tries to walk past
// one of these rules; its allowed twin (ok.test, port 9003) must pass.
const evasionPolicy = `
queue: {num: 11}
policy:
  default: accept
  rules:
    - name: no-blocked-dns
      match: {dns: ["blocked.test", "*.blocked.test"]}
      action: drop
    - name: no-blocked-sni
      match: {sni: ["blocked.test", "*.blocked.test"]}
      action: reject
    - name: no-blocked-host
      match: {http_host: ["blocked.test", "*.blocked.test"]}
      action: reject
    - name: no-9002
      match: {proto: udp, dport: [9002]}
      action: drop
`

// evasionEnv is one topology, its servers and a daemon on evasionPolicy,
// shared by the techniques (each uses flows of its own).
type evasionEnv struct {
	top  *topo.Topology
	seen *seenNames
	d    *daemon
}

func newEvasionEnv(t *testing.T, prefix string) *evasionEnv {
	t.Helper()
	top := newTopo(t, prefix)
	seen := evasionServers(t, top)
	d := startDaemon(t, top, evasionPolicy)
	return &evasionEnv{top: top, seen: seen, d: d}
}

// names returns the blocked and the allowed name of one technique; each
// technique asks for names of its own so the oracle cannot mix them up.
func names(tag string) (blocked, allowed string) {
	return tag + ".blocked.test", tag + ".ok.test"
}

// both runs a technique with the blocked name and with the allowed one and
// checks the server's record: the blocked name never reaches the server,
// the allowed one does.
func (e *evasionEnv) both(t *testing.T, kind, tag string, try func(name string)) {
	t.Helper()
	blocked, allowed := names(tag)
	try(allowed)
	if !e.seen.waitSeen(kind, allowed, 2*time.Second) {
		t.Errorf("allowed variant: the server never saw %s %q (over-blocking, or the technique is broken)", kind, allowed)
	}
	try(blocked)
	time.Sleep(200 * time.Millisecond)
	if n := e.seen.count(kind, blocked); n > 0 {
		t.Errorf("evasion: the server saw %s %q %d time(s) through the firewall", kind, blocked, n)
	}
}

func dnsQueryMsg(name string) []byte {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	b, _ := m.Pack()
	return b
}

func lenPrefixed(msgs ...[]byte) []byte {
	var out []byte
	for _, m := range msgs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(m)))
		out = append(out, m...)
	}
	return out
}

// TestIntegrationEvasionDNS: every DNS message is judged, whatever came
// before it on the flow and however the client cuts the TCP stream.
func TestIntegrationEvasionDNS(t *testing.T) {
	e := newEvasionEnv(t, "qev")
	srv := hostPort(e.top.ServerIP4, evDNSPort)
	srv6 := hostPort(e.top.ServerIP6, evDNSPort)

	t.Run("dig", func(t *testing.T) {
		e.both(t, "dns", "dig", func(name string) {
			_, _ = e.top.Client.Output("dig", "@"+e.top.ServerIP4.String(), "+tries=1", "+timeout=1", "+short", name)
		})
	})
	t.Run("dig-tcp-two-queries-one-connection", func(t *testing.T) {
		// dig sends both queries on one TCP connection (+keepopen).
		_, okName := names("digtcp")
		blocked, _ := names("digtcp")
		_, _ = e.top.Client.Output("dig", "@"+e.top.ServerIP4.String(), "+tcp", "+keepopen", "+tries=1", "+timeout=1", "+short", okName, blocked)
		if !e.seen.waitSeen("dns", okName, 2*time.Second) {
			t.Errorf("the first, allowed query was not answered")
		}
		if e.seen.count("dns", blocked) > 0 {
			t.Errorf("evasion: second query on the TCP connection reached the server")
		}
	})
	t.Run("udp-second-query-same-socket", func(t *testing.T) {
		c, err := dialIn(e.top.Client, "udp", srv, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, harmless := names("udp2harmless")
		c.Write(dnsQueryMsg(harmless))
		if !e.seen.waitSeen("dns", harmless, 2*time.Second) {
			t.Fatalf("the harmless first query did not reach the server")
		}
		e.both(t, "dns", "udp2", func(name string) { c.Write(dnsQueryMsg(name)) })
	})
	t.Run("udp-junk-byte-first", func(t *testing.T) {
		c, err := dialIn(e.top.Client, "udp", srv6, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0x00})
		time.Sleep(50 * time.Millisecond)
		e.both(t, "dns", "junk", func(name string) { c.Write(dnsQueryMsg(name)) })
	})
	t.Run("tcp-second-query-next-segment", func(t *testing.T) {
		c := tcpIn(t, e.top.Client, srv)
		_, harmless := names("tcpnext-harmless")
		segments(c, lenPrefixed(dnsQueryMsg(harmless)))
		if !e.seen.waitSeen("dns", harmless, 2*time.Second) {
			t.Fatalf("the harmless first query did not reach the server")
		}
		e.both(t, "dns", "tcpnext", func(name string) { segments(c, lenPrefixed(dnsQueryMsg(name))) })
	})
	t.Run("tcp-two-queries-one-segment", func(t *testing.T) {
		blocked, allowed := names("tcpsame")
		_, allowed2 := names("tcpsame2")
		c := tcpIn(t, e.top.Client, srv)
		segments(c, lenPrefixed(dnsQueryMsg(allowed), dnsQueryMsg(allowed2)))
		if !e.seen.waitSeen("dns", allowed2, 2*time.Second) || e.seen.count("dns", allowed) == 0 {
			t.Errorf("allowed variant: two allowed queries in one segment were not both answered")
		}
		c2 := tcpIn(t, e.top.Client, srv)
		_, harmless := names("tcpsame-harmless")
		segments(c2, lenPrefixed(dnsQueryMsg(harmless), dnsQueryMsg(blocked)))
		time.Sleep(300 * time.Millisecond)
		if e.seen.count("dns", blocked) > 0 {
			t.Errorf("evasion: a blocked query behind a harmless one in the same segment reached the server")
		}
	})
	t.Run("tcp-length-prefix-own-segment", func(t *testing.T) {
		e.both(t, "dns", "tcpsplit", func(name string) {
			c := tcpIn(t, e.top.Client, srv)
			b := lenPrefixed(dnsQueryMsg(name))
			segments(c, b[:2], b[2:])
		})
	})
	t.Run("tcp-query-cut-mid-name", func(t *testing.T) {
		e.both(t, "dns", "tcpcut", func(name string) {
			c := tcpIn(t, e.top.Client, srv6)
			b := lenPrefixed(dnsQueryMsg(name))
			segments(c, b[:1], b[1:15], b[15:20], b[20:])
		})
	})
	t.Run("forward-compression-pointer", func(t *testing.T) {
		e.both(t, "dns", "fwdptr", func(name string) {
			c, err := dialIn(e.top.Client, "udp", srv, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(forwardPointerQuery(name))
		})
	})
}

// forwardPointerQuery is a query whose question name is a compression
// pointer to a name stored after the question, in an additional record's
// owner name: legal enough that real servers (miekg/dns, dnsmasq) answer.
func forwardPointerQuery(name string) []byte {
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1} // id, RD, 1 question, 1 additional
	// Question: pointer to offset 12+6 = 18, where the additional's name starts.
	b = append(b, 0xc0, 18, 0, byte(dns.TypeA), 0, byte(dns.ClassINET))
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0)
	// The additional record: type TXT, class IN, TTL 0, empty RDATA.
	b = append(b, 0, byte(dns.TypeTXT), 0, byte(dns.ClassINET), 0, 0, 0, 0, 0, 0)
	return b
}

// httpReq is a minimal HTTP/1.1 request for / with Host host.
func httpReq(host string) []byte {
	return []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: qguard-e2e\r\n\r\n")
}

// readResponses reads until n HTTP responses have arrived or the read fails.
func readResponses(c net.Conn, n int) int {
	var got bytes.Buffer
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for strings.Count(got.String(), httpResponse) < n {
		k, err := c.Read(buf)
		got.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return strings.Count(got.String(), httpResponse)
}

// TestIntegrationEvasionHTTP: every request on a connection is judged,
// wherever its Host header travels.
func TestIntegrationEvasionHTTP(t *testing.T) {
	e := newEvasionEnv(t, "qeh")
	srv := hostPort(e.top.ServerIP4, evHTTPPort)
	srv6 := hostPort(e.top.ServerIP6, evHTTPPort)

	t.Run("curl", func(t *testing.T) {
		e.both(t, "http", "curl", func(name string) {
			_, _ = e.top.Client.Output("curl", "-s", "-m", "2", "-H", "Host: "+name, "http://"+srv+"/")
		})
	})
	t.Run("curl-keepalive-second-request", func(t *testing.T) {
		blocked, allowed := names("curlka")
		// --next reuses the connection for the second URL.
		_, _ = e.top.Client.Output("curl", "-s", "-m", "2", "-H", "Host: "+allowed, "http://"+srv+"/a",
			"--next", "-s", "-m", "2", "-H", "Host: "+blocked, "http://"+srv+"/b")
		if e.seen.count("http", allowed) == 0 {
			t.Errorf("the first, allowed request was not served")
		}
		if e.seen.count("http", blocked) > 0 {
			t.Errorf("evasion: the second request on a kept-alive connection was served")
		}
	})
	t.Run("keepalive-second-request", func(t *testing.T) {
		c := tcpIn(t, e.top.Client, srv)
		_, harmless := names("ka-harmless")
		segments(c, httpReq(harmless))
		if readResponses(c, 1) != 1 {
			t.Fatalf("the first request was not answered")
		}
		e.both(t, "http", "ka", func(name string) { segments(c, httpReq(name)); readResponses(c, 1) })
	})
	t.Run("pipelined-second-request", func(t *testing.T) {
		e.both(t, "http", "pipe", func(name string) {
			_, harmless := names("pipe-harmless-" + strings.Split(name, ".")[1])
			c := tcpIn(t, e.top.Client, srv6)
			segments(c, append(httpReq(harmless), httpReq(name)...))
			readResponses(c, 2)
		})
	})
	t.Run("host-in-second-segment", func(t *testing.T) {
		e.both(t, "http", "seg2", func(name string) {
			c := tcpIn(t, e.top.Client, srv)
			segments(c, []byte("GET / HTTP/1.1\r\nUser-Agent: qguard-e2e\r\n"), []byte("Host: "+name+"\r\n\r\n"))
			readResponses(c, 1)
		})
	})
	t.Run("host-split-mid-name", func(t *testing.T) {
		e.both(t, "http", "midname", func(name string) {
			c := tcpIn(t, e.top.Client, srv)
			r := httpReq(name)
			i := bytes.Index(r, []byte("Host: ")) + 8
			segments(c, r[:i], r[i:])
			readResponses(c, 1)
		})
	})
	// Empty lines before the request: Go's server refuses them, so that
	// technique runs against nginx (TestIntegrationEvasionHTTPRealServer).
	t.Run("absolute-form-target", func(t *testing.T) {
		// Servers take the target's authority over Host (RFC 9112 3.2.2).
		e.both(t, "http", "absform", func(name string) {
			c := tcpIn(t, e.top.Client, srv)
			segments(c, []byte("GET http://"+name+"/ HTTP/1.1\r\nHost: absform-host.ok.test\r\n\r\n"))
			readResponses(c, 1)
		})
	})
}

// splitConn cuts the first record the TLS client writes (its ClientHello)
// the way cut says, then passes writes through.
type splitConn struct {
	net.Conn
	cut  func(hello []byte) [][]byte
	done bool
}

func (s *splitConn) Write(b []byte) (int, error) {
	if s.done {
		return s.Conn.Write(b)
	}
	s.done = true
	if err := segments(s.Conn, s.cut(b)...); err != nil {
		return 0, err
	}
	return len(b), nil
}

// records re-frames one TLS handshake record as several records of the
// same content type, cut at the given offsets into the handshake data.
func records(rec []byte, at ...int) []byte {
	body := rec[5:]
	var out []byte
	prev := 0
	for _, cut := range append(at, len(body)) {
		out = append(out, rec[0], rec[1], rec[2])
		out = binary.BigEndian.AppendUint16(out, uint16(cut-prev))
		out = append(out, body[prev:cut]...)
		prev = cut
	}
	return out
}

// tlsTry handshakes with name over c wrapped by cut, then exchanges an echo.
func tlsTry(t *testing.T, ns topo.NS, addr, name string, cut func([]byte) [][]byte) error {
	raw := tcpIn(t, ns, addr)
	c := tls.Client(&splitConn{Conn: raw, cut: cut}, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		return err
	}
	return echo(c, "ping")
}

// TestIntegrationEvasionTLS: the ClientHello is judged however the client
// cuts it into records and segments, and whatever came before it.
func TestIntegrationEvasionTLS(t *testing.T) {
	e := newEvasionEnv(t, "qet")
	srv := hostPort(e.top.ServerIP4, evTLSPort)
	srv6 := hostPort(e.top.ServerIP6, evTLSPort)
	whole := func(b []byte) [][]byte { return [][]byte{b} }

	t.Run("openssl", func(t *testing.T) {
		e.both(t, "tls", "openssl", func(name string) {
			cmd := e.top.Client.Command(context.Background(), "openssl", "s_client", "-connect", srv, "-servername", name)
			cmd.Stdin = strings.NewReader("")
			done := make(chan struct{})
			go func() { cmd.Run(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	})
	t.Run("go-client", func(t *testing.T) {
		e.both(t, "tls", "plain", func(name string) { tlsTry(t, e.top.Client, srv, name, whole) })
	})
	t.Run("two-records-one-segment", func(t *testing.T) {
		e.both(t, "tls", "tworec", func(name string) {
			tlsTry(t, e.top.Client, srv, name, func(b []byte) [][]byte { return [][]byte{records(b, 60)} })
		})
	})
	t.Run("many-records-many-segments", func(t *testing.T) {
		e.both(t, "tls", "manyrec", func(name string) {
			tlsTry(t, e.top.Client, srv6, name, func(b []byte) [][]byte {
				r := records(b, 1, 4, 40, 90)
				return [][]byte{r[:3], r[3:50], r[50:120], r[120:]}
			})
		})
	})
	t.Run("record-header-split", func(t *testing.T) {
		e.both(t, "tls", "hdrsplit", func(name string) {
			tlsTry(t, e.top.Client, srv, name, func(b []byte) [][]byte { return [][]byte{b[:2], b[2:7], b[7:]} })
		})
	})
	t.Run("empty-acks-first", func(t *testing.T) {
		e.both(t, "tls", "acks", func(name string) {
			raw := tcpIn(t, e.top.Client, srv)
			if err := pureACKs(e.top.Client, raw, 10); err != nil {
				t.Fatalf("send pure ACKs: %v", err)
			}
			c := tls.Client(raw, &tls.Config{ServerName: name, InsecureSkipVerify: true})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			c.HandshakeContext(ctx)
		})
	})
	t.Run("http-after-empty-acks", func(t *testing.T) {
		hsrv := hostPort(e.top.ServerIP4, evHTTPPort)
		e.both(t, "http", "acks", func(name string) {
			c := tcpIn(t, e.top.Client, hsrv)
			if err := pureACKs(e.top.Client, c, 10); err != nil {
				t.Fatalf("send pure ACKs: %v", err)
			}
			segments(c, httpReq(name))
			readResponses(c, 1)
		})
	})
}
