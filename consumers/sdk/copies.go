package sdk

// copiesRemembered bounds, per worker and generation, the stream messages
// remembered while their other copies are awaited (see copies).
const copiesRemembered = 1 << 14

// copies is one worker's memory, in the per-filter mode
// (Config.ConsumerPerFilter), of the stream messages it handled that more
// than one of the subscriber's consumers delivers: for each, the
// consumers whose copy is still to come. A copy that finds its stream
// sequence here is acked without calling the Handler.
//
// The copies of a message carry the same body, hence the same citizen,
// hence go to the same worker, which takes them one after the other: when
// the second is taken the first was handled or dead-lettered (and is
// remembered), or given back at shutdown (and is not). Only the worker
// touches its copies, so there is no lock.
//
// Memory is two generations of at most copiesRemembered entries: when the
// current one is full it becomes the previous one and the previous one is
// forgotten. An entry leaves as soon as its last copy arrived; one whose
// copies never come (a consumer deleted, or created later than the
// others) is forgotten after at most 2*copiesRemembered newer ones. A copy
// arriving after its entry was forgotten, or after a restart, is handled
// again: at least once per filter.
type copies struct {
	cur, prev map[uint64]uint64 // stream sequence → consumers still to deliver it (bit i: durable i)
}

// seen reports whether the stream message at seq was handled already and
// notes that durable's copy of it arrived. A redelivery of the copy that
// was handled counts as seen too.
func (c *copies) seen(seq uint64, durable int) bool {
	for _, gen := range [2]map[uint64]uint64{c.cur, c.prev} {
		due, ok := gen[seq]
		if !ok {
			continue
		}
		if due &^= 1 << durable; due == 0 {
			delete(gen, seq)
		} else {
			gen[seq] = due
		}
		return true
	}
	return false
}

// handled remembers that the stream message at seq was handled (or
// dead-lettered) and that the consumers in due will deliver copies of it.
// It is a no-op on a nil copies (one consumer: no copies) and for due 0.
func (c *copies) handled(seq, due uint64) {
	if c == nil || due == 0 {
		return
	}
	if c.cur == nil {
		c.cur = make(map[uint64]uint64)
	}
	if len(c.cur) >= copiesRemembered {
		c.prev, c.cur = c.cur, make(map[uint64]uint64)
	}
	c.cur[seq] = due
}
