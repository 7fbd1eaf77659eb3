package testsrv

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func query(t *testing.T, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("any.example."), Type: typ, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestDNSAnswer(t *testing.T) {
	d := DNS{A4: netip.MustParseAddr("198.18.2.2"), A6: netip.MustParseAddr("2001:db8:2::2")}
	for _, tc := range []struct {
		typ  dnsmessage.Type
		want string
	}{{dnsmessage.TypeA, "198.18.2.2"}, {dnsmessage.TypeAAAA, "2001:db8:2::2"}, {dnsmessage.TypeTXT, "qguard-test"}, {dnsmessage.TypeMX, ""}} {
		var p dnsmessage.Parser
		h, err := p.Start(d.Answer(query(t, tc.typ)))
		if err != nil || h.ID != 7 || !h.Response {
			t.Fatalf("%v: header %+v %v", tc.typ, h, err)
		}
		_ = p.SkipAllQuestions()
		ans, err := p.AllAnswers()
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if len(ans) == 1 {
			switch b := ans[0].Body.(type) {
			case *dnsmessage.AResource:
				got = netip.AddrFrom4(b.A).String()
			case *dnsmessage.AAAAResource:
				got = netip.AddrFrom16(b.AAAA).String()
			case *dnsmessage.TXTResource:
				got = b.TXT[0]
			}
		}
		if got != tc.want || len(ans) > 1 {
			t.Errorf("%v: %d answers, %q, want %q", tc.typ, len(ans), got, tc.want)
		}
	}
	if (DNS{}).Answer(query(t, dnsmessage.TypeA)) == nil {
		t.Error("no A address: want an empty NOERROR, got nothing")
	}
	if (DNS{}).Answer([]byte{1, 2, 3}) != nil {
		t.Error("answered a message that is not a query")
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestServersOnLoopback(t *testing.T) {
	d := DNS{A4: netip.MustParseAddr("198.18.2.2")}
	dl := listen(t)
	go AcceptLoop(dl, d.ServeTCP)
	c, err := net.DialTimeout("tcp", dl.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	q := query(t, dnsmessage.TypeA)
	r := bufio.NewReader(c)
	for i := 0; i < 2; i++ { // two queries on one connection
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
			t.Fatal(err)
		}
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if _, err := io.ReadFull(r, make([]byte, binary.BigEndian.Uint16(l[:]))); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
	}

	cert, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(listen(t), &tls.Config{Certificates: []tls.Certificate{cert}})
	go AcceptLoop(tl, Echo)
	tc, err := tls.Dial("tcp", tl.Addr().String(), &tls.Config{ServerName: "good.example", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := tc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(tc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("TLS echo: %q %v", buf, err)
	}

	hl := listen(t)
	srv := &http.Server{Handler: HTTPHandler(), ReadHeaderTimeout: time.Second}
	go srv.Serve(hl)
	t.Cleanup(func() { srv.Close() })
	resp, err := http.Get("http://" + hl.Addr().String() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != HTTPBody {
		t.Errorf("HTTP: %d %q", resp.StatusCode, body)
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go ServePacket(pc, EchoPacket)
	u, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	_ = u.SetDeadline(time.Now().Add(2 * time.Second))
	got := make([]byte, 32)
	if _, err := u.Write([]byte("qguard-test")); err != nil {
		t.Fatal(err)
	}
	n, err := u.Read(got)
	if err != nil || string(got[:n]) != "qguard-test" {
		t.Errorf("UDP echo: %q %v", got[:n], err)
	}
}
