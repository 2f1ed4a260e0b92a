package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// personHandler reads one person's data; the route wrapper does the
// authorisation, ID parsing, encoding and outcome reporting around it.
// It may add to o what the audit should know beyond the route and the
// status (the sections it read, other people it disclosed).
type personHandler func(r *http.Request, id citizenid.ID, g Grant, o *Outcome) (any, error)

// personRoute wraps a personHandler: Authorize, parse {citizen_id}, read,
// write JSON or a problem, report the Outcome to the Grant.
func (s *Server) personRoute(route string, h personHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, ok := s.authorize(w, r, route)
		if !ok {
			return
		}

		var id citizenid.ID
		defer doneOnPanic(r.Context(), g, func() Outcome { return Outcome{Route: route, CitizenID: id} })
		var body any
		var o Outcome
		id, err := citizenid.Parse(r.PathValue("citizen_id")) // id is zero on error
		if err != nil {
			err = fmt.Errorf("%w: %w", hub.ErrInvalid, err)
		} else {
			body, err = h(r, id, g, &o)
		}
		status := http.StatusOK
		if err != nil {
			status = kindOf(err).status
			s.fail(w, r, err)
			o = Outcome{} // nothing was disclosed
		} else {
			s.writeJSON(w, r, status, body)
		}
		o.Route, o.CitizenID, o.Status, o.Err = route, id, status, err
		g.Done(r.Context(), o)
	})
}

// authorize asks the Authorizer for the request's Grant, answering the
// refusal itself; every /v1 answer is private (Cache-Control: no-store),
// refusals included.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, route string) (Grant, bool) {
	w.Header().Set("Cache-Control", "no-store")
	if s.cfg.Authorizer == nil {
		return allowAll{}, true
	}
	g, err := s.cfg.Authorizer.Authorize(r, route)
	if err != nil {
		s.fail(w, r, fmt.Errorf("authorizing request: %w", err))
		return nil, false
	}
	return g, true
}

// pastRecordHint answers a caller who asks a person's record as of a day:
// the hub keeps no past records, only the history of changes (and
// eligibility decides as of a day from it).
var pastRecordHint = map[string]string{
	"as_of": "the record is served as it stands now, never as of a past day: " +
		"GET /v1/persons/{citizen_id}/history lists every change with its time, " +
		"and GET /v1/eligibility/{citizen_id}?as_of= decides a policy as of a day",
}

// person answers GET /v1/persons/{citizen_id}: the golden record exactly as
// hub.Record encodes it. It takes no query parameter.
//
// For the audit, o gets the spouse the answer names (marital.spouse_id,
// when the caller may read it) as a disclosure of their own.
func (s *Server) person(r *http.Request, id citizenid.ID, g Grant, o *Outcome) (any, error) {
	if _, err := queryHinted(r, pastRecordHint); err != nil {
		return nil, err
	}
	rec, err := s.cfg.Store.Person(r.Context(), id)
	if err != nil {
		return nil, fmt.Errorf("reading person %v: %w", id, err)
	}
	rec = g.Record(r.Context(), rec)
	if rec.Marital != nil {
		o.Others = spouseDisclosures(o.Others, id, detailSpouseInRecord, rec.Marital.SpouseID)
	}
	return rec, nil
}

// history answers GET /v1/persons/{citizen_id}/history: every applied change
// in version order, as a JSON array. It takes no query parameter: the
// history is answered whole, never a page or a span of it.
//
// For the audit, o gets each spouse the answer names (spouse_id in the
// data of the changes shown) as a disclosure of their own, once per
// spouse however many changes name them.
func (s *Server) history(r *http.Request, id citizenid.ID, g Grant, o *Outcome) (any, error) {
	if _, err := queryOf(r); err != nil {
		return nil, err
	}
	changes, err := s.cfg.Store.History(r.Context(), id)
	if err != nil {
		return nil, fmt.Errorf("reading history of %v: %w", id, err)
	}
	changes = g.History(r.Context(), changes)
	if changes == nil {
		changes = []hub.Change{}
	}
	o.Others = spouseDisclosures(o.Others, id, detailSpouseInHistory, spousesNamed(changes)...)
	return changes, nil
}

// Why a spouse named in an answer is audited under their own citizen.
const (
	detailSpouseInRecord  = "named as spouse in another person's record"
	detailSpouseInHistory = "named as spouse in another person's history"
)

// spouseDisclosures appends to ds a disclosure of the marital section for
// each spouse, skipping the empty ID, the person read (id) and a spouse
// already in ds: each person once, however many times the answer names
// them. A set keeps it linear in a history naming thousands of spouses
// (a spouse_id the marriage register reused as a placeholder).
func spouseDisclosures(ds []Disclosure, id citizenid.ID, detail string, spouses ...citizenid.ID) []Disclosure {
	if len(spouses) == 0 {
		return ds
	}
	seen := make(map[citizenid.ID]bool, len(ds)+len(spouses)+2)
	seen[""], seen[id] = true, true
	for _, d := range ds {
		seen[d.CitizenID] = true
	}
	for _, sp := range spouses {
		if seen[sp] {
			continue
		}
		seen[sp] = true
		ds = append(ds, Disclosure{CitizenID: sp, Sections: []schemas.Section{schemas.SecMarital}, Detail: detail})
	}
	return ds
}

// spousesNamed returns the spouse_id of every change whose shown data
// names one (a marriage or a divorce), in order, without repeats. Only
// those types' data is decoded: by type, not by the text "spouse_id",
// which data accepted with an escaped key (spouse\u005fid) lacks.
func spousesNamed(changes []hub.Change) []citizenid.ID {
	var ids []citizenid.ID
	seen := map[citizenid.ID]bool{}
	for _, c := range changes {
		if c.Type != schemas.MarriageRegistered && c.Type != schemas.MarriageDivorced || len(c.Data) == 0 {
			continue
		}
		var d struct {
			SpouseID string `json:"spouse_id"`
		}
		if json.Unmarshal(c.Data, &d) != nil || d.SpouseID == "" {
			continue
		}
		if id := citizenid.ID(d.SpouseID); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}
