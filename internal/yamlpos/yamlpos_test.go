package yamlpos

import (
	"fmt"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		root       bool
		want       []string // problems as "line:col: msg" prefixes
	}{
		{"mapping", "a: 1\n", true, nil},
		{"empty", "", false, nil},
		{"null", "~\n", false, nil},
		{"syntax", "a: [\n", false, []string{"1:0: did not find expected node content"}},
		{"two documents", "a: 1\n---\nb: 2\n", true, []string{"2:1: a second YAML document"}},
		{"anchor and alias", "a: &x 1\nb: *x\n", true, []string{"1:4: anchors (&x)", "2:4: aliases (*x)"}},
	} {
		root, probs := Decode([]byte(tc.text))
		if (root != nil) != tc.root {
			t.Errorf("%s: root %v, want one: %v", tc.name, root, tc.root)
		}
		if len(probs) != len(tc.want) {
			t.Errorf("%s: problems %+v, want %q", tc.name, probs, tc.want)
			continue
		}
		for i, p := range probs {
			got := fmt.Sprintf("%d:%d: %s", p.Line, p.Col, p.Msg)
			if !strings.HasPrefix(got, tc.want[i]) {
				t.Errorf("%s: problem %d is %q, want %q", tc.name, i, got, tc.want[i])
			}
		}
	}
}

func TestSectionsKeepPositions(t *testing.T) {
	root, _ := Decode([]byte("cases: []\npolicy: {default: drop}\nqueue:\n  num: 3\n"))
	s := Sections(root, "policy", "queue")
	if len(s.Content) != 4 || s.Content[0].Value != "policy" || s.Content[0].Line != 2 || s.Content[3].Content[1].Line != 4 {
		t.Errorf("sections: %+v", s.Content)
	}
}
