// Package audit is the hub's audit trail: every read of a golden record or
// its history, every statistics pull and every policy change becomes an
// Entry (who, when, which citizen, which sections, purpose, result) in an
// append-only, hash-chained log.
//
// # The chain
//
// Entries are numbered 1, 2, 3, … (Seq) in the order the single chain
// writer stored them. Each entry holds
//
//	Prev = the Hash of the entry before it (or of the anchor, see Purge)
//	Hash = SHA-256(Prev || Canonical(entry))
//	Seal = HMAC-SHA-256(seal key, Hash)
//
// Canonical is a fixed, length-prefixed byte encoding of the fields (see
// Canonical); it leaves out Seq, Prev, Hash and Seal. The order of the log
// is carried by the Prev links, not by the sequence numbers, which only
// locate entries: a renumbered, moved or removed entry breaks a link.
// Anyone can recompute the SHA-256 chain (a regulator checks an export
// without any secret); the Seal, keyed by the hub's audit key, is what an
// administrator with write access to the table cannot recompute, so a
// changed entry whose hash (and every later hash) was rewritten is still
// caught by Verify when it is given the key. Removing the newest entries
// leaves no trace inside the log itself; compare the head with the last
// signed export (VerifyOptions.Expect) to catch that.
//
// # Retention
//
// Purge deletes the expired entries at the start of the log (an anchor
// stands for them) and redacts every other expired entry in place: a
// policy change or gateway request kept three years must not keep the
// reads after it for three years too. A redacted entry, a stub, keeps its
// Seq, Time, Action (so its class), Prev, Hash and Seal and loses every
// other field (Redacted is set). Its hash can no longer be recomputed, so
// Verify takes its stored Hash as the link for the next entry, still
// checks its Prev link and its Seal, and accepts a stub only when it is
// empty and past its class's legal floor at verification time: stubs
// cannot be added, removed or moved unseen, and a recent entry cannot be
// emptied as a stub. What a stub's Time says is no longer covered by a
// hash: the PostgreSQL trigger allows the redaction only of an entry past
// its floor by the database's clock, and the File relies on its file
// permissions, as it does against deletion from its start.
//
// # Citizens
//
// The log never holds a citizen ID. Subject is Key.Subject(id): the hex
// HMAC-SHA-256 of the ID under a key derived from the caller's audit key,
// so a dump of the database reveals no ID, and "who read my data" is
// answered by computing the same HMAC (WhoRead). Rotating the audit key
// makes older entries unfindable by the new key: keep old keys for as long
// as their entries are retained.
//
// # Stores
//
// Two stores implement Store: Postgres (table audit_log in a schema of its
// choosing; a trigger refuses UPDATE, DELETE and TRUNCATE except the
// retention purge) and File (an append-only JSON-lines file, for the
// embedded single-process hub). Log is the asynchronous appender the
// HTTP read path uses.
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas/citizenid"
)

// Action names what an entry records.
type Action string

// Actions the hub records. An unknown action is valid and is kept as long
// as a processing record (ClassProcessing).
const (
	ActionReadRecord   Action = "read_record"   // GET /v1/persons/{citizen_id}
	ActionReadHistory  Action = "read_history"  // GET /v1/persons/{citizen_id}/history
	ActionListPersons  Action = "list_persons"  // GET /v1/persons
	ActionStatsPull    Action = "stats_pull"    // GET /v1/stats/…
	ActionAuditRead    Action = "audit_read"    // who-read or export of this log
	ActionPolicyChange Action = "policy_change" // a change of an access policy
	// ActionDecideEligibility is GET /v1/eligibility/{citizen_id}: a
	// decision about the person, recorded for the person and for each
	// relative it disclosed. A decision is a processing record, not a read
	// (ClassProcessing). Trails written before it was named hold
	// "read_record" with Detail "eligibility decision…" instead.
	ActionDecideEligibility Action = "decide_eligibility"
	// ActionUnmatched is a /v1 request that matched no route (answered
	// 401, 404 or 405): it touched no personal data, so it is an access
	// log entry. Trails written before it was named hold the same string.
	ActionUnmatched Action = "request unmatched"
)

// Class is the legal category of an entry, which sets its retention floor.
type Class int

const (
	// ClassAccess: network access logs, kept at least six months
	// (Cybersecurity Law art. 21).
	ClassAccess Class = iota + 1
	// ClassProcessing: records of personal-information processing
	// activities, kept at least three years (PIPL art. 56).
	ClassProcessing
)

// accessActions are the actions of ClassAccess; the PostgreSQL trigger
// holds the same list.
var accessActions = []Action{ActionReadRecord, ActionReadHistory, ActionListPersons, ActionStatsPull, ActionAuditRead, ActionUnmatched}

// Class returns the action's legal category: ClassAccess for reads and
// pulls, ClassProcessing for everything else (the longer retention, so an
// unknown action is never purged too early).
func (a Action) Class() Class {
	for _, x := range accessActions {
		if a == x {
			return ClassAccess
		}
	}
	return ClassProcessing
}

// Sum is a SHA-256 or HMAC-SHA-256 value. It is written as lower-case hex
// in JSON.
type Sum [32]byte

// String is the hex form.
func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s is all zero bytes (the Prev of the first entry
// of a log that was never purged).
func (s Sum) IsZero() bool { return s == Sum{} }

// MarshalText writes hex.
func (s Sum) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads 64 hex digits.
func (s *Sum) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("decoding hash: want 64 hex digits, have %d characters", len(b))
	}
	if _, err := hex.Decode(s[:], b); err != nil {
		return fmt.Errorf("decoding hash: %w", err)
	}
	return nil
}

// ParseSum reads 64 hex digits.
func ParseSum(s string) (Sum, error) {
	var v Sum
	err := v.UnmarshalText([]byte(s))
	return v, err
}

// Entry is one audited event. The zero values of the optional fields are
// stored as they are; an Entry is never modified once appended, except
// that Purge redacts it to a stub once it is past its retention (see
// Retention in the package documentation).
type Entry struct {
	// Seq numbers the entry in the log, from 1; set by the chain writer.
	Seq int64 `json:"seq"`
	// Time is when it happened (UTC, microsecond precision, as PostgreSQL
	// keeps it); Log.Append sets it when zero.
	Time time.Time `json:"time"`
	// Identity is who acted: the authenticated client (department system,
	// user, or "pophub" for the hub's own tools).
	Identity string `json:"identity"`
	// Action is what was done.
	Action Action `json:"action"`
	// Subject is Key.Subject of the citizen concerned, or empty when the
	// action concerns no single citizen (statistics, policies) or the
	// request named a malformed ID.
	Subject string `json:"subject,omitempty"`
	// Sections are the record sections the caller was shown (after
	// filtering), in the order given.
	Sections []string `json:"sections,omitempty"`
	// Purpose is the declared purpose (the X-Purpose header), with any
	// citizen ID in it masked when the entry is chained.
	Purpose string `json:"purpose"`
	// Status is the HTTP status answered, or 0 outside HTTP.
	Status int `json:"status,omitempty"`
	// Result is the outcome in words: "ok", "denied", "not_found", …
	Result string `json:"result"`
	// Detail is free text with no personal data (for a policy change: what
	// changed).
	Detail string `json:"detail,omitempty"`

	// Prev, Hash and Seal chain the entry; set by the chain writer.
	Prev Sum `json:"prev"`
	Hash Sum `json:"hash"`
	Seal Sum `json:"seal"`

	// Redacted marks a stub: a purge emptied every field but Seq, Time,
	// Action and the chain's, so Hash is no longer the hash of the rest.
	// Not part of Canonical; the chain writer clears it.
	Redacted bool `json:"redacted,omitempty"`
}

// redact empties e to its stub.
func redact(e *Entry) {
	*e = Entry{Seq: e.Seq, Time: e.Time, Action: e.Action, Prev: e.Prev, Hash: e.Hash, Seal: e.Seal, Redacted: true}
}

// isStub reports whether e is a well-formed stub: marked redacted and
// holding nothing but what redact keeps. A marked entry that still holds
// a field would claim content its hash no longer vouches for.
func isStub(e *Entry) bool {
	return e.Redacted && e.Identity == "" && e.Subject == "" && len(e.Sections) == 0 && e.Purpose == "" &&
		e.Status == 0 && e.Result == "" && e.Detail == ""
}

// Link is a position in the chain: the last entry's, or the anchor a
// purge leaves behind (the last purged entry). The zero Link is the start
// of a log that was never purged.
type Link struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	Hash Sum       `json:"hash"`
	Seal Sum       `json:"seal"`
}

// link returns e's position.
func (e *Entry) link() Link { return Link{Seq: e.Seq, Time: e.Time, Hash: e.Hash, Seal: e.Seal} }

// canonicalVersion prefixes the canonical encoding so that it can change.
const canonicalVersion = 1

// Canonical appends the canonical encoding of e to b and returns it:
//
//	version byte 1
//	Time as microseconds since 1970-01-01 UTC, int64 big-endian
//	Identity, Action, Subject, Purpose, Result, Detail: uvarint length, bytes
//	Status: int64 big-endian
//	len(Sections) as uvarint, then each section: uvarint length, bytes
//
// Seq, Prev, Hash, Seal and Redacted are not part of it. A stub's hash is
// the one computed before it was redacted, which it no longer matches.
func Canonical(b []byte, e *Entry) []byte {
	b = append(b, canonicalVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMicro()))
	for _, s := range [...]string{e.Identity, string(e.Action), e.Subject, e.Purpose, e.Result, e.Detail} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(int64(e.Status)))
	b = binary.AppendUvarint(b, uint64(len(e.Sections)))
	for _, s := range e.Sections {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// HashEntry computes SHA-256(prev || Canonical(e)), what e.Hash must be
// when e follows an entry whose hash is prev.
func HashEntry(prev Sum, e *Entry) Sum {
	var buf [512]byte
	b := append(buf[:0], prev[:]...)
	return sha256.Sum256(Canonical(b, e))
}

// Field limits: longer values are cut (at a character boundary) when an
// entry is chained. Identity and Purpose may come from request headers.
const (
	maxField  = 512
	maxDetail = 4096
)

// normalize brings an entry to the form both stores round-trip exactly,
// before it is hashed: UTC, microseconds, nil for no sections, valid UTF-8
// without NUL (PostgreSQL text refuses both, and JSON would rewrite
// invalid UTF-8), bounded lengths. Without it one odd X-Purpose header
// could make a batch unstorable. The purpose is a clerk's free text and
// may name another citizen ("settlement application of 2301…"), while the
// trail names citizens only by their keyed hash: its ID-shaped numbers are
// masked (citizenid.MaskText: plain, in groups such as 6-8-4, or in
// full-width digits), before the length cut, which could leave 14 digits
// of an ID, too few to be recognised as one. Names in the text cannot be
// recognised; the README asks for purposes without them.
func normalize(e *Entry) {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Identity = clean(e.Identity, maxField)
	e.Action = Action(clean(string(e.Action), maxField))
	e.Subject = clean(e.Subject, maxField)
	e.Purpose = clean(citizenid.MaskText(e.Purpose), maxField)
	e.Result = clean(e.Result, maxField)
	e.Detail = clean(e.Detail, maxDetail)
	if len(e.Sections) == 0 {
		e.Sections = nil
	}
	for i, s := range e.Sections {
		if c := clean(s, maxField); c != s {
			e.Sections = slices.Clone(e.Sections)
			e.Sections[i] = c
		}
	}
}

// clean makes s valid UTF-8 without NUL and at most max bytes long.
func clean(s string, max int) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && len(s) <= max {
		return s
	}
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
