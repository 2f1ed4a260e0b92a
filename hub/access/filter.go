package access

import (
	"slices"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
)

// sectionMask has bit i set when schemas.Sections[i] may be read.
type sectionMask uint32

func maskOf(secs []schemas.Section) sectionMask {
	var m sectionMask
	for _, s := range secs {
		m |= bitOf(s)
	}
	return m
}

func bitOf(s schemas.Section) sectionMask {
	if i := slices.Index(schemas.Sections, s); i >= 0 {
		return 1 << i
	}
	return 0
}

func (m sectionMask) has(s schemas.Section) bool { return m&bitOf(s) != 0 }

// covers reports whether every section of o may be read.
func (m sectionMask) covers(o sectionMask) bool { return m&o == o }

// dataSections are the sections whose fields an event of type t carries
// in its data: those the type writes (a registration's name and birth
// date as well as its address), whatever one change of that type altered.
// Status and anomalies are the hub's conclusions, not event fields, except
// for the events that write no section of their own: a death's date and
// certificate, a cancellation's reason are what status is made of. A
// type the hub does not know carries every section.
func dataSections(t schemas.Type) sectionMask {
	affected := merge.Affected(t)
	if affected == nil {
		return maskOf(schemas.Sections)
	}
	var m sectionMask
	for _, s := range affected {
		if s != schemas.SecStatus && s != schemas.SecAnomalies {
			m |= bitOf(s)
		}
	}
	if m == 0 {
		m = bitOf(schemas.SecStatus)
	}
	return m
}

// FilterRecord narrows a golden record to the readable sections. The
// citizen ID, version and update time are always kept; an unreadable
// status is emptied, which leaves it out of the JSON (record.schema.json:
// status is a section like the others, optional for that reason);
// provenance is kept for readable sections only. The
// record is not modified (its maps and slices may be shared with the
// result).
func FilterRecord(rec hub.Record, readable []schemas.Section) hub.Record {
	return filterRecord(rec, maskOf(readable))
}

func filterRecord(rec hub.Record, m sectionMask) hub.Record {
	if !m.has(schemas.SecIdentity) {
		rec.Identity = nil
	}
	if !m.has(schemas.SecHukou) {
		rec.Hukou = nil
	}
	if !m.has(schemas.SecStatus) {
		rec.Status = ""
	}
	if !m.has(schemas.SecResidencePermits) {
		rec.ResidencePermits = nil
	}
	if !m.has(schemas.SecMarital) {
		rec.Marital = nil
	}
	if !m.has(schemas.SecEducation) {
		rec.Education = nil
	}
	if !m.has(schemas.SecEmployment) {
		rec.Employment = nil
	}
	if !m.has(schemas.SecSocialInsurance) {
		rec.SocialInsurance = nil
	}
	if !m.has(schemas.SecHousing) {
		rec.Housing = nil
	}
	if !m.has(schemas.SecTax) {
		rec.Tax = nil
	}
	if !m.has(schemas.SecAnomalies) {
		rec.Anomalies = nil
	}
	if len(rec.Provenance) > 0 {
		var prov map[string]hub.Provenance
		for k, v := range rec.Provenance {
			if m.has(schemas.Section(k)) {
				if prov == nil {
					prov = make(map[string]hub.Provenance, len(rec.Provenance))
				}
				prov[k] = v
			}
		}
		rec.Provenance = prov
	}
	return rec
}

// FilterHistory narrows history entries to the readable sections: an entry
// keeps only those in Sections, and is dropped when it touched none of
// them and its data is not readable either. An entry keeps its Data only
// when every section the
// event's data holds fields of is readable (dataSections): what a change
// altered says nothing about what its event carries, e.g. a contract start
// that arrived late alters only anomalies, and its data still names the
// employer. The input is not modified.
func FilterHistory(changes []hub.Change, readable []schemas.Section) []hub.Change {
	return filterHistory(changes, maskOf(readable))
}

func filterHistory(changes []hub.Change, m sectionMask) []hub.Change {
	out := make([]hub.Change, 0, len(changes))
	for _, c := range changes {
		n := 0
		for _, s := range c.Sections {
			if m.has(schemas.Section(s)) {
				n++
			}
		}
		// An event whose data the caller may read in full is shown even
		// when it altered nothing the caller reads: a department's own
		// late event, superseded on arrival ("sections": []), is history
		// it relies on.
		readsData := m.covers(dataSections(c.Type))
		if n == 0 && !readsData {
			continue
		}
		if n < len(c.Sections) {
			secs := make([]string, 0, n)
			for _, s := range c.Sections {
				if m.has(schemas.Section(s)) {
					secs = append(secs, s)
				}
			}
			c.Sections = secs
		}
		if !readsData {
			c.Data = nil
		}
		out = append(out, c)
	}
	return out
}
