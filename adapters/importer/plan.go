package importer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/width"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
)

// plan is a Mapping bound to a file's header: columns resolved to
// indexes, time zones loaded, value maps ready. It is read-only once built,
// so rows are mapped on several goroutines at once.
type plan struct {
	source  schemas.Source
	topic   string
	header  []string
	typeVal schemas.Type
	typeCol int
	typeMap map[string]schemas.Type
	subject int
	timeCol int
	timeLay []string
	timeLoc *time.Location
	keyCols []int
	version *column // nil: version 0
	fields  map[schemas.Type][]column
	// date1904: the workbook counts serial day numbers from 1904-01-01
	// (see excelDate); set by open for an XLSX file.
	date1904 bool
	// keyWidth, when set, is how many cells the header row of a workbook
	// itself has: names merged down past it widen the header, not the
	// record key (see appendRecordKey).
	keyWidth int
}

// column is one converted value: a data field, or the version.
type column struct {
	name    string // data field (JSON name)
	member  []byte // `"name":`, ready to append
	col     int    // -1: constant
	header  string
	value   string
	def     string
	kind    string
	layouts []string
	// firstDays: a month column on the default layouts also reads a
	// date on the first of a month as that month, as exports that keep
	// months in date columns write it (2026-03-01).
	firstDays bool
	loc       *time.Location
	split     string
	lookup    map[string]string // nil: no translation
	table     string            // a Codes field's table and standard, for reject details: "education table (GB/T 4658)"
	vague     map[string]bool   // short names of the table that fit several codes in this type
	fold      bool              // read the cell as foldWidth does: a date, number, ID or code
	// personName: the field is a person's name (schemas.PersonName),
	// whose look-alikes of the middle dot are replaced by it.
	personName bool
}

// Default layouts, tried in order, when a mapping names none. The time
// column and date columns take the same forms, so that a clerk need not
// know which column is which: a date alone in the time column is
// midnight (in the mapping's time zone, China time by default), and a
// date column given a date and a time without a zone keeps the date. In
// Go layouts a 1 or a 2 takes one digit or two, and a time's hour one or
// two, so "2006-1-2" reads 2026-3-1 and 2026-03-01 alike.
var (
	dateForms     = []string{"2006-1-2", "2006/1/2", "20060102", "2006年1月2日", "2006.1.2"}
	dateTimeForms = []string{"2006-1-2 15:04:05", "2006-1-2T15:04:05", "2006-1-2 15:04", "2006-1-2T15:04",
		"2006/1/2 15:04:05", "2006/1/2 15:04", "20060102150405", "2006年1月2日 15:04:05", "2006年1月2日 15:04",
		"2006.1.2 15:04:05", "2006.1.2 15:04"}
	// timeLayouts[0] and dateLayouts[0] are also how the tests write the
	// cells.
	timeLayouts  = slices.Concat([]string{time.RFC3339Nano}, dateTimeForms, dateForms)
	dateLayouts  = slices.Concat([]string{time.DateOnly}, dateForms, dateTimeForms, []string{time.RFC3339Nano})
	monthLayouts = []string{"2006-01", "2006/1", "200601", "2006年1月", "2006.1", "2006-1"}
	// monthDayForms are the dates a month column also reads, on the
	// first of a month (see column.firstDays).
	monthDayForms = slices.Concat(dateForms, dateTimeForms)
)

const defaultSplit = ",，、;；|"

// newPlan binds m to a header. Every column the mapping names must be in
// the header, once: which of two columns of one name the clerk meant (a
// corrected 版本号 appended at the end of an export, say) is not for the
// import to guess. Columns the mapping does not name may repeat.
func newPlan(m *Mapping, header []string) (*plan, error) {
	idx := make(map[string][]int, len(header))
	for i, h := range header {
		if h = cleanHeader(h); h != "" {
			idx[h] = append(idx[h], i)
		}
	}
	herr := &headerError{header: header, row: max(m.HeaderRow, 1)}
	find := func(what, name string) int {
		name = strings.TrimSpace(name)
		at := idx[name]
		herr.want(what, name, len(at) > 0)
		if len(at) > 1 {
			herr.repeated(what, name, at)
		}
		if len(at) == 0 {
			return -1
		}
		return at[0]
	}
	p := &plan{source: m.Source, topic: schemas.Topic(m.Source), header: header, typeVal: m.Type.Value, typeCol: -1, fields: map[schemas.Type][]column{}}
	if m.Type.Column != "" {
		p.typeCol = find("type", m.Type.Column)
		p.typeMap = m.Type.Map
	}
	p.subject = find("subject", m.Subject.Column)
	p.timeCol = find("time", m.Time.Column)
	p.timeLay = layoutsOr(m.Time.Layout, timeLayouts)
	var err error
	if p.timeLoc, err = location(m.Time.Timezone); err != nil {
		return nil, fmt.Errorf("time: %w", err) // refused by Mapping.Validate
	}
	for _, k := range m.ID.Key {
		p.keyCols = append(p.keyCols, find("id.key", k))
	}
	if m.ID.Version.Column != "" || m.ID.Version.Value != "" {
		c, err := newColumn("", "id.version", m.ID.Version, find)
		if err != nil {
			return nil, err
		}
		p.version = &c
	}
	for _, t := range m.types() {
		fs := m.fieldsOf(t)
		names := make([]string, 0, len(fs))
		for name := range fs {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			c, err := newColumn(t, name, fs[name], find)
			if err != nil {
				return nil, err
			}
			p.fields[t] = append(p.fields[t], c)
		}
	}
	if len(herr.missing) > 0 || len(herr.duplicates) > 0 {
		return nil, herr
	}
	return p, nil
}

// headerError is a header that lacks columns of the mapping, or has one
// of them more than once. It names each such column once, however many
// fields use it, and shows the row that was read as the header, so that
// the clerk sees at once a title read in its place or a column named
// otherwise; when none of the mapping's columns is in it, it points at
// header_row.
type headerError struct {
	missing    []missingColumn
	duplicates []missingColumn // with the columns (from 0) that bear the name
	columns    []string        // every column the mapping names, in its order
	matched    int             // how many of them the header has
	header     []string
	row        int // the row the header was read from (header_row)
	found      int // a later row holding the mapping's columns; 0 if none is known
	// otherSheet is another sheet of the workbook holding the mapping's
	// columns, in row otherRow ("" if none is known): the sheet read may
	// be instructions (填表说明) or a summary.
	otherSheet string
	otherRow   int
}

// missingColumn is a column of the mapping missing from the header, or
// repeated in it at columns at, and the fields that need it.
type missingColumn struct {
	name string
	what []string
	at   []int
}

// repeated records that what needs column name, which the header has at
// several columns, at.
func (e *headerError) repeated(what, name string, at []int) {
	for i := range e.duplicates {
		if e.duplicates[i].name == name {
			if !slices.Contains(e.duplicates[i].what, what) {
				e.duplicates[i].what = append(e.duplicates[i].what, what)
			}
			return
		}
	}
	e.duplicates = append(e.duplicates, missingColumn{name: name, what: []string{what}, at: at})
}

// want records that what needs column name, found in the header or not.
func (e *headerError) want(what, name string, found bool) {
	if !slices.Contains(e.columns, name) {
		e.columns = append(e.columns, name)
		if found {
			e.matched++
		}
	}
	if found {
		return
	}
	for i := range e.missing {
		if e.missing[i].name == name {
			if !slices.Contains(e.missing[i].what, what) {
				e.missing[i].what = append(e.missing[i].what, what)
			}
			return
		}
	}
	e.missing = append(e.missing, missingColumn{name: name, what: []string{what}})
}

func (e *headerError) Error() string {
	var b strings.Builder
	for i, m := range e.missing {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s: column %q is not in the header", strings.Join(m.what, ", "), m.name)
	}
	for i, d := range e.duplicates {
		if i > 0 || len(e.missing) > 0 {
			b.WriteByte('\n')
		}
		times := "twice"
		if len(d.at) > 2 {
			times = fmt.Sprintf("%d times", len(d.at))
		}
		cols := make([]string, len(d.at))
		for j, c := range d.at {
			cols[j] = strconv.Itoa(c + 1)
		}
		fmt.Fprintf(&b, "%s: column %q is in the header %s, as columns %s and %s: rename or remove all but the one to import",
			strings.Join(d.what, ", "), d.name, times, strings.Join(cols[:len(cols)-1], ", "), cols[len(cols)-1])
	}
	fmt.Fprintf(&b, "\nrow %d of the file reads: %s", e.row, showHeader(e.header, e.columns))
	if e.matched == 0 {
		switch {
		case e.found > 0:
			fmt.Fprintf(&b, "\nnone of the mapping's columns is in row %d, but row %d has them: add header_row: %d to the mapping", e.row, e.found, e.found)
		case e.otherSheet != "":
			fmt.Fprintf(&b, "\nnone of the mapping's columns is in this sheet, but sheet %q has them in row %d: add sheet: %s to the mapping", e.otherSheet, e.otherRow, e.otherSheet)
			if e.otherRow != max(e.row, 1) {
				fmt.Fprintf(&b, ", and header_row: %d", e.otherRow)
			}
		default:
			fmt.Fprintf(&b, "\nnone of the mapping's columns is in row %d: if the column names are in a later row (below a title), add header_row: N to the mapping, N that row's number; else the mapping is not for this file", e.row)
		}
	}
	return b.String()
}

// score counts the mapping's columns among cells.
func (e *headerError) score(cells []string) int {
	n := 0
	for _, c := range cells {
		if slices.Contains(e.columns, cleanHeader(c)) {
			n++
		}
	}
	return n
}

// fitsHeader reports whether header, a row read as the header, holds
// every column of the mapping, and how many of them it holds: a sheet of
// a workbook is chosen by it (see chooseSheet). A header that has a
// column more than once holds it, and is refused naming it.
func (m *Mapping) fitsHeader(header []string) (bool, int) {
	_, err := newPlan(m, header)
	herr, ok := errors.AsType[*headerError](err)
	if !ok {
		return true, 0
	}
	return len(herr.missing) == 0, herr.matched
}

// showHeader writes the row read as the header for an error. It may be
// a row of data (a file without a header row, or header_row set past the
// header), so only a cell that is one of the mapping's column names is
// quoted; any other is shown as its length in characters, "(3 chars)",
// enough to tell a title or a header from data: an error never quotes a
// name, an address or an ID from the file.
func showHeader(header, columns []string) string {
	const maxCells = 40
	out := make([]string, 0, min(len(header), maxCells)+1)
	for i, h := range header {
		if i == maxCells {
			out = append(out, fmt.Sprintf("… (%d columns)", len(header)))
			break
		}
		h = cleanHeader(h)
		switch {
		case h == "":
			h = "(empty)"
		case !slices.Contains(columns, h):
			h = fmt.Sprintf("(%d chars)", utf8.RuneCountInString(h))
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return "(nothing)"
	}
	return strings.Join(out, ", ")
}

// newColumn binds a field of events of type t ("" for the version). Its
// only error is a time zone that does not load, which Mapping.Validate
// refuses: a mapping built otherwise does not fall back to another zone.
func newColumn(t schemas.Type, name string, f Field, find func(what, name string) int) (column, error) {
	c := column{name: name, col: -1, value: f.Value, def: f.Default, kind: f.Kind, split: f.Split, personName: schemas.PersonName(t, name)}
	c.member = append(strconv.AppendQuote(nil, name), ':') // names are ASCII JSON field names
	if c.kind == "" {
		c.kind = KindString
	}
	what := "data." + name
	if name == "id.version" {
		what = name
	}
	if f.Column != "" {
		c.col, c.header = find(what, f.Column), f.Column
	}
	switch c.kind {
	case KindDate:
		c.layouts = layoutsOr(f.Layout, dateLayouts)
	case KindMonth:
		c.layouts = layoutsOr(f.Layout, monthLayouts)
		c.firstDays = f.Layout == ""
	default:
		if f.Layout != "" {
			c.layouts = []string{f.Layout}
		}
	}
	loc, err := location(f.Timezone)
	if err != nil {
		return column{}, fmt.Errorf("%s: %w", what, err)
	}
	c.loc = loc
	if c.split == "" {
		c.split = defaultSplit
	}
	switch c.kind {
	case KindDate, KindMonth, KindNumber, KindCitizenID:
		c.fold = true
	default:
		c.fold = codeFields[name] || name == "id.version" || f.Codes != ""
	}
	switch {
	case f.Map != nil:
		c.lookup = f.Map
	case f.Codes != "":
		tab := codeTables[f.Codes]
		c.table = f.Codes + " table (" + tab.standard + ")"
		c.lookup = map[string]string{}
		for code, label := range tab.names {
			c.lookup[code] = code
			c.lookup[label] = code
			// The usual short names: 汉 for 汉族, 男 for 男性.
			for _, suffix := range []string{"族", "性"} {
				if short, ok := strings.CutSuffix(label, suffix); ok && short != "" {
					c.lookup[short] = code
				}
			}
		}
		if f.Codes == "education" {
			c.vague = map[string]bool{}
			for short, a := range codes.EducationAliases {
				code := a.Stage
				if t == schemas.EducationGraduated {
					code = a.Graduated
				}
				if code == "" {
					c.vague[short] = true
				} else {
					c.lookup[short] = code
				}
			}
		}
	}
	return c, nil
}

// find translates v by the column's value map or code table, read as
// typed or, failing that, as foldWidth reads it ("０１" for 01).
func (c *column) find(v string) (string, bool) {
	m, ok := c.lookup[v]
	if !ok {
		if f := foldWidth(v); f != v {
			m, ok = c.lookup[f]
		}
	}
	return m, ok
}

// unmapped explains why v, a value or a list's element, has no
// translation, naming the code table of a Codes field.
func (c *column) unmapped(v string, element bool) *convertError {
	what := "value"
	if element {
		what = "an element"
	}
	switch {
	case c.vague[v]:
		return &convertError{ReasonUnmappedValue, what + " is a short name that stands for several codes of the " + c.table + " in this event type: write the full name or the code"}
	case c.table != "":
		return &convertError{ReasonUnmappedValue, what + " is not a name or code of the " + c.table}
	}
	return &convertError{ReasonUnmappedValue, what + " is not in the value map"}
}

func layoutsOr(layout string, def []string) []string {
	if layout != "" {
		return []string{layout}
	}
	return def
}

// cleanHeader trims a header cell as cell trims a value.
func cleanHeader(s string) string {
	return trimCell(s)
}

// cell returns the trimmed value of column i of row; "" if the row is short.
func cell(row []string, i int) string {
	if i < 0 || i >= len(row) {
		return ""
	}
	return textForced(trimCell(row[i]))
}

// textForced reads a cell as a spreadsheet shows it when an export forced
// it to stay text, so that a long number is not turned into a float: the
// formula ="0123…" shows what it quotes, and a leading apostrophe, the
// mark of a number typed as text, is not shown. Exports write every such
// column so (户号, 区划代码, dates as ="19840127"), not only IDs; read
// with the wrapper, a household number would be another one and a code
// no code.
func textForced(v string) string {
	if inner, ok := strings.CutPrefix(v, `="`); ok && len(inner) > 0 && strings.HasSuffix(inner, `"`) {
		return strings.ReplaceAll(inner[:len(inner)-1], `""`, `"`)
	}
	return strings.TrimPrefix(v, "'")
}

// trimCell trims a cell of what a clerk cannot see at its edges
// (citizenid.TrimTyped): white space and characters that show as
// nothing, which stick to names, IDs and column names copied from web
// pages and chat messages.
func trimCell(s string) string { return citizenid.TrimTyped(s) }

// invisibleDetail is the reject detail of an ID cell holding a character
// that shows as nothing, r.
func invisibleDetail(r rune) string {
	return fmt.Sprintf("the cell holds an invisible character U+%04X among its characters: retype the ID", r)
}

// foldWidth reads the full-width forms of ASCII (U+FF01 to U+FF5E:
// １９９０, ．, －, ：) and the ideographic space as ASCII, as an input
// method in full-width mode types them and a clerk cannot tell them
// apart. It is applied to cells read as dates, times, numbers and codes,
// never to free text, such as names, which is sent as typed.
func foldWidth(s string) string {
	if isASCII(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0xff01 && r <= 0xff5e:
			return r - 0xff01 + '!'
		case r == '\u3000':
			return ' '
		}
		return r
	}, s)
}

// codeFields are the data fields the hub validates as codes (region and
// division codes, unified social credit codes; see schemas/catalogue.go),
// whose cells are read as foldWidth reads them, as are cells of dates,
// numbers, IDs and value maps.
var codeFields = map[string]bool{
	"address_code": true, "from_address_code": true, "to_address_code": true, "place_code": true,
	"city_code": true, "region": true, "from_region": true, "to_region": true, "work_region": true,
	"employer_id": true, "business_id": true,
}

// mapped is a row turned into an event, ready to send, or why not.
type mapped struct {
	line       int
	typ        schemas.Type // the event's type, once known ("" for JSONL)
	id         string
	key        []byte // the record key: the citizen ID
	value      []byte // the encoded event
	upgraded   int    // legacy 15-digit IDs upgraded
	separators int    // look-alikes of the middle dot replaced in names
	rej        *Reject
}

// fixes counts what reading a cell corrected, as a clerk would have
// typed it, for the report.
type fixes struct {
	upgraded   int // legacy 15-digit IDs upgraded to 18 digits
	separators int // look-alikes of the middle dot replaced by it in a name (schemas.FixNameSeparators)
}

// mapRow turns a row into an encoded event and validates it exactly as
// the hub will (schemas.Decode with the topic and the key, through
// schemas.CheckEncoded). kinds says which cells of a workbook are numbers
// or dates (nil: all text, as in CSV). Reject details never quote a cell:
// cells hold personal data, and the rejects file carries the line itself.
func (p *plan) mapRow(line int, row []string, kinds []cellKind, now time.Time) mapped {
	out := mapped{line: line}
	fail := func(reason, field, col, format string, args ...any) mapped {
		out.rej = &Reject{Line: line, Reason: reason, Field: field, Column: col, Detail: fmt.Sprintf(format, args...)}
		return out
	}
	for i, c := range row {
		if !utf8.ValidString(c) {
			return fail(ReasonMalformedRow, "", p.headerOf(i), "not valid UTF-8 (is the file GBK-encoded? set encoding: gbk)")
		}
	}
	// A formula's error in a column the event reads from: the type,
	// subject, time and key columns here, the version and data fields
	// where they are read.
	formulaErr := func(reason, field string, i int) (mapped, bool) {
		if e, ok := formulaError(cell(row, i), kindAt(kinds, i)); ok {
			return fail(reason, field, p.header[i], "%s", formulaErrorDetail(e)), true
		}
		return mapped{}, false
	}
	typ := p.typeVal
	if p.typeCol >= 0 {
		if m, bad := formulaErr(ReasonInvalidValue, "type", p.typeCol); bad {
			return m
		}
		v := cell(row, p.typeCol)
		t, ok := p.typeMap[v]
		if !ok {
			t, ok = p.typeMap[foldWidth(v)]
		}
		switch {
		case v == "":
			return fail(ReasonInvalidValue, "type", p.header[p.typeCol], "empty cell")
		case !ok:
			return fail(ReasonUnmappedValue, "type", p.header[p.typeCol], "value is not in the map of event types")
		}
		typ = t
	}
	out.typ = typ
	if m, bad := formulaErr(schemas.ReasonInvalidSubject, "subject", p.subject); bad {
		return m
	}
	if m, bad := formulaErr(ReasonInvalidValue, "time", p.timeCol); bad {
		return m
	}
	for _, i := range p.keyCols {
		if m, bad := formulaErr(ReasonInvalidValue, "id", i); bad {
			return m
		}
	}
	subject, numeric := idCell(cell(row, p.subject), kindAt(kinds, p.subject))
	if numeric {
		return fail(schemas.ReasonInvalidSubject, "subject", p.header[p.subject], "%s", numberIDDetail)
	}
	if r := citizenid.Invisible(subject); r != 0 {
		return fail(schemas.ReasonInvalidSubject, "subject", p.header[p.subject], "%s", invisibleDetail(r))
	}
	if zeroedBadCheck(subject) {
		return fail(schemas.ReasonInvalidSubject, "subject", p.header[p.subject], "%s", zeroedIDDetail)
	}
	if len(subject) == 15 {
		id, err := citizenid.Upgrade15(subject)
		if err != nil {
			return fail(schemas.ReasonInvalidSubject, "subject", p.header[p.subject], "legacy 15-digit ID: %v", errors.Unwrap(err))
		}
		subject = string(id)
		out.upgraded++
	}
	tv := foldWidth(cell(row, p.timeCol))
	if tv == "" {
		return fail(ReasonInvalidValue, "time", p.header[p.timeCol], "empty cell")
	}
	at, ok := parseCell(tv, kindAt(kinds, p.timeCol), p.timeLay, p.timeLoc, p.date1904)
	if !ok {
		return fail(ReasonInvalidValue, "time", p.header[p.timeCol], "not a time in layout %s", strings.Join(p.timeLay, " or "))
	}
	var version int64
	if p.version != nil {
		v, err := p.version.versionOf(row, kinds, p.date1904)
		if err != nil {
			return fail(ReasonInvalidValue, "id", p.version.header, "version: %v", err)
		}
		version = v
	}
	// The record key makes the event id: a key that lost digits would
	// give two records one id, the second called a correction.
	for _, i := range p.keyCols {
		if lostDigits(cell(row, i), kindAt(kinds, i)) {
			return fail(ReasonInvalidValue, "id", p.header[i], "%s", longNumberDetail)
		}
	}
	data := make([]byte, 0, 256)
	data = append(data, '{')
	for i := range p.fields[typ] {
		c := &p.fields[typ][i]
		mark := len(data)
		if mark > 1 {
			data = append(data, ',')
		}
		data = append(data, c.member...)
		var set bool
		var fixed fixes
		var err *convertError
		data, set, fixed, err = c.appendValue(data, row, kinds, p.date1904)
		if err != nil {
			return fail(err.reason, "data."+c.name, c.header, "%s", err.detail)
		}
		if !set {
			data = data[:mark]
			continue
		}
		out.upgraded += fixed.upgraded
		out.separators += fixed.separators
	}
	data = append(data, '}')

	var keyBuf [128]byte
	out.id = publisher.EventID(p.source, string(p.appendRecordKey(keyBuf[:0], typ, row)), version)
	ev := schemas.Event{ID: out.id, Source: p.source, Type: typ, Subject: citizenid.ID(subject), Time: at, Data: data}
	value, err := schemas.Encode(ev)
	if err != nil {
		return fail(schemas.ReasonInvalidData, "data", "", "encoding: %v", err)
	}
	// As schemas.Decode of the value would judge it, without parsing back
	// the envelope just written.
	key := []byte(subject)
	if err := schemas.CheckEncoded(&ev, schemas.Input{Topic: p.topic, Key: key, Value: value, Now: now}); err != nil {
		var re *schemas.RejectError
		if !errors.As(err, &re) {
			return fail(schemas.ReasonInvalidData, "", "", "%v", err)
		}
		return fail(re.Reason, re.Field, p.columnOf(typ, re.Field), "%s", re.Detail)
	}
	out.key, out.value = key, value
	return out
}

// appendRecordKey appends the department's key of the row: the type and
// the key columns, or, without key columns, every cell. The type is part
// of it so that one record (a lease) yields distinct events for its
// registration and its end. The cells are taken trimmed, an export's
// ="…" or '… kept (see textForced): the event ids of lines sent before
// values were read without it stay theirs, so that a resume, or the same
// lines imported again, sends nothing the hub does not recognise.
func (p *plan) appendRecordKey(b []byte, typ schemas.Type, row []string) []byte {
	b = append(b, typ...)
	if len(p.keyCols) == 0 {
		// Empty cells past the header row's own width are those of
		// columns named by a name merged down into them: pophub read
		// rows only as wide as that row before, and hashed no cell for
		// them.
		n := len(row)
		for p.keyWidth > 0 && n > p.keyWidth && trimCell(row[n-1]) == "" {
			n--
		}
		for _, c := range row[:n] {
			b = append(b, 0x1f)
			b = append(b, trimCell(c)...)
		}
		return b
	}
	for _, i := range p.keyCols {
		b = append(b, 0x1f)
		if i < len(row) {
			b = append(b, trimCell(row[i])...)
		}
	}
	return b
}

// asTyped writes a workbook row's cells as a clerk types them in a CSV
// file the mapping reads, for the rejects file, to be corrected and
// imported again with the same mapping: a date cell, or a number (an
// Excel serial day) in a column of times, dates or months, in the
// column's first layout rather than dateCellLayout or the serial; a
// citizen ID after an apostrophe, so that opening and saving the file in
// a spreadsheet keeps its 18 digits (the import reads it without, see
// textForced).
func (p *plan) asTyped(cells []string, kinds []cellKind) []string {
	out := slices.Clone(cells)
	for i, c := range out {
		if c == "" {
			continue
		}
		if p.isIDColumn(i) {
			if !strings.HasPrefix(c, "'") {
				out[i] = "'" + c
			}
			continue
		}
		kind := kindAt(kinds, i)
		if kind != dateCell && kind != numberCell {
			continue
		}
		if year, ok := ambiguousMonth(c, kind); ok && p.isMonthColumn(i) {
			// Written as either month, the line is refused again until
			// the clerk keeps the right one.
			out[i] = year + "-10 or " + year + "-01"
			continue
		}
		layouts, loc, ok := p.timeColumn(i)
		if !ok {
			continue
		}
		if t, ok := parseCell(foldWidth(c), kind, layouts, loc, p.date1904); ok {
			layout := layouts[0]
			if layout == time.RFC3339Nano && len(layouts) > 1 {
				layout = layouts[1] // the default forms: as a clerk writes a time
			}
			out[i] = t.Format(layout)
		}
	}
	return out
}

// isIDColumn reports whether column i holds citizen IDs: the subject, or a
// field of kind citizen_id.
func (p *plan) isIDColumn(i int) bool {
	if i == p.subject {
		return true
	}
	for _, cs := range p.fields {
		for _, c := range cs {
			if c.col == i && c.kind == KindCitizenID {
				return true
			}
		}
	}
	return false
}

// isMonthColumn reports whether column i is a field of months.
func (p *plan) isMonthColumn(i int) bool {
	for _, cs := range p.fields {
		for _, c := range cs {
			if c.col == i && c.kind == KindMonth {
				return true
			}
		}
	}
	return false
}

// timeColumn returns the layouts and time zone column i is read in, if it
// is the time column, a version read as a time, or a field of dates or
// months.
func (p *plan) timeColumn(i int) ([]string, *time.Location, bool) {
	if i == p.timeCol {
		return p.timeLay, p.timeLoc, true
	}
	if v := p.version; v != nil && v.col == i && v.layouts != nil {
		return v.layouts, v.loc, true
	}
	for _, cs := range p.fields {
		for _, c := range cs {
			if c.col == i && (c.kind == KindDate || c.kind == KindMonth) {
				return c.layouts, time.UTC, true
			}
		}
	}
	return nil, nil, false
}

func (p *plan) headerOf(i int) string {
	if i < len(p.header) {
		return p.header[i]
	}
	return fmt.Sprintf("#%d", i+1)
}

// columnOf names the column an event attribute or data field of an
// event of type typ came from. Types may map one data field to columns
// of their own (the reason of a registration, of a cancellation).
func (p *plan) columnOf(typ schemas.Type, field string) string {
	switch field {
	case "subject":
		return p.header[p.subject]
	case "time":
		return p.header[p.timeCol]
	case "type":
		if p.typeCol >= 0 {
			return p.header[p.typeCol]
		}
		return ""
	}
	name, _ := strings.CutPrefix(field, "data.")
	name, _, _ = strings.Cut(name, "[")
	for _, c := range p.fields[typ] {
		if c.name == name {
			return c.header
		}
	}
	return ""
}

// convertError is a cell that cannot be converted.
type convertError struct{ reason, detail string }

// appendValue appends the JSON value of the field to dst and returns it,
// whether the field is set (dst is unchanged when not), and what it
// corrected. date1904 is the workbook's date system.
func (c *column) appendValue(dst []byte, row []string, kinds []cellKind, date1904 bool) ([]byte, bool, fixes, *convertError) {
	v, kind := c.value, textCell
	if c.col >= 0 {
		v, kind = cell(row, c.col), kindAt(kinds, c.col)
	}
	if v == "" {
		v, kind = c.def, textCell
	}
	if v == "" {
		return dst, false, fixes{}, nil
	}
	if e, ok := formulaError(v, kind); ok {
		return dst, false, fixes{}, &convertError{ReasonInvalidValue, formulaErrorDetail(e)}
	}
	if c.kind != KindNumber && c.kind != KindCitizenID && lostDigits(v, kind) {
		// An ID cell's own detail is numberIDDetail (see idCell).
		return dst, false, fixes{}, &convertError{ReasonInvalidValue, longNumberDetail}
	}
	switch c.kind {
	case KindDate, KindMonth, KindNumber:
		v = foldWidth(v)
	default:
		if c.fold && c.lookup == nil {
			v = foldWidth(v)
		}
	}
	if c.kind == KindList {
		out := append(dst, '[')
		n := 0
		for _, e := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(c.split, r) }) {
			e = trimCell(e)
			if e == "" {
				continue
			}
			if c.lookup != nil {
				m, ok := c.find(e)
				if !ok {
					return dst, false, fixes{}, c.unmapped(e, true)
				}
				e = m
			}
			if n > 0 {
				out = append(out, ',')
			}
			out = schemas.AppendJSONString(out, e)
			n++
		}
		return append(out, ']'), true, fixes{}, nil
	}
	if c.lookup != nil {
		m, ok := c.find(v)
		if !ok {
			return dst, false, fixes{}, c.unmapped(v, false)
		}
		v, kind = m, textCell
	}
	if c.personName && c.kind == KindString {
		// Names are sent as typed, but for the separator of a two-part
		// name: the clerk's ・ or • is the register's · (GBK A1A4), which
		// the hub asks for. An export's ="…" may still hold padding.
		var n int
		if v, n = schemas.FixNameSeparators(trimCell(v)); v == "" {
			return dst, false, fixes{}, nil
		}
		return schemas.AppendJSONString(dst, v), true, fixes{separators: n}, nil
	}
	switch c.kind {
	case KindNumber:
		n, ok := withoutThousands(v)
		if !ok {
			return dst, false, fixes{}, &convertError{ReasonInvalidValue, decimalCommaDetail}
		}
		f, err := strconv.ParseFloat(n, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return dst, false, fixes{}, &convertError{ReasonInvalidValue, "not a number"}
		}
		return strconv.AppendFloat(dst, f, 'f', -1, 64), true, fixes{}, nil
	case KindDate, KindMonth:
		if _, ok := ambiguousMonth(v, kind); ok && c.kind == KindMonth {
			return dst, false, fixes{}, &convertError{ReasonInvalidValue, decimalMonthDetail}
		}
		t, ok := parseCell(v, kind, c.layouts, wallClock, date1904)
		if !ok && c.firstDays {
			// A date with a time of day too, as databases export a
			// month kept as a timestamp: midnight only.
			if t, ok = parseTime(v, monthDayForms, wallClock); ok && (t.Day() != 1 || t.Hour()+t.Minute()+t.Second() != 0) {
				return dst, false, fixes{}, &convertError{ReasonInvalidValue, "a date, not a month: only the first day of a month (2026-03-01, or 2026-03-01 00:00:00) is read as its month"}
			}
		}
		if !ok {
			return dst, false, fixes{}, &convertError{ReasonInvalidValue, "not a " + c.kind + " in layout " + strings.Join(c.layouts, " or ")}
		}
		if t.Location() != wallClock {
			// An instant (2026-02-28T16:30:00Z, as exporters write UTC):
			// the date China's clocks (or the field's zone's) showed, as
			// the row's time column and pophub cdc read it.
			t = schemas.Clock(t, c.loc)
		}
		out := time.DateOnly
		if c.kind == KindMonth {
			out = "2006-01"
		}
		dst = append(dst, '"')
		return append(t.AppendFormat(dst, out), '"'), true, fixes{}, nil
	case KindCitizenID:
		var numeric bool
		if v, numeric = idCell(v, kind); numeric {
			return dst, false, fixes{}, &convertError{schemas.ReasonInvalidData, numberIDDetail}
		}
		if r := citizenid.Invisible(v); r != 0 {
			return dst, false, fixes{}, &convertError{schemas.ReasonInvalidData, invisibleDetail(r)}
		}
		if zeroedBadCheck(v) {
			return dst, false, fixes{}, &convertError{schemas.ReasonInvalidData, zeroedIDDetail}
		}
		if len(v) == 15 {
			id, err := citizenid.Upgrade15(v)
			if err != nil {
				return dst, false, fixes{}, &convertError{schemas.ReasonInvalidData, "legacy 15-digit ID: " + errors.Unwrap(err).Error()}
			}
			return schemas.AppendJSONString(dst, string(id)), true, fixes{upgraded: 1}, nil
		}
	}
	return schemas.AppendJSONString(dst, v), true, fixes{}, nil
}

// ambiguousMonth reports whether v, a cell of a month column, is a
// workbook's number ending in .1 (see decimalMonthDetail), and returns
// its year.
func ambiguousMonth(v string, kind cellKind) (string, bool) {
	year, ok := strings.CutSuffix(v, ".1")
	return year, ok && kind == numberCell
}

// decimalMonthDetail is the reject detail of a workbook's number in a
// month column that reads as January: typed 2026.10, Excel keeps the
// number 2026.1, which a format such as 0.00 still shows as 2026.10, so
// January and October are one number and cannot be told apart.
const decimalMonthDetail = "the cell is a number ending in .1, which Excel also keeps for a month typed .10 (2026.10 is the number 2026.1): type the month as text, 2026-10 or 2026-01, or format the column as text and retype it"

// numberIDDetail is the reject detail of an ID cell that is a number.
const numberIDDetail = "the cell is a number (Excel keeps only 15 significant digits): format the column as text and re-enter the IDs"

// longNumberDetail is the reject detail of a workbook's number cell that
// lost digits (see lostDigits).
const longNumberDetail = "the cell is a number of more than 15 digits (Excel keeps only 15 significant digits, so numbers that differ in their last digits now read the same): format the column as text and re-enter the numbers"

// excelErrors are the error values a spreadsheet's formula shows when it
// fails: #N/A of a lookup that found nothing, #REF! of a reference to a
// deleted cell or sheet. A file saved as CSV holds them as text.
var excelErrors = map[string]bool{
	"#N/A": true, "#REF!": true, "#VALUE!": true, "#DIV/0!": true, "#NAME?": true,
	"#NULL!": true, "#NUM!": true, "#SPILL!": true, "#CALC!": true, "#GETTING_DATA": true,
}

// formulaError reports the error a cell of the given kind holds in place
// of a value: a workbook's error cell, or an error value as text. It is
// never the department's value: sent, one failed lookup would put every
// person it failed for in one household "#N/A". Every error value begins
// with '#', which spares the other cells an upper-case copy (a twentieth
// of an import's time).
func formulaError(v string, kind cellKind) (string, bool) {
	return v, kind == errorCell || v != "" && v[0] == '#' && excelErrors[strings.ToUpper(v)]
}

// formulaErrorDetail is the reject detail of a cell holding the formula
// error e.
func formulaErrorDetail(e string) string {
	return "the cell holds the formula error " + e + ": the spreadsheet's formula failed (#N/A: a lookup found nothing; #REF!: it refers to a deleted cell or sheet): correct the formula or type the value"
}

// lostDigits reports whether v, a cell of the given kind, is a workbook's
// number of more than 15 digits before its decimal point. Excel keeps a
// number in 15 significant digits, so the digits after the 15th are zeros
// it wrote, not the department's: an 18-digit lease or case number kept
// as a number reads as another one's (230102202600000001 and …0002 as
// 230102202600000000), and as a record key would make two records one.
// A column of kind number is exempt: its values are amounts, not
// identifiers.
func lostDigits(v string, kind cellKind) bool {
	if kind != numberCell {
		return false
	}
	f, err := strconv.ParseFloat(v, 64)
	return err == nil && math.Abs(f) >= 1e15
}

// idCell reads a citizen ID cell as the ID's ASCII text: full-width
// digits and Ｘ, as an input method in full-width mode types them, are
// folded to ASCII, and a lower-case x to X (citizenid refuses both, for
// IDs sent by systems, but a clerk cannot see the difference in a cell).
// numeric reports a cell that was a number in the spreadsheet and lost
// digits: an 18-digit ID is beyond a float64's 15 significant digits, so
// Excel shows it in E notation (2.30102199207073E+17, also as text in a
// CSV file it saved) or, formatted as an integer, with its last digits
// zeros. Only a legacy 15-digit ID survives being a number.
//
// An ID an export wrote as ="110101…" or '110101… comes without them
// (see textForced).
func idCell(v string, kind cellKind) (id string, numeric bool) {
	for i := 0; i < len(v); i++ {
		if v[i] >= utf8.RuneSelf {
			v = width.Narrow.String(v)
			break
		}
	}
	v = strings.ToUpper(v)
	if strings.ContainsAny(v, "E") {
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			return v, true
		}
	}
	if kind == numberCell && len(v) > 15 {
		return v, true
	}
	return v, false
}

// versionOf reads the version: an integer, or a time (in Layout) as Unix
// milliseconds, so that a "last modified" column orders versions.
// date1904 is the workbook's date system.
func (c *column) versionOf(row []string, kinds []cellKind, date1904 bool) (int64, error) {
	v, kind := c.value, textCell
	if c.col >= 0 {
		v, kind = cell(row, c.col), kindAt(kinds, c.col)
	}
	if v == "" {
		v, kind = c.def, textCell
	}
	if v == "" {
		return 0, errors.New("empty cell")
	}
	if e, ok := formulaError(v, kind); ok {
		return 0, errors.New(formulaErrorDetail(e))
	}
	v = foldWidth(v)
	if lostDigits(v, kind) {
		return 0, errors.New(longNumberDetail)
	}
	if c.layouts == nil {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, errors.New("not an integer (give a layout for a time)")
		}
		return n, nil
	}
	t, ok := parseCell(v, kind, c.layouts, c.loc, date1904)
	if !ok {
		return 0, fmt.Errorf("not a time in layout %s", c.layouts[0])
	}
	return t.UnixMilli(), nil
}

func parseTime(v string, layouts []string, loc *time.Location) (time.Time, bool) {
	for _, l := range layouts {
		if t, err := time.ParseInLocation(l, v, loc); err == nil {
			return abbreviated(t, loc), true
		}
	}
	return time.Time{}, false
}

// abbreviated reads a time whose zone a layout's MST took as an
// abbreviation Go does not know, which it gives a zero offset: Java's
// Date.toString writes "Sun Mar 01 20:00:00 CST 2026" on a server in
// China, 20:00 China time, not UTC. Such a time is a wall time in loc.
// UTC and GMT are what they say.
func abbreviated(t time.Time, loc *time.Location) time.Time {
	name, off := t.Zone()
	if off != 0 || name == "" || name == "UTC" || name == "GMT" || t.Location() == loc {
		return t
	}
	y, m, d := t.Date()
	return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
}

// parseCell reads a time from a cell. A workbook's date cell was written
// in dateCellLayout when it was read (see xlsxSource), whatever the
// layouts; a workbook's number that is in none of the layouts is an Excel
// serial day number, as a date reads when its cell is not formatted as
// one, counted from the epoch of the workbook's date system (date1904).
// Text is only ever read in the layouts: "1985" in a CSV file is no date.
func parseCell(v string, kind cellKind, layouts []string, loc *time.Location, date1904 bool) (time.Time, bool) {
	switch kind {
	case dateCell:
		t, err := time.ParseInLocation(dateCellLayout, v, loc)
		return t, err == nil
	case numberCell:
		if t, ok := parseTime(v, layouts, loc); ok {
			return t, true
		}
		return excelDate(v, date1904, loc)
	}
	return parseTime(v, layouts, loc)
}

// wallClock is the location date cells are read in: one no offset in
// the cell can give (a second east of UTC), so that a time read in it is
// a wall time, and one in any other location named its instant, +00:00
// and Z included.
var wallClock = time.FixedZone("wall clock", 1)

// excelDate reads an Excel serial day number (1 is 1900-01-01, or 0 is
// 1904-01-01 in a workbook of the 1904 date system, date1904; a fraction
// is the time of day; see excelTime) as a wall time in loc, up to
// 9999-12-31. Excel's fictitious 1900-02-29 is refused.
func excelDate(v string, date1904 bool, loc *time.Location) (time.Time, bool) {
	n, ok := withoutThousands(v)
	if !ok {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(n, 64)
	first, last := 1.0, 2958465.0
	if date1904 {
		first, last = 0, 2957003
	}
	if err != nil || f < first || f >= last+1 || fictitiousDay(f, date1904) {
		return time.Time{}, false
	}
	return excelTime(f, date1904, loc), true
}

// decimalCommaDetail is the reject detail of a number with a comma that
// is not a thousands separator.
const decimalCommaDetail = "a comma is read only as a thousands separator (1,234.5): write the decimal point as ."

// withoutThousands removes the thousands separators of a number written
// with them (1,234,567.5, signed or not). A comma anywhere else makes the
// number ambiguous — "89,5" is 89.5 with a decimal comma, as much of the
// world writes it — so v is refused (ok false) rather than read as 895.
// v without a comma is returned as it is.
func withoutThousands(v string) (string, bool) {
	if !strings.Contains(v, ",") {
		return v, true
	}
	digits := strings.TrimLeft(v, "+-")
	if len(v)-len(digits) > 1 {
		return "", false
	}
	whole, frac, hasFrac := strings.Cut(digits, ".")
	if hasFrac && !allDigits(frac) {
		return "", false
	}
	groups := strings.Split(whole, ",")
	if len(groups[0]) < 1 || len(groups[0]) > 3 || !allDigits(groups[0]) {
		return "", false
	}
	for _, g := range groups[1:] {
		if len(g) != 3 || !allDigits(g) {
			return "", false
		}
	}
	return strings.ReplaceAll(v, ",", ""), true
}
