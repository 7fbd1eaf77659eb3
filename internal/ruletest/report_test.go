package ruletest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
)

func sampleReport() *Report {
	r := &Report{}
	r.add(FileResult{Path: "a.yaml", Cases: []CaseResult{
		{File: "a.yaml", Line: 3, Name: "ok", Passed: true, Outcome: "delivered"},
		{File: "a.yaml", Line: 7, Name: "bad", Outcome: "rejected", Rule: "block-telnet", Expected: "delivered",
			Failures: []string{"expected delivered, got rejected"}, Trace: "packet: tcp\ndecision: reject by block-telnet"},
	}})
	r.add(FileResult{Path: "b.yaml", Cases: []CaseResult{{File: "b.yaml", Line: 2, Name: "ct", Skipped: true, Detail: "no GLUE_CT"}}})
	r.add(FileResult{Path: "c.yaml", Error: "build topology: boom"})
	return r
}

func TestReportCounts(t *testing.T) {
	r := sampleReport()
	// A file that failed before any case counts as one failure.
	if r.Passed != 1 || r.Failed != 2 || r.Skipped != 1 || r.Summary() != "1 passed, 2 failed, 1 skipped" {
		t.Fatalf("%+v %q", r, r.Summary())
	}
	if (&Report{Passed: 3}).Summary() != "3 passed, 0 failed" {
		t.Fatal("summary without skips")
	}
}

func TestWriteCase(t *testing.T) {
	var b bytes.Buffer
	for _, c := range sampleReport().Files[0].Cases {
		WriteCase(&b, c)
	}
	out := b.String()
	for _, want := range []string{"PASS a.yaml:3 ok (delivered, 0s)\n", "FAIL a.yaml:7 bad (rejected, rule block-telnet, 0s)\n",
		"    matched:  rule block-telnet\n", "    failure:  expected delivered, got rejected\n", "      decision: reject by block-telnet\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteJSONAndJUnit(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Failed != 2 || len(back.Files) != 3 || back.Files[0].Cases[1].Rule != "block-telnet" {
		t.Fatalf("%v %+v", err, back)
	}
	b.Reset()
	if err := WriteJUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var ju junitSuites
	if err := xml.Unmarshal(b.Bytes(), &ju); err != nil || ju.Tests != 4 || ju.Failures != 2 || len(ju.Suites) != 3 {
		t.Fatalf("%v %+v\n%s", err, ju, b.String())
	}
	if f := ju.Suites[0].Cases[1].Failure; f == nil || !strings.Contains(f.Text, "block-telnet") {
		t.Errorf("failure text: %+v", f)
	}
	if ju.Suites[1].Cases[0].Skipped == nil || ju.Suites[2].SysErr == "" {
		t.Errorf("skip or file error missing: %s", b.String())
	}
}
