package schemas

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
)

func sampleNotification() Notification {
	return Notification{ChangeID: "0a1b2c3d4e5f60718293a4b5.migration", CitizenID: citizenid.ID("230102199001011230"), Version: 7,
		Section: KindMigration, EventID: "ps-2026-000123", EventType: HukouMigrated, Source: PublicSecurity,
		Time: time.Date(2026, 3, 1, 0, 0, 0, 0, time.FixedZone("", 8*3600)), AppliedAt: time.Date(2026, 3, 1, 1, 2, 3, 456789000, time.UTC),
		FromAddressCode: "230102001001", ToAddressCode: "230602013004", Reason: "employment"}
}

// TestDecodeNotificationAgreesWithEncodingJSON decodes the hub's own
// encoding and a table of other documents both ways: the results and the
// success must agree.
func TestDecodeNotificationAgreesWithEncodingJSON(t *testing.T) {
	n := sampleNotification()
	hub := string(n.AppendJSON(nil))
	docs := []string{
		hub,
		` { "version" : 3 , "change_id" : "x.hukou" } `,
		`{}`,
		`{"change_id":"a\"b","version":1}`, // escape: slow path
		`{"event_id":"事件-1","version":1}`,  // non-ASCII: slow path
		`{"change_id":"x","extra":{"nested":[1,2]}}`, // unknown field
		`{"version":1.5}`, `{"version":-0}`, `{"version":01}`, // numbers
		`{"citizen_id":"230102199001011231"}`, // bad check character
		`{"time":"yesterday"}`, `{"time":null}`, `{"version":null}`,
		`{"change_id":"x",}`, `{"change_id":"x"`, `[]`, `"x"`, ``, `{"change_id":"x"} trailing`,
	}
	for _, doc := range docs {
		var fast, slow Notification
		errFast := DecodeNotification([]byte(doc), &fast)
		errSlow := json.Unmarshal([]byte(doc), &slow)
		if (errFast == nil) != (errSlow == nil) || !reflect.DeepEqual(fast, slow) {
			t.Errorf("%q: fast %+v (%v), encoding/json %+v (%v)", doc, fast, errFast, slow, errSlow)
		}
	}
	var got Notification
	if err := DecodeNotification([]byte(hub), &got); err != nil || !got.Time.Equal(n.Time) || got.Version != 7 || got.CitizenID != n.CitizenID {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}

func FuzzDecodeNotification(f *testing.F) {
	n := sampleNotification()
	f.Add(n.AppendJSON(nil))
	f.Add([]byte(`{"version":1,"change_id":"a"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow Notification
		errFast := DecodeNotification(b, &fast)
		errSlow := json.Unmarshal(b, &slow)
		if (errFast == nil) != (errSlow == nil) {
			t.Fatalf("%q: fast error %v, encoding/json error %v", b, errFast, errSlow)
		}
		if errFast == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", b, fast, slow)
		}
	})
}

func BenchmarkDecodeNotification(b *testing.B) {
	n := sampleNotification()
	doc := n.AppendJSON(nil)
	b.Run("fast", func(b *testing.B) {
		var out Notification
		for b.Loop() {
			if err := DecodeNotification(doc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		var out Notification
		for b.Loop() {
			if err := json.Unmarshal(doc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
