package reconcile

import (
	"testing"
	"unsafe"
)

// TestRejectCopyStaysSmall: reconcile keeps one rejectCopy per reject of
// the DLQ in memory, millions for a large DLQ; an operator relies on that
// index costing little more than the locations themselves, so the
// digest of a copy's key and value is kept short.
func TestRejectCopyStaysSmall(t *testing.T) {
	if got, limit := unsafe.Sizeof(rejectCopy{}), uintptr(32); got > limit {
		t.Errorf("a rejectCopy takes %d bytes, want at most %d", got, limit)
	}
}

// TestRejectIndexKeepsEveryCopy: a location copied by rejects of two
// different originals (a topic recreated) accounts for both records,
// and copies alike are kept once.
func TestRejectIndexKeepsEveryCopy(t *testing.T) {
	x := rejectIndex{first: map[Loc]rejectCopy{}, more: map[Loc][]rejectCopy{}}
	l := Loc{Topic: "pop.events.marriage", Offset: 3}
	old, recreated := []byte(`{"id":"e-1"}`), []byte(`{"id":"e-2"}`)
	for _, v := range [][]byte{old, old, recreated, recreated} {
		x.add(l, rejectCopy{sum: contentSum([]byte("k"), v)})
	}
	if len(x.more[l]) != 1 {
		t.Errorf("more copies kept: %d, want 1", len(x.more[l]))
	}
	for _, v := range [][]byte{old, recreated} {
		if !x.has(l, []byte("k"), v) {
			t.Errorf("record %s at %s not found", v, l)
		}
	}
	if x.has(l, []byte("k"), []byte(`{"id":"e-3"}`)) || x.has(Loc{Topic: l.Topic, Offset: 4}, []byte("k"), old) {
		t.Error("a record no copy names was found")
	}
}
