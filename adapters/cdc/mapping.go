package cdc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/width"
	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/jsonschema"
)

// Mapping says how the rows of one table become events. It is read from
// YAML (see examples/rentals.yaml and the package documentation).
type Mapping struct {
	// Source, when set, must equal the stream's source: it guards against
	// running one department's mapping under another's name.
	Source schemas.Source `yaml:"source"`
	// Table, when set, must equal the stream's table.
	Table string `yaml:"table"`
	// CitizenID is the column holding the citizen ID: the event's
	// subject and Kafka key. It is read as `pophub import` reads one:
	// spaces around it (a character(18) column pads a shorter value) are
	// dropped, a lower-case check character x is upper-cased, and a legacy
	// 15-digit number is upgraded to its 18-digit form (see
	// Stats.Upgraded). Data fields that hold a citizen ID (spouse_id) are
	// read the same way.
	CitizenID string `yaml:"citizen_id"`
	// Key lists the columns that identify a row (usually its primary key).
	// With the change's WAL position they make the event id, so a change
	// sent twice has one id.
	Key []string `yaml:"key"`
	// Time is the expression for the event time, when the change took
	// effect: a date or timestamp column, or $commit_time (the default),
	// the commit time of the change's transaction.
	Time string `yaml:"time"`
	// TimeZone is the zone of timestamp-without-time-zone and date columns
	// and of $commit_date: an IANA name; "" and Asia/Shanghai (and its
	// aliases) are China Standard Time, a fixed UTC+08:00 without the
	// daylight saving of 1986–1991 (schemas.Zone).
	TimeZone string `yaml:"time_zone"`
	// Insert, Update and Delete map each kind of change to an event. A
	// kind left out is not sent (its changes are counted as ignored).
	// Rows of the initial snapshot use Insert, or Update without Insert.
	Insert *Operation `yaml:"insert"`
	Update *Operation `yaml:"update"`
	Delete *Operation `yaml:"delete"`
}

// Operation maps one kind of change to an event type and its data.
type Operation struct {
	// Type is the catalogue type of the event; it must belong to the
	// stream's source.
	Type schemas.Type `yaml:"type"`
	// Time overrides Mapping.Time for this kind of change (a deleted
	// row's own dates rarely say when it was deleted).
	Time string `yaml:"time"`
	// Data maps each data field (its JSON name in the type's data struct)
	// to an expression: a column name; $commit_date or $commit_time;
	// ='text' for a constant; or alternatives "a | b" taking the first
	// that is not NULL. A field whose value is NULL is left out. A
	// person's name (schemas.PersonName) and a household number
	// (schemas.HouseholdNumber) are read as `pophub import` reads a cell:
	// trimmed of white space and of characters that show as nothing
	// (citizenid.TrimTyped; left out when nothing remains); a name also
	// with a look-alike of the middle dot between two of its parts
	// replaced by U+00B7 (schemas.FixNameSeparators), as the hub asks.
	Data map[string]string `yaml:"data"`
}

// LoadMapping reads a mapping file.
func LoadMapping(path string) (Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Mapping{}, fmt.Errorf("reading mapping: %w", err)
	}
	m, err := ParseMapping(b)
	if err != nil {
		return Mapping{}, fmt.Errorf("parsing mapping %s: %w", path, err)
	}
	return m, nil
}

// ParseMapping parses a mapping from YAML; unknown keys are errors, so a
// misspelt key fails loudly instead of silently mapping nothing.
func ParseMapping(b []byte) (Mapping, error) {
	var m Mapping
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return Mapping{}, fmt.Errorf("decoding YAML: %w", err)
	}
	return m, nil
}

// Kinds of change, as they appear in logs and Stats.
const (
	opInsert   = "insert"
	opUpdate   = "update"
	opDelete   = "delete"
	opSnapshot = "snapshot"
)

// plan is a Mapping checked against a source and compiled.
type plan struct {
	source    schemas.Source
	citizenID string
	key       []string
	loc       *time.Location
	ops       map[string]*opPlan // by kind of change; snapshot included
}

type opPlan struct {
	typ    schemas.Type
	time   expr
	fields []fieldPlan // sorted by name
}

type fieldPlan struct {
	name string
	kind fieldKind
	expr expr
	// personName: the field is a person's name (see Operation.Data);
	// trimmed: it is read trimmed, as a name or a household number is.
	personName, trimmed bool
}

// fieldKind is the JSON shape a data field takes, from its Go type.
type fieldKind int

const (
	kindString fieldKind = iota
	kindNumber
	kindBool
	kindStrings
	// kindCitizenID is a field of type citizenid.ID, read as the subject
	// is (see canonicalCitizenID).
	kindCitizenID
	// kindDate is a string field holding a date, YYYY-MM-DD, as the
	// type's JSON Schema says (see dateFields). It takes the date of a
	// timestamp, so that a date column changed to a timestamp keeps
	// feeding it.
	kindDate
)

// expr is a list of alternatives; the first that is not NULL wins.
type expr []term

type term struct {
	column  string // a column, or
	special string // "commit_date", "commit_time", or
	literal *string
}

func (e expr) String() string {
	parts := make([]string, len(e))
	for i, t := range e {
		switch {
		case t.column != "":
			parts[i] = t.column
		case t.special != "":
			parts[i] = "$" + t.special
		default:
			parts[i] = "='" + *t.literal + "'"
		}
	}
	return strings.Join(parts, " | ")
}

// columns lists the columns the expression reads.
func (e expr) columns() []string {
	var out []string
	for _, t := range e {
		if t.column != "" {
			out = append(out, t.column)
		}
	}
	return out
}

func parseExpr(s string) (expr, error) {
	var e expr
	for part := range strings.SplitSeq(s, "|") {
		part = strings.TrimSpace(part)
		switch {
		case part == "":
			return nil, fmt.Errorf("empty alternative in %q", s)
		case part == "$commit_date", part == "$commit_time":
			e = append(e, term{special: part[1:]})
		case strings.HasPrefix(part, "$"):
			return nil, fmt.Errorf("%q is not $commit_date or $commit_time", part)
		case strings.HasPrefix(part, "="):
			lit := strings.TrimPrefix(part, "=")
			if len(lit) >= 2 && lit[0] == '\'' && lit[len(lit)-1] == '\'' {
				lit = lit[1 : len(lit)-1]
			}
			e = append(e, term{literal: &lit})
		default:
			e = append(e, term{column: part})
		}
	}
	return e, nil
}

// sameTable reports whether the mapping's table names the configured
// one as PostgreSQL would read both: unquoted identifiers fold to lower
// case, and a mapping that names no schema matches the table in any
// (--table RENTALS and public.rentals are the mapping's rentals).
func sameTable(mapping, configured string) bool {
	ms, mn := splitTable(mapping)
	cs, cn := splitTable(configured)
	return mn == cn && (ms == "" || cs == "" && ms == "public" || ms == cs)
}

// splitTable splits an optionally schema-qualified table name into its
// schema ("" when none) and name, each folded as SQL folds it: a quoted
// identifier keeps its case (and may hold a dot), an unquoted one is
// lower-cased.
func splitTable(s string) (schema, name string) {
	fold := func(id string) string {
		if len(id) >= 2 && id[0] == '"' && id[len(id)-1] == '"' {
			return strings.ReplaceAll(id[1:len(id)-1], `""`, `"`)
		}
		return strings.ToLower(id)
	}
	quoted := false
	for i := range len(s) {
		switch {
		case s[i] == '"':
			quoted = !quoted
		case s[i] == '.' && !quoted:
			return fold(s[:i]), fold(s[i+1:])
		}
	}
	return "", fold(s)
}

// compile checks the mapping for source and table and compiles it.
func (m Mapping) compile(source schemas.Source, table string) (*plan, error) {
	if m.Source != "" && m.Source != source {
		return nil, fmt.Errorf("mapping is for source %q, not %q", m.Source, source)
	}
	if m.Table != "" && !sameTable(m.Table, table) {
		return nil, fmt.Errorf("mapping is for table %q, not %q", m.Table, table)
	}
	if m.CitizenID == "" {
		return nil, errors.New("citizen_id: the citizen ID column is required")
	}
	if len(m.Key) == 0 {
		return nil, errors.New("key: at least one record key column is required")
	}
	p := &plan{source: source, citizenID: m.CitizenID, key: m.Key, ops: map[string]*opPlan{}}
	loc, err := schemas.Zone(m.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("time_zone: %w", err)
	}
	p.loc = loc
	defTime := m.Time
	if defTime == "" {
		defTime = "$commit_time"
	}
	for _, o := range []struct {
		kind string
		op   *Operation
	}{{opInsert, m.Insert}, {opUpdate, m.Update}, {opDelete, m.Delete}} {
		if o.op == nil {
			continue
		}
		op, err := o.op.compile(source, defTime)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.kind, err)
		}
		p.ops[o.kind] = op
	}
	if len(p.ops) == 0 {
		return nil, errors.New("at least one of insert, update, delete must be mapped")
	}
	if op := p.ops[opInsert]; op != nil {
		p.ops[opSnapshot] = op
	} else if op := p.ops[opUpdate]; op != nil {
		p.ops[opSnapshot] = op
	}
	return p, nil
}

func (o *Operation) compile(source schemas.Source, defTime string) (*opPlan, error) {
	data := schemas.NewData(o.Type)
	if data == nil {
		return nil, fmt.Errorf("type %q is not in the catalogue", o.Type)
	}
	if s := schemas.SourceOf(o.Type); s != source {
		return nil, fmt.Errorf("type %q belongs to source %q, not %q", o.Type, s, source)
	}
	kinds := dataFields(data)
	dates, err := dateFields(o.Type)
	if err != nil {
		return nil, err
	}
	for name := range dates {
		if kinds[name] == kindString {
			kinds[name] = kindDate
		}
	}
	op := &opPlan{typ: o.Type}
	t := o.Time
	if t == "" {
		t = defTime
	}
	if op.time, err = parseExpr(t); err != nil {
		return nil, fmt.Errorf("time: %w", err)
	}
	if len(o.Data) == 0 {
		return nil, errors.New("data: at least one data field must be mapped")
	}
	for name, s := range o.Data {
		kind, ok := kinds[name]
		if !ok {
			return nil, fmt.Errorf("data: %q is not a field of %s (fields: %s)", name, o.Type, strings.Join(slices.Sorted(maps.Keys(kinds)), ", "))
		}
		e, err := parseExpr(s)
		if err != nil {
			return nil, fmt.Errorf("data.%s: %w", name, err)
		}
		personName := schemas.PersonName(o.Type, name)
		op.fields = append(op.fields, fieldPlan{name: name, kind: kind, expr: e, personName: personName,
			trimmed: personName || schemas.HouseholdNumber(o.Type, name)})
	}
	slices.SortFunc(op.fields, func(a, b fieldPlan) int { return strings.Compare(a.name, b.name) })
	return op, nil
}

// dataFields lists the JSON fields of a catalogue data struct with the
// JSON shape of each, so that a bigint column feeds a string field as a
// string and a numeric column a number field as a number.
func dataFields(data schemas.Data) map[string]fieldKind {
	out := map[string]fieldKind{}
	t := reflect.TypeOf(data).Elem()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft == reflect.TypeFor[citizenid.ID]() {
			out[name] = kindCitizenID
			continue
		}
		switch ft.Kind() {
		case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int32, reflect.Int64:
			out[name] = kindNumber
		case reflect.Bool:
			out[name] = kindBool
		case reflect.Slice:
			out[name] = kindStrings
		default:
			out[name] = kindString
		}
	}
	return out
}

// dateFields lists the data fields of an event type that hold a date,
// read from the type's JSON Schema, whose agreement with the schemas
// package's validation its tests check: the Go types say only string.
func dateFields(t schemas.Type) (map[string]bool, error) {
	b, err := jsonschema.DataSchema(t)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Properties map[string]struct {
			Ref string `json:"$ref"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("reading the schema of event type %q: %w", t, err)
	}
	out := map[string]bool{}
	for name, p := range doc.Properties {
		if strings.HasSuffix(p.Ref, "#/$defs/date") {
			out[name] = true
		}
	}
	return out, nil
}

// columns lists every column the plan reads, without repeats, in a stable
// order.
func (p *plan) columns() []string {
	cols := append([]string{p.citizenID}, p.key...)
	for _, kind := range []string{opInsert, opUpdate, opDelete} {
		op := p.ops[kind]
		if op == nil {
			continue
		}
		cols = append(cols, op.columns()...)
	}
	return uniq(cols)
}

func (op *opPlan) columns() []string {
	cols := op.time.columns()
	for _, f := range op.fields {
		cols = append(cols, f.expr.columns()...)
	}
	return cols
}

// deleteColumns lists the columns a delete reads: those its old row must
// carry.
func (p *plan) deleteColumns() []string {
	op := p.ops[opDelete]
	if op == nil {
		return nil
	}
	return uniq(append(append([]string{p.citizenID}, p.key...), op.columns()...))
}

func uniq(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// cell is one column value of a row as PostgreSQL prints it (text format).
type cell struct {
	text string
	null bool
	// unchanged marks a TOASTed value an update left as it was: logical
	// replication does not send it.
	unchanged bool
}

// row is a table row by column name. Columns the change did not carry are
// absent.
type row map[string]cell

// change is what event needs to know about one row change.
type change struct {
	kind string // opInsert …
	row  row
	// version is the event version: the change's WAL position, or, for
	// a row of the initial snapshot, snapshotVersion.
	version int64
	commit  time.Time // commit time of its transaction (snapshot: its time)
	// oldSide marks the end of the row an update moved away (see
	// plan.movedAway): kind opDelete, row the update's old row. Its event
	// id differs from the update's own, which has the same key and version
	// when only the citizen changed.
	oldSide bool
}

// rowError is a row that cannot become an event. Its message never holds
// a citizen ID or another value of the row.
type rowError struct {
	reason string // a stable word for counting
	detail string
}

func (e *rowError) Error() string { return e.reason + ": " + e.detail }

// event turns a change into an event, and counts the legacy 15-digit
// citizen IDs it upgraded (its subject's and its data's). An error, always
// a *rowError, means the row is bad; the event's ID is set if the record
// key could be read. The event id is derived from the record key and the
// change's version, so a change that PostgreSQL sends again after a
// restart gets the same id, and so does an unchanged row copied again by a
// new snapshot.
func (p *plan) event(c change) (ev schemas.Event, upgraded int, err error) {
	op := p.ops[c.kind]
	key, err := p.recordKey(c.row)
	if err != nil {
		return schemas.Event{}, 0, err
	}
	if c.oldSide {
		// The record separator, like the unit separator between key
		// columns, is in no sane key value.
		key += "\x1eold"
	}
	ev = schemas.Event{
		SpecVersion: schemas.SpecVersion,
		ID:          eventID(p.source, key, c.version),
		Source:      p.source,
		Type:        op.typ,
	}
	var up bool
	if ev.Subject, up, err = p.subject(c.row); err != nil {
		return ev, 0, err
	}
	if up {
		upgraded++
	}
	tv, ok, err := p.value(op.time, c)
	if err != nil {
		return ev, 0, &rowError{"bad_time", fmt.Sprintf("time (%s): %v", op.time, err)}
	}
	if !ok {
		return ev, 0, &rowError{"bad_time", fmt.Sprintf("time (%s) is NULL", op.time)}
	}
	if ev.Time, err = p.parseTime(tv); err != nil {
		return ev, 0, &rowError{"bad_time", fmt.Sprintf("time (%s): %v", op.time, err)}
	}
	data := make(map[string]any, len(op.fields))
	for _, f := range op.fields {
		value := p.value
		if f.trimmed {
			value = p.trimmedValue
		}
		v, ok, err := value(f.expr, c)
		if err != nil {
			return ev, 0, &rowError{"bad_value", fmt.Sprintf("data.%s (%s): %v", f.name, f.expr, err)}
		}
		if !ok {
			continue
		}
		if f.kind == kindCitizenID {
			id, up, err := canonicalCitizenID(v)
			if err != nil {
				return ev, 0, &rowError{"bad_value", fmt.Sprintf("data.%s (%s): %v", f.name, f.expr, err)}
			}
			if up {
				upgraded++
			}
			data[f.name] = id
			continue
		}
		if f.kind == kindDate {
			v = p.date(v)
		}
		if f.personName {
			// Typed with ・ for the register's ·: one person, one name,
			// whichever door it came through.
			v, _ = schemas.FixNameSeparators(v)
		}
		if data[f.name], err = convert(v, f.kind); err != nil {
			return ev, 0, &rowError{"bad_value", fmt.Sprintf("data.%s (%s): %v", f.name, f.expr, err)}
		}
	}
	if ev.Data, err = json.Marshal(data); err != nil {
		return ev, 0, &rowError{"bad_value", fmt.Sprintf("encoding data: %v", err)}
	}
	return ev, upgraded, nil
}

// movedAway reports whether an update took a row away from the record
// the hub holds it under: to another citizen, or to another record key.
// The update's own event registers the row where it is now; the old
// citizen's record, or the old key, would keep it for ever unless it is
// ended like a deleted row. An old row that could not have become an
// event (no valid citizen ID, no key) was never sent, and owes nothing.
// Citizen IDs compare as read (see canonicalCitizenID): an update that
// only rewrites a legacy 15-digit ID in 18 digits, or upper-cases its x,
// moves nothing.
func (p *plan) movedAway(old, cur row) bool {
	if old == nil {
		return false
	}
	oldKey, err := p.recordKey(old)
	if err != nil {
		return false
	}
	oldID, _, err := p.subject(old)
	if err != nil {
		return false
	}
	if key, err := p.recordKey(cur); err != nil || key != oldKey {
		return true
	}
	id, _, err := p.subject(cur)
	return err != nil || id != oldID
}

// subject reads the row's citizen ID (see canonicalCitizenID), and
// whether it was a legacy 15-digit one, upgraded.
func (p *plan) subject(r row) (citizenid.ID, bool, error) {
	c, ok := r[p.citizenID]
	switch {
	case !ok || c.unchanged:
		return "", false, &rowError{"missing_citizen_id", fmt.Sprintf("the change does not carry column %s", p.citizenID)}
	case c.null:
		return "", false, &rowError{"invalid_citizen_id", fmt.Sprintf("column %s is NULL", p.citizenID)}
	}
	id, upgraded, err := parseCitizenID(c.text)
	if err != nil {
		return "", false, &rowError{"invalid_citizen_id", fmt.Sprintf("column %s: %v", p.citizenID, err)}
	}
	return id, upgraded, nil
}

// canonicalCitizenID reads a citizen ID as `pophub import` does:
// full-width characters are folded to ASCII (a clerk's input method in
// full-width mode types ２３０１…Ｘ, which looks the same on screen),
// spaces and characters that show as nothing around it are dropped (a
// character(18) column pads a 15-digit number with three; a value pasted
// from a web page brings a zero-width space: citizenid.TrimTyped), one
// inside it is refused, named, letters are upper-cased (a check character
// x is X), and a legacy 15-digit number (GB 11643-1989) is upgraded to
// its 18-digit form, which upgraded reports. Any other value is returned
// folded, trimmed and upper-cased, for the schemas to judge. The error, a
// bad 15-digit number or an invisible character, never holds the value.
func canonicalCitizenID(s string) (id string, upgraded bool, err error) {
	if !isASCII(s) {
		s = width.Narrow.String(citizenid.TrimTyped(s))
		if r := citizenid.Invisible(s); r != 0 {
			return s, false, fmt.Errorf("holds an invisible character U+%04X among its characters: retype the ID", r)
		}
	}
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) != 15 {
		return s, false, nil
	}
	up, err := citizenid.Upgrade15(s)
	if err != nil {
		return s, false, fmt.Errorf("legacy 15-digit ID: %w", errors.Unwrap(err))
	}
	return string(up), true, nil
}

// parseCitizenID is canonicalCitizenID, validated. The error never holds
// the value.
func parseCitizenID(s string) (citizenid.ID, bool, error) {
	text, upgraded, err := canonicalCitizenID(s)
	if err != nil {
		return "", false, err
	}
	id, err := citizenid.Parse(text)
	if err != nil {
		if !isASCII(text) {
			// citizenid counts bytes; a character that is still not
			// ASCII (an ideographic 〇 for a 0) is one character, and
			// the reason is that it is not a digit, not the length.
			_, err = citizenid.Parse(strings.Map(func(r rune) rune {
				if r >= utf8.RuneSelf {
					return '?'
				}
				return r
			}, text))
		}
		var ce *citizenid.Error
		if errors.As(err, &ce) {
			return "", false, ce.Reason
		}
		return "", false, errors.New("not a citizen ID")
	}
	return id, upgraded, nil
}

// isASCII reports whether s holds only ASCII characters, as a citizen ID
// does once read.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// recordKey joins the key columns with a unit separator, which no sane
// key value holds. The citizen ID column, when it is a key column, is
// taken as read (see canonicalCitizenID): the forms of one ID are one
// record, and its legacy form, rewritten in 18 digits, keeps its event
// ids.
func (p *plan) recordKey(r row) (string, error) {
	var b strings.Builder
	for i, col := range p.key {
		c, ok := r[col]
		if !ok || c.unchanged || c.null {
			return "", &rowError{"missing_key", fmt.Sprintf("key column %s is NULL or not carried by the change", col)}
		}
		if i > 0 {
			b.WriteByte(0x1f)
		}
		text := c.text
		if col == p.citizenID {
			text, _, _ = canonicalCitizenID(text)
		}
		b.WriteString(text)
	}
	return b.String(), nil
}

// keyAttr names a row in a log by its record key, as the group "key" of
// the key columns' values (key.lease_id=90001): a bad row is not sent,
// its event id is a hash and its WAL cannot be read again, so the key is
// how the department finds the row in its table. The key is the
// department's own record identifier, not the row's data, yet it may hold
// personal data: the citizen ID column, when it is a key column, is
// masked as an unvalidated ID (citizenid.Mask), a citizen ID in any other
// key column is masked in place (citizenid.MaskText), and a value is cut
// at maxLoggedKey characters. A NULL is logged as <nil>; a column the
// change does not carry is left out.
func (p *plan) keyAttr(r row) slog.Attr {
	attrs := make([]slog.Attr, 0, len(p.key))
	for _, col := range p.key {
		c, ok := r[col]
		switch {
		case !ok || c.unchanged:
		case c.null:
			attrs = append(attrs, slog.Any(col, nil))
		case col == p.citizenID || p.feedsCitizenID(col):
			// Masked whatever it holds: a mistyped ID, the likely reason
			// the row is bad, is no plausible ID for MaskText to find.
			attrs = append(attrs, slog.String(col, citizenid.Mask(strings.TrimSpace(c.text))))
		default:
			attrs = append(attrs, slog.String(col, loggedKeyValue(c.text)))
		}
	}
	return slog.Attr{Key: "key", Value: slog.GroupValue(attrs...)}
}

// feedsCitizenID reports whether column col is read into a citizen-ID
// field (spouse_id) of some change's event.
func (p *plan) feedsCitizenID(col string) bool {
	for _, op := range p.ops {
		for _, f := range op.fields {
			if f.kind == kindCitizenID && slices.ContainsFunc(f.expr, func(t term) bool { return t.column == col }) {
				return true
			}
		}
	}
	return false
}

// maxLoggedKey bounds the characters of a key value in a log line.
const maxLoggedKey = 64

// loggedKeyValue is a key column's value as a log shows it (see keyAttr):
// masked before it is cut, since a cut inside a citizen ID would leave its
// region and birth date too short to be recognised as one.
func loggedKeyValue(s string) string {
	s = citizenid.MaskText(s)
	if utf8.RuneCountInString(s) > maxLoggedKey {
		n := 0
		for i := range s {
			if n == maxLoggedKey {
				s = s[:i] + "…"
				break
			}
			n++
		}
	}
	return s
}

// value evaluates an expression: its text and whether it is not NULL.
func (p *plan) value(e expr, c change) (string, bool, error) {
	for _, t := range e {
		switch {
		case t.literal != nil:
			return *t.literal, true, nil
		case t.special == "commit_time":
			return c.commit.Format(time.RFC3339Nano), true, nil
		case t.special == "commit_date":
			return c.commit.In(p.loc).Format(time.DateOnly), true, nil
		}
		v, ok := c.row[t.column]
		switch {
		case !ok:
			return "", false, fmt.Errorf("the change does not carry column %s (set REPLICA IDENTITY FULL for deletes)", t.column)
		case v.unchanged:
			return "", false, fmt.Errorf("column %s is an unchanged TOASTed value the change does not carry (set REPLICA IDENTITY FULL)", t.column)
		case !v.null:
			return v.text, true, nil
		}
	}
	return "", false, nil
}

// trimmedValue evaluates a person's name or a household number: the
// first alternative that holds something once citizenid.TrimTyped trims
// it, trimmed. A column a GBK-era system padded to its width with U+3000
// and left otherwise empty reads as NULL, so that the mapping's fallback
// (name: xm | zjxm) applies, as pophub import trims a cell before it
// takes a default.
func (p *plan) trimmedValue(e expr, c change) (string, bool, error) {
	for _, t := range e {
		v, ok, err := p.value(expr{t}, c)
		if err != nil {
			return "", false, err
		}
		if v = citizenid.TrimTyped(v); ok && v != "" {
			return v, true, nil
		}
	}
	return "", false, nil
}

// parseTime reads a timestamp as PostgreSQL prints it with DateStyle ISO
// (the stream sets it), or RFC 3339. Values without a zone are in the
// mapping's time zone.
func (p *plan) parseTime(s string) (time.Time, error) {
	t, _, err := p.parseTimeZoned(s)
	return t, err
}

// parseTimeZoned is parseTime, and reports whether s named its instant
// (a timestamptz, or text with an offset) rather than a wall time.
func (p *plan) parseTimeZoned(s string) (t time.Time, zoned bool, err error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true, nil
		}
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, p.loc); err == nil {
			return t, false, nil
		}
	}
	return time.Time{}, false, errors.New("not a date or timestamp")
}

// date reads a date field's value: a date as it is, a timestamp as the
// date it shows, and a timestamptz as its date on the clocks of the
// mapping's time zone (schemas.Clock: a date a server on China's time
// kept as a timestamptz at midnight of a summer of 1986–1991 is that
// date). Anything else is left for the schemas to refuse.
func (p *plan) date(s string) string {
	if schemas.IsDate(s) {
		return s
	}
	t, zoned, err := p.parseTimeZoned(s)
	switch {
	case err != nil:
		return s
	case zoned:
		t = schemas.Clock(t, p.loc)
	}
	return t.Format(time.DateOnly)
}

// convert gives a column's text the JSON shape of its data field.
func convert(s string, kind fieldKind) (any, error) {
	switch kind {
	case kindNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, errors.New("not a number")
		}
		return json.Number(strconv.FormatFloat(f, 'f', -1, 64)), nil
	case kindBool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "t", "true", "1", "y", "yes":
			return true, nil
		case "f", "false", "0", "n", "no":
			return false, nil
		}
		return nil, errors.New("not a boolean")
	case kindStrings:
		return parseList(s)
	}
	return s, nil
}

// arrayBounds is the dimension decoration PostgreSQL prints before an
// array whose lower bound is not 1 ([0:2]={a,b,c}, after an UPDATE of
// a[0]); the elements follow in order.
var arrayBounds = regexp.MustCompile(`^(\[-?\d+:-?\d+\])+=`)

// parseList reads a PostgreSQL array literal ({a,"b c"}, or with its
// bounds, [0:1]={a,b}) or a comma-separated list.
func parseList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	s = arrayBounds.ReplaceAllLiteralString(s, "")
	if !strings.HasPrefix(s, "{") {
		out := []string{}
		for part := range strings.SplitSeq(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
		return out, nil
	}
	if !strings.HasSuffix(s, "}") {
		return nil, errors.New("not an array")
	}
	body := s[1 : len(s)-1]
	out := []string{}
	if body == "" {
		return out, nil
	}
	var cur strings.Builder
	quoted, inQuotes, escaped := false, false, false
	for _, r := range body {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped = true
		case r == '"':
			inQuotes = !inQuotes
			quoted = true
		case r == ',' && !inQuotes:
			if !quoted && cur.String() == "NULL" {
				return nil, errors.New("NULL element in array")
			}
			out = append(out, cur.String())
			cur.Reset()
			quoted = false
		case r == '{' && !inQuotes:
			return nil, errors.New("nested arrays are not supported")
		default:
			cur.WriteRune(r)
		}
	}
	if inQuotes {
		return nil, errors.New("unterminated quote in array")
	}
	last := cur.String()
	if !quoted && last == "NULL" {
		return nil, errors.New("NULL element in array")
	}
	return append(out, last), nil
}
