package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/hub/postgres"
)

// openAudit opens the audit trail next to the store: the store's own
// PostgreSQL schema, or <data>/audit.jsonl for memdb. The key comes from
// Config.AuditKeyFile; without one, a hub with a data directory keeps a
// generated key at <data>/audit.key (dev and the demo), and any other hub
// refuses to start, since entries could not be looked up later. A key is
// generated only for an empty trail, and the key must be the one the
// trail is sealed with: entries sealed with another key would leave a
// log that verifies under neither.
func (m *Main) openAudit(ctx context.Context) error {
	if m.Config.AuditKeyFile == "" && m.Config.DataDir == "" {
		return errors.New("--audit-key-file is required with --policy (generate one with 'pophub audit keygen')")
	}
	store, err := m.openAuditStore(ctx)
	if err != nil {
		return err
	}
	key, err := m.loadAuditKey(ctx, store)
	if err != nil {
		store.Close()
		return err
	}
	l, err := audit.NewLog(store, key, audit.LogConfig{Logger: m.Logger})
	if err != nil {
		store.Close()
		return err
	}
	m.auditStore, m.auditLog, m.auditKey = store, l, key
	m.auditor = accessAuditor{log: l, key: key, logger: m.Logger}
	if err := m.recordPolicy(ctx); err != nil {
		return err
	}
	return nil
}

// openAuditStore opens (creating it) the trail: the store's PostgreSQL
// schema, or <data>/audit.jsonl for memdb, which it neither creates nor
// begins when it was lost (checkAuditLogNotLost).
func (m *Main) openAuditStore(ctx context.Context) (audit.Store, error) {
	if pg, ok := m.Store.(*postgres.Store); ok {
		schema := m.Config.PostgresSchema
		if schema == "" {
			schema = "public"
		}
		store, err := audit.OpenPostgres(ctx, audit.PostgresConfig{Pool: pg.Pool(), Schema: schema, Logger: m.Logger})
		if err != nil {
			return nil, fmt.Errorf("opening the audit log: %w", err)
		}
		return store, nil
	}
	dir := m.Config.DataDir
	if dir == "" {
		return nil, errors.New("--policy with the memdb store needs --data for the audit log")
	}
	logFile := filepath.Join(dir, "audit.jsonl")
	_, err := os.Stat(logFile)
	missing := errors.Is(err, fs.ErrNotExist)
	if missing {
		if err := m.checkAuditLogNotLost(logFile, true); err != nil {
			return nil, err
		}
	}
	store, err := audit.OpenFile(logFile)
	if err != nil {
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	if !missing {
		if head, err := store.Head(ctx); err == nil && head.Seq == 0 {
			if err := m.checkAuditLogNotLost(logFile, false); err != nil {
				store.Close()
				return nil, err
			}
		}
	}
	return store, nil
}

// checkAuditLogNotLost refuses to begin the trail in logFile, missing or
// (missing false) holding no entry, when files the hub writes only beside
// a trail it keeps are still there: the log was lost (a data directory
// restored without it, an emptied copy), and a new log sealed with the
// old key would verify while every earlier entry is gone. The evidence is
// the log's sidecars (audit.Sidecars) and, for a missing log, the key the
// hub generated at <data>/audit.key: it generates that key only after
// creating the log, so the key without the log means the log was removed.
// An empty log beside that key alone is what a first start stopped before
// its first entry leaves, and is begun again.
//
// A log kept with a supplied --audit-key-file and lost with its whole
// directory leaves nothing here to tell it from a first start.
func (m *Main) checkAuditLogNotLost(logFile string, missing bool) error {
	var found, why []string
	if keyFile := filepath.Join(m.Config.DataDir, "audit.key"); missing && m.Config.AuditKeyFile == "" {
		if _, err := os.Stat(keyFile); err == nil {
			found = append(found, keyFile)
			why = append(why, keyFile+" (the key the hub generated when it began the log)")
		}
	}
	for _, f := range audit.Sidecars(logFile) {
		found = append(found, f)
		why = append(why, f+" (written only once the log holds entries)")
	}
	if len(found) == 0 {
		return nil
	}
	state, are := "holds no entry", "is"
	if missing {
		state = "is missing"
	}
	if len(found) > 1 {
		are = "are"
	}
	return fmt.Errorf("the audit log %s %s, but %s %s still there: the log held entries and was lost, and a new log sealed with "+
		"the same key would verify while every access entry before the loss is gone. Restore %s from the same backup as those "+
		"files; to begin a new trail deliberately, move %s out of %s and keep them with the old trail's backups",
		logFile, state, strings.Join(why, " and "), are, logFile, strings.Join(found, " and "), filepath.Dir(logFile))
}

// loadAuditKey loads the trail's key (Config.AuditKeyFile, else
// <data>/audit.key, generated for an empty trail) and checks that it
// sealed the trail's head.
func (m *Main) loadAuditKey(ctx context.Context, store audit.Store) (audit.Key, error) {
	keyFile := m.Config.AuditKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(m.Config.DataDir, "audit.key")
		if _, err := os.Stat(keyFile); errors.Is(err, fs.ErrNotExist) {
			head, err := store.Head(ctx)
			if err != nil {
				return audit.Key{}, fmt.Errorf("reading the audit log: %w", err)
			}
			if head.Seq > 0 {
				return audit.Key{}, fmt.Errorf("the audit log holds entries up to seq %d but its key %s is missing: restore that file from the backup "+
					"(a new key could neither verify the log nor find its citizens)", head.Seq, keyFile)
			}
			if err := audit.GenerateKeyFile(keyFile); err != nil {
				return audit.Key{}, fmt.Errorf("generating the audit key: %w", err)
			}
			m.Logger.Info("audit key generated", "file", keyFile)
		}
	}
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		return audit.Key{}, fmt.Errorf("loading the audit key: %w", err)
	}
	if err := audit.CheckKey(ctx, store, key); err != nil {
		return audit.Key{}, fmt.Errorf("audit key %s: %w", keyFile, err)
	}
	return key, nil
}

// policyDetail is the Detail of the policy_change entry the hub writes
// when it starts under a policy other than the last one recorded: digests
// and identity names, never a credential (the policy holds only hashes
// and secret references, and those are left out too).
type policyDetail struct {
	// Old is the digest of the policy recorded before ("" for none); New
	// the digest of the one now in force (policyDigest).
	Old string `json:"old"`
	New string `json:"new"`
	// Added, Removed and Changed name the identities that appeared,
	// disappeared or whose entry (grants, limits, credentials) changed.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
	// SettingsChanged: a policy-wide setting (version, stats_min_cell,
	// rate_limit, kafka_group) changed.
	SettingsChanged bool `json:"settings_changed,omitempty"`
	// Unknown: the previous entry did not say enough to compare
	// identities (none recorded, or one written by another tool).
	Unknown bool `json:"previous_unknown,omitempty"`
	// Identities maps each identity to the first 8 hex digits of its
	// entry's digest: what the next change is compared with.
	Identities map[string]string `json:"identities,omitempty"`
	// Part and Parts number the entries of a change whose digests do not
	// fit in one (policyEntries): the digests are in parts 1 to Parts-1,
	// written just before the change itself, part Parts. Both are absent
	// from a change written as one entry.
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
}

// policyEntries is the details of the entries that record d: one, or,
// when d's identity digests take it over maxPolicyDetail, parts holding
// the digests (each with d's new digest) and then d without them.
func policyEntries(d policyDetail) [][]byte {
	one, _ := json.Marshal(d)
	if len(one) <= maxPolicyDetail {
		return [][]byte{one}
	}
	head := d
	head.Identities = nil
	if b, _ := json.Marshal(head); len(b) > maxPolicyDetail-20 {
		head.Added, head.Removed, head.Changed = nil, nil, nil // too many names: the digests say there was a change
	}
	names := slices.Sorted(maps.Keys(d.Identities))
	var chunks []map[string]string
	size := 0
	for _, name := range names {
		// A name and digest take their quotes, colon and comma; a
		// part's other fields take well under 200 bytes.
		n := len(name) + len(d.Identities[name]) + 6
		if len(chunks) == 0 || size+n > maxPolicyDetail-200 {
			chunks = append(chunks, map[string]string{})
			size = 0
		}
		chunks[len(chunks)-1][name] = d.Identities[name]
		size += n
	}
	parts := len(chunks) + 1
	out := make([][]byte, 0, parts)
	for i, c := range chunks {
		b, _ := json.Marshal(policyDetail{New: d.New, Identities: c, Part: i + 1, Parts: parts})
		out = append(out, b)
	}
	head.Part, head.Parts = parts, parts
	b, _ := json.Marshal(head)
	return append(out, b)
}

// previousPolicy is the change recorded in last, its identity digests
// gathered from the parts before it when it was written in several; nil
// Identities when a part is missing (purged, or written by someone else),
// so that the change is compared with nothing.
func (m *Main) previousPolicy(ctx context.Context, last audit.Entry) (*policyDetail, error) {
	prev := &policyDetail{}
	if json.Unmarshal([]byte(last.Detail), prev) != nil {
		return &policyDetail{}, nil // written by someone else: compare with nothing
	}
	if prev.Parts <= 1 {
		return prev, nil
	}
	prev.Identities = nil
	if prev.Part != prev.Parts {
		return prev, nil
	}
	es, err := m.auditStore.PolicyChangesBefore(ctx, last.Seq, prev.Parts-1)
	if err != nil {
		return nil, fmt.Errorf("reading the parts of the last recorded policy: %w", err)
	}
	ids := map[string]string{}
	seen := map[int]bool{}
	for _, e := range es {
		var p policyDetail
		if json.Unmarshal([]byte(e.Detail), &p) != nil || p.New != prev.New || p.Parts != prev.Parts || p.Part < 1 || p.Part >= p.Parts {
			break // the parts come just before the change
		}
		seen[p.Part] = true
		maps.Copy(ids, p.Identities)
	}
	if len(seen) == prev.Parts-1 {
		prev.Identities = ids
	}
	return prev, nil
}

// maxPolicyDetail keeps a policy_change Detail under the log's limit on
// the field (4096 bytes), which would cut it.
const maxPolicyDetail = 4000

// policyDigest is the SHA-256 of the policy's canonical form (its
// settings and its identities sorted by name, each as encoding/json
// writes the validated values), so that comments, layout and identity
// order in the file do not count as changes; and the digest of each
// identity, shortened. Credentials count: a new token hash is a change.
func policyDigest(p *access.Policy) (string, map[string]string) {
	settings, _ := json.Marshal(struct {
		Version, StatsMinCell int
		RateLimit             *access.RateLimit
		KafkaGroup            string
	}{p.Version, p.StatsMinCell, p.RateLimit, p.KafkaGroup})
	ids := slices.Clone(p.Identities)
	slices.SortFunc(ids, func(a, b access.Identity) int { return strings.Compare(a.Name, b.Name) })
	h := sha256.New()
	h.Write(settings)
	short := make(map[string]string, len(ids))
	for _, id := range ids {
		b, _ := json.Marshal(id)
		sum := sha256.Sum256(b)
		short[id.Name] = hex.EncodeToString(sum[:4])
		fmt.Fprintf(h, "\n%d:%s", len(b), b)
	}
	settingsSum := sha256.Sum256(settings)
	short[""] = hex.EncodeToString(settingsSum[:4]) // the settings, under a name no identity has
	return hex.EncodeToString(h.Sum(nil)), short
}

// comparePolicy describes the change from the last recorded policy
// (prev, nil for none) to the one in force.
func comparePolicy(prev *policyDetail, cur *access.Policy) policyDetail {
	d := policyDetail{}
	d.New, d.Identities = policyDigest(cur)
	if prev == nil || prev.Identities == nil {
		if prev != nil {
			d.Old = prev.New
		}
		d.Unknown = true
		return d
	}
	d.Old = prev.New
	for name, sum := range d.Identities {
		old, ok := prev.Identities[name]
		switch {
		case name == "":
			d.SettingsChanged = ok && old != sum
		case !ok:
			d.Added = append(d.Added, name)
		case old != sum:
			d.Changed = append(d.Changed, name)
		}
	}
	for name := range prev.Identities {
		if _, ok := d.Identities[name]; !ok && name != "" {
			d.Removed = append(d.Removed, name)
		}
	}
	slices.Sort(d.Added)
	slices.Sort(d.Changed)
	slices.Sort(d.Removed)
	return d
}

// recordPolicy appends a policy_change entry when the policy in force is
// not the last one the trail records (or it records none), and waits
// until the entry is stored, so the hub never serves under an unrecorded
// policy. Finding the last entry reads no more than one entry of the
// trail (audit.Store.LastPolicyChange).
func (m *Main) recordPolicy(ctx context.Context) error {
	last, ok, err := m.auditStore.LastPolicyChange(ctx)
	if err != nil {
		return fmt.Errorf("reading the last recorded policy: %w", err)
	}
	var prev *policyDetail
	if ok {
		if prev, err = m.previousPolicy(ctx, last); err != nil {
			return err
		}
	}
	d := comparePolicy(prev, m.Access)
	if prev != nil && prev.New == d.New {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, detail := range policyEntries(d) {
		e := audit.Entry{Identity: "pophub", Action: audit.ActionPolicyChange, Purpose: "policy in force at start",
			Result: "ok", Detail: string(detail)}
		if err := m.auditLog.Append(ctx, e); err != nil {
			return fmt.Errorf("recording the policy change: %w", err)
		}
	}
	if err := m.auditLog.Flush(ctx); err != nil {
		return fmt.Errorf("recording the policy change: %w", err)
	}
	m.Logger.Info("audit: policy change recorded", "old", d.Old, "new", d.New,
		"added", d.Added, "removed", d.Removed, "changed", d.Changed)
	return nil
}

// accessAuditor writes the authorizer's accesses to the audit log.
type accessAuditor struct {
	log    *audit.Log
	key    audit.Key
	logger *slog.Logger
}

// Record appends one access. It waits at most two seconds for room in the
// log's buffer (a store that is down fills it); an access it cannot record
// is logged as an error, without the citizen.
func (a accessAuditor) Record(ctx context.Context, x access.Access) {
	e := audit.Entry{Time: x.Time, Identity: x.Identity, Action: auditAction(x.Route, x.Status), Purpose: x.Purpose,
		Status: x.Status, Result: auditResult(x.Status)}
	if e.Identity == "" {
		e.Identity = "(unidentified)"
	}
	if x.CitizenID != "" {
		e.Subject = a.key.Subject(x.CitizenID)
	}
	for _, s := range x.Sections {
		e.Sections = append(e.Sections, string(s))
	}
	switch {
	case x.Detail != "":
		e.Detail = x.Detail
	case x.Route == api.RouteEligibility && x.Status < 300:
		e.Detail = "eligibility decision"
	case x.Route == api.RouteEligibility:
		e.Detail = "eligibility request refused: no decision made"
	}
	queued, err := a.log.TryAppend(e)
	if !queued && err == nil {
		// The buffer is full (a store that is down fills it): wait a little.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		err = a.log.Append(ctx, e)
	}
	if err != nil {
		a.logger.Error("audit: an access could not be recorded", "identity", e.Identity, "route", x.Route, "err", err)
	}
}

// actionPublishEvents records a request to the department gateway. It
// reads no record, so it names no citizen, and as a processing record it
// is kept for the longer floor (audit.ClassProcessing).
const actionPublishEvents audit.Action = "publish_events"

// auditAction names what a request to a route, answered with status,
// did to personal data.
func auditAction(route string, status int) audit.Action {
	switch route {
	case access.RouteEvents:
		return actionPublishEvents
	case api.RoutePerson:
		return audit.ActionReadRecord
	case api.RouteEligibility:
		// A decision about the person (and the relatives it lists): a
		// processing record kept 3 years, not a read kept 6 months. A
		// refused request decided nothing: an access, as a refused read is.
		if status >= 300 {
			return audit.ActionReadRecord
		}
		return audit.ActionDecideEligibility
	case api.RouteHistory:
		return audit.ActionReadHistory
	case api.RoutePersons:
		return audit.ActionListPersons
	case api.RouteUrbanRural, api.RouteResidencePermits:
		return audit.ActionStatsPull
	case api.RouteUnmatched:
		// Answered 401, 404 or 405 before any data is touched: an access
		// log entry, kept 6 months, not a processing record kept 3 years.
		return audit.ActionUnmatched
	}
	return audit.Action("request " + route)
}

// auditResult words an HTTP status.
func auditResult(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "ok"
	case status == http.StatusNotFound:
		return "not_found"
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return "denied"
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status == http.StatusBadRequest:
		return "invalid"
	}
	return "error"
}
