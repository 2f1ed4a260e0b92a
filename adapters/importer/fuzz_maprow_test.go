package importer

import (
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

var fuzzSources = []schemas.Source{schemas.PublicSecurity, schemas.Housing, schemas.Education, schemas.Marriage, schemas.Tax, schemas.Health, schemas.Employment, schemas.SocialInsurance}

// FuzzMapRow: a row the importer accepts is an event the hub accepts, as
// it was built: the importer's verdict agrees with schemas.Decode.
func FuzzMapRow(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type setup struct {
		p   *plan
		tab table
	}
	setups := make([]setup, len(fuzzSources))
	for i, src := range fuzzSources {
		m := mustMapping(f, src)
		tab, _ := render(f, m, population(f, 30, src))
		p, err := newPlan(m, tab.header)
		if err != nil {
			f.Fatal(err)
		}
		setups[i] = setup{p, tab}
		for j, r := range tab.rows {
			if j >= 3 {
				break
			}
			for c := range r {
				f.Add(uint8(i), uint8(j), uint8(c), r[c], uint8(0))
				f.Add(uint8(i), uint8(j), uint8(c), r[c], uint8(1))
			}
		}
	}
	f.Fuzz(func(t *testing.T, which, rowIdx, col uint8, value string, kind uint8) {
		s := setups[int(which)%len(setups)]
		cells := append([]string(nil), s.tab.rows[int(rowIdx)%min(3, len(s.tab.rows))]...)
		c := int(col) % len(cells)
		cells[c] = value
		var kinds []cellKind
		if kind%3 != 0 {
			kinds = make([]cellKind, len(cells))
			kinds[c] = cellKind(kind % 3)
		}
		m := s.p.mapRow(2, cells, kinds, now)
		if m.rej != nil {
			return
		}
		ev, err := schemas.Decode(schemas.Input{Topic: s.p.topic, Key: m.key, Value: m.value, Now: now, FromKafka: true})
		if err != nil {
			t.Fatalf("importer accepted %q (kinds %v), hub refuses: %v\n%s", cells, kinds, err, m.value)
		}
		again, err := schemas.Encode(ev)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		if _, err := schemas.Decode(schemas.Input{Topic: s.p.topic, Key: m.key, Value: again, Now: now, FromKafka: true}); err != nil {
			t.Fatalf("re-encoded event refused: %v", err)
		}
	})
}
