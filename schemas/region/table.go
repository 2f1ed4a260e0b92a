package region

import (
	"slices"
	"strconv"
)

// Level is a division level, named by the length of its codes.
type Level int

// The five levels of the statistical division codes.
const (
	ProvinceLevel Level = 2  // 省
	CityLevel     Level = 4  // 地 (also 市辖区 and 省直辖县级行政区划 placeholders)
	CountyLevel   Level = 6  // 县
	TownshipLevel Level = 9  // 乡
	VillageLevel  Level = 12 // 村 or 居委会: the level of hukou addresses
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

// levelIndex is the index in levels of codes of length n, or -1.
func levelIndex(n int) int {
	switch n {
	case 2:
		return 0
	case 4:
		return 1
	case 6:
		return 2
	case 9:
		return 3
	case 12:
		return 4
	}
	return -1
}

// The NBS urban-rural classification codes (统计用城乡划分代码): 1xx urban,
// 2xx rural. A class byte in a levelTable is the index in classList plus
// one, or classUrban/classRural for a derived class.
var classList = [...]string{"111", "112", "121", "122", "123", "210", "220"}

// classNames describes the classes, after the NBS rules (统计上划分城乡的规定).
var classNames = map[string]string{
	"111": "main urban area (主城区)",
	"112": "urban-rural fringe (城乡结合区)",
	"121": "town centre (镇中心区)",
	"122": "town-rural fringe (镇乡结合区)",
	"123": "special area (特殊区域)",
	"210": "township centre (乡中心区)",
	"220": "village (村庄)",
}

// ClassName describes an NBS urban-rural classification code, or returns
// "" for anything else.
func ClassName(class string) string { return classNames[class] }

const (
	classUrban byte = 'u' // derived urban
	classRural byte = 'r' // derived rural
)

// officialClass returns the class byte of an NBS classification code.
func officialClass(code string) (byte, bool) {
	for i, c := range classList {
		if c == code {
			return byte(i + 1), true
		}
	}
	return 0, false
}

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
	// Derived marks a 12-digit entry whose urban/rural split was derived
	// from its name and committee number (the built-in table) rather than
	// taken from an official NBS table.
	Derived bool
}

// Table is a division table. It is immutable once built and safe for
// concurrent use.
//
// Entries are kept per level as sorted numeric codes with all names in one
// string, because the 660,000 entries as a map of structs would cost some
// 150 MB of heap; this way they cost about 20 MB and a lookup is a binary
// search.
type Table struct {
	lv [len(levels)]levelTable
}

// levelTable holds the entries of one level; codes is strictly increasing
// and the other slices run parallel to it.
type levelTable struct {
	codes []uint64
	ends  []uint32 // end offset of each name in names
	names string
	class []byte // per 12-digit entry: classUrban, classRural or an official class; nil above
}

func (lt *levelTable) find(code uint64) (int, bool) {
	return slices.BinarySearch(lt.codes, code)
}

func (lt *levelTable) name(i int) string {
	start := uint32(0)
	if i > 0 {
		start = lt.ends[i-1]
	}
	return lt.names[start:lt.ends[i]]
}

// entry builds the Division of entry i of level li; code is its code when
// the caller has it as a string already, or "".
func (t *Table) entry(li, i int, code string) Division {
	lt := &t.lv[li]
	l := levels[li]
	if code == "" {
		code = formatCode(lt.codes[i], int(l))
	}
	d := Division{Code: code, Name: lt.name(i), Level: l}
	if lt.class != nil {
		switch c := lt.class[i]; c {
		case classUrban:
			d.UrbanRural, d.Derived = "urban", true
		case classRural:
			d.UrbanRural, d.Derived = "rural", true
		default:
			d.Class = classList[c-1]
			d.UrbanRural = urbanRuralOf(d.Class)
		}
	}
	return d
}

// formatCode renders n with leading zeros to width digits.
func formatCode(n uint64, width int) string {
	var b [20]byte
	i := len(b)
	for ; width > 0; width-- {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// parseCode reads a division code of 2, 4, 6, 9 or 12 digits.
func parseCode[S string | []byte](code S) (li int, n uint64, ok bool) {
	li = levelIndex(len(code))
	if li < 0 {
		return -1, 0, false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if c < '0' || c > '9' {
			return -1, 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return li, n, true
}

func urbanRuralOf(class string) string {
	if class != "" && class[0] == '1' {
		return "urban"
	}
	return "rural"
}

// Lookup returns the entry of a 2-, 4-, 6-, 9- or 12-digit code.
func (t *Table) Lookup(code string) (Division, bool) {
	li, n, ok := parseCode(code)
	if !ok {
		return Division{}, false
	}
	i, ok := t.lv[li].find(n)
	if !ok {
		return Division{}, false
	}
	return t.entry(li, i, code), true
}

// Known reports whether address is a 12-digit code in the table: the test
// the hub applies to every hukou address.
func (t *Table) Known(address string) bool {
	li, n, ok := parseCode(address)
	if !ok || levels[li] != VillageLevel {
		return false
	}
	_, ok = t.lv[li].find(n)
	return ok
}

// KnownRegion reports whether a 6-digit region code names a division in
// the table: a county (230102), or a city (230100) or province (230000)
// written in six digits, as departments write a city-wide region. In a
// province the table has no divisions of (Hong Kong, Macao, Taiwan: the
// statistical division codes stop at their borders) any code is taken.
func (t *Table) KnownRegion(code string) bool {
	if len(code) != 6 {
		return false
	}
	name := code
	switch {
	case code[2:] == "0000":
		name = code[:2]
	case code[4:] == "00":
		name = code[:4]
	}
	if _, ok := t.Lookup(name); ok {
		return true
	}
	return IsProvince(code[:2]) && len(t.Children(code[:2])) == 0
}

// Children lists the direct children of code in code order: the entries
// of the next level whose codes start with it. The data has a city level
// under every province, so the counties of a municipality are children of
// its placeholder city (1101 市辖区), and those of a province's directly
// administered county-level cities children of 4290 and the like.
func (t *Table) Children(code string) []Division {
	li, n, ok := parseCode(code)
	if !ok || li+1 >= len(levels) {
		return nil
	}
	scale := uint64(1)
	for range int(levels[li+1]) - len(code) {
		scale *= 10
	}
	lt := &t.lv[li+1]
	lo, _ := lt.find(n * scale)
	hi, _ := lt.find((n + 1) * scale)
	if lo == hi {
		return nil
	}
	out := make([]Division, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, t.entry(li+1, i, ""))
	}
	return out
}

// Chain returns the entries from the province down to code itself. A level
// the table lacks is skipped (Table.With adds the ancestors an official
// table's committees need, so this happens for unknown codes only), and a
// chain not ending in code means code is unknown; a code that is not 2, 4, 6, 9 or 12 digits
// gives nil.
func (t *Table) Chain(code string) []Division {
	if _, _, ok := parseCode(code); !ok {
		return nil
	}
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
