package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas"
)

// TestMalformedEventInABatch: an event that is not valid JSON in a batch
// whose array is intact is an invalid event like any other: the 422 names
// it by its index with the reason not_json, lists the batch's other invalid
// events with it, and nothing is sent.
func TestMalformedEventInABatch(t *testing.T) {
	raws := encodeAll(t, housingEvents(t, 1000))
	// broken gives raws with the events at the indices replaced.
	broken := func(with map[int]string) []byte {
		parts := make([]string, len(raws))
		for i, r := range raws {
			parts[i] = string(r)
			if s, ok := with[i]; ok {
				parts[i] = s
			}
		}
		return []byte("[" + strings.Join(parts, ",") + "]")
	}
	rawTab := func(i int) string { return strings.Replace(string(raws[i]), `"subject":"`, "\"subject\":\"\t", 1) }
	badEscape := func(i int) string { return strings.Replace(string(raws[i]), `"subject":"`, `"subject":"\x`, 1) }
	wrongSubject := strings.Replace(string(raws[0]), `"subject":"`, `"subject":"x`, 1)
	foreign := strings.Replace(string(raws[3]), `"source":"housing"`, `"source":"tax"`, 1)
	tests := []struct {
		name   string
		body   []byte
		status int
		want   map[int]string // index → reason of each event error
	}{
		{"a raw tab in event 537 of 1,000", broken(map[int]string{537: rawTab(537)}),
			http.StatusUnprocessableEntity, map[int]string{537: schemas.ReasonNotJSON}},
		{"a bad escape and an invalid subject", broken(map[int]string{0: wrongSubject, 2: badEscape(2)}),
			http.StatusUnprocessableEntity, map[int]string{0: schemas.ReasonInvalidSubject, 2: schemas.ReasonNotJSON}},
		{"a misspelt literal", broken(map[int]string{1: "tru"}),
			http.StatusUnprocessableEntity, map[int]string{1: schemas.ReasonNotJSON}},
		{"a string with a raw newline", broken(map[int]string{1: "\"a\nb\""}),
			http.StatusUnprocessableEntity, map[int]string{1: schemas.ReasonNotJSON}},
		{"a number with a leading zero", broken(map[int]string{999: "01"}),
			http.StatusUnprocessableEntity, map[int]string{999: schemas.ReasonNotJSON}},
		{"a malformed event and another department's", broken(map[int]string{1: rawTab(1), 3: foreign}),
			http.StatusForbidden, map[int]string{3: reasonForbiddenSource}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if json.Valid(tc.body) {
				t.Fatal("the batch is valid JSON")
			}
			sender := &recordingSender{}
			url := serve(t, sender)
			status, p := post(t, url, "housing-secret", ContentTypeBatch, tc.body)
			if status != tc.status {
				t.Fatalf("HTTP %d %s %+v, want %d", status, p.Detail, p.Errors, tc.status)
			}
			got := map[int]string{}
			for _, e := range p.Errors {
				got[e.Index] = e.Reason
				if e.Detail == "" {
					t.Errorf("event %d: no detail", e.Index)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("event errors %v, want %v", got, tc.want)
			}
			if len(sender.got) != 0 {
				t.Errorf("%d events sent", len(sender.got))
			}
		})
	}
}

// TestUndelimitedBatch: a batch whose array cannot be split into its
// events answers 400 with the byte offset (counted in the body as sent,
// decompressed, byte order mark included) and the event where the array
// stops being one.
func TestUndelimitedBatch(t *testing.T) {
	raws := encodeAll(t, housingEvents(t, 1000))
	full, _ := json.Marshal(raws)
	at537 := bytes.Index(full, raws[537]) + len(raws[537])/2
	after3 := bytes.Index(full, raws[4]) - 1 // the comma after event 3
	noComma := append(append(append([]byte{}, full[:after3]...), ' '), full[after3+1:]...)
	bom := append([]byte("\xef\xbb\xbf"), full[:at537]...)
	tests := []struct {
		name   string
		body   []byte
		detail []string
	}{
		{"cut inside event 537", full[:at537], []string{fmt.Sprintf("byte %d", at537), "event 537"}},
		{"cut inside event 537, after a byte order mark", bom, []string{fmt.Sprintf("byte %d", len(bom)), "event 537"}},
		{"no comma after event 3", noComma, []string{fmt.Sprintf("byte %d", after3+1), "event 3", "','"}},
		{"an unclosed string", []byte(`[{"id":"x}]`), []string{"byte 11", "event 0", "inside a string"}},
		{"a bracket that closes a brace", []byte(`[{"id":"x"]]`), []string{"byte 10", "event 0"}},
		{"a trailing comma", []byte("[" + string(raws[0]) + ",]"), []string{fmt.Sprintf("byte %d", len(raws[0])+2), "event 1"}},
		{"data after the array", []byte("[" + string(raws[0]) + "] x"), []string{fmt.Sprintf("byte %d", len(raws[0])+3)}},
		{"an object", raws[0], []string{"a batch must be a JSON array", "byte 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sender := &recordingSender{}
			url := serve(t, sender)
			status, p := post(t, url, "housing-secret", ContentTypeBatch, tc.body)
			if status != http.StatusBadRequest || p.Type != "urn:pophub:problem:invalid-request" || len(p.Errors) != 0 {
				t.Fatalf("HTTP %d %+v, want 400 invalid-request", status, p)
			}
			for _, want := range tc.detail {
				if !strings.Contains(p.Detail, want) {
					t.Errorf("detail %q does not say %q", p.Detail, want)
				}
			}
			if len(sender.got) != 0 {
				t.Errorf("%d events sent", len(sender.got))
			}
		})
	}
}

// serve runs a gateway with the housing token in front of sender.
func serve(t *testing.T, sender Sender) string {
	t.Helper()
	h, err := New(Config{Sender: sender, Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken("housing-secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
