// Package importer imports a department's export file — CSV (UTF-8 or
// GBK), XLSX, or JSONL of CloudEvents — into the hub's Kafka topic
// pop.events.<source>: `pophub import`.
//
// # Validation and sending
//
// Validation comes first: every line is mapped to an event and checked
// exactly as the hub will check it (schemas.Decode's verdict with the
// topic and the record key), on all cores while the file is read ahead,
// and every bad line is reported (line, reason, field, column) and
// written with its reason to the rejects file as it is found; the report
// counts them all but lists only the first thousand (Config.ListRejects),
// so that a wrongly mapped file of millions of lines is never held in
// memory. Only then are the valid events sent, from a spool of what was
// validated, so that what is sent is exactly what was checked and no line
// is decoded twice. With a
// RejectLimit, a file with that many bad lines or more sends nothing at
// all: validating first is what lets the import refuse a wrongly mapped
// or broken file before any of it reaches the hub.
//
// Config.Stream trades that for speed on large exports: the valid events
// of each validated chunk of lines go to the sender while later lines are
// read and mapped, so the import takes about as long as the slower of
// validating and sending, and no spool is written. Bad lines are reported
// all the same, the rejects file once the whole file is read. The file is
// hashed before the first line is sent (the checkpoint names it) and
// again as it is read; a file that changed in between stops the import
// with ErrFileChanged.
//
// Sending uses kafka-go configured as adapters/publisher configures it,
// except for a 1ms batch linger: the importer hands the writer whole
// chunks and waits for them. Every connection to the brokers — sending,
// reading offsets, a resume's reading of the topic — logs in with
// Config.SASL and speaks TLS with Config.TLS when they are set.
//
// # Resume
//
// A checkpoint next to the file (FILE.pophub-import.json) holds the file's
// size and SHA-256, the mapping's digest, the encoding and delimiter a CSV
// file was read with, the Kafka cluster's id, the last line acknowledged and the topic's
// per-partition end offsets taken after that acknowledgement and before
// any later line was sent. A run that finds the checkpoint of the same
// file, mapping, encoding and delimiter, sent to the same cluster, skips the
// acknowledged lines, then reads the
// topic from the checkpointed offsets to its end and skips the lines whose
// event id is there: Kafka took them but the run stopped before it could
// checkpoint them. Event ids are deterministic (publisher.EventID), so this
// finds them; every valid line is sent once. The checkpoint also records
// the lines it rejected (as ranges of line numbers): whether a line is
// valid depends on the day it is validated (a time in the future) and on
// the region table of the pophub validating it, so a later run of the
// same file — after a complete import too — sends the rejected lines that
// are valid by then, and counts them as sent. A checkpoint written before
// checkpoints recorded rejected lines is set aside. A checkpoint of other content
// or of another cluster — or one that names no cluster, or whose offsets
// the topic is behind (recreated, or another cluster with the same id) —
// is set aside (Report.SetAside): the file is imported afresh. The
// checkpoint of a workbook names the sheet read. When the mapping names
// no sheet, a checkpoint of the same import is resumed on the sheet it
// names, and one written before checkpoints named it on the first sheet,
// which pophub read then: however often an import stops, it goes on with
// the sheet its checkpoint counts. In doubt the import sends lines again
// rather than skip them: the hub drops events it already holds.
//
// # Mapping
//
// A mapping is YAML; mappings/ has one for every source, and
// mappings/README.md explains them. In short:
//
//	source: housing               # must equal the import's source
//	encoding: auto                # CSV: auto (default; a BOM is UTF-8, else what most lines are in), utf-8, gbk
//	delimiter: ","                # CSV: the cells' delimiter: "," (default), ";", "|" or tab
//	sheet: 租赁登记                # XLSX: the sheet (see below)
//	header_row: 1                 # the row of column names; rows above are skipped
//	type: housing.rental_ended    # a fixed type, or:
//	type: {column: 业务类型, map: {租赁登记备案: housing.rental_registered, 租赁注销: housing.rental_ended}}
//	subject: 权利人身份证号          # the citizen ID column; 15-digit legacy numbers are upgraded
//	time: {column: 登记时间, layout: "2006-01-02 15:04:05", timezone: Asia/Shanghai}
//	id:
//	  key: [业务编号]              # record key columns; the type is always part of the key
//	  version: 版本号              # an integer, or a time with a layout (Unix ms)
//	data:                         # data field ← column, for every type
//	  lease_id: 租赁合同编号
//	data_by_type:                 # data fields of one type
//	  housing.rental_registered:
//	    start: {column: 租期起, kind: date, layout: "2006/1/2"}
//	    gender: {column: 性别, codes: gender}       # 男 → 1 (a national code table by name)
//	    acquired: {column: 取得方式, map: {购买: purchase}}
//	    insurances: {column: 险种, kind: list, split: "、", map: {养老保险: pension}}
//
// A workbook is read from the mapping's sheet (a name it lacks is refused,
// listing its sheets); else from the sheet a checkpoint of the same import
// counts (see Resume); else from the first visible sheet, in workbook
// order, whose header row holds every column of the mapping. Which sheet
// was open when it was saved plays no part, and blank, chart and hidden
// sheets are passed over; so a workbook whose first sheet holds the header
// is read from it, as pophub always read it. When no visible sheet holds
// them all, the import is refused naming the sheets looked at and the
// columns the closest one lacks, saying to set sheet: (and header_row:
// when the header is lower). The report names the sheet read.
//
// The event id is publisher.EventID(source, type + key cells, version),
// whose ids sort as a record's versions do (a correction at an unchanged
// time wins the tie);
// without id.key the record key is the whole row, so a repeated row is the
// same event: the cells of a workbook's row as wide as its header row, an
// empty one past it (named by a name merged down into it) not counted. Of two lines of a file yielding one id only the first is
// sent. A line repeating an earlier one exactly (the same id and event) is
// a harmless repeat, as `pophub publish` counts it: counted and listed
// apart (Report.Repeated, Report.Repeats), not a reject, so it is not in
// the rejects file and counts toward no reject limit. One with other
// content under the same key and version, a correction the hub would
// ignore, is rejected (duplicate_id), naming the columns that differ and
// the version column to raise.
//
// Every cell an export wrapped as ="…" or '… to keep it text (IDs,
// household numbers, codes, dates) is read as a spreadsheet shows it,
// without the wrapper; the event id is computed over the cells as they
// are, wrapper kept, as it always was. Citizen ID cells (the subject, citizen_id fields)
// may hold full-width digits and Ｘ, or a lower-case x: they are read as
// the ASCII ID. An ID cell that was a number
// in the spreadsheet (E notation, or an 18-digit number, whose last
// digits Excel has lost) is rejected as such, and so is one holding an
// invisible character, named (U+200B). Date, time, number, version and
// code cells (value maps, code tables, region and division codes, credit
// codes) read full-width ASCII as ASCII too; free text, such as a name,
// is sent as typed, but for the separator of a two-part name: a
// look-alike of the middle dot (・ • ．‧ ･ ∙ ⋅, or a full stop between two
// Han characters) between its parts is sent as U+00B7 ·, as the register
// and the ID card write it and the hub asks (schemas.FixNameSeparators),
// and counted (Report.Separators). Cells and header cells are trimmed
// of white space and of characters that show as nothing: zero-width
// space, non-joiner, joiner, word joiner and byte order mark.
//
// Without a layout, the time column and date columns take the same forms:
// 2026-03-01, 2026-3-1, 2026/3/1, 20260301, 2026年3月1日, 2026.3.1, each
// alone or followed by a time (15:04:05 or 15:04, after a space or, for
// the dashed form, a T), 20260301150405, and RFC 3339. A date alone in
// the time column is midnight in its time zone; a date column keeps the
// date of a date and time.
//
// A layout is a Go time layout, which spells the parts of a time as the
// time 2006-01-02 15:04:05 has them; a Java or Excel pattern such as
// yyyy-MM-dd HH:mm:ss is refused when the mapping is read, with its Go
// spelling.
//
// A field is a column name or {column | value, default, map | codes, kind,
// layout, timezone, split}. Kinds: string (default), number (a comma only
// as a thousands separator, 1,234.5: "89,5" is refused, not read as 895), date
// (→ YYYY-MM-DD; text only in its layouts, a workbook's number cell as an
// Excel serial day number too), month (→ YYYY-MM; on the default layouts
// also a date on the first of a month; a workbook's number ending in .1
// is refused, being January or, typed 2026.10, October), list
// (→ JSON array), citizen_id (15 digits upgraded). An empty cell leaves the
// field out unless it has a default. Unknown keys, types of another source,
// data fields not in the type's data and columns missing from the header
// are errors before any line is read, and so is a column the mapping
// reads that the header has twice.
//
// Blank lines — empty, or only commas and white space, as a spreadsheet
// saves its empty rows as CSV — and a workbook's empty rows are skipped
// and not counted. A workbook's text cells are read as displayed, its
// numbers from the values they hold, whatever the format shows: 89.56
// shown rounded to 90 is 89.56, 1 shown as 1.00 is 1, ¥1,234.50 is
// 1234.5 (only the leading zeros of a format such as 00, which keep a
// code's, are kept); a number whose format adds text or digits of its
// own is read as shown ("230102"000000 shows 1001 as 230102001001, "H"000
// shows 7 as H007: both are codes); and numbers formatted as dates or
// times are read as the dates they are ("6/4/06 10:29"), for date fields
// and the time column alike. A range of merged cells, whose value the
// workbook keeps in its top-left cell only, is read with that value in
// each row it spans, in its first column; the columns it spans to the
// right are read empty, since they may be other fields. The rows down to
// the header are read so too: a header of two rows whose names are merged
// down over both is read with header_row: 2. A range from the header
// fills no data row.
//
// A file saved as UTF-16, as Excel 97-2003 (.xls) or with old Mac line
// ends (CR alone) is refused, saying how to save it instead. So is a CSV
// file told to be GBK (by the mapping or Config.Encoding) whose first
// megabyte is mostly lines of valid UTF-8 holding Chinese characters,
// which GBK text practically never is: read as GBK, their Chinese would
// be garbled, and a header of ASCII names would not show it; the error
// names the lines that are not UTF-8.
//
// A file detected or told to be in one encoding may hold lines in the
// other (a UTF-8 export a GBK tool appended to): each is a malformed_row
// saying which encoding it is in ("the line is UTF-8, in a file read as
// GBK"), not sent garbled — a UTF-8 name of an even number of bytes
// reads as GBK without error (张三 as 寮犱笁), so every line of a GBK file
// is checked for UTF-8 Chinese as it is read (a line whose only Chinese
// is a two-character UTF-8 name slips through about 4 times in 100: its
// bytes read as valid GB 2312; see notGB2312) — and the rejects file
// holds it as it reads in its own encoding. Detection picks the encoding most
// of the first megabyte's lines are in.
//
// A workbook of the 1904 date system counts the serial day numbers of its
// unformatted date cells from 1904-01-01, and they are read so.
//
// A CSV line whose quoting is broken (a bare " in an unquoted cell, text
// after a closing quote) is a malformed_row with its line number, and the
// lines after it are read as usual; since it cannot be split into cells,
// the rejects file holds it as it is, in its first column. A quote never
// closed runs to the end of the file: those lines are one malformed row.
// Bytes not valid in a GBK file's encoding (GB18030, of which GBK is part)
// make their line a malformed_row too, rather than U+FFFD in a name; in
// the rejects file they show as U+FFFD. A character of GBK's user-defined
// areas (造字) is named as such: it must be replaced with its standard code.
//
// No event is larger than a few kilobytes, so a line of a JSONL file or
// a row of a CSV file (a quoted cell may span lines) longer than 1 MiB is
// a malformed_row ("line longer than 1 MiB") with its line number; it is
// read past without being held in memory, the rejects file gets its
// first 4 KiB marked as cut, and the lines after it keep their numbers.
// An XLSX file is a zip of XML and a small one can expand to gigabytes:
// a workbook over the limits a department's export stays well within —
// 4 GB of XML in all, 64 MB of it outside the sheets and shared strings,
// a million XML elements there, five million shared strings, 16 MB of
// XML a row, 1 MB a tag or text — is refused before any of it is read,
// with an error naming the part and the limit. Checking costs a
// decompression of the workbook.
//
// Reports and rejects never quote a cell — cells hold personal data; the
// rejects file (mode 0600, like the input's sensitivity) holds the lines.
package importer
