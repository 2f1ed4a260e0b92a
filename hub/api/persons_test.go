package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// statusReaders has a reader of status and one without it.
const statusReaders = `version: 1
identities:
  - name: hub
    kind: hub
    credentials:
      kafka: {password: env:HUB_PW}
      nats: {password_bcrypt: "$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy"}
  - name: notary
    kind: subscriber
    read: [identity, hukou, status]
    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000001}
  - name: registry
    kind: subscriber
    read: [identity, hukou]
    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000002}
`

// TestRecordNamesEventStatusRestsOn: a deceased person's record names in
// provenance.status the death certificate the status rests on, the
// event whose history entry lists status, on both stores; a caller who
// may not read status sees neither the status nor its provenance.
func TestRecordNamesEventStatusRestsOn(t *testing.T) {
	p := storetest.ValidID(4343)
	died := time.Date(2021, 1, 5, 8, 0, 0, 0, cst)
	evs := []hub.Input{
		registration(t, 4343, "230102001001", time.Date(2015, 1, 1, 8, 0, 0, 0, cst)),
		storetest.Event(t, schemas.DeathCertified, p, "hl-1", died,
			schemas.DeathCertifiedData{DateOfDeath: "2021-01-03", CertificateNo: "D1"}),
	}
	policy, err := access.Parse([]byte(strings.NewReplacer(
		"0000000000000000000000000000000000000000000000000000000000000001", access.HashToken("notary-token"),
		"0000000000000000000000000000000000000000000000000000000000000002", access.HashToken("registry-token"),
	).Replace(statusReaders)))
	if err != nil {
		t.Fatal(err)
	}
	az, err := access.NewAuthorizer(access.AuthorizerConfig{Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	for name, store := range listerStores(t) {
		t.Run(name, func(t *testing.T) {
			storetest.ApplyAll(t, store, evs, 1)
			open := httptest.NewServer(api.New(api.Config{Store: store, Lister: store}).Handler())
			defer open.Close()
			var rec hub.Record
			if code := getInto(t, open.URL+"/v1/persons/"+string(p), &rec); code != http.StatusOK {
				t.Fatalf("person: status %d", code)
			}
			var hist []hub.Change
			if code := getInto(t, open.URL+"/v1/persons/"+string(p)+"/history", &hist); code != http.StatusOK {
				t.Fatalf("history: status %d", code)
			}
			if rec.Status != hub.StatusDeceased {
				t.Fatalf("status %q, want deceased", rec.Status)
			}
			lastStatus := ""
			for _, c := range hist {
				for _, s := range c.Sections {
					if s == string(schemas.SecStatus) {
						lastStatus = c.EventID
					}
				}
			}
			want := hub.Provenance{Source: schemas.Health, EventID: "hl-1", Time: died}
			got, ok := rec.Provenance[string(schemas.SecStatus)]
			if !ok || got.Source != want.Source || got.EventID != want.EventID || !got.Time.Equal(want.Time) {
				t.Errorf("provenance.status %+v (present %v), want %+v", got, ok, want)
			}
			if lastStatus != want.EventID {
				t.Errorf("history lists status last for %q, want %q", lastStatus, want.EventID)
			}

			guarded := httptest.NewServer(api.New(api.Config{Store: store, Lister: store, Authorizer: az}).Handler())
			defer guarded.Close()
			for _, tc := range []struct {
				token      string
				wantStatus bool
			}{{"notary-token", true}, {"registry-token", false}} {
				req, _ := http.NewRequest(http.MethodGet, guarded.URL+"/v1/persons/"+string(p), nil)
				req.Header.Set("Authorization", "Bearer "+tc.token)
				req.Header.Set(access.HeaderPurpose, "estate certificate")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d: %s", tc.token, resp.StatusCode, body)
				}
				var r hub.Record
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatal(err)
				}
				_, shown := r.Provenance[string(schemas.SecStatus)]
				if shown != tc.wantStatus || (r.Status != "") != tc.wantStatus {
					t.Errorf("%s: status %q, provenance.status shown %v; want both shown %v", tc.token, r.Status, shown, tc.wantStatus)
				}
			}
		})
	}
}
