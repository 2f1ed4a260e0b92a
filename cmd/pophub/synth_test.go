package main

import (
	"strings"
	"testing"
)

// TestSynthCommand: the flags mean what they say. --late 0 was the
// library's zero value, 5% late events, and --months 0 silently 24.
func TestSynthCommand(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the output, or in the error when wantErr
		err  bool
	}{
		{"no late events", []string{"--late", "0"}, "(0 late, 0 repeated)", false},
		{"some late and repeated", []string{"--late", "0.2", "--duplicates", "0.1"}, " late, ", false},
		{"months 0", []string{"--months", "0"}, "--months 0: want at least 1", true},
		{"negative late", []string{"--late", "-1"}, "--late -1: want a fraction from 0 to 1", true},
		{"duplicates above 1", []string{"--duplicates", "1.5"}, "--duplicates 1.5: want a fraction", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"synth", "--persons", "200", "--out", t.TempDir()}, tt.args...)
			out, err := execute(t, rootCommand(), args...)
			switch {
			case tt.err && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("pophub %s: %v (%s); want an error about %q", strings.Join(args, " "), err, out, tt.want)
			case !tt.err && (err != nil || !strings.Contains(out, tt.want)):
				t.Fatalf("pophub %s: %v\n%s\nwant %q in the output", strings.Join(args, " "), err, out, tt.want)
			}
			if tt.name == "some late and repeated" && strings.Contains(out, "(0 late") {
				t.Errorf("--late 0.2 gave no late events:\n%s", out)
			}
		})
	}
}
