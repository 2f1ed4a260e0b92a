package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas"
)

// TestForeignSourceOnlyWhenUnambiguous: an event is refused as another
// department's (403) only when its source, as the hub's decoder reads it,
// is another department's. An event that names its source twice, or in
// another case, is invalid (422) whichever name comes last — it is not
// read the way encoding/json reads it (the last member wins, names match
// in any case).
func TestForeignSourceOnlyWhenUnambiguous(t *testing.T) {
	url, _ := setup(t)
	const rest = `"type":"housing.property_transferred","subject":"330602198510210103","time":"2024-01-02T10:00:00+08:00","data":{"property_id":"FC1"}}`
	tests := []struct {
		name, body string
		status     int
		reason     string
		field      string
	}{
		{"source twice, another's last", `{"specversion":"1.0","id":"h-1","source":"housing","source":"health",` + rest,
			http.StatusUnprocessableEntity, schemas.ReasonNotJSON, "source"},
		{"source twice, ours last", `{"specversion":"1.0","id":"h-1","source":"health","source":"housing",` + rest,
			http.StatusUnprocessableEntity, schemas.ReasonNotJSON, "source"},
		{"another's source in capitals", `{"specversion":"1.0","id":"h-1","source":"housing","SOURCE":"health",` + rest,
			http.StatusUnprocessableEntity, schemas.ReasonNotCloudEvent, ""},
		{"another's source, our type", `{"specversion":"1.0","id":"h-1","source":"health",` + rest,
			http.StatusForbidden, reasonForbiddenSource, "source"},
		{"another's source, no id", `{"specversion":"1.0","source":"health",` + rest,
			http.StatusForbidden, reasonForbiddenSource, "source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, p := post(t, url, "housing-secret", ContentTypeEvent, []byte(tc.body))
			if status != tc.status || len(p.Errors) != 1 {
				t.Fatalf("%d %s %+v, want %d with one event error", status, p.Detail, p.Errors, tc.status)
			}
			wantID := "h-1"
			if !strings.Contains(tc.body, `"id"`) {
				wantID = ""
			}
			if e := p.Errors[0]; e.Reason != tc.reason || e.Field != tc.field || e.ID != wantID {
				t.Errorf("event error %+v, want reason %s on field %q for id %q", e, tc.reason, tc.field, wantID)
			}
		})
	}
}
