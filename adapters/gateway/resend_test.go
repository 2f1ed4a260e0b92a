package gateway

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestIdenticalResendInBatch: a batch that holds one event twice, byte for
// byte, is accepted whole and sent as it came: the hub applies the event
// once and counts the repeat.
func TestIdenticalResendInBatch(t *testing.T) {
	url, broker := setup(t)
	raws := encodeAll(t, housingEvents(t, 2))
	body, err := json.Marshal([]json.RawMessage{raws[0], raws[1], raws[0]})
	if err != nil {
		t.Fatal(err)
	}
	if status, p := post(t, url, "housing-secret", ContentTypeBatch, body); status != http.StatusAccepted {
		t.Fatalf("%d %s %+v, want 202", status, p.Detail, p.Errors)
	}
	if n := testenv.RecordCount(t, broker, schemas.Topic(schemas.Housing)); n != 3 {
		t.Errorf("%d records on the topic, want 3: the repeat sent as it came", n)
	}
}
