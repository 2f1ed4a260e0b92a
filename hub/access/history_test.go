package access

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// historyPolicy has readers of a few section sets; health is the example
// policy's death-certification department.
const historyPolicy = `version: 1
identities:
  - name: hub
    kind: hub
    credentials:
      kafka: {password: env:HUB_PW}
      nats: {password_bcrypt: "$2a$11$13jUY/34NnVpUIEi0G8uBOOcgqtptBPU7HlA9sQ4N.0dQ0dGgdVKy"}
  - name: pension
    kind: subscriber
    read: [hukou, status, anomalies]
    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000001}
  - name: health
    kind: department
    publish: [health]
    read: [identity, hukou, status, anomalies]
    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000002}
  - name: employment
    kind: department
    publish: [employment]
    read: [identity, hukou, status, employment, anomalies]
    credentials: {token_sha256: 0000000000000000000000000000000000000000000000000000000000000003}
`

// TestHistoryDataOnlyOfReadableSections: a history entry shows its event's
// data only to a caller that may read every section the event's type
// writes, even when this change altered only sections the caller may read
// (a restored registration that left the identity as it was, a late
// contract start that only moved an anomaly).
func TestHistoryDataOnlyOfReadableSections(t *testing.T) {
	ctx := context.Background()
	store, err := memdb.Open(ctx, memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 10, 0, 0, 0, time.UTC) }

	// Registered, emigrated, restored with the same identity, then died.
	restoredID := storetest.ValidID(1)
	reg := schemas.HukouRegisteredData{Name: "张秘密", Gender: "1", BirthDate: restoredID.BirthDate().Format(time.DateOnly),
		Ethnicity: "01", AddressCode: "230102001001", HouseholdID: "H1", Reason: "birth"}
	restored := reg
	restored.Reason = "restored"
	// Never registered: a contract, then an earlier start of it arriving late.
	workerID := storetest.ValidID(2)
	start := schemas.ContractStartedData{ContractID: "C-1", EmployerID: "91230102MA1B2C3D46", EmployerName: "秘密雇主有限公司", WorkRegion: "230102", Start: "2024-03-01"}
	early := start
	early.EmployerName = "更早的秘密雇主"
	for _, batch := range [][]hub.Input{{
		storetest.Event(t, schemas.HukouRegistered, restoredID, "ps-1", at(2020, 1, 1), reg),
		storetest.Event(t, schemas.HukouCancelled, restoredID, "ps-2", at(2021, 1, 1), schemas.HukouCancelledData{Reason: "emigration"}),
		storetest.Event(t, schemas.HukouRegistered, restoredID, "ps-3", at(2022, 1, 1), restored),
		storetest.Event(t, schemas.DeathCertified, restoredID, "health-1", at(2023, 5, 6), schemas.DeathCertifiedData{DateOfDeath: "2023-05-05", CertificateNo: "D1"}),
		storetest.Event(t, schemas.ContractStarted, workerID, "emp-1", at(2024, 3, 1), start),
	}, {
		storetest.Event(t, schemas.ContractStarted, workerID, "emp-0", at(2024, 2, 1), early),
		// A migration older than the restoration: history only.
		storetest.Event(t, schemas.HukouMigrated, restoredID, "ps-late", at(2020, 6, 1),
			schemas.HukouMigratedData{FromAddressCode: "230102001001", ToAddressCode: "230103001001", Reason: "housing"}),
	}} {
		if _, err := store.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	// The cases rest on what these changes altered: only sections the
	// callers may read.
	alters := func(id citizenid.ID, eventID string, want ...string) {
		t.Helper()
		h, err := store.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range h {
			if c.EventID == eventID {
				for _, s := range c.Sections {
					if !slices.Contains(want, s) {
						t.Fatalf("%s altered %v; the test expects only %v", eventID, c.Sections, want)
					}
				}
				return
			}
		}
		t.Fatalf("no change %s in the history", eventID)
	}
	alters(restoredID, "ps-3", "hukou", "status", "anomalies")
	alters(workerID, "emp-0", "anomalies")
	alters(restoredID, "ps-late")

	p, err := Parse([]byte(strings.NewReplacer(
		"0000000000000000000000000000000000000000000000000000000000000001", HashToken("pension-token"),
		"0000000000000000000000000000000000000000000000000000000000000002", HashToken("health-token"),
		"0000000000000000000000000000000000000000000000000000000000000003", HashToken("employment-token"),
	).Replace(historyPolicy)))
	if err != nil {
		t.Fatal(err)
	}
	az, err := NewAuthorizer(AuthorizerConfig{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Authorizer: az}).Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		name      string
		token     string
		person    string
		wantHas   []string
		wantLacks []string
	}{
		{name: "restored registration without identity", token: "pension-token", person: string(restoredID),
			wantHas: []string{`"ps-3"`, `"2023-05-05"`, `"emigration"`}, wantLacks: []string{"张秘密", "H1"}},
		{name: "restored registration with identity", token: "health-token", person: string(restoredID),
			wantHas: []string{`"ps-3"`, "张秘密", `"2023-05-05"`}},
		{name: "late contract start without employment", token: "health-token", person: string(workerID),
			wantHas: []string{`"emp-0"`}, wantLacks: []string{"秘密雇主", "91230102MA1B2C3D46", "C-1"}},
		{name: "late contract start with employment", token: "employment-token", person: string(workerID),
			wantHas: []string{`"emp-0"`, "更早的秘密雇主", "秘密雇主有限公司"}},
		{name: "a late event that altered nothing, to a reader of its data", token: "pension-token", person: string(restoredID),
			wantHas: []string{`"ps-late"`, `"sections":[]`, "230103001001"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/persons/"+tc.person+"/history", nil)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			req.Header.Set(HeaderPurpose, "history check")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			body := string(raw)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			for _, w := range tc.wantHas {
				if !strings.Contains(body, w) {
					t.Errorf("history lacks %s: %s", w, body)
				}
			}
			for _, w := range tc.wantLacks {
				if strings.Contains(body, w) {
					t.Errorf("history shows %s: %s", w, body)
				}
			}
		})
	}
}
