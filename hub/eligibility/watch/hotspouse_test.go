package watch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestMarriageChangeOfAHotSpouseDecidesAHandful: a marital change of one
// person re-decides a bounded number of others, however many marriages
// their history holds. A spouse_id the marriage register wrote into many
// marriages (a data error, a placeholder for "spouse not on file") gives
// that person, through the register's one event per spouse, a history
// naming every one of those people, each of whose own records names them
// back. Only the spouse the record names after the change and the one it
// named before can have their family reunion confirmed or ended by it;
// deciding everyone the history names made k such changes cost k²
// decisions, and the watcher, which every instance's eligibility
// announcements go through, stalled for everyone.
func TestMarriageChangeOfAHotSpouseDecidesAHandful(t *testing.T) {
	const named = 400
	hot := storetest.ValidID(0)
	other := func(i int) citizenid.ID { return storetest.ValidID(1 + i) }
	at := func(i int) time.Time {
		return time.Date(2020, 1, 1, 9, 0, 0, 0, china).Add(time.Duration(i) * time.Hour)
	}
	tests := []struct {
		name   string
		change func(t *testing.T) hub.Input
		// want is the decisions made: the changed person's own, the
		// spouse named before and the one named after.
		want int
	}{
		{"marries someone new", func(t *testing.T) hub.Input {
			return storetest.Event(t, schemas.MarriageRegistered, hot, "mz-new", at(named),
				schemas.MarriageRegisteredData{SpouseID: other(named)})
		}, 3},
		{"divorces the spouse named now", func(t *testing.T) hub.Input {
			return storetest.Event(t, schemas.MarriageDivorced, hot, "mz-d", at(named),
				schemas.MarriageDivorcedData{SpouseID: other(named - 1)})
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			js, cat := streamAndCatalog(t)
			store := openStore(t)
			var in []hub.Input
			for i := range named {
				o := other(i)
				in = append(in,
					storetest.Event(t, schemas.MarriageRegistered, hot, fmt.Sprintf("mz-%d", i), at(i),
						schemas.MarriageRegisteredData{SpouseID: o}),
					// Registered at a town address in Chifeng, their own
					// record naming the hot person as spouse.
					storetest.Event(t, schemas.HukouRegistered, o, fmt.Sprintf("hk-%d", i), time.Date(2019, 1, 1, 9, 0, 0, 0, china),
						schemas.HukouRegisteredData{Name: "王芳", Gender: o.Gender(), BirthDate: o.BirthDate().Format(time.DateOnly),
							Ethnicity: "01", AddressCode: "150402001001", HouseholdID: fmt.Sprintf("H-%d", i), Reason: "birth"}),
					storetest.Event(t, schemas.MarriageRegistered, o, fmt.Sprintf("mz-own-%d", i), at(i),
						schemas.MarriageRegisteredData{SpouseID: hot}))
			}
			if _, err := store.Apply(ctx, in); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Apply(ctx, []hub.Input{tt.change(t)}); err != nil {
				t.Fatal(err)
			}
			notes := notesOf(t, store, hot)

			now := func() time.Time { return time.Date(2025, 4, 10, 12, 0, 0, 0, china) }
			w := watchers(t, js, cat, now, "chifeng/central", store)[0]
			decisions, err := w.Process(ctx, notes)
			if err != nil {
				t.Fatal(err)
			}
			if decisions != tt.want {
				t.Errorf("one marital change of a person whose history names %d spouses made %d decisions, want %d "+
					"(the person, the spouse named before and the one named after)", named, decisions, tt.want)
			}
		})
	}
}
