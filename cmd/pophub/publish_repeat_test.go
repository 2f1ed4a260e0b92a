package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestPublishRepeatedLines: a file holding one event twice (two
// overlapping exports concatenated, or a file appended to and published
// again) is harmless, since the hub applies the event once, so `pophub
// publish` reports the repeat with its line numbers and exits 0, and an
// automated re-publish does not fail. A line reusing an earlier line's id
// with other content is a correction the hub would ignore: a bad line,
// exit status 1.
func TestPublishRepeatedLines(t *testing.T) {
	addr := testenv.Kafka(t, 2)
	msgs := scenario(t)
	first, second := msgs[0], msgs[1] // ps-1 and ps-2, both public security
	if first.Topic != second.Topic || !bytes.Contains(second.Value, []byte(`"id":"ps-2"`)) {
		t.Fatalf("scenario changed: %s %s", first.Value, second.Value)
	}
	line := string(first.Value)
	sameIDOther := strings.Replace(string(second.Value), `"id":"ps-2"`, `"id":"ps-1"`, 1)
	src := schemas.SourceOfTopic(first.Topic)
	newLogger := func() *slog.Logger { return testLogger(t) }
	tests := []struct {
		name  string
		lines []string
		fails bool     // exit status 1
		want  []string // in the output
	}{
		{"an exact repeat", []string{line, line}, false,
			[]string{"line 2: repeats line 1 exactly", "1 published, 0 bad, 1 repeated (harmless, sent once)"}},
		{"a repeat and a correction", []string{line, line, sameIDOther}, true,
			[]string{"line 2: repeats line 1 exactly", "line 3: ", "other content", "1 published, 1 bad, 1 repeated (harmless, sent once)"}},
		{"a correction alone", []string{line, sameIDOther}, true,
			[]string{"line 2: ", "other content", "1 published, 1 bad\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "events.jsonl")
			if err := os.WriteFile(file, []byte(strings.Join(tc.lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := execute(t, publishCommand(newLogger), "--source", string(src), "--file", file, "--kafka", addr)
			var code exitError
			if tc.fails && (!errors.As(err, &code) || code != 1) || !tc.fails && err != nil {
				t.Errorf("exit: %v, want failure %v\n%s", err, tc.fails, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
