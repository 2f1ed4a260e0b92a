// Command example is the smallest department program: a housing bureau's
// system publishing one rental registration to the hub. README.md shows it
// in full; run it against `pophub dev` with
//
//	go run ./adapters/publisher/example --kafka 127.0.0.1:19092
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// china is the time zone the bureau's records are kept in.
var china = time.FixedZone("CST", 8*60*60)

// lease is a row of the bureau's own database.
type lease struct {
	ID       string
	Version  int64 // bumped by the bureau's system on every change
	TenantID string
	Address  string
	Start    string
	SignedAt time.Time
}

func main() {
	brokers := flag.String("kafka", "127.0.0.1:19092", "Kafka bootstrap broker")
	flag.Parse()

	pub, err := publisher.New(publisher.Config{Brokers: []string{*brokers}, Source: schemas.Housing})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()

	l := lease{ID: "HRB-2026-0042", Version: 1, TenantID: "230102199001011230",
		Address: "230102001001", Start: "2026-03-01", SignedAt: time.Date(2026, 2, 20, 10, 0, 0, 0, china)}
	tenant, err := citizenid.Parse(l.TenantID)
	if err != nil {
		log.Fatalf("lease %s: tenant: %v", l.ID, err)
	}
	ev := schemas.Event{
		// The same lease version always gets the same id, so sending it
		// again after a crash or a timeout is harmless.
		ID:      publisher.EventID(schemas.Housing, l.ID, l.Version),
		Source:  schemas.Housing,
		Type:    schemas.RentalRegistered,
		Subject: tenant,
		Time:    l.SignedAt,
		Payload: &schemas.RentalRegisteredData{LeaseID: l.ID, AddressCode: l.Address, Start: l.Start},
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, err := pub.Publish(ctx, ev)
	if err != nil {
		log.Fatalf("publishing: %v (send again: the hub ignores repeats)", err)
	}
	for _, r := range results {
		if r.Err != nil {
			fmt.Printf("%s rejected: %v\n", r.ID, r.Err)
			continue
		}
		fmt.Printf("%s sent\n", r.ID)
	}
}
