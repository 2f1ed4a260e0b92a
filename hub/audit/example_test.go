package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/schemas/citizenid"
)

// An API Grant's Done turns the request's outcome into an entry; the
// citizen is recorded only as the keyed hash.
func ExampleLog() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	store, err := audit.OpenFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		panic(err)
	}
	defer store.Close()
	key, _ := audit.ParseKey(strings.Repeat("ab", 32)) // from --key-file in real use
	log, err := audit.NewLog(store, key, audit.LogConfig{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	id := citizenid.ID("230102199001011230")
	log.Append(ctx, audit.Entry{
		Identity: "housing-bureau",
		Action:   audit.ActionReadRecord,
		Subject:  key.Subject(id),
		Sections: []string{"identity", "hukou"},
		Purpose:  "housing subsidy check",
		Status:   200,
		Result:   "ok",
	})
	if err := log.Close(ctx); err != nil { // flushes
		panic(err)
	}

	entries, _ := store.WhoRead(ctx, key.Subject(id), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	rep, _ := audit.Verify(ctx, store, audit.VerifyOptions{Key: key})
	fmt.Println(id, "read by", entries[0].Identity, "for", entries[0].Purpose)
	fmt.Println(rep.Entries, "entries, chain ok:", rep.OK())
	// Output:
	// 2301**********1230 read by housing-bureau for housing subsidy check
	// 1 entries, chain ok: true
}
