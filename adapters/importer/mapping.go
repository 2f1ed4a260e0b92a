package importer

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/codes"
)

// Mapping describes how a department's table becomes events. It is read
// from YAML (see the package documentation for the format); the zero value
// of every optional field has a documented default.
type Mapping struct {
	// Source is the department the file belongs to; it must equal the
	// import's source.
	Source schemas.Source `yaml:"source"`
	// Encoding of a CSV file: "auto" (default: UTF-8 if the file is valid
	// UTF-8, else GBK), "utf-8" or "gbk" (decoded as GB 18030, its
	// superset). A UTF-8 byte order mark is always accepted.
	Encoding string `yaml:"encoding"`
	// Delimiter of a CSV file's cells: "," (default), ";", "|" or "tab"
	// (also written "\t"), as the department's system exports them.
	Delimiter string `yaml:"delimiter"`
	// Sheet of an XLSX workbook. Default: the sheet a checkpoint of the
	// same import counts, else the first visible sheet, in workbook order,
	// whose header row holds every column of the mapping (the one open
	// when it was saved plays no part); a hidden sheet is read only when
	// named.
	Sheet string `yaml:"sheet"`
	// HeaderRow is the 1-based row holding the column names (default 1);
	// rows above it (a title, say) are skipped.
	HeaderRow int `yaml:"header_row"`
	// Type is the event type: a fixed type, or a column with a value map.
	Type TypeSpec `yaml:"type"`
	// Subject is the column holding the citizen ID (18 digits, or the
	// legacy 15, which are upgraded): a column and no other option.
	Subject Field `yaml:"subject"`
	// Time is the column holding when the change took effect, with its
	// layout and time zone and no other option.
	Time Field `yaml:"time"`
	// ID says how the event id is derived.
	ID IDSpec `yaml:"id"`
	// Data maps data fields (JSON names of the type's data struct) to
	// columns, for every type.
	Data map[string]Field `yaml:"data"`
	// DataByType adds fields for one type each, when Type comes from a
	// column and the types carry different data.
	DataByType map[schemas.Type]map[string]Field `yaml:"data_by_type"`

	digest string // SHA-256 of the YAML it was parsed from
}

// TypeSpec gives the event type: Value, or the value of Column through Map
// (file value → catalogue type). In YAML a plain string is Value.
type TypeSpec struct {
	Value  schemas.Type            `yaml:"value"`
	Column string                  `yaml:"column"`
	Map    map[string]schemas.Type `yaml:"map"`
}

// UnmarshalYAML accepts a plain string as a fixed type.
func (t *TypeSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		t.Value = schemas.Type(n.Value)
		return nil
	}
	type plain TypeSpec
	return n.Decode((*plain)(t))
}

// IDSpec derives event ids with publisher.EventID from the record key (the
// event type and the Key columns' values) and the Version column. Without
// Key the whole row is the record key: a row sent again is the same event.
// Version is a column or a value, with a default, and a layout, time zone
// or kind (date, month) when it is a time; no map, codes or split.
type IDSpec struct {
	Key     Columns `yaml:"key"`
	Version Field   `yaml:"version"`
}

// Columns is a list of column names; in YAML a plain string is a list of
// one.
type Columns []string

// UnmarshalYAML accepts a plain string as a list of one.
func (c *Columns) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = Columns{n.Value}
		return nil
	}
	return n.Decode((*[]string)(c))
}

// Field is where a value comes from and how it is converted. In YAML a
// plain string is Column.
type Field struct {
	// Column names the file's column (its header, exactly, spaces trimmed).
	Column string `yaml:"column"`
	// Value is a constant, used instead of a column.
	Value string `yaml:"value"`
	// Default replaces an empty cell. An empty cell without a default
	// leaves the field out (the hub then rejects it if it is required).
	Default string `yaml:"default"`
	// Map translates the file's values (男 → 1); a value not in the map is
	// rejected (unmapped_value). For a list it applies to each element.
	Map map[string]string `yaml:"map"`
	// Codes translates names of a national code table to codes, accepting
	// the codes themselves too: gender, ethnicity (汉族 or 汉 → 01),
	// education, marital. Education takes the full GB/T 4658 names and the
	// short ones of codes.EducationAliases (本科 → 20 大学本科教育 in an
	// enrolment, 21 大学本科毕业 in a graduation). A value of neither is
	// rejected (unmapped_value).
	Codes string `yaml:"codes"`
	// Kind converts the value: string (default), number, date (YYYY-MM-DD),
	// month (YYYY-MM), list (a JSON array of strings, split at Split),
	// citizen_id (a 15-digit number is upgraded to 18).
	Kind string `yaml:"kind"`
	// Layout is the Go time layout of a date, month, time or version cell
	// (default: several common ones, and Excel serial day numbers).
	Layout string `yaml:"layout"`
	// Timezone of Time and Version cells without an offset: an IANA name;
	// by default, and for Asia/Shanghai and its aliases, China Standard
	// Time, a fixed UTC+08:00 (schemas.Zone). A zone that does not load
	// is an error on any field.
	Timezone string `yaml:"timezone"`
	// Split separates list elements (default: any of , ， 、 ; ； |).
	Split string `yaml:"split"`
}

// UnmarshalYAML accepts a plain string as a column name.
func (f *Field) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		f.Column = n.Value
		return nil
	}
	type plain Field
	return n.Decode((*plain)(f))
}

// Field kinds.
const (
	KindString    = "string"
	KindNumber    = "number"
	KindDate      = "date"
	KindMonth     = "month"
	KindList      = "list"
	KindCitizenID = "citizen_id"
)

var kinds = []string{KindString, KindNumber, KindDate, KindMonth, KindList, KindCitizenID}

// codeTable is a national code table Field.Codes may name.
type codeTable struct {
	names    map[string]string // code → name
	standard string            // the standard that defines it, for reject details
}

// codeTables are the tables Field.Codes may name.
var codeTables = map[string]codeTable{
	"gender":    {codes.Gender, "GB/T 2261.1"},
	"ethnicity": {codes.Ethnicity, "GB 3304"},
	"education": {codes.Education, "GB/T 4658"},
	"marital":   {codes.Marital, "GB/T 2261.2"},
}

//go:embed mappings/*.yaml
var examples embed.FS

// ExampleMapping returns the mapping shipped for a source, the starting
// point a department adapts to its own columns.
func ExampleMapping(source schemas.Source) (*Mapping, error) {
	b, err := examples.ReadFile("mappings/" + string(source) + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("reading example mapping of %q: %w", source, err)
	}
	return ParseMapping(b)
}

// LoadMapping reads and checks a mapping file.
func LoadMapping(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading mapping: %w", err)
	}
	m, err := ParseMapping(b)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return m, nil
}

// ParseMapping parses and checks a mapping. Unknown keys are errors, so
// that a misspelt option does not silently do nothing.
func ParseMapping(b []byte) (*Mapping, error) {
	var m Mapping
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parsing mapping: %w", err)
	}
	sum := sha256.Sum256(b)
	m.digest = hex.EncodeToString(sum[:])
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks what can be checked without the file's header: the
// types are in the catalogue and belong to the source, every data field is
// a field of its type's data, kinds, code tables, layouts and time zones
// exist, every field takes its value from a column or a constant, not
// both, and the subject, time and version set only options they read.
func (m *Mapping) Validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !m.Source.Valid() {
		fail("source: %q is not a department source", m.Source)
	}
	if _, err := parseDelimiter(m.Delimiter); err != nil {
		fail("%v", err)
	}
	if _, err := normalizeEncoding(m.Encoding); err != nil {
		fail("%v", err)
	}
	if m.HeaderRow < 0 {
		fail("header_row: must be positive")
	}
	types := m.types()
	switch {
	case m.Type.Value != "" && m.Type.Column != "":
		fail("type: give value or column, not both")
	case m.Type.Value == "" && m.Type.Column == "":
		fail("type: a fixed type or a column is required")
	case m.Type.Column != "" && len(m.Type.Map) == 0:
		fail("type: column %q needs a map from its values to event types", m.Type.Column)
	}
	for _, t := range types {
		if src := schemas.SourceOf(t); src == "" {
			fail("type: %q is not in the catalogue", t)
		} else if src != m.Source {
			fail("type: %q belongs to source %s, not %s", t, src, m.Source)
		}
	}
	for t := range m.DataByType {
		if !slices.Contains(types, t) {
			fail("data_by_type: %q is not a type this mapping yields", t)
		}
	}
	if m.Subject.Column == "" {
		fail("subject: the column of the citizen ID is required")
	}
	for _, err := range m.Subject.unsupported("the subject", "column") {
		fail("subject: %v", err)
	}
	if m.Time.Column == "" {
		fail("time: a column is required")
	}
	for _, err := range m.Time.unsupported("the time", "column", "layout", "timezone") {
		fail("time: %v", err)
	}
	if err := m.Time.checkTime(); err != nil {
		fail("time: %v", err)
	}
	if v := m.ID.Version; len(v.options()) > 0 {
		for _, err := range append(v.unsupported("id.version", "column", "value", "default", "kind", "layout", "timezone"), v.checkVersion()) {
			if err != nil {
				fail("id.version: %v", err)
			}
		}
	}
	for _, t := range types {
		known := dataFields(t)
		for name, f := range m.fieldsOf(t) {
			if known != nil && !slices.Contains(known, name) {
				fail("data.%s: not a field of %s (its fields: %s)", name, t, strings.Join(known, ", "))
			}
			if err := f.check(); err != nil {
				fail("data.%s: %v", name, err)
			}
		}
	}
	return errors.Join(errs...)
}

// check checks a data field: where its value comes from, its kind, code
// table, layout and time zone.
func (f Field) check() error {
	if err := f.checkSource(); err != nil {
		return err
	}
	if f.Kind != "" && !slices.Contains(kinds, f.Kind) {
		return fmt.Errorf("kind %q is not one of %s", f.Kind, strings.Join(kinds, ", "))
	}
	if f.Codes != "" {
		if _, ok := codeTables[f.Codes]; !ok {
			return fmt.Errorf("codes %q is not one of gender, ethnicity, education, marital", f.Codes)
		}
		if f.Map != nil {
			return errors.New("give map or codes, not both")
		}
	}
	return f.checkTime()
}

// checkSource refuses a field with neither a column nor a value, or with
// both: the value would silently win over the column.
func (f Field) checkSource() error {
	switch {
	case f.Column == "" && f.Value == "":
		return errors.New("a column or a value is required")
	case f.Column != "" && f.Value != "":
		return errors.New("give column or value, not both")
	}
	return nil
}

// checkTime checks a field's layout and loads its time zone, so that a
// misspelt zone is an error when the mapping is read, on whichever field
// it is, rather than a zone the import falls back from.
func (f Field) checkTime() error {
	if err := checkLayout(f.Layout); err != nil {
		return err
	}
	_, err := location(f.Timezone)
	return err
}

// checkVersion checks id.version: a column or a value, an integer or a
// time in a layout (a kind of date or month gives the default layouts of
// one, any other kind would be ignored).
func (f Field) checkVersion() error {
	if err := f.checkSource(); err != nil {
		return err
	}
	if f.Kind != "" && f.Kind != KindDate && f.Kind != KindMonth {
		return fmt.Errorf("kind %q is not an option of id.version, an integer or a time (give a layout, or kind date or month)", f.Kind)
	}
	return f.checkTime()
}

// options names the options set in f, in the order Field declares them.
func (f Field) options() []string {
	var out []string
	for _, o := range []struct {
		name string
		set  bool
	}{
		{"column", f.Column != ""}, {"value", f.Value != ""}, {"default", f.Default != ""}, {"map", f.Map != nil}, {"codes", f.Codes != ""},
		{"kind", f.Kind != ""}, {"layout", f.Layout != ""}, {"timezone", f.Timezone != ""}, {"split", f.Split != ""},
	} {
		if o.set {
			out = append(out, o.name)
		}
	}
	return out
}

// unsupported refuses the options of f that what (the subject, the
// time, the version) does not read: a mapping that sets one would read as
// if it did something (a default for an empty time, a value map for IDs).
func (f Field) unsupported(what string, supported ...string) []error {
	var errs []error
	for _, o := range f.options() {
		if !slices.Contains(supported, o) {
			errs = append(errs, fmt.Errorf("%s is not an option of %s, which takes %s", o, what, strings.Join(supported, ", ")))
		}
	}
	return errs
}

// layoutProbe is a time in which every element of a Go layout (2006, 01,
// Jan, 02, Mon, 15, 03, PM, 04, 05, .000, MST, -0700…) formats otherwise
// than it is spelt.
var layoutProbe = time.Date(2017, time.November, 28, 9, 37, 49, 123456789, time.FixedZone("XYZ", 8*60*60))

// javaLayout spells the tokens of Java, Excel and .NET date patterns,
// which clerks and their systems know, as Go's reference time.
var javaLayout = strings.NewReplacer(
	"yyyy", "2006", "YYYY", "2006", "SSS", "000", "yy", "06", "YY", "06",
	"MM", "01", "dd", "02", "DD", "02", "HH", "15", "hh", "03", "mm", "04", "ss", "05")

// checkLayout refuses a layout that is not a Go time layout: one with no
// element of the reference time, such as "yyyy-MM-dd HH:mm:ss", would read
// no cell, and every line would be rejected. The error gives the Go
// spelling of a Java or Excel pattern.
func checkLayout(layout string) error {
	if layout == "" || layoutProbe.Format(layout) != layout {
		return nil
	}
	err := fmt.Errorf("layout %q is not a Go time layout, which spells the parts of the time 2006-01-02 15:04:05 as that time has them", layout)
	if goLayout := javaLayout.Replace(layout); layoutProbe.Format(goLayout) != goLayout {
		err = fmt.Errorf("layout %q is not a Go time layout: write it as %q (Go spells the parts of a time as the time 2006-01-02 15:04:05 has them)", layout, goLayout)
	}
	return err
}

// types lists the event types the mapping can yield, sorted.
func (m *Mapping) types() []schemas.Type {
	if m.Type.Value != "" {
		return []schemas.Type{m.Type.Value}
	}
	var out []schemas.Type
	for _, t := range m.Type.Map {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// fieldsOf merges Data and DataByType[t].
func (m *Mapping) fieldsOf(t schemas.Type) map[string]Field {
	out := make(map[string]Field, len(m.Data)+len(m.DataByType[t]))
	for k, v := range m.Data {
		out[k] = v
	}
	for k, v := range m.DataByType[t] {
		out[k] = v
	}
	return out
}

// dataFields lists the JSON field names of t's data struct.
func dataFields(t schemas.Type) []string {
	d := schemas.NewData(t)
	if d == nil {
		return nil
	}
	rt := reflect.TypeOf(d).Elem()
	out := make([]string, 0, rt.NumField())
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// location is the time zone of a field's cells without an offset: China
// Standard Time (a fixed UTC+08:00) by default and for China's zone names
// (schemas.Zone).
func location(name string) (*time.Location, error) {
	return schemas.Zone(name)
}
