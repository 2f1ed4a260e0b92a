package merge

import (
	"crypto/sha256"
	"encoding/hex"
	"runtime"
	"sync"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/region"
)

// Entry is one history row: a change applied to a person.
type Entry struct {
	CitizenID citizenid.ID
	Change    hub.Change
}

// Outcome is what a batch did, for the store to persist in one transaction.
type Outcome struct {
	// States holds the new state of every person the batch changed.
	States map[citizenid.ID]*State
	// History lists the applied changes in apply order.
	History []Entry
	// Outbox lists the notifications to publish; the store assigns Seq.
	Outbox     []hub.OutboxEntry
	Applied    int
	Duplicates int

	// marks remember, per input in order, where its rows are, so that a
	// parallel batch can be put back into input order.
	marks []mark
	// derived holds, per person, the sections as the last event of the
	// batch left them: the "before" of the person's next event, which
	// would otherwise be derived again. An event changes only the
	// sections it affects, so the others stay valid.
	derived map[*State]map[schemas.Section]any
	// walks holds, per person, the golden record's permit walk
	// (walkPermits with expire false) of the person's state as the batch
	// left it, for the next event to go on with (resume) rather than
	// walk the whole timelines again.
	walks map[*State]*permitWalk
	// bodies is the shard's arena for notification bodies, which are
	// many and small and never change once written.
	bodies []byte
	// appliedAt is now in the notifications' time format.
	appliedAt []byte
}

type mark struct {
	history      int
	outbox, upto int
}

// ChangeID identifies one notification: derived from the event's
// idempotency key and the notification kind (a section, "migration",
// "death" or KindStatusAtDeath), so re-deriving it after a crash gives the
// same id and JetStream drops the repeat by Nats-Msg-Id. It carries no
// citizen ID.
func ChangeID(source schemas.Source, eventID, kind string) string {
	return eventDigest(source, eventID) + "." + kind
}

// KindStatusAtDeath is the change id kind of a status change announced a
// second time, in the region where the death it ends was announced: the
// same notification as the status section's in the region after the
// change, under an id of its own, since JetStream would drop a second
// message with the first's Nats-Msg-Id.
const KindStatusAtDeath = "status.at-death"

// eventDigest is the part of an event's change ids that names the event,
// computed once per event however many notifications it raises.
func eventDigest(source schemas.Source, eventID string) string {
	var buf [128]byte
	b := append(append(append(buf[:0], source...), 0), eventID...)
	h := sha256.Sum256(b)
	var out [24]byte
	hex.Encode(out[:], h[:12])
	return string(out[:])
}

// Batch applies validated events to the loaded states. loaded maps a
// person to their current state (absent or nil: unknown so far) and is not
// modified. Events whose (source, id) the store already applied in an
// earlier batch must be left out by the caller; repeats within in are
// counted as duplicates here. now stamps applied_at and updated_at.
func Batch(loaded map[citizenid.ID]*State, in []hub.Input, now time.Time) Outcome {
	// Repeats are found first, over the whole batch, so that a repeated
	// (source, id) counts once whichever persons it names.
	seen := make(map[schemas.EventKey]struct{}, len(in))
	fresh := make([]*hub.Input, 0, len(in))
	dups := 0
	for i := range in {
		k := in[i].Event.Key()
		if _, dup := seen[k]; dup {
			dups++
			continue
		}
		seen[k] = struct{}{}
		fresh = append(fresh, &in[i])
	}
	var out Outcome
	if shards := runtime.GOMAXPROCS(0); shards > 1 && len(fresh) >= parallelMin {
		out = batchParallel(loaded, fresh, now, shards)
	} else {
		out = batchShard(loaded, fresh, now)
	}
	out.Duplicates += dups
	return out
}

// lifecycleTypes are the events that can change status or anomalies other
// than "unregistered": registration, cancellation, death, corrections of
// birth date or gender, and a migration, which shows public security
// knows the hukou of a person whose death is certified.
var lifecycleTypes = map[schemas.Type]bool{
	schemas.HukouRegistered:   true,
	schemas.HukouMigrated:     true,
	schemas.HukouCancelled:    true,
	schemas.DeathCertified:    true,
	schemas.IdentityCorrected: true,
}

// parallelMin is the batch size from which persons are merged in parallel.
const parallelMin = 512

// batchParallel merges disjoint sets of persons concurrently, then lays
// the history and outbox rows out in input order, exactly as a sequential
// run would: stores number outbox entries in this order, and a replay on a
// machine with another number of cores must number them the same.
func batchParallel(loaded map[citizenid.ID]*State, in []*hub.Input, now time.Time, shards int) Outcome {
	parts := make([][]*hub.Input, shards)
	index := make([][]int, shards) // of each part's inputs in in
	for i, p := range in {
		h := fnv32(string(p.Event.Subject)) % uint32(shards)
		parts[h] = append(parts[h], p)
		index[h] = append(index[h], i)
	}
	outs := make([]Outcome, shards)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = batchShard(loaded, parts[i], now)
		}()
	}
	wg.Wait()
	type where struct {
		shard int
		m     mark
	}
	at := make([]where, len(in)) // batchShard marks every input, in order
	out := Outcome{States: make(map[citizenid.ID]*State, len(in)), History: make([]Entry, 0, len(in))}
	outboxLen := 0
	for i, o := range outs {
		for k, v := range o.States {
			out.States[k] = v
		}
		for j, m := range o.marks {
			at[index[i][j]] = where{i, m}
		}
		out.Applied += o.Applied
		out.Duplicates += o.Duplicates
		outboxLen += len(o.Outbox)
	}
	out.Outbox = make([]hub.OutboxEntry, 0, outboxLen)
	for _, w := range at {
		o := outs[w.shard]
		out.History = append(out.History, o.History[w.m.history])
		out.Outbox = append(out.Outbox, o.Outbox[w.m.outbox:w.m.upto]...)
	}
	return out
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// batchShard applies distinct events in order.
func batchShard(loaded map[citizenid.ID]*State, in []*hub.Input, now time.Time) Outcome {
	out := Outcome{States: make(map[citizenid.ID]*State), History: make([]Entry, 0, len(in)), Outbox: make([]hub.OutboxEntry, 0, len(in)+len(in)/2),
		derived: make(map[*State]map[schemas.Section]any), walks: make(map[*State]*permitWalk), appliedAt: now.AppendFormat(nil, time.RFC3339Nano)}
	for _, p := range in {
		ev := &p.Event
		st, ok := out.States[ev.Subject]
		if !ok {
			if cur := loaded[ev.Subject]; cur != nil {
				st = cur.Clone()
			} else {
				st = NewState(ev.Subject)
			}
			out.States[ev.Subject] = st
		}
		h, o := len(out.History), len(out.Outbox)
		out.apply(st, p, now)
		out.marks = append(out.marks, mark{history: h, outbox: o, upto: len(out.Outbox)})
	}
	return out
}

func (out *Outcome) apply(st *State, in *hub.Input, now time.Time) {
	ev := &in.Event
	secs := changeable[ev.Type]
	// Status and anomalies depend on a few registers only; skip deriving
	// them when this event cannot touch those.
	life := lifecycleTypes[ev.Type]
	first := !st.knownToPublicSecurity() && (st.First.IsZero() || ev.Time.Before(st.First))
	skip := func(sec schemas.Section) bool {
		return (sec == schemas.SecStatus && !life) || (sec == schemas.SecAnomalies && !life && !first)
	}
	derived := out.derived[st]
	if derived == nil {
		derived = make(map[schemas.Section]any, len(secs))
		out.derived[st] = derived
	}
	// A contract, property, lease, business, enrolment or graduation: its
	// section changed when the entry did (entryOf), and is not derived
	// whole.
	keyedSec, entryBefore, keyed := st.entryOf(ev)
	var buf [4]any
	before := buf[:0]
	for _, sec := range secs {
		var v any
		if keyed && sec == keyedSec {
			delete(derived, sec) // stale after this event
		} else if skip(sec) {
			delete(derived, sec) // not derived after this event either
		} else if d, ok := derived[sec]; ok {
			v = d
		} else {
			v = out.section(st, sec)
		}
		before = append(before, v)
	}
	// The permit walk kept goes on over this event's point, or is
	// dropped if this event changes what it read.
	var walk *permitWalk
	if permitReads[ev.Type] {
		if w := out.walks[st]; w != nil && st.resumable(ev) {
			walk = w
		}
		delete(out.walks, st)
	}
	wasDeceased := st.Status() == hub.StatusDeceased
	wasDate, wasDeathAddr := "", ""
	if life {
		wasDate = st.DateOfDeath()
		if wasDeceased {
			wasDeathAddr = st.deathAddress()
		}
	}

	st.apply(ev)
	st.Ver++
	st.UpdatedAt = now
	if walk != nil && st.resume(walk, ev) {
		out.walks[st] = walk
	}

	changed := []string{}
	for i, sec := range secs {
		if keyed && sec == keyedSec {
			if _, entryAfter, _ := st.entryOf(ev); entryAfter != entryBefore {
				changed = append(changed, string(sec))
			}
			continue
		}
		if skip(sec) {
			continue
		}
		after := out.section(st, sec)
		derived[sec] = after
		if !sectionEqual(before[i], after) {
			changed = append(changed, string(sec))
		}
	}
	out.Applied++
	out.History = append(out.History, Entry{CitizenID: st.ID, Change: hub.Change{
		Version: st.Ver, EventID: ev.ID, Source: ev.Source, Type: ev.Type, Time: ev.Time,
		AppliedAt: now, Sections: changed, Data: ev.Data,
	}})

	base := schemas.Notification{CitizenID: st.ID, Version: st.Ver, EventID: ev.ID, EventType: ev.Type,
		Source: ev.Source, Time: ev.Time, AppliedAt: now}
	var timeBuf [40]byte
	timeText := ev.Time.AppendFormat(timeBuf[:0], time.RFC3339Nano)
	addr := st.AddressCode()
	migration, _ := ev.Payload.(*schemas.HukouMigratedData)
	deceased := st.Status() == hub.StatusDeceased
	died := !wasDeceased && deceased
	// A death is announced in the region of the hukou at the death
	// (deathAddress): where the person lived when they died in the hub's
	// order of changes, whichever of the moves arrived first; under the
	// unknown region (00.0000.000000), which no region's subscriber
	// follows, while no address is known. When that region becomes known
	// or changes (a registration arriving after the death, a migration
	// that took effect before the death arriving after the death or after
	// a later move, a later certificate with another time), the death
	// is announced again there, under this event's change id, so the
	// bureau that pays the person hears of it. Not for a move within the
	// county, which changes no subscriber, nor for one taking effect after
	// the death, which leaves it where it happened. Likewise when the
	// date of death changes (a certificate arriving after a cancellation
	// for death, whose date stood in for it): subscribers act on the date,
	// so the corrected one is announced.
	deathAddr := ""
	if died || (life && wasDeceased && deceased) {
		deathAddr = st.deathAddress()
	}
	if life && wasDeceased && deceased &&
		(deathRegionChanged(deathAddr, wasDeathAddr) || st.DateOfDeath() != wasDate) {
		died = true
	}
	digest := ""
	if len(changed) > 0 || migration != nil || died {
		digest = eventDigest(ev.Source, ev.ID)
	}
	for _, sec := range changed {
		n := base
		n.Section = sec
		out.notify(schemas.ChangedSubject(addr, schemas.Section(sec)), sec, n, digest, timeText, in.Trace, now)
	}
	// A death ended (a registration restoring the hukou) is a status
	// change, announced where the hukou is after it. The bureau that
	// acted on the death heard of it where the death was announced
	// (deathAddress before this event); when that is another county (the
	// hukou restored at another address), the status change is announced
	// there too, so that bureau learns the person is active again.
	if wasDeceased && !deceased && wasDeathAddr != "" && region.Tokens(wasDeathAddr) != region.Tokens(addr) {
		n := base
		n.Section = string(schemas.SecStatus)
		out.notify(schemas.ChangedSubject(wasDeathAddr, schemas.SecStatus), KindStatusAtDeath, n, digest, timeText, in.Trace, now)
	}
	if d := migration; d != nil {
		n := base
		n.Section = schemas.KindMigration
		n.FromAddressCode, n.ToAddressCode, n.Reason = d.FromAddressCode, d.ToAddressCode, d.Reason
		out.notify(schemas.MigrationSubject(d.FromAddressCode, d.ToAddressCode), n.Section, n, digest, timeText, in.Trace, now)
	}
	if died {
		n := base
		n.Section = schemas.KindDeath
		n.DateOfDeath = st.DateOfDeath()
		// The time is when the death took effect: that of the event the
		// date of death comes from, also when another event announces it
		// again (a registration's time may be decades earlier).
		deathText := timeText
		if at := st.deathAt(); !at.IsZero() && (at.Src != ev.Source || at.ID != ev.ID) {
			n.Time = at.T.In(schemas.CST()) // a state stored before times were kept in CST
			deathText = n.Time.AppendFormat(nil, time.RFC3339Nano)
		}
		out.notify(schemas.DeathSubject(deathAddr), n.Section, n, digest, deathText, in.Trace, now)
	}
}

// permitReads are the events that write what a permit walk reads: the
// timelines, the lifecycle and death registers (cancellationReason,
// certifiedDate) and the permit registers (permitUntil).
var permitReads = map[schemas.Type]bool{
	schemas.HukouRegistered:        true,
	schemas.HukouMigrated:          true,
	schemas.HukouCancelled:         true,
	schemas.DeathCertified:         true,
	schemas.ResidencePermitIssued:  true,
	schemas.ResidencePermitRevoked: true,
}

// section derives one section of st for change detection. The
// residence permits come from the walk the batch keeps for st, walked
// whole only when there is none.
func (out *Outcome) section(st *State, sec schemas.Section) any {
	if sec != schemas.SecResidencePermits || len(st.PermitLine) == 0 {
		return st.section(sec)
	}
	w := out.walks[st]
	if w == nil || w.hukou != len(st.HukouLine) || w.permits != len(st.PermitLine) {
		w = st.walkPermits(false)
		out.walks[st] = w
	}
	return permitViews(st.heldPermits(w))
}

// notify adds a notification of the given change id kind (ChangeID);
// digest is eventDigest of its event and timeText its time as
// notifications write it.
func (out *Outcome) notify(subject, kind string, n schemas.Notification, digest string, timeText []byte, trace map[string]string, now time.Time) {
	n.ChangeID = digest + "." + kind
	if cap(out.bodies)-len(out.bodies) < 1024 {
		out.bodies = make([]byte, 0, 64<<10)
	}
	start := len(out.bodies)
	out.bodies = n.AppendJSONTimes(out.bodies, timeText, out.appliedAt)
	body := out.bodies[start:len(out.bodies):len(out.bodies)]
	out.Outbox = append(out.Outbox, hub.OutboxEntry{Subject: subject, MsgID: n.ChangeID, Body: body, Trace: trace, CreatedAt: now})
}

// deathRegionChanged reports whether the region a deceased person's death
// belongs to changed from wasAddr's to addr's (deathAddress before and
// after an event): the first known region, or another county.
func deathRegionChanged(addr, wasAddr string) bool {
	return addr != "" && region.Tokens(addr) != region.Tokens(wasAddr)
}
