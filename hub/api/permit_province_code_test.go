package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/stats"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// TestPermitUnderProvinceCodeCountedInItsCity: README "Events" accepts a
// residence_permit.issued whose city_code is "a province's code for any
// address of the province"; README "Statistics" counts a holder "in the
// permit's city ... counted in 2301 and 23, never in a county", and each
// region of an answer is "the sum of its children wherever they cover
// it". A Harbin address's permit issued under Heilongjiang's code 230000
// must count in Harbin (2301), and Heilongjiang's cities must add up to the
// province.
func TestPermitUnderProvinceCodeCountedInItsCity(t *testing.T) {
	store := newMemStore(t)
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, cst)
	in := []hub.Input{
		storetest.Event(t, schemas.ResidencePermitIssued, storetest.ValidID(1), "ps-p1", at,
			schemas.ResidencePermitIssuedData{CityCode: "230100", AddressCode: "230102001001", Basis: "employment"}),
		storetest.Event(t, schemas.ResidencePermitIssued, storetest.ValidID(2), "ps-p2", at,
			schemas.ResidencePermitIssuedData{CityCode: "230000", AddressCode: "230102001001", Basis: "employment"}),
	}
	storetest.ApplyAll(t, store, in, 2)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Counter: store, Regions: builtinRegions{}}).Handler())
	defer srv.Close()

	var prov api.ResidencePermits
	if status := getInto(t, srv.URL+"/v1/stats/residence-permits?as_of=2024-06-01&region=23&children=true", &prov); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	var sum int64
	harbin := stats.Shown(-1)
	for _, c := range prov.Children {
		sum += c.Holders.N
		if c.Region == "2301" {
			harbin = c.Holders
		}
	}
	if prov.Holders != stats.Shown(2) || harbin != stats.Shown(2) || sum != 2 {
		t.Errorf("Heilongjiang holders %v, Harbin (2301) %v, Heilongjiang's cities sum to %d; want 2, 2 and 2 (both permits are for a Harbin address)",
			prov.Holders, harbin, sum)
	}
	var city api.ResidencePermits
	if status := getInto(t, srv.URL+"/v1/stats/residence-permits?as_of=2024-06-01&region=2301", &city); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if city.Holders != stats.Shown(2) {
		t.Errorf("region=2301: %v holders, want 2", city.Holders)
	}
}
