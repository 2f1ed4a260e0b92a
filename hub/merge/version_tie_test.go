package merge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// TestCorrectedVersionWinsAtSameTime: a department corrects a record
// without changing when it took effect (a lease's signing date), raising
// its version, and sends it with publisher.EventID, as the importer and
// CDC do. Ties at one time are broken by source and event id, so the
// derived ids must order a record's versions: the correction wins, in
// either arrival order.
func TestCorrectedVersionWinsAtSameTime(t *testing.T) {
	p := storetest.ValidID(1)
	at := time.Date(2024, 3, 1, 0, 0, 0, 0, schemas.CST())
	addresses := []string{"230102001001", "230103001001", "230104001001"}
	for k := range 20 {
		key := fmt.Sprintf("lease-%d", k)
		for _, versions := range [][]int64{{1, 2}, {2, 1}, {-1, 0}, {9, 10}, {1, 1 << 40}} {
			var in []hub.Input
			for j, v := range versions {
				in = append(in, storetest.Event(t, schemas.RentalRegistered, p, publisher.EventID(schemas.Housing, key, v), at,
					map[string]any{"lease_id": key, "address_code": addresses[j], "start": "2024-03-01"}))
			}
			later := 0 // the index of the higher version
			if versions[1] > versions[0] {
				later = 1
			}
			rec := merge.Batch(nil, in, time.Now()).States[p].Record()
			if len(rec.Housing.Rentals) != 1 || rec.Housing.Rentals[0].AddressCode != addresses[later] {
				t.Errorf("%s, versions %d sent in that order: rentals %+v, want the address of version %d", key, versions, rec.Housing.Rentals, versions[later])
			}
		}
	}
}

// TestVersionedIDWinsTieOverLegacyID: ids derived before versions were
// part of them ("housing-<24 hex>") sort at random against those derived
// since; a correction derived after the upgrade must still win the tie
// with the version it corrects, in either order of comparison.
func TestVersionedIDWinsTieOverLegacyID(t *testing.T) {
	at := time.Date(2026, 6, 1, 10, 0, 0, 0, schemas.CST())
	for _, legacy := range []string{"housing-33bb252b595ae119f2634f6a", "housing-ffffffffffffffffffffffff", "housing-000000000000000000000000"} {
		old := merge.Stamp{T: at, Src: "housing", ID: legacy}
		fix := merge.Stamp{T: at, Src: "housing", ID: publisher.EventID(schemas.Housing, "TL001", 2)}
		if !fix.After(old) || old.After(fix) {
			t.Errorf("%s: a correction derived after the upgrade (%s) does not win the tie", legacy, fix.ID)
		}
	}
}
