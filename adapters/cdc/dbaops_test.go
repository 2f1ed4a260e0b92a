package cdc

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
)

// TestMappedColumnRetypedAfterAnInterruptedCopy: the first start's copy
// fails (Kafka away); before the next start a row changes and the DBA
// gives a mapped column another type (end_date date → timestamp). The
// next start sends the ends the interrupted copy owes from the slot's
// changes, in a session without a catalog connection, where the change
// made before the retype is described with the old type: it must take
// the copy again, not crash on every start.
func TestMappedColumnRetypedAfterAnInterruptedCopy(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1))
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	s := newStream(t, table, &failCopyAfter{p: pub}, exampleMapping(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("first start: %v, want the injected failure", err)
	}
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_id = 1")
	exec(t, db, "ALTER TABLE "+table+" ALTER COLUMN end_date TYPE timestamp")

	s2 := newStream(t, table, pub, exampleMapping(t))
	var panicked any
	done := make(chan error, 1)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				panicked = p
				done <- errors.New("panicked")
			}
		}()
		done <- s2.Run(ctx2)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for s2.Stats().Published < 1 && time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			deadline = time.Now()
		default:
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel2()
	err := <-done
	if panicked != nil {
		t.Fatalf("the start after the interrupted copy panicked: %v", panicked)
	}
	if s2.Stats().Published < 1 {
		t.Errorf("the start after the interrupted copy sent nothing: %v", err)
	}
}

// TestPublicationDroppedWhileStreaming: a DBA drops the publication while
// pophub cdc runs and rows keep changing. The server cannot decode those
// changes on any later session, so the stream stops with
// ErrPublicationChanged saying what to do, rather than retrying for ever
// with the slot, and the WAL it holds, standing still, and without
// creating the publication again behind the DBA's back.
func TestPublicationDroppedWhileStreaming(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	insertLease(t, db, table, 1, citizen(1))
	// Published, and streaming: a row the initial copy published comes
	// before the copy is recorded on the publication.
	for deadline := time.Now().Add(30 * time.Second); s.Stats().Published < 1 || !strings.Contains(logsOf(t), "cdc: streaming"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first insert was not published, or the stream did not start")
		}
	}

	exec(t, db, "DROP PUBLICATION "+s.Publication())
	insertLease(t, db, table, 2, citizen(2)) // while there is no publication
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
	}
	var recreated bool
	if err := db.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", s.Publication()).Scan(&recreated); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, ErrPublicationChanged) || !strings.Contains(err.Error(), "pg_drop_replication_slot('"+s.Slot()+"')") {
		t.Errorf("30 s after the publication was dropped, Run returned %v, want ErrPublicationChanged saying to drop the slot "+
			"(retries logged: %d)", err, strings.Count(logsOf(t), "streaming failed; reconnecting"))
	}
	if recreated {
		t.Error("the publication was created again behind the DBA's back")
	}
}

// TestPublicationDroppedWhileStopped: the DBA drops the publication while
// pophub cdc is stopped. The next start refuses, with the SQL that
// creates it again and records that the slot's copy completed; run as
// given, the start after resumes from the slot: nothing is copied again,
// no row changed since the copy comes out twice.
func TestPublicationDroppedWhileStopped(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	insertLease(t, db, table, 1, citizen(1))
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	r := start(t, s)
	waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 1 })
	insertLease(t, db, table, 2, citizen(2))
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_id = 1")
	waitFor(t, r, "the changes", func() bool { return s.Stats().Published == 3 })
	r.stop(t)

	exec(t, db, "DROP PUBLICATION "+s.Publication())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := newStream(t, table, newPublisher(t, addr), exampleMapping(t)).Run(ctx)
	if !errors.Is(err, ErrPublicationChanged) {
		t.Fatalf("the start after the publication was dropped: %v, want ErrPublicationChanged", err)
	}
	m := regexp.MustCompile(`create it again with the comment that records the copy: (CREATE PUBLICATION [^;]+); (COMMENT ON PUBLICATION [^']+'[^']+')`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("the refusal gives no SQL to create the publication again: %v", err)
	}
	exec(t, db, m[1])
	exec(t, db, m[2])

	s2 := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	r2 := start(t, s2)
	insertLease(t, db, table, 3, citizen(3))
	waitFor(t, r2, "the next insert", func() bool { return s2.Stats().Published >= 1 })
	r2.stop(t)
	got := summaries(t, records(t, addr))
	want := sorted(
		"housing.rental_registered 1 1 end=",
		"housing.rental_registered 2 2 end=",
		"housing.rental_registered 1 1 end=2026-06-30",
		"housing.rental_registered 3 3 end=",
	)
	if !slices.Equal(got, want) {
		t.Errorf("events after the publication was created again as the refusal said:\n got %q\nwant %q", got, want)
	}
}
