package importer

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestTopicHiddenByACLs: a Kafka user sees only the topics its ACLs let
// it describe, so to an import logged in as another department's user
// the source's topic looks missing. The error says it may be the user's
// grants, not only that the topic does not exist.
func TestTopicHiddenByACLs(t *testing.T) {
	allow := func(op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: schemas.Topic(schemas.Housing),
			Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	addr := testenv.Kafka(t, partitions, kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.User("SCRAM-SHA-512", "housing", "pw", allow(kmsg.ACLOperationDescribe), allow(kmsg.ACLOperationWrite)))
	file := tempFile(t, "marriage.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(marriageLines(t, 20), "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Source: schemas.Marriage, File: file, Brokers: []string{addr}, SASL: access.SCRAMClient{User: "housing", Password: "pw"}}
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "pop.events.marriage") || !strings.Contains(err.Error(), "may not describe") {
		t.Fatalf("import to a topic the user may not see: %v, want an error naming the topic and the user's grants", err)
	}
}
