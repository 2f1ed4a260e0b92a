package audit

import (
	"context"
	"fmt"
	"time"
)

// Kind classifies a problem Verify found.
type Kind int

const (
	// Changed: the entry's fields do not match its own hash.
	Changed Kind = iota + 1
	// Forged: the entry matches its hash but the hash does not carry the
	// audit key's seal: it was rewritten by someone without the key.
	Forged
	// Removed: sequence numbers are missing where the chain links say
	// entries stood.
	Removed
	// Reordered: the entry is linked to an entry other than the one stored
	// before it (moved, swapped, renumbered).
	Reordered
	// Broken: an entry was not chained to its predecessor's stored hash and
	// the cause cannot be told apart: the predecessor was rewritten with a
	// new hash (without a key to check seals), or entries were moved from
	// further away than the verifier's window.
	Broken
)

func (k Kind) String() string {
	switch k {
	case Changed:
		return "changed"
	case Forged:
		return "forged"
	case Removed:
		return "removed"
	case Reordered:
		return "reordered"
	case Broken:
		return "broken"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Problem is one place where the log departs from its chain.
type Problem struct {
	Kind Kind
	// Seq is where: the changed or forged entry; the first missing number;
	// the sequence number expected where entries are out of order; for
	// Broken, the entry whose stored hash its successor does not link to.
	Seq int64
	// Count is how many entries the problem spans: missing numbers for
	// Removed, consecutive affected entries otherwise.
	Count int64
	// Detail says what was seen, for people.
	Detail string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s at seq %d (%d entries): %s", p.Kind, p.Seq, p.Count, p.Detail)
}

// Report is the outcome of a verification.
type Report struct {
	Anchor   Link  // where the log starts (zero when never purged)
	Entries  int64 // entries read
	Redacted int64 // of them, stubs a purge left (their content is gone)
	Head     Link  // the last entry read, or the anchor
	// Problems holds the first MaxProblems problems in log order;
	// NumProblems counts them all.
	Problems    []Problem
	NumProblems int64
	// Sealed reports whether seals were checked (a key was given).
	Sealed bool
	// Notes are remarks for people that are no problem, such as an
	// expected position a lawful purge has since removed.
	Notes []string
}

// OK reports whether no problem was found.
func (r Report) OK() bool { return r.NumProblems == 0 }

// MaxProblems bounds Report.Problems.
const MaxProblems = 100

// VerifyOptions tune Verify. The zero value checks the chain without seals.
type VerifyOptions struct {
	// Key checks every entry's Seal (and the anchor's); without it only
	// the SHA-256 chain is checked.
	Key Key
	// Expect, when Seq > 0, is a position the log must contain, typically
	// the head of the last signed export: a log that ends before it, or
	// holds another hash there, lost or rewrote entries after it.
	Expect Link
	// Window is how many entries before and after an out-of-place entry
	// are searched for its predecessor, to tell a move from a rewrite
	// (default 256).
	Window int
	// Now is the time a stub must be past its class's legal floor at
	// (default time.Now()).
	Now time.Time
}

// Verifier checks a stream of entries in stored order. It holds a window
// of recent entries, so memory stays bounded on any log length. Not safe
// for concurrent use.
type Verifier struct {
	opt                VerifyOptions
	c                  *chainer
	rep                Report
	items              []item        // entries not yet checked, and the last Window checked
	next               int           // index in items of the next entry to check
	byHash             map[Sum]int64 // Hash → Seq of the entries in items
	prev               Link          // the last checked entry, or the anchor
	last               *Problem      // the last problem, to coalesce runs
	lastPos            int64         // position (entries checked) of the last problem
	accessCut, procCut time.Time     // a stub must be older than its class's
	pos                int64         // entries checked
	expectOK           bool          // opt.Expect was seen
}

type item struct {
	e       Entry
	content bool // Hash matches the fields and Prev; for a stub: it is empty
	sealed  bool // Seal matches Hash (true without a key)
	early   bool // a stub within its class's legal floor
}

// NewVerifier starts verifying a log that begins after anchor.
func NewVerifier(anchor Link, opt VerifyOptions) *Verifier {
	return newVerifier(anchor, opt, true)
}

// newVerifier starts after start, checking its seal (with a key) when
// sealedStart: an anchor carries one, the link back from an entry in the
// middle of the log (an export's first) does not.
func newVerifier(anchor Link, opt VerifyOptions, sealedStart bool) *Verifier {
	if opt.Window <= 0 {
		opt.Window = 256
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	v := &Verifier{opt: opt, c: newChainer(opt.Key), byHash: make(map[Sum]int64, 4*opt.Window), prev: anchor}
	// The legal floors, not the hub's retention, which a verifier does not
	// know: a stub is wrong only when no lawful purge could have made it.
	v.accessCut, v.procCut = Retention{}.cutoffs(opt.Now)
	v.rep.Anchor, v.rep.Head, v.rep.Sealed = anchor, anchor, !opt.Key.IsZero()
	if v.rep.Sealed && sealedStart && anchor.Seq > 0 && anchor.Seal != v.c.seal(anchor.Hash) {
		v.report(Forged, anchor.Seq, "the purge anchor's hash is not sealed by the audit key")
	}
	return v
}

// Add checks the next entry in stored order. It copies e.
func (v *Verifier) Add(e *Entry) {
	it := item{e: *e, sealed: true}
	if e.Redacted {
		// The stored Hash is the link; the fields it covered are gone.
		it.content = isStub(e)
		it.early = it.content && !expired(e, v.accessCut, v.procCut)
	} else {
		it.content = v.c.hash(e.Prev, e) == e.Hash
	}
	if v.c.mac != nil {
		it.sealed = v.c.seal(e.Hash) == e.Seal
	}
	if v.opt.Expect.Seq > 0 && e.Seq == v.opt.Expect.Seq && e.Hash == v.opt.Expect.Hash {
		v.expectOK = true
	}
	v.items = append(v.items, it)
	v.byHash[e.Hash] = e.Seq
	for len(v.items)-v.next > v.opt.Window {
		v.check()
	}
}

// Finish checks the entries still held and returns the report.
func (v *Verifier) Finish() Report {
	for v.next < len(v.items) {
		v.check()
	}
	if x := v.opt.Expect; x.Seq > 0 && !v.expectOK {
		v.checkExpectBehind(x)
	}
	return v.rep
}

// checkExpectBehind judges an expected position no entry read matched.
// At or before the anchor it is no entry of the log any more: a purge
// removes the oldest entries lawfully, so an expectation it removed is a
// note, and one the anchor stands for must carry the anchor's hash.
func (v *Verifier) checkExpectBehind(x Link) {
	a := v.rep.Anchor
	switch {
	case x.Seq < a.Seq:
		v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("the expected entry %d was purged (the log starts after seq %d): it can no longer be compared", x.Seq, a.Seq))
	case x.Seq == a.Seq && x.Hash == a.Hash:
		// The expected entry is the purge anchor: intact.
	case v.rep.Head.Seq < x.Seq:
		v.report(Removed, v.rep.Head.Seq+1, fmt.Sprintf("the log ends at seq %d, but an earlier export's head was seq %d", v.rep.Head.Seq, x.Seq))
		v.last.Count = x.Seq - v.rep.Head.Seq
	default:
		v.report(Changed, x.Seq, fmt.Sprintf("entry %d is not the one an earlier export ended with (hash %s)", x.Seq, x.Hash))
	}
}

// check examines items[next] against the entry before it.
func (v *Verifier) check() {
	it := &v.items[v.next]
	e := &it.e
	v.pos++
	v.rep.Entries++
	if e.Redacted {
		v.rep.Redacted++
	}
	expected := v.prev.Seq + 1
	switch {
	case !it.content && e.Redacted:
		v.report(Changed, e.Seq, fmt.Sprintf("entry %d is marked redacted but keeps fields a redaction empties", e.Seq))
	case !it.content:
		v.report(Changed, e.Seq, fmt.Sprintf("entry %d's fields do not match its hash", e.Seq))
	case it.early:
		v.report(Changed, e.Seq, fmt.Sprintf("entry %d was redacted within its legal retention floor (%s at %s)",
			e.Seq, e.Action, e.Time.Format(time.RFC3339)))
	case !it.sealed:
		v.report(Forged, e.Seq, fmt.Sprintf("entry %d's hash is not sealed by the audit key: it was rewritten", e.Seq))
	}
	if e.Prev != v.prev.Hash {
		p, found := v.byHash[e.Prev]
		switch {
		case found && p != v.prev.Seq:
			v.report(Reordered, expected, fmt.Sprintf("entry %d follows entry %d but is stored after entry %d", e.Seq, p, v.prev.Seq))
		case e.Seq > expected:
			v.report(Removed, expected, fmt.Sprintf("entries %d to %d are missing", expected, e.Seq-1))
			v.last.Count = e.Seq - expected
		case v.last != nil && v.lastPos == v.pos-1 && v.last.Seq+v.last.Count-1 == v.prev.Seq:
			// The predecessor's problem is already reported.
		default:
			v.report(Broken, v.prev.Seq, fmt.Sprintf("entry %d is not chained to entry %d's stored hash: entry %d was rewritten, or entries were moved from afar", e.Seq, v.prev.Seq, v.prev.Seq))
		}
	} else if e.Seq != expected {
		if e.Seq > expected {
			v.report(Removed, expected, fmt.Sprintf("sequence numbers %d to %d are skipped", expected, e.Seq-1))
			v.last.Count = e.Seq - expected
		} else {
			v.report(Reordered, expected, fmt.Sprintf("entry numbered %d stands where %d was expected", e.Seq, expected))
		}
	}
	v.prev = e.link()
	v.rep.Head = v.prev
	v.next++
	// Keep Window checked entries for look-ups; compact now and then.
	if w := v.opt.Window; v.next > 4*w {
		drop := v.next - w
		for i := range drop {
			if s, ok := v.byHash[v.items[i].e.Hash]; ok && s == v.items[i].e.Seq {
				delete(v.byHash, v.items[i].e.Hash)
			}
		}
		n := copy(v.items, v.items[drop:])
		clear(v.items[n:])
		v.items = v.items[:n]
		v.next -= drop
	}
}

// report records a problem, extending the previous one when it is of the
// same kind and on the entry just before.
func (v *Verifier) report(k Kind, seq int64, detail string) {
	if l := v.last; l != nil && l.Kind == k && v.lastPos >= v.pos-1 && k != Removed {
		if v.lastPos < v.pos {
			l.Count++
			v.lastPos = v.pos
		}
		return
	}
	v.rep.NumProblems++
	p := Problem{Kind: k, Seq: seq, Count: 1, Detail: detail}
	if len(v.rep.Problems) < MaxProblems {
		v.rep.Problems = append(v.rep.Problems, p)
		v.last = &v.rep.Problems[len(v.rep.Problems)-1]
	} else {
		v.last = &p
	}
	v.lastPos = v.pos
}

// Scanner is what Verify reads: both stores implement it.
type Scanner interface {
	// Anchor is where the log starts: the last purged entry, or the zero
	// Link.
	Anchor(ctx context.Context) (Link, error)
	// Scan calls fn for every entry with first <= Seq <= last (last <= 0:
	// no upper bound) in stored order; it stops at fn's first error and
	// returns it. fn must not keep e.
	Scan(ctx context.Context, first, last int64, fn func(e *Entry) error) error
}

// consistentReader is a Scanner that can read its anchor and entries in
// one snapshot (Postgres), so that a purge running meanwhile is seen
// wholly before or after each of its chunks.
type consistentReader interface {
	readConsistent(ctx context.Context, fn func(Scanner) error) error
}

// Verify reads the whole log and checks its chain. Reading (decoding rows
// or lines) and checking (hashing) run on two goroutines. On PostgreSQL
// it reads one snapshot, so a purge running meanwhile is no problem.
func Verify(ctx context.Context, s Scanner, opt VerifyOptions) (Report, error) {
	if c, ok := s.(consistentReader); ok {
		var rep Report
		err := c.readConsistent(ctx, func(s Scanner) error {
			var err error
			rep, err = verify(ctx, s, opt)
			return err
		})
		return rep, err
	}
	return verify(ctx, s, opt)
}

func verify(ctx context.Context, s Scanner, opt VerifyOptions) (Report, error) {
	anchor, err := s.Anchor(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("reading anchor: %w", err)
	}
	v := NewVerifier(anchor, opt)
	const size = 1024
	full, free := make(chan []Entry, 4), make(chan []Entry, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range full {
			for i := range b {
				v.Add(&b[i])
			}
			select {
			case free <- b[:0]:
			default:
			}
		}
	}()
	batch := make([]Entry, 0, size)
	err = s.Scan(ctx, 0, 0, func(e *Entry) error {
		batch = append(batch, *e)
		if len(batch) == size {
			full <- batch
			select {
			case batch = <-free:
			default:
				batch = make([]Entry, 0, size)
			}
		}
		return nil
	})
	if len(batch) > 0 {
		full <- batch
	}
	close(full)
	<-done
	if err != nil {
		return Report{}, fmt.Errorf("reading entries: %w", err)
	}
	return v.Finish(), nil
}
