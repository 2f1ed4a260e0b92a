package sdk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeadLettersDocumented checks that the AsyncAPI document describes the
// dead-letter subject and every header the SDK adds to a dead letter.
func TestDeadLettersDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "schemas", "jsonschema", "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var c Config
	c.setDefaults()
	if !strings.Contains(doc, "address: "+c.DeadLetterPrefix+".{subscriber}") {
		t.Errorf("asyncapi.yaml has no channel %s.{subscriber}", c.DeadLetterPrefix)
	}
	for _, h := range []string{HeaderError, HeaderAttempts, HeaderSubject, HeaderStreamSequence, HeaderSubscriber} {
		if !strings.Contains(doc, h) {
			t.Errorf("asyncapi.yaml does not mention the dead-letter header %s", h)
		}
	}
}
