package ruletest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteCase prints one case: a PASS/FAIL line, and on failure what was
// sent, what happened, which rule matched and the trace.
func WriteCase(w io.Writer, c CaseResult) {
	status := "PASS"
	if c.Skipped {
		fmt.Fprintf(w, "SKIP %s:%d %s: %s\n", c.File, c.Line, c.Name, c.Detail)
		return
	}
	if !c.Passed {
		status = "FAIL"
	}
	fmt.Fprintf(w, "%s %s:%d %s (%s", status, c.File, c.Line, c.Name, c.Outcome)
	if c.Rule != "" {
		fmt.Fprintf(w, ", rule %s", c.Rule)
	}
	fmt.Fprintf(w, ", %v)\n", c.Duration.Round(time.Millisecond))
	if c.Passed && c.Trace == "" {
		return
	}
	fmt.Fprintf(w, "    sent:     %s\n", c.Sent)
	want := c.Expected
	if c.ExpectedRule != "" {
		want += " by rule " + c.ExpectedRule
	}
	fmt.Fprintf(w, "    expected: %s\n", want)
	fmt.Fprintf(w, "    got:      %s (%s)\n", c.Outcome, c.Detail)
	matched := c.Rule
	if matched == "" {
		matched = "(unknown)"
	}
	fmt.Fprintf(w, "    matched:  rule %s\n", matched)
	for _, f := range c.Failures {
		fmt.Fprintf(w, "    failure:  %s\n", f)
	}
	if c.Trace != "" {
		fmt.Fprintf(w, "    trace:\n")
		for _, l := range strings.Split(c.Trace, "\n") {
			fmt.Fprintf(w, "      %s\n", l)
		}
	}
}

// WriteJSON writes the report as one JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
	SysErr   string      `xml:"system-err,omitempty"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SysOut    string        `xml:"system-out,omitempty"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report in the JUnit XML format CI systems read:
// one testsuite per file, one testcase per case.
func WriteJUnit(w io.Writer, r *Report) error {
	out := junitSuites{Tests: r.Passed + r.Failed + r.Skipped, Failures: r.Failed, Time: secs(r.Duration)}
	for _, f := range r.Files {
		s := junitSuite{Name: f.Path, Tests: len(f.Cases), Time: secs(f.Duration), SysErr: f.Error}
		for _, c := range f.Cases {
			jc := junitCase{Name: c.Name, Classname: f.Path, Time: secs(c.Duration)}
			if c.Skipped {
				jc.Skipped = &junitSkipped{Message: c.Detail}
				s.Skipped++
			} else if !c.Passed {
				s.Failures++
				var b strings.Builder
				c.Trace = strings.TrimSpace(c.Trace)
				WriteCase(&b, c)
				jc.Failure = &junitFailure{Message: strings.Join(c.Failures, "; "), Type: "expectation", Text: b.String()}
			}
			s.Cases = append(s.Cases, jc)
		}
		if f.Error != "" && len(f.Cases) == 0 {
			// The file failed before any case: one failing testcase, as
			// the summary counts it.
			s.Tests, s.Failures = 1, 1
			s.Cases = append(s.Cases, junitCase{Name: "(file)", Classname: f.Path, Time: secs(f.Duration),
				Failure: &junitFailure{Message: f.Error, Type: "setup", Text: f.Error}})
		}
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
