package memdb

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
)

// TestPersonsRefusesCursorsItDidNotMake: a walk's cursor is a person key
// of the shape this store makes (a citizen ID in the clear, a keyed hash
// when sealed), in every walk; anything else is refused (hub.ErrInvalid),
// as the PostgreSQL store refuses it, rather than taken as a place to
// start from.
func TestPersonsRefusesCursorsItDidNotMake(t *testing.T) {
	k := storetest.Keyring(t, storetest.Keys(t))
	id := string(storetest.ValidID(1))
	stores := map[string]struct {
		s     *Store
		other string // a key of the other mode
	}{
		"clear":  {open(t, ""), k.PersonKey(id)},
		"sealed": {openSealed(t, Config{Dir: t.TempDir(), Keys: k}), id},
	}
	for name, st := range stores {
		t.Run(name, func(t *testing.T) {
			s := st.s
			storetest.ApplyAll(t, s, storetest.Population(t, 6, 3), 6)
			_, own, err := s.Persons(context.Background(), hub.PersonQuery{Limit: 1})
			if err != nil || own == "" {
				t.Fatalf("first page: cursor %q, %v", own, err)
			}
			tests := []struct {
				name, cursor string
				ok           bool
			}{
				{"its own", own, true},
				{"one digit", "1", false},
				{"letters", "zzzz", false},
				{"a key of the other mode", st.other, false},
				{"in upper case", strings.ToUpper(own), strings.ToUpper(own) == own},
				{"a letter no key has", own[:len(own)-1] + "Y", false},
				{"one character short", own[:len(own)-1], false},
				{"a PostgreSQL region cursor", "230102001001|" + own, false},
			}
			for _, tc := range tests {
				for _, region := range []string{"", "23"} {
					_, _, err := s.Persons(context.Background(), hub.PersonQuery{Region: region, After: tc.cursor, Limit: 2})
					if tc.ok && err != nil || !tc.ok && !errors.Is(err, hub.ErrInvalid) {
						t.Errorf("%s, region %q: %v, want ok %t", tc.name, region, err, tc.ok)
					}
				}
			}
		})
	}
}
