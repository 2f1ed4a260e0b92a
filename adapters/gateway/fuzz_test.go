package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

// FuzzEventBody: one event sent alone and the same event as a batch of one
// get the same verdict, and what is accepted is valid and sent whole.
func FuzzEventBody(f *testing.F) {
	for _, ev := range housingEvents(f, 2) {
		v, err := schemas.Encode(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	f.Add([]byte(`{"specversion":"1.0"}`))
	f.Add([]byte("\xef\xbb\xbf{}"))
	do := func(ctype string, body []byte) (int, *recordingSender) {
		sender := &recordingSender{}
		h, err := New(Config{Sender: sender, Tokens: []Token{{Source: schemas.Housing, SHA256: HashToken("housing-secret")}}})
		if err != nil {
			f.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer housing-secret")
		r.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, sender
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		if len(ev) > 1<<14 || bytes.HasPrefix(bytes.TrimLeft(ev, " \t\r\n"), []byte("[")) || bytes.HasPrefix(ev, []byte("\xef\xbb\xbf")) {
			return
		}
		one, s1 := do(ContentTypeEvent, ev)
		batch, s2 := do(ContentTypeBatch, append(append([]byte("["), ev...), ']'))
		if one == http.StatusAccepted {
			if len(s1.got) != 1 {
				t.Fatalf("202 with %d events sent", len(s1.got))
			}
			v, err := schemas.Encode(s1.got[0])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(schemas.Housing), Key: []byte(s1.got[0].Subject), Value: v, Now: time.Now()}); err != nil {
				t.Fatalf("accepted, but the hub refuses it: %v", err)
			}
		}
		// A value that is no JSON object may break the array (400) where
		// the single event is a 422; only an accepted one must agree.
		if (one == http.StatusAccepted) != (batch == http.StatusAccepted) {
			t.Fatalf("alone %d, as a batch of one %d (%d, %d sent)", one, batch, len(s1.got), len(s2.got))
		}
	})
}
