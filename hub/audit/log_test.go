package audit

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLogAppendFlushClose: concurrent Appends end up as one verifiable
// chain; Flush makes them durable; Append after Close fails.
func TestLogAppendFlushClose(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			l, err := NewLog(s, k, LogConfig{Buffer: 64, MaxBatch: 50})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			const writers, each = 8, 100
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						if err := l.Append(ctx, sample(k, time.Time{}, w*each+i)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if h := l.Head(); h.Seq != writers*each {
				t.Errorf("head after Flush: %d, want %d", h.Seq, writers*each)
			}
			l.Append(ctx, sample(k, time.Time{}, 1))
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(ctx); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if err := l.Append(ctx, sample(k, time.Time{}, 1)); !errors.Is(err, ErrClosed) {
				t.Errorf("Append after Close: %v", err)
			}
			rep, err := Verify(ctx, s, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Entries != writers*each+1 {
				t.Errorf("verify: %+v, %v", rep, err)
			}
		})
	}
}

// TestTwoLogsOneChain: two writers (two hub instances) on one PostgreSQL
// schema share one chain.
func TestTwoLogsOneChain(t *testing.T) {
	p := testPostgres(t)
	k := testKey(t)
	q, err := OpenPostgres(context.Background(), PostgresConfig{Pool: p.Pool(), Schema: p.schema})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, s := range []*Postgres{p, q} {
		l, err := NewLog(s, k, LogConfig{MaxBatch: 7})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range 300 {
				l.Append(ctx, sample(k, time.Time{}, i))
			}
			if err := l.Close(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rep, err := Verify(ctx, p, VerifyOptions{Key: k})
	if err != nil || !rep.OK() || rep.Entries != 600 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}

// failing fails its first calls.
type failing struct {
	Appender
	mu    sync.Mutex
	fails int
}

func (f *failing) Append(ctx context.Context, batch []Entry, link func(Link) Link) error {
	f.mu.Lock()
	if f.fails > 0 {
		f.fails--
		f.mu.Unlock()
		link(Link{Seq: 1000}) // the chain was computed, then the write failed
		return errors.New("connection reset")
	}
	f.mu.Unlock()
	return f.Appender.Append(ctx, batch, link)
}

// TestLogRetries: a failing store is retried and the chain stays whole;
// Close gives up when its context ends while the store keeps failing.
func TestLogRetries(t *testing.T) {
	k := testKey(t)
	f := testFile(t)
	s := &failing{Appender: f, fails: 2}
	l, _ := NewLog(s, k, LogConfig{})
	ctx := context.Background()
	for i := range 10 {
		l.Append(ctx, sample(k, base, i))
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, f, VerifyOptions{Key: k})
	if err != nil || !rep.OK() || rep.Entries != 10 {
		t.Errorf("verify: %+v, %v", rep, err)
	}

	if err := l.Err(); err != nil {
		t.Errorf("Err after the store recovered: %v", err)
	}

	s = &failing{Appender: f, fails: 1 << 30}
	l, _ = NewLog(s, k, LogConfig{})
	l.Append(ctx, sample(k, base, 0))
	deadline := time.Now().Add(5 * time.Second)
	for l.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("Err while the store fails: %v; want the store's error", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := l.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close on a dead store: %v", err)
	}
}

// TestOddInputStored: invalid UTF-8, NUL and oversized fields (a hostile
// X-Purpose header) are stored and verify on both stores.
func TestOddInputStored(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			l, _ := NewLog(s, k, LogConfig{})
			ctx := context.Background()
			odd := Entry{Identity: "dept\x00x", Action: ActionReadRecord, Purpose: "\xff\xfe" + strings.Repeat("长", 400),
				Sections: []string{"a\x00", "\xc3"}, Result: "ok", Detail: "<&>\n\"quoted\""}
			if err := l.Append(ctx, odd); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(ctx, s, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Entries != 1 {
				t.Errorf("verify: %+v, %v", rep, err)
			}
			if odd.Sections[0] != "a\x00" {
				t.Error("the caller's sections were changed")
			}
		})
	}
}

// TestFileTwoWriters: two File values on one path (the hub and the CLI,
// as two processes would) append in turns and purge under each other,
// and the chain stays whole.
func TestFileTwoWriters(t *testing.T) {
	k := testKey(t)
	a := testFile(t)
	b, err := OpenFile(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Now().UTC()
	old := now.AddDate(-4, 0, 0)
	fill(t, a, k, old, 3, 3)
	fill(t, b, k, old.Add(time.Hour), 2, 2)
	if n, err := a.Purge(context.Background(), now, Retention{}); err != nil || n.Deleted() != 5 {
		t.Fatalf("purge: %+v, %v", n, err)
	}
	fill(t, b, k, now, 4, 2)
	fill(t, a, k, now, 1, 1)
	rep, err := Verify(context.Background(), b, VerifyOptions{Key: k})
	if err != nil || !rep.OK() || rep.Entries != 5 || rep.Anchor.Seq != 5 || rep.Head.Seq != 10 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}

// TestFileTornTail: an unterminated last line is cut only by a writer
// holding the file lock. A reader (pophub audit who-read, verify, export
// while the hub runs) that opens the file while the hub's batch is partly
// written must leave it alone, or the hub's rest lands behind a hole.
func TestFileTornTail(t *testing.T) {
	k := testKey(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// finish says whether the batch's writer completes it (it held
		// the lock and was only slow) or crashed (the line is torn).
		finish      bool
		wantEntries int64
	}{
		{name: "a batch still being written is left to its writer", finish: true, wantEntries: 6},
		{name: "a torn line is cut by the next writer", finish: false, wantEntries: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hubFile := testFile(t)
			fill(t, hubFile, k, base, 3, 3)

			// The hub's next batch, as Append encodes it.
			batch := []Entry{sample(k, base, 3), sample(k, base, 4)}
			newChainer(k).link(hubFile.head, batch)
			var buf []byte
			for i := range batch {
				buf, _ = appendLine(buf, &batch[i])
			}
			// It reaches the file in part while the hub holds the lock (a
			// large write lands page by page).
			w, err := os.OpenFile(hubFile.Path(), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := lockFile(hubFile.f); err != nil {
				t.Fatal(err)
			}
			off, half := hubFile.size, len(buf)/2
			if _, err := w.WriteAt(buf[:half], off); err != nil {
				t.Fatal(err)
			}
			// Meanwhile a tool opens the file and reads it.
			tool, err := OpenFile(hubFile.Path())
			if err != nil {
				t.Fatal(err)
			}
			defer tool.Close()
			if rep, err := Verify(context.Background(), tool, VerifyOptions{Key: k}); err != nil || !rep.OK() || rep.Entries != 3 {
				t.Fatalf("verify during the write: %+v, %v", rep, err)
			}
			if tc.finish {
				if _, err := w.WriteAt(buf[half:], off+int64(half)); err != nil {
					t.Fatal(err)
				}
			}
			unlockFile(hubFile.f)

			// The tool then records itself, after the hub's batch.
			fill(t, tool, k, base.Add(time.Hour), 1, 1)
			rep, err := Verify(context.Background(), hubFile, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Entries != tc.wantEntries {
				t.Fatalf("verify after the write: %+v, %v", rep, err)
			}
		})
	}
}
