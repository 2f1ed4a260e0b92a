package importer

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// A column of 18-digit IDs that a clerk turned into numbers in Excel, gave
// the number format 0 to show every digit, and saved as CSV holds each ID
// as its first 15 digits and 000: Excel keeps 15 significant digits. Such
// an ID is text of the right length; about 1 in 11 of them even passes
// the MOD 11-2 check, as some other person's ID. One line cannot tell
// those from the real IDs that end in 000, about 1 in 1,100 (a sequence
// number ending in 00, then the check character 0), but a column can: the
// idCensus.

// zeroedIDDetail is the reject detail of an ID that ends in 000 and fails
// its check character: most likely an ID Excel kept as a number.
const zeroedIDDetail = "the ID ends in 000 and its check character does not match: the column most likely went through Excel as numbers (Excel keeps only 15 significant digits and writes the rest as 000): format the column as text and re-enter the IDs"

// zeroedCensusDetail is the reject detail of an ID that ends in 000, in a
// column the idCensus judged to have gone through Excel, and passes its
// check character by chance.
const zeroedCensusDetail = "the ID ends in 000, as far more of this column's IDs do than real IDs (about 1 in 1,100): the column went through Excel as numbers (Excel keeps only 15 significant digits and writes the rest as 000), so this ID, though its check character matches, is most likely another person's: format the column as text and re-enter the IDs"

// excelZeroed reports whether id, an ID cell as idCell reads it, is 18
// digits ending in 000, as Excel writes an ID it kept as a number.
func excelZeroed(id string) bool {
	return len(id) == 18 && allDigits(id) && strings.HasSuffix(id, "000")
}

// zeroedBadCheck reports whether id ends in 000 as Excel writes it and
// fails its check character: its own line can tell it lost digits.
func zeroedBadCheck(id string) bool {
	return excelZeroed(id) && citizenid.CheckChar(id[:17]) != id[17]
}

// The census trips for a column in either of two ways.
//
// Among its first distinctCap distinct IDs (a small register's whole
// column, a large one's start), at least two end in 000, one of them
// failing its check character, and they are at least one in zeroedShare:
// a column that went through Excel whole has every ID ending in 000, 10 in
// 11 failing, so it trips at its second person however many lines each
// has. Real IDs end in 000 about once in 1,100 and pass their check, so
// two real ones (one person's on many lines, or two persons') trip
// nothing; a real one beside a typing error that ends in 000 (about 1 in
// 1,000 of them) in a register of under 40 persons is what it takes.
//
// Or, anywhere, once zeroedMin distinct IDs end in 000 and fail their
// check, and such lines are at least half of the column's lines whose ID
// fails its check: a column whose IDs went through Excel from some line
// on. A register's typing errors fail too, but end in 000 about once in
// 1,000, far from half.
const (
	zeroedMin   = 3
	zeroedShare = 20
	distinctCap = 1000
)

// idCensus counts, in line order, the text cells of the ID columns (the
// subject and every kind citizen_id column) that end in 000 (excelZeroed). Once a
// column trips (see zeroedMin), every later line whose ID in it ends in
// 000 is rejected with zeroedCensusDetail, and the import refuses the
// file (excelIDsError): a validate-first import, dry runs among them,
// validates to the end and then sends nothing, its report and rejects file
// listing every such line (those valid before the census tripped too:
// see settle); a streamed one stops at the line where it trips.
//
// So a streamed import sends no line of a column that went through Excel
// whole when it trips within the first chunk of valid lines (chunkRows),
// which are handed to the sender together, as the encoding census refuses
// a mislabelled file before a line is sent. A column whose IDs end in 000
// only from later lines on trips a few lines after they start: the chunks
// handed on before that were sent, and the error names the lines among
// them whose ID ends in 000.
type idCensus struct {
	cols []censusColumn
	// held are the valid lines with an ID ending in 000 passed on while
	// their column had not tripped.
	held []heldLine
}

// censusColumn is the count of one ID column.
type censusColumn struct {
	col    int
	header string
	field  string // "subject" or "data.<name>"
	reason string // the reject reason of its IDs
	filled int    // non-empty cells
	zeroed int    // cells ending in 000
	bad    int    // cells of 18 characters failing their check
	// zeroedBad counts the cells ending in 000 that fail their check,
	// badIDs the distinct ones, until the column trips.
	zeroedBad int
	badIDs    map[string]struct{}
	// seen are the column's first distinctCap distinct IDs, of which
	// seenZeroed end in 000 and seenZeroedBad fail their check too.
	seen                      map[string]struct{}
	seenZeroed, seenZeroedBad int
	lines                     []int // the first censusLines lines of those, for the error
	tripped                   bool
}

// heldLine is a valid line passed on with an ID ending in 000.
type heldLine struct {
	m    mapped
	r    row
	cols uint64 // the census columns whose ID ends in 000
}

// newIDCensus sets up the census of p's ID columns; nil p (JSONL, whose
// lines come from systems, not spreadsheets) has none.
func newIDCensus(p *plan) *idCensus {
	c := &idCensus{}
	if p == nil {
		return c
	}
	c.cols = append(c.cols, censusColumn{col: p.subject, header: p.header[p.subject], field: "subject", reason: schemas.ReasonInvalidSubject, seen: map[string]struct{}{}})
	for _, t := range slices.Sorted(maps.Keys(p.fields)) {
		for _, f := range p.fields[t] {
			if f.kind != KindCitizenID || f.col < 0 || len(c.cols) == 64 {
				continue
			}
			if !slices.ContainsFunc(c.cols, func(cc censusColumn) bool { return cc.col == f.col }) {
				c.cols = append(c.cols, censusColumn{col: f.col, header: f.header, field: "data." + f.name, reason: schemas.ReasonInvalidData, seen: map[string]struct{}{}})
			}
		}
	}
	return c
}

// count adds the ID cells of r, and returns the columns (bits, by index in
// cols) whose ID in r ends in 000, and whether a column tripped with r.
func (c *idCensus) count(r row) (zeroed uint64, tripped bool) {
	if r.malformed != "" {
		return 0, false
	}
	for i := range c.cols {
		cc := &c.cols[i]
		v, numeric := idCell(cell(r.cells, cc.col), kindAt(r.kinds, cc.col))
		if v == "" || numeric {
			// A workbook's number is rejected on its own line
			// (numberIDDetail), whatever the column holds.
			continue
		}
		cc.filled++
		bad := len(v) == 18 && allDigits(v[:17]) && citizenid.CheckChar(v[:17]) != v[17]
		if bad {
			cc.bad++
		}
		zero := excelZeroed(v)
		if !cc.tripped && cc.seen != nil {
			if _, ok := cc.seen[v]; !ok && len(cc.seen) < distinctCap {
				cc.seen[v] = struct{}{}
				if zero {
					cc.seenZeroed++
					if bad {
						cc.seenZeroedBad++
					}
				}
				if cc.seenZeroed >= 2 && cc.seenZeroedBad >= 1 && cc.seenZeroed*zeroedShare >= len(cc.seen) {
					cc.tripped, tripped = true, true
					cc.seen, cc.badIDs = nil, nil
				}
			}
		}
		if !zero {
			continue
		}
		zeroed |= 1 << i
		cc.zeroed++
		if len(cc.lines) < censusLines {
			cc.lines = append(cc.lines, r.line)
		}
		if !bad || cc.tripped {
			continue
		}
		cc.zeroedBad++
		if cc.badIDs == nil {
			cc.badIDs = make(map[string]struct{}, zeroedMin)
		}
		cc.badIDs[v] = struct{}{}
		if len(cc.badIDs) >= zeroedMin && cc.zeroedBad*2 >= cc.bad {
			cc.tripped, tripped = true, true
			cc.badIDs = nil
		}
	}
	return zeroed, tripped
}

// reject returns the reject of line, valid but for its ID ending in 000 in
// a tripped column among zeroed, or nil if there is none.
func (c *idCensus) reject(line int, zeroed uint64) *Reject {
	for i := range c.cols {
		if zeroed&(1<<i) != 0 && c.cols[i].tripped {
			return &Reject{Line: line, Reason: c.cols[i].reason, Field: c.cols[i].field, Column: c.cols[i].header, Detail: zeroedCensusDetail}
		}
	}
	return nil
}

// hold remembers m, a valid line of r passed on with an ID ending in 000
// in the columns zeroed, in case its column trips later.
func (c *idCensus) hold(m *mapped, r row, zeroed uint64) {
	c.held = append(c.held, heldLine{m: *m, r: r, cols: zeroed})
}

// tripped returns the columns that tripped.
func (c *idCensus) tripped() []censusColumn {
	var out []censusColumn
	for _, cc := range c.cols {
		if cc.tripped {
			out = append(out, cc)
		}
	}
	return out
}

// settle turns the held lines of the tripped columns into rejects, after
// validation: they were counted valid (and spooled, but a file whose
// census tripped is not sent). Their rejects take their place in
// rep.Rejects, in line order; in the rejects file they follow the others.
func (c *idCensus) settle(rep *Report, rejects *rejectsFile, list int) error {
	added := false
	for _, h := range c.held {
		rej := c.reject(h.m.line, h.cols)
		if rej == nil {
			continue
		}
		rep.Valid--
		rep.Upgraded -= h.m.upgraded
		rep.Separators -= h.m.separators
		rep.reject(*rej, len(rep.Rejects)+1) // listed, then sorted into place below
		if err := rejects.add(rej, h.r); err != nil {
			return err
		}
		added = true
	}
	if added {
		slices.SortStableFunc(rep.Rejects, func(a, b Reject) int { return a.Line - b.Line })
		rep.Rejects = rep.Rejects[:min(len(rep.Rejects), list)]
	}
	return nil
}

// ErrExcelIDs is Run's error when an ID column holds far more IDs ending
// in 000 than real IDs do (see idCensus): the column went through Excel
// as numbers, and the file is refused.
var ErrExcelIDs = errors.New("an ID column lost its last digits in Excel")

// excelIDsError is why a file was refused for its ID columns.
type excelIDsError struct {
	cols []censusColumn // the columns that tripped
	// stream: a streamed import stopped at line stoppedAt; sent are the
	// lines before it with an ID ending in 000, which may have been sent.
	stream    bool
	stoppedAt int
	sent      []int
	sentCount int
}

func (e *excelIDsError) Unwrap() error { return ErrExcelIDs }

func (e *excelIDsError) Error() string {
	var b strings.Builder
	b.WriteString("refusing the file: ")
	for i, cc := range e.cols {
		if i > 0 {
			b.WriteString("; ")
		}
		so := "read"
		if e.stream {
			so = "read up to line " + fmt.Sprint(e.stoppedAt)
		}
		fmt.Fprintf(&b, "column %s: %d of the %d IDs %s end in 000 (%s), where about 1 real ID in 1,100 does",
			cc.header, cc.zeroed, cc.filled, so, lineList(cc.lines, cc.zeroed))
	}
	b.WriteString(": the column went through Excel as numbers, which keeps only 15 significant digits and writes the rest as 000, so these IDs are not the persons' (some even pass the check character, as other persons' IDs). Format the column as text and re-enter the IDs, or export the file again without opening it in Excel")
	if !e.stream {
		b.WriteString("; nothing sent")
		return b.String()
	}
	fmt.Fprintf(&b, "; stopped at line %d: the valid lines before it may have been sent", e.stoppedAt)
	if e.sentCount == 0 {
		b.WriteString(", none of them with an ID ending in 000")
	} else {
		fmt.Fprintf(&b, ", %d of them with an ID ending in 000 (%s): check those persons' records at the hub once the IDs are re-entered", e.sentCount, lineList(e.sent, e.sentCount))
	}
	return b.String()
}

// refusal is the census's error once a column tripped; stoppedAt is the
// line a streamed import stopped at, 0 when validation went to the end.
func (c *idCensus) refusal(stoppedAt int) error {
	e := &excelIDsError{cols: c.tripped(), stream: stoppedAt > 0, stoppedAt: stoppedAt}
	if e.stream {
		for _, h := range c.held {
			if h.cols&c.trippedBits() != 0 {
				e.sentCount++
				if len(e.sent) < censusLines {
					e.sent = append(e.sent, h.m.line)
				}
			}
		}
	}
	return e
}

// trippedBits are the tripped columns, as bits by index in cols.
func (c *idCensus) trippedBits() uint64 {
	var bits uint64
	for i, cc := range c.cols {
		if cc.tripped {
			bits |= 1 << i
		}
	}
	return bits
}
