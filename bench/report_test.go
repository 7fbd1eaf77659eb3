package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qguard/qguard/internal/testutil"
)

// golden compares got with the file; -update (testutil's flag) rewrites
// the golden files from testdata/report.json.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	testutil.Golden(t, path, got)
}

// fixture is a saved two-run quick report (`qguard bench --quick --runs 2
// --json`, every mode), plus two synthetic rows: a skipped and a failed mode.
func fixture(t *testing.T) *Report {
	t.Helper()
	rep, err := LoadJSON(filepath.Join("testdata", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestGoldenTable(t *testing.T) {
	var b bytes.Buffer
	if err := fixture(t).WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "report.txt"), b.Bytes())
	for i, l := range strings.Split(b.String(), "\n") {
		if n := utf8.RuneCountInString(l); n > tableWidth {
			t.Errorf("line %d is %d wide, over %d: %q", i+1, n, tableWidth, l)
		}
	}
	for _, want := range []string{"\n64-byte UDP, packets/s\nmode ", "\n1500-byte UDP, packets/s\n", "\nTCP streams, Gbit/s\n",
		"\nBlocked-source flood, packets/s dropped\n", "example-skipped   skipped\n", "example-failed     FAILED\n",
		"skipped: synthetic: a mode that could not run here", "FAILED: synthetic: the handler exited early"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

func TestGoldenPlot(t *testing.T) {
	var b bytes.Buffer
	if err := fixture(t).Plot(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "report.svg"), b.Bytes())
	bad, err := outside(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range bad {
		t.Error(s)
	}
	for _, want := range []string{familyColor[FamilyKernel], familyColor[FamilyC], familyColor[FamilyGo],
		familyColor[FamilyLibrary], familyColor[FamilyDaemon], lighter(familyColor[FamilyLibrary]),
		">TCP streams, Gbit/s<", ">Short TCP connections, connections/s<", ">skipped (see the table)<",
		"CPU per packet</text>"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("plot lacks %q", want)
		}
	}
}

// outside parses the SVG and lists every text, bar and line that does not
// lie inside the canvas.
func outside(svg []byte) ([]string, error) {
	d := xml.NewDecoder(bytes.NewReader(svg))
	var w, h float64
	var open *xml.StartElement
	var bad []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("plot is not well-formed XML: %w", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			e = e.Copy()
			open = &e
			a := func(name string) float64 { return attrFloat(e, name) }
			switch e.Name.Local {
			case "svg":
				w, h = a("width"), a("height")
			case "rect":
				if x, y := a("x"), a("y"); x < 0 || y < 0 || x+a("width") > w || y+a("height") > h {
					bad = append(bad, fmt.Sprintf("rect %v outside %gx%g", e.Attr, w, h))
				}
			case "line":
				if x1, x2 := a("x1"), a("x2"); min(x1, x2) < 0 || max(x1, x2) > w {
					bad = append(bad, fmt.Sprintf("line %v outside %gx%g", e.Attr, w, h))
				}
			}
		case xml.CharData:
			if open != nil && open.Name.Local == "text" {
				bad = append(bad, textOutside(*open, string(e), w, h)...)
			}
			open = nil
		}
	}
	if w == 0 || h == 0 {
		return nil, errors.New("no canvas size in the plot")
	}
	return bad, nil
}

func attrFloat(e xml.StartElement, name string) float64 {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			v, _ := strconv.ParseFloat(a.Value, 64)
			return v
		}
	}
	return 0
}

func textOutside(e xml.StartElement, s string, w, h float64) []string {
	x, y, size := attrFloat(e, "x"), attrFloat(e, "y"), attrFloat(e, "font-size")
	anchor, mono := "start", false
	for _, a := range e.Attr {
		switch a.Name.Local {
		case "text-anchor":
			anchor = a.Value
		case "font-family":
			mono = a.Value == plotMono
		}
	}
	tw := textWidth(s, size, mono)
	left := map[string]float64{"start": x, "middle": x - tw/2, "end": x - tw}[anchor]
	if left < 0 || left+tw > w || y-size < 0 || y > h {
		return []string{fmt.Sprintf("text %q at %.0f,%.0f (%.0f wide) outside the %gx%g canvas", s, x, y, tw, w, h)}
	}
	return nil
}

// TestPlotOutside: the check finds what lies past an edge.
func TestPlotOutside(t *testing.T) {
	for _, svg := range []string{
		`<svg width="100" height="50"><text x="90" y="20" font-size="12" text-anchor="start">far too long</text></svg>`,
		`<svg width="100" height="50"><text x="5" y="20" font-size="12" text-anchor="end">left</text></svg>`,
		`<svg width="100" height="50"><rect x="10" y="45" width="5" height="10" fill="#000"/></svg>`,
		`<svg width="100" height="50"><line x1="10" y1="5" x2="101" y2="5" stroke="#000"/></svg>`,
	} {
		if bad, err := outside([]byte(svg)); err != nil || len(bad) != 1 {
			t.Errorf("%s: %q, %v", svg, bad, err)
		}
	}
	if _, err := outside([]byte(`<svg width="100" height="50"><text>`)); err == nil {
		t.Error("broken XML passed")
	}
}

func TestWritePlotFormat(t *testing.T) {
	rep := fixture(t)
	dir := t.TempDir()
	if err := rep.WritePlot(filepath.Join(dir, "p.png")); !errors.Is(err, ErrPlotFormat) {
		t.Errorf("png: %v", err)
	}
	if err := rep.WritePlot(filepath.Join(dir, "p.svg")); err != nil {
		t.Fatal(err)
	}
	if err := (&Report{}).Plot(io.Discard); err == nil {
		t.Error("an empty report plotted")
	}
}

func TestNiceStepAndSpread(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.3, 0.5}, {1, 1}, {1.2, 2}, {180, 200}, {210, 500}, {0, 1}} {
		if got := niceStep(c.in); got != c.want {
			t.Errorf("niceStep(%g) = %g, want %g", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		s    Summary
		want string
	}{{Summary{Min: 281500, Max: 321700}, "282..322k"}, {Summary{Min: 95100, Max: 299000}, "95.1..299k"},
		{Summary{Min: 1.74, Max: 2.22}, "1.74..2.22"}, {Summary{Min: 1.18e6, Max: 1.45e6}, "1.18..1.45M"}, {Summary{Min: 3, Max: 3}, "-"}} {
		if got := spread(c.s); got != c.want {
			t.Errorf("spread(%v) = %q, want %q", c.s, got, c.want)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("aaa bbb ccc dddddddddddd e", 8, "  ")
	if want := "aaa bbb\n  ccc\n  dddddddddddd\n  e\n"; got != want {
		t.Errorf("wrap = %q, want %q", got, want)
	}
}
