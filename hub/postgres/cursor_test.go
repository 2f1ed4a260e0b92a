package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestPersonsRefusesCursorsItDidNotMake: a walk of everyone's cursor is a
// person key of the shape this store makes (a citizen ID in the clear, a
// keyed hash when sealed), a region walk's an address code and such a
// key, a region walk's in key order (KeyOrder) such a key alone; anything
// else is refused (hub.ErrInvalid), as the memdb store refuses it, rather
// than taken as a place to start from.
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
			_, ownKeyOrder, err := s.Persons(context.Background(), hub.PersonQuery{Region: "23", KeyOrder: true, Limit: 1})
			if err != nil || ownKeyOrder == "" {
				t.Fatalf("first page of 23 in key order: cursor %q, %v", ownKeyOrder, err)
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
				{"a key-order walk's, in an address-order walk", ownKeyOrder, "23", false},
			}
			for _, tc := range tests {
				_, _, err := s.Persons(context.Background(), hub.PersonQuery{Region: tc.region, After: tc.cursor, Limit: 2})
				if tc.ok && err != nil || !tc.ok && !errors.Is(err, hub.ErrInvalid) {
					t.Errorf("%s: %v, want ok %t", tc.name, err, tc.ok)
				}
			}
			// A region walk in key order (KeyOrder) takes a person key.
			keyOrderTests := []struct {
				name, cursor string
				ok           bool
			}{
				{"its own key-order region walk's", ownKeyOrder, true},
				{"a walk of everyone's", own, true},
				{"an address-order walk's", ownRegion, false},
				{"a key of the other mode", st.other, false},
				{"letters", "zzzz", false},
			}
			for _, tc := range keyOrderTests {
				_, _, err := s.Persons(context.Background(), hub.PersonQuery{Region: "23", After: tc.cursor, KeyOrder: true, Limit: 2})
				if tc.ok && err != nil || !tc.ok && !errors.Is(err, hub.ErrInvalid) {
					t.Errorf("%s: %v, want ok %t", tc.name, err, tc.ok)
				}
			}
		})
	}
}

// TestPersonsInKeyOrder: a region walk in key order (hub.PersonQuery
// KeyOrder, the walk of a caller who may not read hukou addresses)
// returns each person of the region once, across pages, in key order,
// and its cursor is the last key returned, with no address in it; the
// walk in address order still goes by address, its cursor "address|key".
func TestPersonsInKeyOrder(t *testing.T) {
	k := storetest.Keyring(t, storetest.Keys(t))
	stores := map[string]*Store{
		"clear":  openTestStore(t, testenv.Schema(t)),
		"sealed": openSealedStore(t, testenv.Schema(t), k),
	}
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, schemas.CST())
	// Alternate villages, so that key order is not address order.
	addrs := []string{"230102019200", "230102001001", "230103001001"}
	var in []hub.Input
	want := map[citizenid.ID]string{}
	for n := range 11 {
		id := storetest.ValidID(700 + n)
		addr := addrs[n%len(addrs)]
		in = append(in, storetest.Event(t, schemas.HukouRegistered, id, fmt.Sprintf("ko-%d", n), at,
			schemas.HukouRegisteredData{Name: "李娜", Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly),
				Ethnicity: "01", AddressCode: addr, HouseholdID: "H1", Reason: "birth"}))
		if strings.HasPrefix(addr, "230102") {
			want[id] = addr
		}
	}
	for name, s := range stores {
		t.Run(name, func(t *testing.T) {
			storetest.ApplyAll(t, s, in, 4)
			for _, keyOrder := range []bool{true, false} {
				seen := map[citizenid.ID]bool{}
				var last string // the previous record's order key
				after := ""
				for pages := 0; ; pages++ {
					if pages > len(in) {
						t.Fatalf("key order %t: the walk does not end", keyOrder)
					}
					recs, next, err := s.Persons(context.Background(), hub.PersonQuery{Region: "230102", After: after, KeyOrder: keyOrder, Limit: 2})
					if err != nil {
						t.Fatalf("key order %t, page %d: %v", keyOrder, pages, err)
					}
					for _, r := range recs {
						if _, ok := want[r.CitizenID]; !ok || seen[r.CitizenID] {
							t.Fatalf("key order %t: %v returned twice or outside the region", keyOrder, r.CitizenID)
						}
						seen[r.CitizenID] = true
						order := s.personKey(r.CitizenID)
						if !keyOrder {
							order = r.Hukou.AddressCode + "|" + order
						}
						if order <= last {
							t.Errorf("key order %t: %q after %q", keyOrder, order, last)
						}
						last = order
					}
					if next == "" {
						break
					}
					if keyOrder {
						if next != s.personKey(recs[len(recs)-1].CitizenID) {
							t.Errorf("cursor %q is not the last key returned", next)
						}
						for _, a := range addrs {
							if strings.Contains(next, a) {
								t.Errorf("cursor %q of a key-order walk holds the address %s", next, a)
							}
						}
					} else if !strings.HasPrefix(next, recs[len(recs)-1].Hukou.AddressCode+"|") {
						t.Errorf("cursor %q of an address-order walk is not address|key", next)
					}
					after = next
				}
				if len(seen) != len(want) {
					t.Errorf("key order %t: %d persons, want %d", keyOrder, len(seen), len(want))
				}
			}
		})
	}
}
