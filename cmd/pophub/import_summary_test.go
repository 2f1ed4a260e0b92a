package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/pophub/pophub/adapters/importer"
)

// TestStoppedImportSummaryCountsSeparators: an import that stopped (a
// broker fault, Ctrl-C, a rejects file that cannot be written) sent its
// lines with the middle dot · for the look-alikes typed, as a finished
// one does, and its summary says so in the same words.
func TestStoppedImportSummaryCountsSeparators(t *testing.T) {
	rep := &importer.Report{File: "hukou.csv", Read: 5, Valid: 5, Sent: 5, Upgraded: 1, Separators: 3}
	got := importSummary(rep, errors.New("sending lines 1–5: interrupted"))
	if !strings.Contains(got, "3 name separators replaced by the middle dot ·") {
		t.Errorf("summary of a stopped import: %q; want it to count the 3 name separators replaced", got)
	}
	rep.Separators = 0
	if got := importSummary(rep, errors.New("sending lines 1–5: interrupted")); strings.Contains(got, "name separators") {
		t.Errorf("summary of a stopped import that replaced none: %q; want no count of separators", got)
	}
}
