package access_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// auditAdapter writes accesses to an audit log, as cmd/pophub does.
type auditAdapter struct {
	l *audit.Log
	k audit.Key
}

func (a auditAdapter) Record(ctx context.Context, x access.Access) {
	e := audit.Entry{Time: x.Time, Identity: x.Identity, Action: audit.ActionReadRecord, Purpose: x.Purpose, Status: x.Status, Result: "ok", Subject: a.k.Subject(x.CitizenID)}
	for _, s := range x.Sections {
		e.Sections = append(e.Sections, string(s))
	}
	a.l.Append(ctx, e)
}

// BenchmarkReadsWithPolicy: person reads over HTTP by four concurrent
// clients with no authorizer, with the example policy (token, purpose,
// rate limit, section filtering) and with the policy and an audit entry
// per read in a file log, in one run; the security issue's target is at
// most 15 % slower.
//
//	go test -run '^$' -bench ReadsWithPolicy -benchtime 20000x ./hub/access/
func BenchmarkReadsWithPolicy(b *testing.B) {
	ctx := context.Background()
	store, _ := memdb.Open(ctx, memdb.Config{})
	defer store.Close()
	id := storetest.ValidID(1)
	store.Apply(ctx, []hub.Input{storetest.Event(b, schemas.HukouRegistered, id, "ps-1", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		schemas.HukouRegisteredData{Name: "李娜", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "230102001001", HouseholdID: "H1", Reason: "birth"})})
	raw, _ := os.ReadFile(filepath.Join("..", "..", "ops", "policy.example.yaml"))
	txt := strings.ReplaceAll(string(raw), "rate_limit: {rps: 50, burst: 100}", "rate_limit: {rps: 1000000, burst: 1000000}")
	p, err := access.Parse([]byte(txt))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	audit.GenerateKeyFile(dir + "/k")
	key, _ := audit.LoadKey(dir + "/k")
	st, _ := audit.OpenFile(dir + "/a.jsonl")
	l, _ := audit.NewLog(st, key, audit.LogConfig{})
	defer l.Close(ctx)
	plain, _ := access.NewAuthorizer(access.AuthorizerConfig{Policy: p})
	audited, _ := access.NewAuthorizer(access.AuthorizerConfig{Policy: p, Auditor: auditAdapter{l, key}})
	for _, tc := range []struct {
		name string
		a    api.Authorizer
	}{{"none", nil}, {"policy", plain}, {"policy+audit", audited}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := httptest.NewServer(api.New(api.Config{Store: store, Authorizer: tc.a}).Handler())
			defer srv.Close()
			tok := access.DemoSecret("token:public_security")
			var wg sync.WaitGroup
			n := b.N
			for range 4 {
				wg.Go(func() {
					for range n / 4 {
						req, _ := http.NewRequest("GET", srv.URL+"/v1/persons/"+string(id), nil)
						req.Header.Set("Authorization", "Bearer "+tok)
						req.Header.Set("X-Purpose", "registration")
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
