package region

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Overlay is an official NBS table: 12-digit codes with their urban-rural
// classification codes and names, to lay over the built-in table with
// With. Its entries are sorted by code and unique.
type Overlay struct {
	entries []overlayEntry
}

type overlayEntry struct {
	code  uint64
	class byte // an official class: index in classList plus one
	name  string
}

// Len counts the overlay's entries.
func (o *Overlay) Len() int { return len(o.entries) }

// All yields the overlay's entries in code order.
func (o *Overlay) All() iter.Seq[Division] {
	return func(yield func(Division) bool) {
		for _, e := range o.entries {
			class := classList[e.class-1]
			d := Division{Code: formatCode(e.code, 12), Name: e.name, Level: VillageLevel, Class: class, UrbanRural: urbanRuralOf(class)}
			if !yield(d) {
				return
			}
		}
	}
}

// maxBadLines bounds the errors ParseNBS collects, so that a file in the
// wrong format gives a readable report rather than a million lines.
const maxBadLines = 50

// ParseNBS reads the official NBS table as CSV: code, classification code,
// name on every line, in UTF-8 (convert a GBK download first); a first line
// whose code is not digits is taken as a header. Every line is checked
// (a 12-digit code in a real province, a class among 111, 112, 121, 122,
// 123, 210 and 220, a name without control characters that does not begin
// with = + - or @, which a spreadsheet would run as a formula, no code
// twice) and the error names each bad line by number, up to 50 of them, so
// that one run shows what to fix.
func ParseNBS(r io.Reader) (*Overlay, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var (
		entries []overlayEntry
		lines   []int // line of each entry, for duplicate reports
		errs    []lineError
	)
	bad := func(line int, format string, args ...any) {
		errs = append(errs, lineError{line, fmt.Errorf("line %d: "+format, append([]any{line}, args...)...)})
	}
	for first := true; len(errs) < maxBadLines; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading NBS table: %w", err)
		}
		line, _ := cr.FieldPos(0)
		code := strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff"))
		if first && (code == "" || !digits(code)) {
			continue // a header
		}
		if len(rec) != 3 {
			bad(line, "%d columns, want 3: code, classification code, name", len(rec))
			continue
		}
		class, name := strings.TrimSpace(rec[1]), strings.TrimSpace(rec[2])
		li, n, ok := parseCode(code)
		c, classOK := officialClass(class)
		switch {
		case !ok || levels[li] != VillageLevel || !IsAddressCode(code):
			bad(line, "code %q is not a 12-digit village-level division code", code)
		case !classOK:
			bad(line, "classification code %q is not one of 111, 112, 121, 122, 123, 210, 220", class)
		case name == "":
			bad(line, "code %s has no name", code)
		case !utf8.ValidString(name):
			bad(line, "name of %s is not UTF-8 (convert the file from GBK first)", code)
		case strings.ContainsFunc(name, unicode.IsControl):
			// The table format separates fields with tabs and entries
			// with line breaks: such a name would be written as is and
			// make the saved overlay unreadable at the hub's next start.
			bad(line, "name of %s contains a control character (a tab or line break inside quotes?)", code)
		case strings.ContainsAny(name[:1], formulaStarts):
			// Spreadsheets run a cell that begins with one of these as a
			// formula (=HYPERLINK(…)), and the statistics report names
			// every committee; no division's name begins with one.
			bad(line, "name of %s begins with %q, which a spreadsheet would run as a formula", code, name[:1])
		default:
			entries = append(entries, overlayEntry{code: n, class: c, name: name})
			lines = append(lines, line)
		}
	}
	stopped := len(errs) >= maxBadLines
	// Sort by code, keeping file order among equal codes, to find repeats.
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch ea, eb := entries[a].code, entries[b].code; {
		case ea < eb:
			return -1
		case ea > eb:
			return 1
		}
		return 0
	})
	o := &Overlay{entries: make([]overlayEntry, 0, len(entries))}
	for k, i := range order {
		if k > 0 && entries[order[k-1]].code == entries[i].code {
			if len(errs) < maxBadLines {
				bad(lines[i], "code %s repeats line %d", formatCode(entries[i].code, 12), lines[order[k-1]])
			}
			continue
		}
		o.entries = append(o.entries, entries[i])
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b lineError) int { return a.line - b.line })
		all := make([]error, 0, len(errs)+1)
		for _, e := range errs {
			all = append(all, e.err)
		}
		if stopped {
			all = append(all, fmt.Errorf("stopped after %d bad lines", maxBadLines))
		}
		return nil, fmt.Errorf("reading NBS table: %w", errors.Join(all...))
	}
	if len(o.entries) == 0 {
		return nil, errors.New("reading NBS table: no entries")
	}
	return o, nil
}

// formulaStarts are the characters a name of the NBS table may not begin
// with, since a spreadsheet takes a cell that begins with one for a
// formula. A tab or carriage return, which spreadsheets treat alike, is
// trimmed or refused as a control character before this check.
const formulaStarts = "=+-@"

// lineError is an error about one line of an NBS table.
type lineError struct {
	line int
	err  error
}

// With returns a table in which the overlay's entries replace the 12-digit
// entries of t with the same code (with their official class and name) and
// add those t lacks; replaced and added count them (villages only).
//
// An added committee may lie in a township, county or city t lacks (a
// division created after the built-in snapshot). Those ancestors are added
// too, with no name, since an NBS table of committees names none of them
// (a province gets its own name): otherwise the committee would be known
// while its county was not a known region, its chain would stop short and
// the statistics, which drill down through Children, would never reach it.
// The levels With does not change are shared with t, which is safe because
// tables are immutable.
func (t *Table) With(o *Overlay) (out *Table, replaced, added int) {
	out = &Table{lv: t.lv}
	for li := range len(levels) - 1 {
		out.lv[li] = t.lv[li].withCodes(levels[li], missingAncestors(&t.lv[li], levels[li], o.entries))
	}
	vi := levelIndex(int(VillageLevel))
	old := &t.lv[vi]
	size := len(old.names)
	for _, e := range o.entries {
		size += len(e.name)
	}
	n := len(old.codes) + len(o.entries)
	lt := levelTable{codes: make([]uint64, 0, n), ends: make([]uint32, 0, n), class: make([]byte, 0, n)}
	var names strings.Builder
	names.Grow(size)
	add := func(code uint64, name string, class byte) {
		lt.codes = append(lt.codes, code)
		names.WriteString(name)
		lt.ends = append(lt.ends, uint32(names.Len()))
		lt.class = append(lt.class, class)
	}
	i := 0
	for _, e := range o.entries {
		for ; i < len(old.codes) && old.codes[i] < e.code; i++ {
			add(old.codes[i], old.name(i), old.class[i])
		}
		if i < len(old.codes) && old.codes[i] == e.code {
			replaced++
			i++
		} else {
			added++
		}
		add(e.code, e.name, e.class)
	}
	for ; i < len(old.codes); i++ {
		add(old.codes[i], old.name(i), old.class[i])
	}
	lt.names = names.String()
	out.lv[vi] = lt
	return out, replaced, added
}

// missingAncestors lists, in increasing order and once each, the codes of
// level l above the overlay entries (12-digit codes, sorted) that lt, the
// table's level l, lacks.
func missingAncestors(lt *levelTable, l Level, entries []overlayEntry) []uint64 {
	scale := uint64(1)
	for range int(VillageLevel) - int(l) {
		scale *= 10
	}
	var out []uint64
	for _, e := range entries {
		code := e.code / scale
		if n := len(out); n > 0 && out[n-1] == code {
			continue
		}
		if _, ok := lt.find(code); !ok {
			out = append(out, code)
		}
	}
	return out
}

// withCodes returns lt, the table's level l, with the codes add
// (increasing, none in lt) merged in, unnamed but for provinces, or lt
// itself when add is empty. Only the village level has classes, and l is
// never it.
func (lt levelTable) withCodes(l Level, add []uint64) levelTable {
	if len(add) == 0 {
		return lt
	}
	n := len(lt.codes) + len(add)
	out := levelTable{codes: make([]uint64, 0, n), ends: make([]uint32, 0, n)}
	var names strings.Builder
	names.Grow(len(lt.names))
	put := func(code uint64, name string) {
		out.codes = append(out.codes, code)
		names.WriteString(name)
		out.ends = append(out.ends, uint32(names.Len()))
	}
	i := 0
	for _, code := range add {
		for ; i < len(lt.codes) && lt.codes[i] < code; i++ {
			put(lt.codes[i], lt.name(i))
		}
		name := ""
		if l == ProvinceLevel {
			name = ProvinceName(formatCode(code, int(l)))
		}
		put(code, name)
	}
	for ; i < len(lt.codes); i++ {
		put(lt.codes[i], lt.name(i))
	}
	out.names = names.String()
	return out
}

// WriteOverlay saves an overlay to path in the table format (see
// format.go), to be loaded at startup with LoadOverlay. It writes a
// temporary file beside path and renames it, so that a hub starting
// meanwhile reads the old table or the new one, never half of one.
func WriteOverlay(path string, o *Overlay) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintln(zw, "# official NBS urban-rural classification, imported with pophub regions import")
	for _, e := range o.entries {
		fmt.Fprintf(zw, "%s\t%s\t%s\t\n", formatCode(e.code, 12), e.name, classList[e.class-1])
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing region overlay: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing region overlay: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("installing region overlay: %w", err)
	}
	return nil
}

// LoadOverlay reads an overlay saved by WriteOverlay. The hub calls it at
// startup with the file given by --regions and installs
// Builtin().With(overlay) with SetDefault.
func LoadOverlay(path string) (*Overlay, error) {
	gz, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading region overlay: %w", err)
	}
	t, err := readTable(gz)
	if err != nil {
		return nil, fmt.Errorf("loading region overlay %s: %w", path, err)
	}
	o := &Overlay{}
	for li, lt := range t.lv {
		if levels[li] != VillageLevel {
			if len(lt.codes) > 0 {
				return nil, fmt.Errorf("loading region overlay %s: %d entries above village level", path, len(lt.codes))
			}
			continue
		}
		o.entries = make([]overlayEntry, len(lt.codes))
		for i, code := range lt.codes {
			if lt.class[i] == classUrban || lt.class[i] == classRural {
				return nil, fmt.Errorf("loading region overlay %s: %s has a derived class", path, formatCode(code, 12))
			}
			o.entries[i] = overlayEntry{code: code, class: lt.class[i], name: lt.name(i)}
		}
	}
	return o, nil
}
