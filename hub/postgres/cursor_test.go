package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// TestPersonsRefusesCursorsItDidNotMake: a walk of everyone's cursor is a
// person key of the shape this store makes (a citizen ID in the clear, a
// keyed hash when sealed), a region walk's an address code and such a
// key; anything else is refused (hub.ErrInvalid), as the memdb store
// refuses it, rather than taken as a place to start from.
func TestPersonsRefusesCursorsItDidNotMake(t *testing.T) {
	k := storetest.Keyring(t, storetest.Keys(t))
	id := string(storetest.ValidID(1))
	stores := map[string]struct {
		s     *Store
		other string // a key of the other mode
	}{
		"clear":  {openTestStore(t, testenv.Schema(t)), k.PersonKey(id)},
		"sealed": {openSealedStore(t, testenv.Schema(t), k), id},
	}
	for name, st := range stores {
		t.Run(name, func(t *testing.T) {
			s := st.s
			storetest.ApplyAll(t, s, storetest.Population(t, 6, 3), 6)
			_, own, err := s.Persons(context.Background(), hub.PersonQuery{Limit: 1})
			if err != nil || own == "" {
				t.Fatalf("first page: cursor %q, %v", own, err)
			}
			_, ownRegion, err := s.Persons(context.Background(), hub.PersonQuery{Region: "23", Limit: 1})
			if err != nil || ownRegion == "" {
				t.Fatalf("first page of 23: cursor %q, %v", ownRegion, err)
			}
			addr, _, _ := strings.Cut(ownRegion, "|")
			tests := []struct {
				name, cursor, region string
				ok                   bool
			}{
				{"its own", own, "", true},
				{"its own region walk's", ownRegion, "23", true},
				{"one digit", "1", "", false},
				{"letters", "zzzz", "", false},
				{"a key of the other mode", st.other, "", false},
				{"in upper case", strings.ToUpper(own), "", strings.ToUpper(own) == own},
				{"a letter no key has", own[:len(own)-1] + "Y", "", false},
				{"one character short", own[:len(own)-1], "", false},
				{"a region walk's, in a walk of everyone", ownRegion, "", false},
				{"a walk of everyone's, in a region walk", own, "23", false},
				{"a region walk's with one digit for a key", addr + "|1", "23", false},
				{"a region walk's with a key of the other mode", addr + "|" + st.other, "23", false},
			}
			for _, tc := range tests {
				_, _, err := s.Persons(context.Background(), hub.PersonQuery{Region: tc.region, After: tc.cursor, Limit: 2})
				if tc.ok && err != nil || !tc.ok && !errors.Is(err, hub.ErrInvalid) {
					t.Errorf("%s: %v, want ok %t", tc.name, err, tc.ok)
				}
			}
		})
	}
}
