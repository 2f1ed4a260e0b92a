package main

import (
	"os"
	"strings"
	"testing"
)

// The README shows this program in full; it must be the program that
// compiles here.
func TestREADMEShowsTheExample(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+string(src)+"```\n") {
		t.Error("README.md does not show adapters/publisher/example/main.go as it is; copy the file into its go block")
	}
}
