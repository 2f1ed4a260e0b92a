package sdk

import "testing"

// TestCopies: a stream message handled from one consumer is seen once
// from each of the others and then forgotten; a redelivery of the handled
// copy is seen too; memory is bounded by two generations.
func TestCopies(t *testing.T) {
	var c copies
	c.handled(7, 0b110) // handled from consumer 0; consumers 1 and 2 deliver it too
	c.handled(8, 0)     // on one consumer only: nothing to remember
	if c.seen(8, 0) {
		t.Error("a message on one consumer was remembered")
	}
	if !c.seen(7, 0) {
		t.Error("a redelivery of the handled copy was not seen")
	}
	if !c.seen(7, 2) || !c.seen(7, 1) {
		t.Error("the other consumers' copies were not seen")
	}
	if c.seen(7, 1) {
		t.Error("the entry outlived its last copy")
	}

	var nilCopies *copies
	nilCopies.handled(1, 0b10) // one consumer: no memory, no panic

	// Filling two generations forgets the oldest entries, keeps the newer.
	for seq := uint64(100); seq < 100+2*copiesRemembered+1; seq++ {
		c.handled(seq, 0b10)
	}
	if c.seen(100, 1) {
		t.Error("memory is not bounded: the oldest entry is still there")
	}
	if !c.seen(100+2*copiesRemembered, 1) || !c.seen(100+copiesRemembered+5, 1) {
		t.Error("recent entries were forgotten")
	}
	if n := len(c.cur) + len(c.prev); n > 2*copiesRemembered {
		t.Errorf("%d entries remembered, at most %d allowed", n, 2*copiesRemembered)
	}
}
