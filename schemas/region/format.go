package region

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// The table format, shared by the embedded table (written by
// internal/gen) and saved overlays (written by WriteOverlay): gzip-compressed
// UTF-8 lines
//
//	code <TAB> name <TAB> class <TAB> flag
//
// sorted by code as strings, which orders the codes of each level
// numerically; lines starting with # are comments. On 12-digit lines class
// is u or r (a derived urban or rural class, flag "d") or an NBS
// classification code (flag empty); above, class and flag are empty.
// Tab-separated text compresses better than any binary layout we tried and
// stays readable with zcat.

// readTable builds a table from the gzip-compressed table format. It
// decompresses into one buffer and appends straight into the sorted
// per-level arrays, so that loading the 660,000 built-in entries takes a
// fraction of a second and leaves no garbage but that buffer.
func readTable(gz []byte) (*Table, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("opening table: %w", err)
	}
	// The gzip trailer holds the uncompressed size (mod 2^32).
	var buf bytes.Buffer
	if len(gz) >= 4 {
		buf.Grow(int(binary.LittleEndian.Uint32(gz[len(gz)-4:])) + bytes.MinRead)
	}
	if _, err := io.Copy(&buf, zr); err != nil {
		return nil, fmt.Errorf("decompressing table: %w", err)
	}
	return parseTable(buf.Bytes())
}

// parseTable reads the uncompressed table format. A first pass sizes the
// arrays of each level, so that the second allocates each exactly once.
func parseTable(data []byte) (*Table, error) {
	var count, size [len(levels)]int
	for rest := data; len(rest) > 0; {
		text := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			text, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		code, after, _ := bytes.Cut(text, []byte{'\t'})
		name, _, _ := bytes.Cut(after, []byte{'\t'})
		if li := levelIndex(len(code)); li >= 0 && text[0] != '#' {
			count[li]++
			size[li] += len(name)
		}
	}
	var names [len(levels)]strings.Builder
	t := &Table{}
	for li := range t.lv {
		t.lv[li].codes = make([]uint64, 0, count[li])
		t.lv[li].ends = make([]uint32, 0, count[li])
		if levels[li] == VillageLevel {
			t.lv[li].class = make([]byte, 0, count[li])
		}
		names[li].Grow(size[li])
	}
	for line := 1; len(data) > 0; line++ {
		text := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		var f [4][]byte
		for k := range 3 {
			i := bytes.IndexByte(text, '\t')
			if i < 0 {
				return nil, fmt.Errorf("line %d: %d fields, want 4", line, k+1)
			}
			f[k], text = text[:i], text[i+1:]
		}
		f[3] = text
		if bytes.IndexByte(f[3], '\t') >= 0 {
			return nil, fmt.Errorf("line %d: more than 4 fields", line)
		}
		li, n, ok := parseCode(f[0])
		if !ok {
			return nil, fmt.Errorf("line %d: code %q is not a 2-, 4-, 6-, 9- or 12-digit division code", line, f[0])
		}
		lt := &t.lv[li]
		if k := len(lt.codes); k > 0 && lt.codes[k-1] >= n {
			return nil, fmt.Errorf("line %d: code %s out of order or repeated", line, f[0])
		}
		if len(f[1]) == 0 {
			return nil, fmt.Errorf("line %d: code %s has no name", line, f[0])
		}
		if levels[li] == VillageLevel {
			class, err := tableClass(string(f[2]), string(f[3]))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			lt.class = append(lt.class, class)
		} else if len(f[2]) != 0 || len(f[3]) != 0 {
			return nil, fmt.Errorf("line %d: code %s above village level has a class", line, f[0])
		}
		lt.codes = append(lt.codes, n)
		names[li].Write(f[1])
		lt.ends = append(lt.ends, uint32(names[li].Len()))
	}
	for li := range t.lv {
		t.lv[li].names = names[li].String()
	}
	return t, nil
}

// tableClass reads the class and flag fields of a 12-digit line.
func tableClass(class, flag string) (byte, error) {
	switch {
	case (class == "u" || class == "r") && flag == "d":
		return class[0], nil
	case flag == "":
		if c, ok := officialClass(class); ok {
			return c, nil
		}
	}
	return 0, fmt.Errorf("class %q with flag %q: want u or r flagged d, or an NBS classification code", class, flag)
}
