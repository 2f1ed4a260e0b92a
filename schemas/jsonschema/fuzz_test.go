package jsonschema

import (
	"reflect"
	"testing"

	"github.com/pophub/pophub/schemas"
)

// FuzzDecodeCatalogue fuzzes the decoder from an envelope of every
// documented example: it never panics, rejects only with a reason, and an
// accepted event survives Encode and Decode unchanged.
func FuzzDecodeCatalogue(f *testing.F) {
	for _, typ := range schemas.Types() {
		examples, err := Examples(typ)
		if err != nil {
			f.Fatal(err)
		}
		for _, ex := range examples {
			f.Add(envelope(typ, ex))
		}
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		ev, err := schemas.Decode(schemas.Input{Value: value, Now: decodeNow})
		if err != nil {
			if schemas.ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		b, err := schemas.Encode(ev)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		again, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: b, Now: decodeNow})
		if err != nil {
			t.Fatalf("re-encoded event rejected: %v\n%s", err, b)
		}
		if again.ID != ev.ID || again.Source != ev.Source || again.Type != ev.Type || again.Subject != ev.Subject ||
			!again.Time.Equal(ev.Time) || !reflect.DeepEqual(again.Payload, ev.Payload) {
			t.Fatalf("round trip changed the event: %+v vs %+v", again, ev)
		}
	})
}
