package importer

import (
	"archive/zip"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Limits on what a workbook may expand to. An XLSX file is a zip of XML
// parts, and a megabyte of zip can hold gigabytes of XML. excelize, which
// reads the sheet, holds most parts whole in memory and decodes them into
// structures many times their size, writes large sheets to temporary
// files, and reads everything with encoding/xml, which holds a whole tag
// or text in memory however long. checkWorkbook refuses a workbook past
// these limits before excelize opens it. They leave room for the largest
// export a department makes — a sheet of a million rows of twenty-odd
// columns is 1–2 GB of XML with a few million distinct texts — and are
// set so that no workbook within them costs more than such an export
// does; a larger one imports as CSV.
const (
	// maxWorkbookBytes bounds the parts together, uncompressed: the
	// temporary disk an import uses.
	maxWorkbookBytes = 4 << 30
	// spillBytes is excelize's UnzipXMLSizeLimit: a sheet or shared
	// strings table larger than this is written to a temporary file and
	// streamed from there; every other part is held in memory.
	spillBytes = 1 << 20
	// maxInMemoryBytes bounds the parts held in memory, each and together.
	// Styles with Excel's 64,000 cell formats are about 10 MB.
	maxInMemoryBytes = 64 << 20
	// maxInMemoryElements bounds the XML elements of those parts
	// together: excelize decodes each into a structure of a few hundred
	// bytes. Those styles have about 250,000.
	maxInMemoryElements = 1_000_000
	// maxSharedStrings bounds the shared strings table (distinct texts),
	// which excelize indexes in memory at about 140 bytes a string.
	maxSharedStrings = 5_000_000
	// maxXMLTokenBytes bounds one piece of XML that encoding/xml holds
	// whole: a tag, a text, white space, a comment. A cell holds at most
	// 32,767 characters.
	maxXMLTokenBytes = 1 << 20
	// maxRowXMLBytes bounds the XML of a sheet's row, which the import
	// holds in memory as cells.
	maxRowXMLBytes = 16 << 20
)

// limitError is checkWorkbook's error for a workbook past a limit.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

func overLimit(format string, args ...any) error {
	return &limitError{msg: fmt.Sprintf(format, args...)}
}

// checkWorkbook refuses a workbook whose parts expand past the limits
// above, by their sizes in the zip's directory (archive/zip reads no
// more than a part declares) and by reading every XML part once,
// streaming, as scanXML does. It costs a decompression of the workbook.
func checkWorkbook(path string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("reading the workbook: %w (is it encrypted, or not an XLSX file?)", err)
	}
	defer zr.Close()
	var total, inMemory uint64
	for _, f := range zr.File {
		name, size := partName(f), f.UncompressedSize64
		limit := uint64(maxInMemoryBytes)
		if spilled(name, size) {
			limit = maxWorkbookBytes
		}
		if size > limit {
			return overLimit("workbook part %s expands to %d bytes, over the limit of %d", name, size, limit)
		}
		total += size
		if !spilled(name, size) {
			inMemory += size
		}
	}
	if total > maxWorkbookBytes {
		return overLimit("the workbook's parts expand to %d bytes, over the limit of %d", total, maxWorkbookBytes)
	}
	if inMemory > maxInMemoryBytes {
		return overLimit("the workbook's parts held in memory expand to %d bytes, over the limit of %d", inMemory, maxInMemoryBytes)
	}
	elements := 0 // of the parts held in memory
	for _, f := range zr.File {
		name := partName(f)
		kind := inMemoryPart
		switch {
		case isSheet(name):
			kind = sheetPart
		case isSharedStrings(name) && spilled(name, f.UncompressedSize64):
			kind = sharedStringsPart
		case !xmlPart(name):
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("reading workbook part %s: %w", name, err)
		}
		err = scanXML(rc, kind, &elements)
		rc.Close()
		if err != nil {
			return fmt.Errorf("workbook part %s: %w", name, err)
		}
	}
	return nil
}

// partName is a part's name as excelize names it.
func partName(f *zip.File) string { return strings.ReplaceAll(f.Name, "\\", "/") }

// spilled reports whether excelize writes the part to a temporary file
// rather than holding it in memory: sheets and the shared strings table
// larger than spillBytes.
func spilled(name string, size uint64) bool {
	return size > spillBytes && (isSheet(name) || isSharedStrings(name))
}

// isSheet reports whether excelize takes a part for a sheet, as it does
// when it decides what to write to temporary files. A sheet, whatever
// its size, is streamed, not decoded whole.
func isSheet(name string) bool {
	return strings.HasPrefix(strings.ToLower(name), "xl/worksheets/sheet")
}

func isSharedStrings(name string) bool { return strings.EqualFold(name, "xl/sharedStrings.xml") }

// xmlPart reports whether a part holds XML, by its name.
func xmlPart(name string) bool {
	name = strings.ToLower(name)
	return strings.HasSuffix(name, ".xml") || strings.HasSuffix(name, ".rels") || strings.HasSuffix(name, ".vml")
}

// partKind is what scanXML bounds beyond the size of each piece of XML.
type partKind int

const (
	inMemoryPart      partKind = iota // decoded whole: its elements, counted with other such parts'
	sheetPart                         // streamed: each row's XML
	sharedStringsPart                 // indexed: the number of strings
)

// scanXML reads a part's XML as encoding/xml will and refuses it if a
// piece that encoding/xml holds whole — a tag, a text, a comment, a
// CDATA section, a processing instruction — is longer than
// maxXMLTokenBytes, or if it declares a document type (no workbook does,
// and encoding/xml holds one whole too); then, by kind, if a sheet's row
// has more than maxRowXMLBytes of XML, if the shared strings are more
// than maxSharedStrings, or if elements, counting the part's, passes
// maxInMemoryElements. It holds no more than its buffer of the part.
// Malformed XML is left for the XML decoder to report.
func scanXML(r io.Reader, kind partKind, elements *int) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var pos, start int64 // bytes read; where the current piece began
	// read reads up to the next delim, or a buffer's worth
	// (bufio.ErrBufferFull).
	read := func(delim byte) ([]byte, error) {
		b, err := br.ReadSlice(delim)
		pos += int64(len(b))
		if pos-start > maxXMLTokenBytes {
			return nil, overLimit("the XML at byte %d (a tag, a text or white space) is longer than the limit of %d bytes", start, maxXMLTokenBytes)
		}
		return b, err
	}
	// readPast reads past the next '>', and returns the last bytes read,
	// after those in last.
	readPast := func(b []byte, err error, last [3]byte) ([3]byte, error) {
		last = lastBytes(last, b)
		for err == bufio.ErrBufferFull {
			b, err = read('>')
			last = lastBytes(last, b)
		}
		return last, err
	}
	// until reads past end, the end of a comment, CDATA section or
	// processing instruction whose text after its opening is b, read with
	// err.
	until := func(b []byte, err error, end string) error {
		var last [3]byte
		for {
			if last, err = readPast(b, err, last); err != nil || string(last[3-len(end):]) == end {
				return err
			}
			b, err = read('>')
		}
	}
	rowStart := int64(-1) // where the row being read began
	sharedStrings := 0
	for {
		start = pos
		for { // text, up to the next tag
			_, err := read('<')
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				return endOfPart(err)
			}
		}
		start = pos - 1
		b, err := read('>')
		if err != nil && err != bufio.ErrBufferFull {
			return endOfPart(err)
		}
		if len(b) > 0 && (b[0] == '!' || b[0] == '?') {
			switch {
			case bytes.HasPrefix(b, []byte("!--")):
				err = until(b[3:], err, "-->")
			case bytes.HasPrefix(b, []byte("![CDATA[")):
				err = until(b[8:], err, "]]>")
			case b[0] == '!':
				return overLimit("it declares a document type, which no workbook does")
			default:
				err = until(b[1:], err, "?>")
			}
			if err != nil {
				return endOfPart(err)
			}
			continue
		}
		end := len(b) > 0 && b[0] == '/'
		name := localName(b)
		isRow := string(name) == "row"
		switch {
		case end && (isRow || string(name) == "sheetData"):
			rowStart = -1
		case end:
		case kind == inMemoryPart:
			if *elements++; *elements > maxInMemoryElements {
				return overLimit("the parts held in memory have more than %d XML elements, the limit", maxInMemoryElements)
			}
		case kind == sheetPart && isRow:
			rowStart = start
		case kind == sharedStringsPart && string(name) == "si":
			if sharedStrings++; sharedStrings > maxSharedStrings {
				return overLimit("it holds more than %d shared strings, the limit", maxSharedStrings)
			}
		}
		if err != nil { // a tag longer than the buffer
			var last [3]byte
			if last, err = readPast(b, err, last); err != nil {
				return endOfPart(err)
			}
			b = last[:]
		}
		if isRow && !end && len(b) >= 2 && b[len(b)-2] == '/' {
			rowStart = -1 // <row/>
		}
		if rowStart >= 0 && pos-rowStart > maxRowXMLBytes {
			return overLimit("the row at byte %d has more than %d bytes of XML, the limit", rowStart, maxRowXMLBytes)
		}
	}
}

// endOfPart is scanXML's result on a read's error: none at the end of
// the part, even inside a tag (the XML decoder reports that).
func endOfPart(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// lastBytes shifts b into the last three bytes read, last.
func lastBytes(last [3]byte, b []byte) [3]byte {
	if len(b) >= 3 {
		return [3]byte(b[len(b)-3:])
	}
	for _, c := range b {
		last = [3]byte{last[1], last[2], c}
	}
	return last
}

// localName is the name of the tag whose text after '<' starts tag,
// without its namespace prefix.
func localName(tag []byte) []byte {
	tag = bytes.TrimPrefix(tag, []byte("/"))
	from := 0
	for i, c := range tag {
		switch c {
		case ' ', '\t', '\r', '\n', '/', '>':
			return tag[from:i]
		case ':':
			from = i + 1
		}
	}
	return tag[from:]
}
