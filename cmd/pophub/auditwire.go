package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
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
// refuses to start, since entries could not be looked up later.
func (m *Main) openAudit(ctx context.Context) error {
	keyFile := m.Config.AuditKeyFile
	if keyFile == "" {
		if m.Config.DataDir == "" {
			return errors.New("--audit-key-file is required with --policy (generate one with 'pophub audit keygen')")
		}
		keyFile = filepath.Join(m.Config.DataDir, "audit.key")
		if _, err := os.Stat(keyFile); errors.Is(err, fs.ErrNotExist) {
			if err := audit.GenerateKeyFile(keyFile); err != nil {
				return fmt.Errorf("generating the audit key: %w", err)
			}
			m.Logger.Info("audit key generated", "file", keyFile)
		}
	}
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		return fmt.Errorf("loading the audit key: %w", err)
	}
	var store audit.Store
	if pg, ok := m.Store.(*postgres.Store); ok {
		schema := m.Config.PostgresSchema
		if schema == "" {
			schema = "public"
		}
		if store, err = audit.OpenPostgres(ctx, audit.PostgresConfig{Pool: pg.Pool(), Schema: schema}); err != nil {
			return fmt.Errorf("opening the audit log: %w", err)
		}
	} else {
		dir := m.Config.DataDir
		if dir == "" {
			return errors.New("--policy with the memdb store needs --data for the audit log")
		}
		if store, err = audit.OpenFile(filepath.Join(dir, "audit.jsonl")); err != nil {
			return fmt.Errorf("opening the audit log: %w", err)
		}
	}
	l, err := audit.NewLog(store, key, audit.LogConfig{Logger: m.Logger})
	if err != nil {
		store.Close()
		return err
	}
	m.auditStore, m.auditLog, m.auditKey = store, l, key
	m.auditor = accessAuditor{log: l, key: key, logger: m.Logger}
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
	e := audit.Entry{Time: x.Time, Identity: x.Identity, Action: auditAction(x.Route), Purpose: x.Purpose,
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
	case x.Route == api.RouteEligibility:
		e.Detail = "eligibility decision"
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

// auditAction names what a route does to personal data.
func auditAction(route string) audit.Action {
	switch route {
	case access.RouteEvents:
		return actionPublishEvents
	case api.RoutePerson, api.RouteEligibility:
		return audit.ActionReadRecord
	case api.RouteHistory:
		return audit.ActionReadHistory
	case api.RoutePersons:
		return audit.ActionListPersons
	case api.RouteUrbanRural, api.RouteResidencePermits:
		return audit.ActionStatsPull
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
