package cdc

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
)

// BenchmarkStream measures changes a second from commit to Kafka
// acknowledgement: b.N rows inserted with COPY in one transaction, then
// streamed, converted, validated and published.
//
//	go test -run '^$' -bench Stream -benchtime 20000x ./adapters/cdc/
func BenchmarkStream(b *testing.B) {
	db := connect(b)
	table := rentalsTable(b, db)
	addr := testenv.Kafka(b, partitions)
	s := newStream(b, table, newPublisher(b, addr), exampleMapping(b))
	r := start(b, s)
	waitFor(b, r, "streaming", func() bool { return s.Stats().Confirmed != 0 })
	rows := make([][]any, b.N)
	signed := time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC)
	for i := range rows {
		rows[i] = []any{int64(i + 1), citizen(i % 1000), addressCode, signed, signed}
	}
	b.ResetTimer()
	began := time.Now()
	_, err := db.CopyFrom(context.Background(), pgx.Identifier{table},
		[]string{"lease_id", "tenant_id", "address_code", "start_date", "signed_at"}, pgx.CopyFromRows(rows))
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for s.Stats().Published < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("published %d of %d", s.Stats().Published, b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "changes/s")
	r.stop(b)
}
