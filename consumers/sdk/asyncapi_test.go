package sdk

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"
)

// TestDeadLettersDocumented checks that the AsyncAPI document describes the
// dead-letter subject and its message as the SDK writes it: every header
// it sets (its own Nats-Msg-Id, the Pophub-* ones, the notification's
// traceparent), and the form of that Nats-Msg-Id.
func TestDeadLettersDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "schemas", "jsonschema", "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checkDeadLettersDocumented(t, b)
}

func checkDeadLettersDocumented(t *testing.T, b []byte) {
	t.Helper()
	doc := string(b)
	var c Config
	c.setDefaults()
	if !strings.Contains(doc, "address: "+c.DeadLetterPrefix+".{subscriber}") {
		t.Errorf("asyncapi.yaml has no channel %s.{subscriber}", c.DeadLetterPrefix)
	}
	var spec struct {
		Channels map[string]struct {
			Address  string
			Messages map[string]struct {
				Ref string `yaml:"$ref"`
			}
		}
		Components struct {
			Messages map[string]struct {
				Headers struct {
					Required   []string
					Properties map[string]struct{ Pattern string }
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &spec); err != nil {
		t.Fatalf("parsing asyncapi.yaml: %v", err)
	}
	var refs []string
	for _, ch := range spec.Channels {
		if ch.Address == c.DeadLetterPrefix+".{subscriber}" {
			for _, m := range ch.Messages {
				refs = append(refs, m.Ref)
			}
		}
	}
	if len(refs) != 1 || !strings.HasPrefix(refs[0], "#/components/messages/") {
		t.Fatalf("dead-letter channel messages %v, want one of components/messages", refs)
	}
	m := spec.Components.Messages[strings.TrimPrefix(refs[0], "#/components/messages/")]
	var documented []string
	for h := range m.Headers.Properties {
		documented = append(documented, h)
	}
	set := []string{nats.MsgIdHdr, HeaderError, HeaderAttempts, HeaderSubject, HeaderStreamSequence, HeaderSubscriber}
	want := append([]string{"traceparent"}, set...)
	slices.Sort(documented)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Errorf("dead letter headers documented %v, want %v", documented, want)
	}
	for _, h := range set {
		if !slices.Contains(m.Headers.Required, h) {
			t.Errorf("dead letter header %s, always set, is not required", h)
		}
	}
	pattern, err := regexp.Compile(m.Headers.Properties[nats.MsgIdHdr].Pattern)
	if err != nil || m.Headers.Properties[nats.MsgIdHdr].Pattern == "" {
		t.Fatalf("dead letter Nats-Msg-Id pattern %q: %v", m.Headers.Properties[nats.MsgIdHdr].Pattern, err)
	}
	withID := nats.Header{}
	withID.Set(nats.MsgIdHdr, "3f1c0a9e")
	for _, id := range []string{deadLetterID("socialinsurance-2301", newInstanceID(), 7, withID, nil), deadLetterID("si-harbin", newInstanceID(), 1, nil, []byte("{"))} {
		if !pattern.MatchString(id) {
			t.Errorf("dead letter id %q does not match the documented pattern %s", id, pattern)
		}
	}
}
