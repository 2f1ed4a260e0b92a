package importer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"

	"github.com/pophub/pophub/adapters/publisher"
)

// row is one line of the file: cells (CSV, XLSX) or text (JSONL), or why
// it could not be read (malformed).
type row struct {
	line      int
	cells     []string
	kinds     []cellKind // of cells; nil when all are text (CSV)
	text      []byte
	malformed string
}

// rowSource reads a file row by row, in order, hashing its bytes as it
// goes. It is used by one goroutine.
type rowSource interface {
	// header is the file's column names (nil for JSONL).
	header() []string
	// next returns the next non-blank row, or io.EOF.
	next() (row, error)
	// digest is the SHA-256 of the whole file; valid after next returned
	// io.EOF.
	digest() string
	// consumed counts the file's bytes read so far (progress).
	consumed() int64
	Close() error
}

// countingHasher hashes and counts what passes through it.
type countingHasher struct {
	r io.Reader
	h hash.Hash
	n atomic.Int64
}

func (c *countingHasher) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n.Add(int64(n))
	return n, err
}

const bom = "\xef\xbb\xbf"

// Encodings of a CSV file.
const (
	encodingAuto = "auto" // detected: see detectEncoding
	encodingUTF8 = "utf-8"
	encodingGBK  = "gbk"
)

// normalizeEncoding maps the spellings a mapping or flag may use. "" is
// not set, and leaves the choice to the mapping; an explicit auto is kept
// apart from it, so that a flag can override a mapping's gbk with
// detection.
func normalizeEncoding(e string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(e)) {
	case "":
		return "", nil
	case "auto":
		return encodingAuto, nil
	case "utf-8", "utf8":
		return encodingUTF8, nil
	case "gbk", "gb2312", "gb18030", "cp936":
		return encodingGBK, nil
	}
	return "", fmt.Errorf("encoding %q is not auto, utf-8 or gbk", e)
}

// parseDelimiter reads a CSV delimiter as a mapping or a flag gives it;
// "" is the comma.
func parseDelimiter(d string) (rune, error) {
	switch d {
	case "", ",":
		return ',', nil
	case ";", "|":
		return rune(d[0]), nil
	case "tab", "TAB", `\t`, "\t":
		return '\t', nil
	}
	return 0, fmt.Errorf("delimiter %q is not one of , ; | tab", d)
}

// delimiterName names a delimiter for messages and the checkpoint.
func delimiterName(d rune) string {
	if d == '\t' {
		return "tab"
	}
	return string(d)
}

// otherDelimiter reports the delimiter a header read as one cell seems to
// use instead of comma: a tab, semicolon, bar or comma inside it.
func otherDelimiter(header []string, comma rune) (rune, bool) {
	if len(header) != 1 {
		return 0, false
	}
	for _, d := range []rune{'\t', ';', '|', ','} {
		if d != comma && strings.ContainsRune(header[0], d) {
			return d, true
		}
	}
	return 0, false
}

// delimiterWord names a delimiter in a sentence.
func delimiterWord(d rune) string {
	switch d {
	case '\t':
		return "tabs"
	case ';':
		return "semicolons"
	case '|':
		return "bars (|)"
	}
	return "commas"
}

// detectEncoding guesses a CSV file's encoding from its first bytes: a
// byte order mark is UTF-8; else the encoding most of its lines that are
// not ASCII are in (see lineCensus), UTF-8 when none is invalid in it.
// Rows read later are checked again, each line in its own right (see
// utf8Lines and csvSource.next), so a line in the other encoding — a
// UTF-8 export a GBK tool appended to — or a misguess rejects rows
// rather than sending garbled names.
func detectEncoding(sample []byte, atEOF bool) string {
	if bytes.HasPrefix(sample, []byte(bom)) {
		return encodingUTF8
	}
	return censusOf(sample, atEOF).encoding()
}

// lineCensus counts the lines of a sample by how they read in UTF-8:
// valid with a Chinese character, which GBK text practically never is
// (see chineseUTF8), or not valid, which UTF-8 text never is. Lines of
// ASCII, the same in both, count in neither.
type lineCensus struct {
	chinese, invalid int
	// the first numbers of such lines, from 1, for messages
	firstChinese, firstInvalid []int
}

// censusLines bounds the line numbers a lineCensus keeps.
const censusLines = 5

func censusOf(sample []byte, atEOF bool) lineCensus {
	if !atEOF {
		sample = trimPartialRune(sample)
	}
	var c lineCensus
	for n := 1; len(sample) > 0; n++ {
		line := sample
		if i := bytes.IndexByte(sample, '\n'); i >= 0 {
			line, sample = sample[:i], sample[i+1:]
		} else {
			sample = nil
		}
		switch {
		case !utf8.Valid(line):
			c.invalid++
			if len(c.firstInvalid) < censusLines {
				c.firstInvalid = append(c.firstInvalid, n)
			}
		case hasChinese(line):
			c.chinese++
			if len(c.firstChinese) < censusLines {
				c.firstChinese = append(c.firstChinese, n)
			}
		}
	}
	return c
}

// encoding is the one most lines are in: UTF-8 unless a line is not
// valid UTF-8 and lines of Chinese in UTF-8 are not more of them.
func (c lineCensus) encoding() string {
	if c.invalid == 0 || c.chinese > c.invalid {
		return encodingUTF8
	}
	return encodingGBK
}

// lineList writes line numbers for a message: "line 4", "lines 4, 9 and
// 12", "lines 4, 9, …" when there are more than shown.
func lineList(lines []int, total int) string {
	if len(lines) == 1 && total == 1 {
		return "line " + strconv.Itoa(lines[0])
	}
	s := make([]string, len(lines))
	for i, n := range lines {
		s[i] = strconv.Itoa(n)
	}
	if total > len(lines) {
		return "lines " + strings.Join(s, ", ") + ", …"
	}
	return "lines " + strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// trimPartialRune drops an incomplete character from the end of b: a
// sample cut from a longer file may end inside one, and a UTF-8 file
// must not be judged GBK for it. The last character starts at most
// utf8.UTFMax-1 bytes before the end; bytes that are no UTF-8 at all are
// left for utf8.Valid to judge.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= max(0, len(b)-(utf8.UTFMax-1)); i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// chooseEncoding returns the encoding a CSV file whose first bytes are
// sample is read in — the one told, unless "" or the file starts with a
// byte order mark — and the one detectEncoding makes of it. A file told
// to be GBK whose lines are mostly UTF-8 Chinese (see lineCensus) is
// refused: read as GBK, every Chinese character of theirs would be
// garbled (张三 as 寮犱笁) — their lines rejected, at best — and a header
// of ASCII names would not give it away.
func chooseEncoding(sample []byte, atEOF bool, told string) (enc, detected string, err error) {
	if told == "" || bytes.HasPrefix(sample, []byte(bom)) {
		detected = detectEncoding(sample, atEOF)
		return detected, detected, nil
	}
	c := censusOf(sample, atEOF)
	detected = c.encoding()
	if told == encodingGBK && c.chinese > 0 && detected == encodingUTF8 {
		return "", detected, utf8NotGBK(c)
	}
	return told, detected, nil
}

// utf8NotGBK is why a UTF-8 file told to be GBK is not read; c is the
// census of its first lines.
func utf8NotGBK(c lineCensus) error {
	msg := "the file is UTF-8, but gbk is set as its encoding: its text is valid UTF-8 with Chinese characters, which GBK text practically never is, so read as gbk every Chinese character would be garbled; set encoding: auto (or utf-8) in the mapping, or give --encoding auto, which overrides the mapping"
	if c.invalid > 0 {
		verb, it := "is", "it"
		if c.invalid > 1 {
			verb, it = "are", "they"
		}
		msg += fmt.Sprintf(" (%s %s not UTF-8 but GBK, most likely: read as UTF-8, %s will be rejected, and the rejects file will hold %s read as GBK)",
			lineList(c.firstInvalid, c.invalid), verb, it, map[string]string{"it": "it", "they": "them"}[it])
	}
	return errors.New(msg)
}

// hasChinese reports whether UTF-8 text b holds a Chinese character.
func hasChinese(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return bytes.IndexFunc(b[i:], func(r rune) bool { return unicode.Is(unicode.Han, r) }) >= 0
		}
	}
	return false
}

// chineseUTF8 reports whether sample is UTF-8 Chinese text: valid UTF-8
// holding at least one Chinese character. GBK text is not: a Chinese
// character is two bytes in GBK, and a run of them is valid UTF-8 only
// by chance alignments of their bytes (a trail byte from 0x80 to 0xBF
// after a lead byte that starts a UTF-8 sequence, over every character
// of the sample), whose odds shrink with every character; for them to
// read as a Chinese character too (three bytes, led by 0xE3 to 0xE9)
// adds another. An ASCII sample, the same in both, is not.
func chineseUTF8(sample []byte, atEOF bool) bool {
	if !atEOF {
		sample = trimPartialRune(sample)
	}
	return utf8.Valid(sample) && hasChinese(sample)
}

// csvEncoding returns the encoding openCSV reads the file in.
func csvEncoding(path, told string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("opening file: %w", err)
	}
	defer f.Close()
	sample := make([]byte, 1<<20)
	n, err := io.ReadFull(f, sample)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return "", fmt.Errorf("reading file: %w", err)
	}
	enc, _, err := chooseEncoding(sample[:n], err != nil, told)
	return enc, err
}

// csvSource reads CSV.
type csvSource struct {
	f   *os.File
	in  *countingHasher
	r   *csv.Reader
	raw *recordText    // what r read of the record it reads
	gbk *strictGB18030 // the decoder of a GBK file; nil for UTF-8
	// utf8 finds the lines of a GBK file that are UTF-8; nil for UTF-8.
	utf8 *utf8Lines
	// lineBase counts the lines before those r numbers: r is replaced
	// after a row too long to read (see skipRow).
	lineBase int
	cols     []string
	// encoding is the one the file is read in; detected is what
	// detectEncoding made of it, which differs when the encoding was told.
	encoding, detected string
	comma              rune // the cells' delimiter
}

// openCSV opens a CSV file in the encoding told, or, if "", the one
// detected, its cells delimited by comma. A byte order mark makes it UTF-8
// whatever was told.
func openCSV(path, encoding string, comma rune, headerRow int) (*csvSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening file: %w", err)
	}
	s := &csvSource{f: f, in: &countingHasher{r: f, h: sha256.New()}, comma: comma}
	br := bufio.NewReaderSize(s.in, 1<<20)
	sample, err := br.Peek(1 << 20)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		f.Close()
		return nil, fmt.Errorf("reading file: %w", err)
	}
	if err := checkText(sample); err != nil {
		f.Close()
		return nil, err
	}
	if s.encoding, s.detected, err = chooseEncoding(sample, err == io.EOF, encoding); err != nil {
		f.Close()
		return nil, err
	}
	var r io.Reader = br
	if bytes.HasPrefix(sample, []byte(bom)) {
		br.Discard(len(bom))
	} else if s.encoding == encodingGBK {
		s.gbk = &strictGB18030{dec: simplifiedchinese.GB18030.NewDecoder()}
		s.utf8 = &utf8Lines{r: br}
		r = transform.NewReader(s.utf8, s.gbk)
	}
	s.raw = &recordText{r: r}
	s.r = newCSVReader(s.raw, comma)
	for n := 1; n <= max(headerRow, 1); n++ {
		s.raw.forget(s.r.InputOffset())
		rec, err := s.r.Read()
		if s.raw.tooLong {
			f.Close()
			return nil, fmt.Errorf("reading header: line %d is longer than %d bytes", s.raw.lines+1, maxRowBytes)
		}
		if err != nil {
			f.Close()
			if err == io.EOF {
				return nil, errors.New("reading header: the file has no header row")
			}
			return nil, fmt.Errorf("reading header: %w", err)
		}
		s.cols = rec
	}
	for i, h := range s.cols {
		if !utf8.ValidString(h) {
			f.Close()
			hint := "set the encoding"
			if s.encoding != s.detected {
				hint = "the file may not be " + s.encoding + "; try --encoding auto"
			}
			return nil, fmt.Errorf("reading header: column %d is not valid %s (%s)", i+1, s.encoding, hint)
		}
		s.cols[i] = cleanHeader(h)
	}
	return s, nil
}

// checkText refuses a text file, whose first bytes are sample, saved in a
// form the import does not read, saying how to save it instead: UTF-16
// (office software's "Unicode text", which is also tab-separated), by its
// byte order mark; or old Mac line ends (CR alone), which encoding/csv
// would read as one long line and so as a header lacking every column.
func checkText(sample []byte) error {
	if bytes.HasPrefix(sample, []byte{0xff, 0xfe}) || bytes.HasPrefix(sample, []byte{0xfe, 0xff}) {
		return errors.New("reading file: the file is UTF-16: save it as UTF-8 or GBK (in Excel: CSV UTF-8)")
	}
	if bytes.IndexByte(sample, '\r') >= 0 && bytes.IndexByte(sample, '\n') < 0 {
		return errors.New("reading file: the file uses CR line ends (old Mac): save it with Windows or Unix line ends")
	}
	return nil
}

// newCSVReader reads CSV records from r, their cells delimited by comma.
func newCSVReader(r io.Reader, comma rune) *csv.Reader {
	cr := csv.NewReader(r)
	cr.Comma = comma
	cr.FieldsPerRecord = -1
	return cr
}

func (s *csvSource) header() []string { return s.cols }

// next skips blank records as well as empty lines: a spreadsheet saved as
// CSV writes its empty rows as ",,,," (and some exports pad them with
// spaces), which are no more a line of data than an empty row of a
// workbook is.
func (s *csvSource) next() (row, error) {
	for {
		start := s.r.InputOffset()
		s.raw.forget(start)
		rec, err := s.r.Read()
		if s.raw.tooLong {
			r, skipped, err := s.skipRow(start)
			if err != nil {
				return row{}, err
			}
			if skipped {
				return r, nil
			}
			continue
		}
		if err == io.EOF {
			// Drain, so that the digest covers the whole file.
			if _, err := io.Copy(io.Discard, s.in); err != nil {
				return row{}, fmt.Errorf("reading file: %w", err)
			}
			return row{}, io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return s.unparsed(pe, rec, start), nil
		}
		if err != nil {
			return row{}, fmt.Errorf("reading file: %w", err)
		}
		if blank(rec) {
			continue
		}
		line, _ := s.r.FieldPos(0) // a record read without error has a field
		line += s.lineBase
		if s.utf8 != nil {
			last := s.lastLine(start, line)
			if texts := s.utf8.take(line, last); texts != nil {
				return s.utf8Row(line, last, rec, texts), nil
			}
		} else {
			for i, c := range rec {
				if !utf8.ValidString(c) {
					return s.notUTF8Row(line, rec, i), nil
				}
			}
		}
		if s.gbk != nil && s.gbk.invalid {
			for i, c := range rec {
				if strings.Contains(c, string(userDefinedGBK)) {
					return row{line: line, cells: rec, malformed: fmt.Sprintf("column %s holds a character of GBK's user-defined area (造字), drawn only by the department's own fonts: replace it with the character's standard GB 18030 code", s.columnName(i))}, nil
				}
				if !utf8.ValidString(c) {
					return row{line: line, cells: rec, malformed: fmt.Sprintf("column %s holds bytes that are not valid GBK (GB18030)", s.columnName(i))}, nil
				}
			}
		}
		if len(rec) != len(s.cols) {
			return row{line: line, cells: rec, malformed: fmt.Sprintf("has %d columns, the header %d", len(rec), len(s.cols))}, nil
		}
		return row{line: line, cells: rec}, nil
	}
}

// lastLine is the number of the last line of the record just read, which
// began at offset start of the decoded text and whose first field is on
// line first: a quoted cell may span lines.
func (s *csvSource) lastLine(start int64, first int) int {
	text := s.raw.text(start, s.r.InputOffset())
	if text == nil {
		return first // cannot be: the record's text is kept until the next
	}
	n := s.lineBase + s.raw.lines + bytes.Count(text, []byte("\n"))
	if !bytes.HasSuffix(text, []byte("\n")) {
		n++ // the file's last line, without a line end
	}
	return max(n, first)
}

// utf8RowDetail is the reject detail of a line of a GBK file that is
// UTF-8.
const utf8RowDetail = "the line is UTF-8, in a file read as GBK: its text is valid UTF-8 with Chinese characters, which GBK text practically never is, and read as GBK its Chinese would be garbled (张三 as 寮犱笁); " + mixedAdvice

// mixedAdvice says what to do with a file of lines in two encodings.
const mixedAdvice = "the file mixes encodings: the rejects file holds the line as it reads in its own; save the file in one encoding (in Excel: CSV UTF-8) and import it again (the hub ignores lines it already has), or correct the line at its source"

// utf8Row is the malformed row of a record of a GBK file, on lines first
// to last, some of whose lines (texts) are UTF-8 Chinese. The rejects
// file gets the record as its lines read in UTF-8, when they are all of
// it, rather than garbled.
func (s *csvSource) utf8Row(first, last int, cells []string, texts [][]byte) row {
	r := row{line: first, cells: cells, malformed: utf8RowDetail}
	if len(texts) == last-first+1 {
		text := bytes.Join(texts, []byte("\n"))
		if rec, err := newCSVReader(bytes.NewReader(text), s.comma).Read(); err == nil {
			r.cells = rec
		} else {
			r.text = text
		}
	}
	return r
}

// notUTF8Row is the malformed row of a record of a UTF-8 file, which
// began on line first, whose cell i is not valid UTF-8. A line some tool
// wrote in GBK into a UTF-8 file is, and it goes to the rejects file read
// as GBK, rather than with U+FFFD for each of its Chinese characters.
func (s *csvSource) notUTF8Row(first int, cells []string, i int) row {
	col := s.columnName(i)
	decoded := make([]string, len(cells))
	for j, c := range cells {
		d, ok := decodeGBK(c)
		if !ok && holdsUserDefinedGBK(c) {
			return row{line: first, cells: cells, malformed: fmt.Sprintf("the line is GBK, in a file read as UTF-8, and column %s holds a character of GBK's user-defined area (造字), drawn only by the department's own fonts: replace it with the character's standard code", s.columnName(j))}
		}
		if !ok {
			return row{line: first, cells: cells, malformed: fmt.Sprintf("column %s holds bytes that are not valid UTF-8, nor GBK", col)}
		}
		decoded[j] = d
	}
	return row{line: first, cells: decoded, malformed: fmt.Sprintf("the line is GBK, in a file read as UTF-8: column %s is not valid UTF-8, and valid GBK (if the whole file is GBK, set encoding: gbk in the mapping, or give --encoding gbk); %s", col, mixedAdvice)}
}

// holdsUserDefinedGBK reports whether s, read as GBK, holds a character
// of its user-defined areas (userDefined).
func holdsUserDefinedGBK(s string) bool {
	for i := 0; i < len(s); {
		switch b := s[i]; {
		case b < 0x80:
			i++
		case i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			i += 4 // a four-byte GB18030 sequence
		case i+1 < len(s):
			if userDefined([]byte(s[i : i+2])) {
				return true
			}
			i += 2
		default:
			return false
		}
	}
	return false
}

// decodeGBK decodes GB18030 text (which GBK is part of); ok is false if
// it holds bytes that are not valid in it.
func decodeGBK(s string) (string, bool) {
	if isASCII(s) {
		return s, true
	}
	d, err := simplifiedchinese.GB18030.NewDecoder().String(s)
	if err != nil || strings.ContainsRune(d, utf8.RuneError) {
		return "", false
	}
	return d, true
}

// isASCII reports whether s is ASCII alone.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// unparsed is the malformed row of a record encoding/csv could not parse
// (broken quoting), which began at offset start of the decoded text. The
// reader gives only the cells before the error, so the rejects file gets
// the line's text as read instead. The reader goes on at the line after
// the one it stopped on; a quote never closed runs to the end of the
// file, whose lines are then one row (or one row too long: skipRow).
func (s *csvSource) unparsed(pe *csv.ParseError, cells []string, start int64) row {
	first, last := s.lineBase+pe.StartLine, s.lineBase+pe.Line
	r := row{line: first, malformed: pe.Err.Error()}
	if last > first {
		r.malformed += fmt.Sprintf(" (lines %d–%d were read as one row)", first, last)
	}
	if text := s.raw.text(start, s.r.InputOffset()); text != nil {
		// Without the empty lines the reader skipped before the record,
		// and the line end.
		r.text = bytes.Clone(bytes.Trim(text, "\r\n"))
		r.malformed += "; the rejects file holds the line unsplit, in its first column"
	} else {
		r.cells = cells
	}
	return r
}

// maxRowBytes bounds a row of a CSV file (its text, line end included;
// a quoted cell may span lines) and a line of a JSONL file, as the
// publisher bounds a line: a valid event is a few kilobytes at most, and
// Kafka takes about a megabyte a record. A longer one is a malformed_row,
// read past without being held; the rejects file gets its first
// rejectedPrefixBytes, marked as cut.
const (
	maxRowBytes         = publisher.MaxLineBytes
	rejectedPrefixBytes = 4 << 10
)

// tooLongDetail is the detail of a row longer than maxRowBytes.
const tooLongDetail = "line longer than 1 MiB"

// cutText is the start of an over-long row's text, on a whole character,
// followed by a note of the row's size.
func cutText(text []byte, size int64) []byte {
	text = trimPartialRune(text[:min(len(text), rejectedPrefixBytes)])
	return fmt.Appendf(bytes.Clone(text), "… [cut: the row is %d bytes]", size)
}

// skipRow handles a record the reader stopped reading at maxRowBytes
// (recordText.tooLong), which began at offset start of its text. If empty
// lines came before the record, which the reader skips, they made it
// long: it goes on with a new reader at the record itself, and skipped is
// false. Otherwise it reads past the record, holding no more of it than
// a buffer, to where encoding/csv would have ended it — a line end
// outside quotes, or the end of the file — and returns it as a malformed
// row; a new reader goes on after it.
func (s *csvSource) skipRow(start int64) (r row, skipped bool, err error) {
	k := s.raw
	text := k.buf[start-k.start:] // the text read from the record's start
	if n, lines := emptyLines(text); lines > 0 {
		s.restart(text[n:], k.lines+lines)
		return row{}, false, nil
	}
	first := s.lineBase + k.lines + 1
	end := rowEnd{cellStart: true, comma: byte(s.comma)}
	rest := text[:0]
	if n := end.scan(text); n >= 0 {
		rest = text[n:] // cannot be: the reader asked for more
	} else if n := end.scan(k.ahead); n >= 0 {
		rest, k.ahead = k.ahead[n:], nil
	} else {
		k.ahead = nil
		buf := make([]byte, 64<<10)
		for {
			m, rerr := k.r.Read(buf)
			if n := end.scan(buf[:m]); n >= 0 {
				rest = buf[n:m]
				break
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return row{}, false, fmt.Errorf("reading file: %w", rerr)
			}
		}
	}
	last := first + end.lines
	if !end.ended && end.newline {
		last-- // the file ends with the line end of the row's last line
	}
	r = row{line: first, malformed: tooLongDetail, text: cutText(text, end.size)}
	if last > first {
		r.malformed = fmt.Sprintf("row longer than 1 MiB (lines %d–%d were read as one row)", first, last)
	}
	if end.quoted {
		r.malformed += "; a quote is never closed"
	}
	lines := end.lines
	if end.ended {
		lines++
	}
	s.restart(rest, k.lines+lines)
	return r, true, nil
}

// restart goes on with a new CSV reader at text (read, not yet parsed),
// after lines more lines than the current reader started after.
func (s *csvSource) restart(text []byte, lines int) {
	k := s.raw
	k.ahead = append(bytes.Clone(text), k.ahead...)
	k.buf, k.start, k.record, k.lines, k.tooLong = k.buf[:0], 0, 0, 0, false
	s.lineBase += lines
	s.r = newCSVReader(k, s.comma)
}

// emptyLines measures the empty lines ("\n" or "\r\n") text starts with:
// their bytes and their number.
func emptyLines(text []byte) (n, lines int) {
	for {
		switch {
		case bytes.HasPrefix(text[n:], []byte("\n")):
			n++
		case bytes.HasPrefix(text[n:], []byte("\r\n")):
			n += 2
		default:
			return n, lines
		}
		lines++
	}
}

// rowEnd finds where a CSV record ends as encoding/csv ends it: at a line
// end outside quotes. It is fed the record's text from its start, in
// pieces; it starts at the start of a cell.
type rowEnd struct {
	comma     byte  // the cells' delimiter
	quoted    bool  // in a quoted cell
	quote     bool  // in a quoted cell, just after a '"': its end, or the first of ""
	cellStart bool  // at the start of a cell
	lines     int   // line ends in the record before its own
	size      int64 // the record's bytes, its line end aside
	ended     bool  // found the record's line end
	newline   bool  // the last byte fed is a line end in a quoted cell
}

// scan feeds b and returns the offset in b just past the record's end,
// or -1 if the record goes on past b.
func (e *rowEnd) scan(b []byte) int {
	for i, c := range b {
		if e.quote {
			e.quote = false
			if c == '"' {
				e.size++
				continue
			}
			e.quoted = false // the cell's closing quote; c follows it
		}
		if e.quoted {
			e.size++
			e.newline = c == '\n'
			switch c {
			case '"':
				e.quote = true
			case '\n':
				e.lines++
			}
			continue
		}
		switch c {
		case '\n':
			e.ended = true
			return i + 1
		case e.comma:
			e.cellStart = true
		case '"':
			e.quoted = e.cellStart
			e.cellStart = false
		default:
			e.cellStart = false
		}
		e.size++
	}
	return -1
}

// columnName names column i (from 0) for a reject's detail: by the
// header, or by number beyond it.
func (s *csvSource) columnName(i int) string {
	if i < len(s.cols) && s.cols[i] != "" {
		return s.cols[i]
	}
	return strconv.Itoa(i + 1)
}

// recordText keeps the decoded text the CSV reader has read since the
// start of the record it is reading, so that a line it cannot parse
// reaches the rejects file as it is: encoding/csv returns only the cells
// before the error, and not the line. It also bounds the record, which
// encoding/csv does not (a quoted cell may run over any number of
// lines): once it has given the reader maxRowBytes of the record, it
// fails the reader's next read and sets tooLong, and skipRow takes over.
// So it never keeps more than a record's maxRowBytes and 64 KiB.
type recordText struct {
	r     io.Reader
	ahead []byte // text read from r by skipRow and not yet given out
	buf   []byte // the text from offset start to what Read has given out
	start int64
	// record is where the record being read begins, and lines counts
	// the line ends before it.
	record  int64
	lines   int
	tooLong bool
}

// errRowTooLong fails a read past maxRowBytes of a record: the reader
// stops where it is.
var errRowTooLong = errors.New("row longer than the limit")

func (k *recordText) Read(p []byte) (int, error) {
	room := k.record + maxRowBytes - (k.start + int64(len(k.buf)))
	if room <= 0 {
		k.tooLong = true
		return 0, errRowTooLong
	}
	p = p[:min(int64(len(p)), room)]
	var n int
	var err error
	if len(k.ahead) > 0 {
		n = copy(p, k.ahead)
		k.ahead = k.ahead[n:]
	} else {
		n, err = k.r.Read(p)
	}
	k.buf = append(k.buf, p[:n]...)
	return n, err
}

// forget notes that the next record begins at offset off, and drops the
// text before it. It moves the text kept only once 64 KiB can go, so that
// reading a file copies its bytes about once more, not once per record.
func (k *recordText) forget(off int64) {
	if off <= k.record || off > k.start+int64(len(k.buf)) {
		return
	}
	k.lines += bytes.Count(k.buf[k.record-k.start:off-k.start], []byte("\n"))
	k.record = off
	if d := off - k.start; d >= 64<<10 {
		k.buf = k.buf[:copy(k.buf, k.buf[d:])]
		k.start = off
	}
}

// text returns the text from offset from to offset to, or nil if it was
// not kept.
func (k *recordText) text(from, to int64) []byte {
	if from < k.start || to-k.start > int64(len(k.buf)) || from > to {
		return nil
	}
	return k.buf[from-k.start : to-k.start]
}

// strictGB18030 decodes GB18030 (which GBK is part of) as simplifiedchinese
// does, except for bytes that are not valid in it: where the decoder
// writes U+FFFD for them, this writes invalidGBK, which is not UTF-8, so
// that a row holding them is a malformed row rather than a name with
// U+FFFD in it. U+FFFD in the file, validly encoded (0x84 0x31 0xA4 0x37),
// stays U+FFFD. Text without U+FFFD in it, nearly every file, costs one
// scan of the decoded bytes.
type strictGB18030 struct {
	dec transform.Transformer
	// invalid is set once an invalid byte was decoded (it may be in a
	// row the reader has not reached yet).
	invalid bool
}

var (
	replacementChar = []byte("\uFFFD")
	gb18030FFFD     = []byte{0x84, 0x31, 0xA4, 0x37} // U+FFFD in GB18030
	invalidGBK      = []byte{0xFF, 0xFF, 0xFF}       // as long as U+FFFD in UTF-8
	userDefinedGBK  = []byte{0xFF, 0xFF, 0xFE}       // the same, for a character of GBK's user-defined area
)

// userDefined reports whether the two bytes b are a character of one of
// GBK's user-defined areas (AAA1–AFFE, F8A1–FEFE, A140–A7A0): a 造字, a
// rare character of a name that a department added to its own fonts and
// input methods. No other system can read it, so the clerk must replace it
// with the character's standard code.
func userDefined(b []byte) bool {
	if len(b) != 2 {
		return false
	}
	lead, trail := b[0], b[1]
	switch {
	case lead >= 0xAA && lead <= 0xAF, lead >= 0xF8 && lead <= 0xFE:
		return trail >= 0xA1 && trail <= 0xFE
	case lead >= 0xA1 && lead <= 0xA7:
		return trail >= 0x40 && trail <= 0xA0 && trail != 0x7F
	}
	return false
}

func (d *strictGB18030) Reset() { d.dec.Reset() }

func (d *strictGB18030) Transform(dst, src []byte, atEOF bool) (int, int, error) {
	nDst, nSrc, err := d.dec.Transform(dst, src, atEOF)
	if bytes.Contains(dst[:nDst], replacementChar) {
		d.mark(dst[:nDst], src, nSrc, atEOF)
	}
	return nDst, nSrc, err
}

// mark decodes src[:nSrc] again, a character at a time, and overwrites
// in out, its decoded text, each U+FFFD that stands for invalid bytes.
// Given room for n bytes and no fewer, the decoder writes exactly one
// character, of n bytes, and says how many bytes of src it took.
func (d *strictGB18030) mark(out, src []byte, nSrc int, atEOF bool) {
	var one [utf8.UTFMax]byte
	for i, j := 0, 0; i < nSrc; {
		w, n := 0, 0
		for room := 1; room <= len(one) && w == 0; room++ {
			w, n, _ = d.dec.Transform(one[:room], src[i:], atEOF)
		}
		if w == 0 || n == 0 || j+w > len(out) {
			return // cannot be: the decoder decoded these bytes before
		}
		if bytes.Equal(one[:w], replacementChar) && !bytes.Equal(src[i:i+n], gb18030FFFD) {
			mark := invalidGBK
			if userDefined(src[i : i+n]) {
				mark = userDefinedGBK
			}
			copy(out[j:], mark)
			d.invalid = true
		}
		i, j = i+n, j+w
	}
}

// utf8Lines sits between a GBK file and its decoder and finds, as the
// file's bytes pass, the lines that are UTF-8 with Chinese characters,
// which GBK text practically never is (see chineseUTF8): a UTF-8 name of
// an even number of bytes decodes as GBK without error, to other Chinese
// characters (张三 as 寮犱笁), so the decoded text cannot tell. A line
// ends at '\n', which no GBK character holds. It keeps the lines it
// finds, by number from 1, until csvSource.next takes them, and no more
// of the current line than maxRowBytes: a longer one is a malformed row
// anyway.
type utf8Lines struct {
	r       io.Reader
	lines   int    // line ends read
	cur     []byte // the current line, while it may be UTF-8
	checked int    // cur[:checked] is valid UTF-8, ending on a whole character
	invalid bool   // the current line is not valid UTF-8, or too long
	chinese bool   // cur[:checked] holds a Chinese character
	ended   bool   // the last line, without a line end, was judged
	found   map[int][]byte
}

func (u *utf8Lines) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	b := p[:n]
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			u.add(b)
			break
		}
		u.add(b[:i])
		u.endLine()
		b = b[i+1:]
	}
	if err == io.EOF && !u.ended {
		u.ended = true
		u.endLine()
	}
	return n, err
}

// add takes the next bytes of the current line.
func (u *utf8Lines) add(b []byte) {
	if u.invalid || len(b) == 0 {
		return
	}
	if len(u.cur)+len(b) > maxRowBytes {
		u.invalid, u.cur = true, u.cur[:0]
		return
	}
	u.cur = append(u.cur, b...)
	whole := u.checked + len(trimPartialRune(u.cur[u.checked:]))
	part := u.cur[u.checked:whole]
	if !utf8.Valid(part) {
		u.invalid, u.cur = true, u.cur[:0]
		return
	}
	u.chinese = u.chinese || hasChinese(part)
	u.checked = whole
}

// endLine judges the current line, and starts the next.
func (u *utf8Lines) endLine() {
	u.lines++
	if !u.invalid && u.chinese && u.checked == len(u.cur) && notGB2312(u.cur) {
		if u.found == nil {
			u.found = map[int][]byte{}
		}
		u.found[u.lines] = bytes.Clone(bytes.TrimSuffix(u.cur, []byte("\r")))
	}
	u.cur, u.checked, u.invalid, u.chinese = u.cur[:0], 0, false, false
}

// notGB2312 reports whether line, valid UTF-8 holding Chinese, is UTF-8
// rather than GBK whose bytes happen to be valid UTF-8 too: its
// characters other than ASCII are all Chinese characters (of any CJK
// block: rare name characters are in the extensions), Chinese
// punctuation, general punctuation (—, …), circled numbers, full-width
// forms or a middle dot (·, ・), and read as GBK it holds a character
// outside GB 2312 (a byte of 0x80–0xA0, where UTF-8 continuation bytes
// mostly are). Of GBK lines whose only Chinese is a name of two or three
// GB 2312 characters, about one in 6,000 and one in 1,000 are valid UTF-8
// with Chinese by chance; none of 7,000 such lines sampled passes this
// test, so a GBK file's lines are not rejected for it. It misses UTF-8
// lines whose bytes pair up into GB 2312 characters: about 4 in 100 whose
// only Chinese is a two-character name, which are read as GBK, garbled.
func notGB2312(line []byte) bool {
	for _, r := range string(line) {
		switch {
		case r < utf8.RuneSelf, unicode.Is(unicode.Han, r), r >= 0x3000 && r <= 0x303F, r >= 0xFF00 && r <= 0xFFEF,
			r >= 0x2000 && r <= 0x206F, r >= 0x2460 && r <= 0x24FF, r == '·', r == '・':
		default:
			return false
		}
	}
	for i := 0; i < len(line); i++ {
		if line[i] < utf8.RuneSelf {
			continue
		}
		if i+1 == len(line) || line[i] < 0xA1 || line[i] > 0xF7 || line[i+1] < 0xA1 || line[i+1] == 0xFF {
			return true
		}
		i++
	}
	return false
}

// take returns the text of the UTF-8 Chinese lines from first to last, in
// order (nil if none), and forgets those up to last.
func (u *utf8Lines) take(first, last int) [][]byte {
	if len(u.found) == 0 {
		return nil
	}
	var texts [][]byte
	for n := first; n <= last; n++ {
		if t, ok := u.found[n]; ok {
			texts = append(texts, t)
		}
	}
	for n := range u.found {
		if n <= last {
			delete(u.found, n)
		}
	}
	return texts
}

// blank reports whether every cell is empty or holds only what trimCell
// trims.
func blank(cells []string) bool {
	for _, c := range cells {
		if trimCell(c) != "" {
			return false
		}
	}
	return true
}

func (s *csvSource) digest() string  { return hex.EncodeToString(s.in.h.Sum(nil)) }
func (s *csvSource) consumed() int64 { return s.in.n.Load() }
func (s *csvSource) Close() error    { return s.f.Close() }

// jsonlSource reads one CloudEvent per line.
type jsonlSource struct {
	f    *os.File
	in   *countingHasher
	br   *bufio.Reader
	line int
}

func openJSONL(path string) (*jsonlSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening file: %w", err)
	}
	s := &jsonlSource{f: f, in: &countingHasher{r: f, h: sha256.New()}}
	// A line, its line end included, fits the buffer or is too long.
	s.br = bufio.NewReaderSize(s.in, maxRowBytes)
	sample, err := s.br.Peek(maxRowBytes)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		f.Close()
		return nil, fmt.Errorf("reading file: %w", err)
	}
	if err := checkText(sample); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *jsonlSource) header() []string { return nil }

func (s *jsonlSource) next() (row, error) {
	for {
		text, err := s.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			s.line++
			return s.skipLine(text)
		}
		if err != nil && err != io.EOF {
			return row{}, fmt.Errorf("reading file: %w", err)
		}
		if err == io.EOF && len(text) == 0 {
			return row{}, io.EOF
		}
		s.line++
		text = bytes.TrimRight(text, "\r\n")
		if s.line == 1 {
			text = bytes.TrimPrefix(text, []byte(bom))
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		return row{line: s.line, text: bytes.Clone(text)}, nil
	}
}

// skipLine reads past the rest of a line longer than maxRowBytes, whose
// first maxRowBytes are head, and returns it as a malformed row.
func (s *jsonlSource) skipLine(head []byte) (row, error) {
	if s.line == 1 {
		head = bytes.TrimPrefix(head, []byte(bom))
	}
	prefix := bytes.Clone(head[:rejectedPrefixBytes])
	size := int64(len(head))
	for {
		frag, err := s.br.ReadSlice('\n')
		size += int64(len(bytes.TrimRight(frag, "\r\n")))
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && err != io.EOF {
			return row{}, fmt.Errorf("reading file: %w", err)
		}
		return row{line: s.line, malformed: tooLongDetail, text: cutText(prefix, size)}, nil
	}
}

func (s *jsonlSource) digest() string  { return hex.EncodeToString(s.in.h.Sum(nil)) }
func (s *jsonlSource) consumed() int64 { return s.in.n.Load() }
func (s *jsonlSource) Close() error    { return s.f.Close() }

// xlsxSource reads a sheet of a workbook. Text cells are read as
// displayed; number cells from their values (numberCellText), since a
// number format may round them or dress them up, unless the format adds
// text or digits of the code the cell holds (numberRead), and a number
// formatted as a date or time in dateCellLayout, since how it is
// displayed depends on the workbook and the locale ("6/4/06 10:29").
// Which cells those are, and their values, excelize's Rows do not say:
// sheetCells reads them beside them.
type xlsxSource struct {
	f     *excelize.File
	sheet string // the sheet read
	// lookedAt is the visible sheets of a workbook of several looked at
	// for the mapping's header when none holds it (see chooseSheet).
	lookedAt []string
	// holdsSome is whether the sheet opened for the header error holds any
	// of the mapping's columns, and hiddenFit a hidden sheet that holds
	// them all (read only when the mapping names it).
	holdsSome bool
	hiddenFit string
	rows      *excelize.Rows
	types     *sheetCells
	sum       string
	size      int64
	cols      []string
	width     int // the header row's own cells, before names merged down widen it
	line      int
	done      bool
}

// sheetChoice says which sheet of a workbook to read (see openXLSX).
type sheetChoice struct {
	name   string      // the mapping's sheet; "" when it names none
	resume resumeSheet // the sheet a checkpoint of this import counts
	// fits reports whether a header row read holds every column of the
	// mapping, and how many it holds; nil takes any.
	fits func(header []string) (bool, int)
}

// resumeSheet is the sheet of a workbook whose lines a checkpoint of the
// same import counts (see checkpointSheet). Resumed on another sheet, the
// lines it counts as sent would be taken for that sheet's and skipped.
type resumeSheet struct {
	name  string // the sheet the checkpoint names
	first bool   // the checkpoint names none: pophub read the first sheet then
}

// errNoHeaderRow is the error of a sheet with fewer rows than header_row:
// a blank sheet, or a chart sheet.
var errNoHeaderRow = errors.New("reading header: the sheet has no header row")

func openXLSX(path string, choice sheetChoice, headerRow int) (*xlsxSource, error) {
	// The workbook is a zip: hash it first, then let excelize read it.
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening file: %w", err)
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("reading file: %w", err)
	}
	if err := checkWorkbook(path); err != nil {
		if _, ok := errors.AsType[*limitError](err); ok {
			return nil, fmt.Errorf("opening workbook: %w (a larger export imports as CSV)", err)
		}
		return nil, fmt.Errorf("opening workbook: %w", err)
	}
	x, err := excelize.OpenFile(path, excelize.Options{UnzipSizeLimit: maxWorkbookBytes, UnzipXMLSizeLimit: spillBytes})
	if err != nil {
		return nil, fmt.Errorf("opening workbook: %w", err)
	}
	s := &xlsxSource{f: x, sum: hex.EncodeToString(h.Sum(nil)), size: size}
	sheets := x.GetSheetList()
	switch {
	case choice.name != "" && !slices.Contains(sheets, choice.name):
		err = fmt.Errorf("opening workbook: it has no sheet %q, the mapping's sheet: its sheets are %s", choice.name, quoteAll(sheets))
	case choice.name != "":
		err = s.openSheet(path, choice.name, headerRow)
	case slices.Contains(sheets, choice.resume.name):
		err = s.openSheet(path, choice.resume.name, headerRow)
	case choice.resume.first:
		err = s.openSheet(path, sheets[0], headerRow)
	default:
		err = s.chooseSheet(path, headerRow, choice.fits)
	}
	if err != nil {
		x.Close()
		return nil, err
	}
	return s, nil
}

// openSheet opens sheet and reads its rows down to the header. On error
// it leaves s with no sheet open.
func (s *xlsxSource) openSheet(path, sheet string, headerRow int) error {
	rows, err := s.f.Rows(sheet)
	if err != nil {
		return fmt.Errorf("opening sheet %q: %w", sheet, err)
	}
	types, err := openSheetCells(path, sheet)
	if err != nil {
		rows.Close()
		return err
	}
	s.sheet, s.rows, s.types, s.cols, s.line = sheet, rows, types, nil, 0
	for s.line < max(headerRow, 1) {
		if !rows.Next() {
			s.closeSheet()
			return errNoHeaderRow
		}
		s.line++
		if s.cols, err = rows.Columns(); err != nil {
			s.closeSheet()
			return fmt.Errorf("reading header: %w", err)
		}
		s.width = len(s.cols)
		// A form's header of two rows merges most names down over both.
		// Excel leaves out a row's trailing empty cells, so a name merged
		// down into the last columns lies past the row's end; the row is
		// widened to it, and no further: a wider title above does not
		// widen the header.
		for len(s.cols) < types.merges.reach(s.line) {
			s.cols = append(s.cols, "")
		}
		types.merges.fill(s.line, s.cols, nil)
	}
	types.merges.endHeader()
	for i, h := range s.cols {
		s.cols[i] = cleanHeader(h)
	}
	return nil
}

// closeSheet closes the sheet open, to read another.
func (s *xlsxSource) closeSheet() {
	s.rows.Close()
	s.types.Close()
	s.rows, s.types = nil, nil
}

// chooseSheet opens the sheet to read when neither the mapping nor a
// checkpoint names one: the first visible sheet, in workbook order, whose
// header row holds every column of the mapping, as pophub read the first
// sheet before. Which sheet was open when the workbook was saved says
// nothing (a summary, instructions, a chart), and a hidden sheet (last
// month's, hidden away) is never read unnamed. When no visible sheet
// holds them all, the one holding most is opened, for the header error,
// and lookedAt names the sheets looked at.
func (s *xlsxSource) chooseSheet(path string, headerRow int, fits func([]string) (bool, int)) error {
	sheets := s.f.GetSheetList()
	var visible []string
	for _, name := range sheets {
		if v, err := s.f.GetSheetVisible(name); err == nil && v {
			visible = append(visible, name)
		}
	}
	if len(visible) == 0 {
		return fmt.Errorf("opening workbook: its sheets %s are all hidden: name the sheet to read in the mapping (sheet: NAME)", strings.Join(sheets, ", "))
	}
	best, bestScore := "", -1
	for _, name := range visible {
		err := s.openSheet(path, name, headerRow)
		if errors.Is(err, errNoHeaderRow) {
			continue // a blank sheet, or a chart sheet
		}
		if err != nil {
			return err
		}
		if fits == nil {
			return nil
		}
		holds, score := fits(s.cols)
		if holds {
			return nil
		}
		s.closeSheet()
		if score > bestScore {
			best, bestScore = name, score
		}
	}
	if len(sheets) > 1 {
		s.lookedAt = visible
		s.holdsSome = bestScore > 0
		for _, name := range sheets {
			if fits == nil || slices.Contains(visible, name) || s.openSheet(path, name, headerRow) != nil {
				continue
			}
			holds, _ := fits(s.cols)
			s.closeSheet()
			if holds {
				s.hiddenFit = name
				break
			}
		}
	}
	if best == "" {
		return fmt.Errorf("%w: none of the workbook's visible sheets (%s) has a row %d, and the mapping names no sheet: name the sheet to read in the mapping (sheet: NAME)",
			errNoHeaderRow, quoteAll(visible), max(headerRow, 1))
	}
	return s.openSheet(path, best, headerRow)
}

// quoteAll quotes names and joins them with commas.
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// findHeaderSheet looks for the mapping's columns in the first rows of
// the workbook's other sheets and returns the sheet and row with most of
// them ("" if none has any).
func (s *xlsxSource) findHeaderSheet(herr *headerError) (string, int) {
	var sheet string
	best, bestScore := 0, 0
	for _, name := range s.f.GetSheetList() {
		if name == s.sheet {
			continue
		}
		rows, err := s.f.Rows(name)
		if err != nil {
			continue
		}
		for line := 1; line <= headerSearchRows && rows.Next(); line++ {
			cells, err := rows.Columns()
			if err != nil {
				break
			}
			if n := herr.score(cells); n > bestScore {
				sheet, best, bestScore = name, line, n
			}
		}
		rows.Close()
	}
	return sheet, best
}

func (s *xlsxSource) header() []string { return s.cols }

func (s *xlsxSource) next() (row, error) {
	for s.rows.Next() {
		s.line++
		cells, err := s.rows.Columns()
		if err != nil {
			return row{}, fmt.Errorf("reading row %d: %w", s.line, err)
		}
		if blank(cells) {
			continue
		}
		// Excel leaves trailing empty cells out.
		for len(cells) < len(s.cols) {
			cells = append(cells, "")
		}
		kinds, values, err := s.types.row(s.line)
		if err != nil {
			return row{}, fmt.Errorf("reading row %d: %w", s.line, err)
		}
		var out []cellKind
		if len(kinds) > 0 {
			out = make([]cellKind, len(cells))
			copy(out, kinds)
			for i, v := range values {
				switch {
				case i >= len(cells):
				case kinds[i] == numberCell:
					cells[i] = numberCellText(v, strings.TrimSpace(cells[i]))
				default:
					cells[i] = v
				}
			}
		}
		out = s.types.merges.fill(s.line, cells[:len(s.cols)], out)
		for i := len(s.cols); i < len(cells); i++ {
			if strings.TrimSpace(cells[i]) != "" {
				return row{line: s.line, cells: cells, malformed: fmt.Sprintf("has a value in column %d, beyond the header's %d", i+1, len(s.cols))}, nil
			}
		}
		cells = cells[:len(s.cols)]
		if out != nil {
			out = out[:len(s.cols)]
		}
		return row{line: s.line, cells: cells, kinds: out}, nil
	}
	if err := s.rows.Error(); err != nil {
		return row{}, fmt.Errorf("reading rows: %w", err)
	}
	s.done = true
	return row{}, io.EOF
}

func (s *xlsxSource) digest() string { return s.sum }

// consumed estimates progress by rows read: the unzipped sheet's size is
// not known in advance, so the workbook's size stands in for it only once
// done.
func (s *xlsxSource) consumed() int64 {
	if s.done {
		return s.size
	}
	return 0
}

func (s *xlsxSource) Close() error {
	s.rows.Close()
	return errors.Join(s.types.Close(), s.f.Close())
}
