package importer

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/pophub/pophub/internal/par"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// Format of an input file.
type Format string

// The formats Run reads.
const (
	CSV   Format = "csv"
	JSONL Format = "jsonl"
	XLSX  Format = "xlsx"
)

// FormatOf guesses a file's format from its extension, or returns "".
func FormatOf(path string) Format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv", ".txt":
		return CSV
	case ".jsonl", ".ndjson", ".json":
		return JSONL
	case ".xlsx", ".xlsm":
		return XLSX
	}
	return ""
}

// formatError says why a file of format, or of file's extension when
// format is "", is not read, and what to do: Excel 97-2003 workbooks are
// common among departments, and office software saves them as .xlsx or
// CSV.
func formatError(file string, format Format) error {
	if format != "" {
		return fmt.Errorf("format %q is not csv, jsonl or xlsx", format)
	}
	switch ext := strings.ToLower(filepath.Ext(file)); ext {
	case ".xls", ".et":
		return fmt.Errorf("%s (Excel 97-2003) is not read: save it as .xlsx or CSV", ext)
	case "":
		return errors.New("the file has no extension: give the format (csv, jsonl or xlsx)")
	default:
		return fmt.Errorf("the extension %q is not .csv, .txt, .jsonl, .ndjson, .json, .xlsx or .xlsm: give the format (csv, jsonl or xlsx)", ext)
	}
}

// Reasons a line is rejected by the importer before it is an event; the
// hub's own reasons (schemas.Reason…) are used for events it would reject.
const (
	// ReasonMalformedRow: the line cannot be read as a row of the file
	// (broken CSV quoting, a wrong number of columns, bytes not valid in
	// the file's encoding, longer than 1 MiB).
	ReasonMalformedRow = "malformed_row"
	// ReasonUnmappedValue: a cell's value is not in its value map, or
	// not a name or code of its national code table.
	ReasonUnmappedValue = "unmapped_value"
	// ReasonInvalidValue: a cell cannot be converted (a date, number,
	// time or version that does not parse, an empty required cell).
	ReasonInvalidValue = "invalid_value"
	// ReasonDuplicateID: an earlier line of the file yields the same event
	// id with another event, which the hub would ignore: a row with other
	// content reuses a record's key and version (a correction whose
	// version was not raised, or key columns that do not identify a row;
	// the detail names the columns that differ). A line that repeats an
	// earlier one exactly is no reject but a Repeat.
	ReasonDuplicateID = "duplicate_id"
)

// Reject is a line that is not sent. It never holds a cell's value: the
// rejects file carries the line itself.
type Reject struct {
	Line   int
	Reason string // one of the importer's reasons or schemas.Reason…
	Field  string // the event attribute or data field (JSON path), if known
	Column string // the file's column, if known
	Detail string
}

func (r Reject) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d: %s", r.Line, r.Reason)
	if r.Field != "" {
		b.WriteString(": " + r.Field)
	}
	if r.Column != "" {
		fmt.Fprintf(&b, " (column %s)", r.Column)
	}
	if r.Detail != "" {
		b.WriteString(": " + r.Detail)
	}
	return b.String()
}

// Repeat is a line that repeats the event of an earlier line, First,
// exactly: the same event id and the same event as encoded for sending (a
// row exported twice). It is not sent (line First is) and, unlike a
// Reject, calls for no fix: the hub would apply the event once anyway.
// pophub publish counts such lines alike (publisher.LineRepeat).
type Repeat struct {
	Line, First int
}

func (r Repeat) String() string {
	return fmt.Sprintf("line %d: repeats line %d exactly (the same row twice): harmless, only line %d is sent; nothing to fix (delete the line to silence this)", r.Line, r.First, r.First)
}

// Config configures one import. Source, File and, unless DryRun, Brokers
// are required; Mapping is required for CSV and XLSX.
type Config struct {
	Source schemas.Source
	File   string
	// Format of File (default: from its extension).
	Format Format
	// Mapping turns CSV and XLSX rows into events; JSONL needs none.
	Mapping *Mapping
	// Encoding of a CSV file, overriding the mapping's: auto (detect,
	// even when the mapping names one), utf-8, gbk; "" leaves it to the
	// mapping.
	Encoding string
	// Delimiter of a CSV file's cells, overriding the mapping's: ",", ";",
	// "|" or "tab"; "" leaves it to the mapping (default ",").
	Delimiter string
	// DryRun validates and reports (and writes the rejects file) but sends
	// nothing and leaves the checkpoint alone.
	DryRun bool
	// Stream sends the valid lines while later lines are still being
	// validated, instead of validating the whole file first: the import
	// takes about as long as the slower of the two instead of their sum,
	// and needs no spool of the file's events on disk, but lines go out
	// before every bad line is known. For large exports from a system
	// whose exports are known to be sound. It cannot be combined with a
	// RejectLimit. An ID column that went through Excel (ErrExcelIDs)
	// stops it at the line where the census tells, not before the first
	// line is sent as validating first does (see idCensus).
	Stream bool
	// RejectLimit, when positive, makes an import whose validation rejects
	// that many lines or more send nothing (ErrTooManyRejects): so many bad
	// lines usually mean a wrong mapping or a broken export, and the lines
	// that did pass are better sent together with the corrected rest. 1
	// refuses a file with any bad line; 0 (the default) sets no limit.
	RejectLimit int
	Brokers     []string
	// SASL authenticates the import to brokers that require it (the
	// department's SCRAM-SHA-512 identity from the hub's access policy),
	// on every connection: sending, and reading the topic's offsets and
	// what an earlier run sent; nil for none.
	SASL sasl.Mechanism
	// TLS, when set, is the client configuration for brokers that speak
	// TLS; nil connects in plaintext.
	TLS *tls.Config
	// BatchSize and BatchTimeout are the Kafka writer's (defaults 1000,
	// the publisher's, and 1ms); ChunkSize is how many records one write
	// waits for before the next (default 8 batches). A chunk is handed to
	// the writer whole and waited for, so no record can join a partial
	// batch while it lingers: the publisher's 10ms would only idle, once
	// per chunk.
	BatchSize    int
	BatchTimeout time.Duration
	ChunkSize    int
	// Compression of record batches (default Snappy, like the publisher).
	Compression kafka.Compression
	// RejectsFile receives the bad lines (default File + ".rejects.csv").
	RejectsFile string
	// ListRejects bounds how many rejects Report.Rejects lists, and how
	// many repeats Report.Repeats does (default 1000), so that a wrongly
	// mapped file of millions of lines does not hold them all in memory;
	// every one is counted, and every reject written to the rejects file.
	ListRejects int
	// CheckpointFile records progress for a resume (default File +
	// ".pophub-import.json").
	CheckpointFile string
	// CheckpointInterval bounds how often the checkpoint is written
	// (default 1s); it is always written when the import ends or stops.
	CheckpointInterval time.Duration
	// TempDir holds the spool of validated events between validation and
	// sending (default os.TempDir()). The spool is unlinked as soon as it
	// is created, so it takes space there while the import runs but leaves
	// no file behind, even when the import is killed.
	TempDir string
	// Progress, when set, receives a progress display: a redrawn bar when
	// Terminal, else a plain line every ProgressInterval (default 5s).
	Progress         io.Writer
	Terminal         bool
	ProgressInterval time.Duration
	// Logger receives operational messages (default: discard). It never
	// sees citizen IDs or cells.
	Logger *slog.Logger

	now    func() time.Time
	hookOK func(chunk int) error // after a chunk is acknowledged (tests: a crash)
	// resume is the sheet of a workbook that a checkpoint of this import
	// counts the lines of, set by openInput (see checkpointSheet).
	resume    resumeSheet
	transport *kafka.Transport // set by Run: see kafkaTransport
}

func (c *Config) setDefaults() {
	if c.Format == "" {
		c.Format = FormatOf(c.File)
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = time.Millisecond
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 8 * c.BatchSize
	}
	if c.Compression == 0 {
		c.Compression = kafka.Snappy
	}
	if c.RejectsFile == "" {
		c.RejectsFile = c.File + ".rejects.csv"
	}
	if c.ListRejects <= 0 {
		c.ListRejects = 1000
	}
	if c.CheckpointFile == "" {
		c.CheckpointFile = c.File + ".pophub-import.json"
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// Validate reports whether the configuration can work.
func (c *Config) Validate() error {
	var errs []error
	if !c.Source.Valid() {
		errs = append(errs, fmt.Errorf("source %q is not a department source", c.Source))
	}
	if c.File == "" {
		errs = append(errs, errors.New("a file is required"))
	}
	format := c.Format
	if format == "" {
		format = FormatOf(c.File)
	}
	switch format {
	case CSV, XLSX:
		if c.Mapping == nil {
			errs = append(errs, fmt.Errorf("a %s file needs a mapping", format))
		} else if c.Mapping.Source != c.Source {
			errs = append(errs, fmt.Errorf("the mapping is for source %s, not %s", c.Mapping.Source, c.Source))
		}
	case JSONL:
	default:
		errs = append(errs, formatError(c.File, format))
	}
	if _, err := normalizeEncoding(c.Encoding); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseDelimiter(c.Delimiter); err != nil {
		errs = append(errs, err)
	}
	if c.RejectLimit < 0 {
		errs = append(errs, fmt.Errorf("reject limit %d is negative (0 sets no limit)", c.RejectLimit))
	}
	if c.Stream && c.RejectLimit > 0 {
		errs = append(errs, errors.New("a streamed import cannot refuse a file at a reject limit: it sends lines before the whole file is validated"))
	}
	if !c.DryRun && len(c.Brokers) == 0 {
		errs = append(errs, errors.New("at least one Kafka broker is required"))
	}
	return errors.Join(errs...)
}

// Report summarises an import.
type Report struct {
	File   string
	SHA256 string
	// Sheet is the sheet of a workbook that was read: the mapping's, or,
	// when it names none, the one chosen (see Mapping.Sheet).
	Sheet string
	// Read counts the data lines (not the header, not blank lines).
	Read int
	// Valid lines would be sent; Rejected counts the lines that are bad,
	// and Repeated those that repeat an earlier valid line exactly (see
	// Repeat): once a file is validated, Read = Valid + Rejected +
	// Repeated. Rejects lists the bad lines in line order, the first
	// Config.ListRejects of them; the rejects file holds every one.
	// Repeats lists the repeats alike; they are in no file, count toward
	// no RejectLimit, and are no reason to fail an import.
	Valid    int
	Rejected int
	Rejects  []Reject
	byReason map[string]int
	lines    *rejectedLines // every rejected line, for the checkpoint; set by Run
	Repeated int
	Repeats  []Repeat
	// Upgraded counts legacy 15-digit IDs upgraded to 18 digits in valid
	// lines.
	Upgraded int
	// Separators counts the look-alikes of the middle dot (・ • ．…)
	// replaced by it, U+00B7 ·, between the parts of names in valid lines
	// (schemas.FixNameSeparators): the hub refuses them, and the register
	// and the ID card write ·.
	Separators int
	// Sent counts the events the broker acknowledged in this run (lines
	// an earlier run rejected that are valid now among them); AlreadySent
	// the valid lines an earlier run sent.
	Sent        int
	AlreadySent int
	// Resumed is set when a checkpoint of the same file was found and
	// resumed from. SetAside says why a checkpoint found beside the file
	// was not (another version of the file, mapping or encoding, or
	// another Kafka cluster): then the file was imported afresh.
	Resumed  bool
	SetAside string
	// Resumable is set once sending has begun, in this run or in the
	// earlier one it resumes: an import that fails after that is resumed
	// by running it again on the same file. One that fails before (the
	// file unreadable, its header not the mapping's, the reject limit
	// reached, the brokers unreachable) has sent nothing to resume; nor is
	// one that stopped with ErrFileChanged resumed.
	Resumable bool
	// RejectsFile is where the rejected lines were written ("" if none).
	RejectsFile string
	DryRun      bool
	RejectLimit int // Config.RejectLimit
	Elapsed     time.Duration
}

// Refused reports whether the rejects reached the reject limit, so that
// nothing was sent.
func (r *Report) Refused() bool {
	return r.RejectLimit > 0 && r.Rejected >= r.RejectLimit
}

// reject counts a rejected line, and lists it while fewer than list are.
func (r *Report) reject(rej Reject, list int) {
	r.Rejected++
	if r.lines != nil {
		r.lines.add(rej.Line)
	}
	if r.byReason == nil {
		r.byReason = map[string]int{}
	}
	r.byReason[rej.Reason]++
	if len(r.Rejects) < list {
		r.Rejects = append(r.Rejects, rej)
	}
}

// repeat counts a repeated line, and lists it while fewer than list are.
func (r *Report) repeat(rp Repeat, list int) {
	r.Repeated++
	if len(r.Repeats) < list {
		r.Repeats = append(r.Repeats, rp)
	}
}

// ErrTooManyRejects is Run's error when validation rejected
// Config.RejectLimit lines or more: nothing was sent.
var ErrTooManyRejects = errors.New("reject limit reached")

// ErrFileChanged is Run's error when the file changed while a streamed
// import read it. What was sent stays sent; the next run sees other
// content and imports the file afresh (the hub ignores the events it
// already holds).
var ErrFileChanged = errors.New("the file changed while it was being imported")

// ByReason counts the rejected lines by reason.
func (r *Report) ByReason() map[string]int {
	out := make(map[string]int, len(r.byReason))
	maps.Copy(out, r.byReason)
	return out
}

// Summary is a one-line account: read, valid, sent, rejected by reason,
// repeated, upgraded IDs, and name separators replaced (when any were).
func (r *Report) Summary() string {
	var b strings.Builder
	b.WriteString(filepath.Base(r.File))
	if r.Sheet != "" {
		fmt.Fprintf(&b, ", sheet %s", r.Sheet)
	}
	fmt.Fprintf(&b, ": %d read, %d valid", r.Read, r.Valid)
	switch {
	case r.Refused():
		fmt.Fprintf(&b, ", refused at the reject limit of %d: nothing sent", r.RejectLimit)
	case r.DryRun:
		b.WriteString(", dry run: nothing sent")
	default:
		fmt.Fprintf(&b, ", %d sent", r.Sent)
		if r.AlreadySent > 0 {
			fmt.Fprintf(&b, " (%d already sent by an earlier run)", r.AlreadySent)
		}
		if r.SetAside != "" {
			fmt.Fprintf(&b, " (afresh: %s)", r.SetAside)
		}
	}
	fmt.Fprintf(&b, ", %d rejected", r.Rejected)
	if r.Rejected > 0 {
		by := r.ByReason()
		reasons := make([]string, 0, len(by))
		for k := range by {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		for i, k := range reasons {
			sep := ", "
			if i == 0 {
				sep = " ("
			}
			fmt.Fprintf(&b, "%s%s %d", sep, k, by[k])
		}
		b.WriteString(")")
	}
	if r.Repeated > 0 {
		sent := "sent once"
		if r.DryRun || r.Refused() {
			sent = "would be sent once"
		}
		fmt.Fprintf(&b, ", %d repeated (the same row as an earlier line: %s, nothing to fix)", r.Repeated, sent)
	}
	fmt.Fprintf(&b, ", %d legacy IDs upgraded", r.Upgraded)
	if r.Separators > 0 {
		fmt.Fprintf(&b, ", %d name separators replaced by the middle dot ·", r.Separators)
	}
	fmt.Fprintf(&b, ", %s", r.Elapsed.Round(time.Millisecond))
	return b.String()
}

// Run imports a file. It validates every line first (a report of every
// bad line, written to the rejects file), then, unless DryRun or the
// rejects reach RejectLimit, sends the valid lines; with Stream it sends
// them while later lines are still being validated. Either way it sends
// the valid lines in file order to pop.events.<source>, checkpointing as
// it goes. A run that finds a checkpoint of the same file (same size and
// SHA-256, same mapping, a CSV file read in the same encoding) sent to
// the same Kafka cluster resumes:
// lines the checkpoint counts as acknowledged are skipped, and so are
// later lines whose event is already on the topic past the checkpointed
// offsets (sent by a run that stopped before it could checkpoint them).
// So a resumed import sends every valid line exactly once. The lines the
// checkpoint records as rejected are not skipped: validity depends on the
// day (a time in the future) and on the pophub validating, so those valid
// now are sent, even when the checkpoint says the import was complete.
//
// The error is set when the import could not finish (file unreadable,
// broker unreachable, ctx cancelled); the report covers what was done, and
// says whether running again resumes it (Report.Resumable). Rejected
// lines are not an error: see
// Report.Rejected and Report.Rejects. Nor are lines that repeat an
// earlier line exactly, which are sent once and counted apart
// (Report.Repeated and Report.Repeats). But an ID column that went
// through Excel as numbers, its IDs ending in 000 (see idCensus), refuses
// the file with ErrExcelIDs, in a dry run too.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring import: %w", err)
	}
	cfg.setDefaults()
	start := time.Now()
	rep := &Report{File: cfg.File, DryRun: cfg.DryRun, RejectLimit: cfg.RejectLimit, lines: &rejectedLines{}}
	defer func() { rep.Elapsed = time.Since(start) }()
	cfg.transport = cfg.kafkaTransport()
	defer cfg.transport.CloseIdleConnections()
	if cfg.Stream && !cfg.DryRun {
		return rep, stream(ctx, &cfg, rep)
	}
	return rep, validateFirst(ctx, &cfg, rep)
}

// validateFirst validates the whole file into a spool, writes the rejects
// file, and sends the spool only if the rejects stay under the limit.
func validateFirst(ctx context.Context, cfg *Config, rep *Report) error {
	spool, closeSpool, err := openSpool(cfg.TempDir)
	if err != nil {
		return err
	}
	defer closeSpool()
	src, p, err := openInput(ctx, cfg, rep, "validating")
	if err != nil {
		return err
	}
	defer src.Close()
	sw := bufio.NewWriterSize(spool, 1<<20)
	digest, err := validate(ctx, cfg, rep, src, p, "validating", func(m *mapped) error { return writeSpool(sw, m) })
	if err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("writing spool: %w", err)
	}
	rep.SHA256 = digest
	if rep.Refused() {
		return fmt.Errorf("%w: %d of %d lines rejected, the limit is %d; nothing sent", ErrTooManyRejects, rep.Rejected, rep.Read, cfg.RejectLimit)
	}
	if cfg.DryRun {
		return nil
	}
	s, err := startSending(ctx, cfg, rep)
	if err != nil {
		return err
	}
	if s == nil {
		rep.AlreadySent = rep.Valid // imported completely before
		return nil
	}
	// A resumed import first counts what is left.
	toSend := rep.Valid
	if rep.Resumed {
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("rewinding spool: %w", err)
		}
		if toSend, err = s.pending(spool); err != nil {
			return err
		}
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding spool: %w", err)
	}
	r := bufio.NewReaderSize(spool, 1<<20)
	prog := startProgress(cfg, "sending", int64(toSend))
	defer prog.finish()
	return s.run(ctx, func() (spooled, error) { return readSpool(r) }, prog)
}

// openSpool creates the spool and unlinks it at once, keeping the open
// handle, which is all the import reads and writes it through. The spool
// holds every valid line in clear (citizen IDs among them), and a name in
// TempDir would outlive a run killed by SIGKILL, the OOM killer or a power
// cut; an unlinked file is freed by the kernel when its last handle
// closes, however the process ends. Where an open file cannot be
// unlinked (Windows), the name stays until closeSpool removes it.
func openSpool(dir string) (spool *os.File, closeSpool func(), err error) {
	spool, err = os.CreateTemp(dir, "pophub-import-*.spool")
	if err != nil {
		return nil, nil, fmt.Errorf("creating spool: %w", err)
	}
	if os.Remove(spool.Name()) == nil {
		return spool, func() { spool.Close() }, nil
	}
	return spool, func() {
		spool.Close()
		os.Remove(spool.Name())
	}, nil
}

// stream validates and sends at the same time (Config.Stream): the valid
// lines of each validated chunk go to the sender while later chunks are
// read and mapped. The checkpoint needs the file's digest before the
// first line is sent, so the file is hashed first; the validation pass
// hashes it again as it reads, and an import of a file that changed in
// between stops with an error before its checkpoint is marked complete.
func stream(ctx context.Context, cfg *Config, rep *Report) error {
	sum, err := fileDigest(cfg.File)
	if err != nil {
		return err
	}
	rep.SHA256 = sum
	// Opened first: the checkpoint names the sheet of a workbook read.
	src, p, err := openInput(ctx, cfg, rep, "importing")
	if err != nil {
		return err
	}
	defer src.Close()
	s, err := startSending(ctx, cfg, rep)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := &feed{ch: make(chan []spooled, 2)}
	var sendErr error
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		if s == nil {
			// Imported completely before: validate only, for the report.
			for range f.ch {
			}
			return
		}
		if sendErr = s.run(ctx, f.next(), &progress{}); sendErr != nil {
			cancel() // stop validating
		}
	}()

	batch := make([]spooled, 0, chunkRows)
	handOn := func() error {
		select {
		case f.ch <- batch:
			batch = make([]spooled, 0, chunkRows)
			return nil
		case <-ctx.Done():
			return fmt.Errorf("validating %s: %w", cfg.File, ctx.Err())
		}
	}
	digest, verr := validate(ctx, cfg, rep, src, p, "importing", func(m *mapped) error {
		batch = append(batch, spooled{line: m.line, id: m.id, key: m.key, value: m.value})
		if len(batch) == cap(batch) {
			return handOn()
		}
		return nil
	})
	if verr == nil && digest != sum {
		verr = fmt.Errorf("%w: %s; run the import again, and it starts afresh", ErrFileChanged, cfg.File)
	}
	if verr == nil && len(batch) > 0 {
		verr = handOn()
	}
	f.err = verr // read by the sender once ch is closed
	close(f.ch)
	<-sent
	if errors.Is(verr, ErrFileChanged) || errors.Is(verr, ErrExcelIDs) {
		// The next run starts afresh, or, on the same file, is refused
		// again.
		rep.Resumable = false
	}
	if sendErr != nil {
		return sendErr
	}
	if verr != nil {
		return verr
	}
	if s == nil {
		rep.AlreadySent = rep.Valid
	}
	return nil
}

// feed hands validated events from the validation pass to the sender.
type feed struct {
	ch  chan []spooled
	err error // why validation stopped; set before ch is closed
}

// next returns the events one by one: io.EOF after the last when
// validation went through, else its error.
func (f *feed) next() func() (spooled, error) {
	var cur []spooled
	return func() (spooled, error) {
		for len(cur) == 0 {
			b, ok := <-f.ch
			if !ok {
				if f.err != nil {
					return spooled{}, f.err
				}
				return spooled{}, io.EOF
			}
			cur = b
		}
		e := cur[0]
		cur = cur[1:]
		return e, nil
	}
}

// fileDigest is the SHA-256 of a file, hex-encoded.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("opening file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading file: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// openInput opens the file for the validation pass (see open). A
// workbook is read from the mapping's sheet, else from the sheet a
// checkpoint of this import counts the lines of (see checkpointSheet),
// else from the one chosen (see chooseSheet); the report and the log name
// it.
func openInput(ctx context.Context, cfg *Config, rep *Report, phase string) (rowSource, *plan, error) {
	var err error
	if cfg.resume, err = checkpointSheet(cfg); err != nil {
		return nil, nil, err
	}
	src, p, err := open(cfg)
	if err != nil {
		return nil, nil, err
	}
	if xs, ok := src.(*xlsxSource); ok {
		rep.Sheet = xs.sheet
		cfg.Logger.InfoContext(ctx, phase+": reading a sheet of the workbook", "file", cfg.File, "sheet", xs.sheet, "sheets", len(xs.f.GetSheetList()),
			"as_checkpoint", cfg.resume != resumeSheet{})
	}
	return src, p, nil
}

// validate is the validation pass: every line mapped and decoded as the
// hub will; emit receives the valid events in line order. Three stages
// overlap, a chunk of lines apart: reading the file (CSV parsing and
// GBK decoding are not cheap), mapping and decoding on all cores, and the
// bookkeeping in line order (duplicate ids, rejects, repeats, the census
// of IDs ending in 000, emit). Once the whole file has been read it puts
// the rejects file in place and returns the file's digest, and an
// excelIDsError (ErrExcelIDs) if the census tripped; a streamed import
// stops with it at the line where it trips (see idCensus).
func validate(ctx context.Context, cfg *Config, rep *Report, src rowSource, p *plan, phase string, emit func(*mapped) error) (string, error) {
	var err error
	rejects := &rejectsFile{path: cfg.RejectsFile, header: src.header()}
	if _, ok := src.(*xlsxSource); ok {
		rejects.typed = p.asTyped
	}
	defer rejects.discard()
	var total int64
	if st, err := os.Stat(cfg.File); err == nil && cfg.Format != XLSX {
		total = st.Size()
	}
	prog := startProgress(cfg, phase, total)
	defer prog.finish()

	// The stages stop when this returns, before the file is closed.
	ctx, cancel := context.WithCancel(ctx)
	var stages sync.WaitGroup
	defer func() {
		cancel()
		stages.Wait()
	}()
	read := make(chan *chunk, 2)
	done := make(chan *chunk, 2)
	stages.Go(func() { readChunks(ctx, src, read) })
	now := cfg.now()
	stages.Go(func() { mapChunks(ctx, p, cfg.Source, now, read, done) })

	seen := newEventIDs()
	census := newIDCensus(p)
	// A streamed import stops where the census trips: the lines before
	// went to the sender (see idCensus).
	stopAtCensus := cfg.Stream && !cfg.DryRun
	for c := range done {
		rep.Read += len(c.rows)
		if c.err != nil {
			return "", fmt.Errorf("validating %s: %w", cfg.File, c.err)
		}
		for i := range c.rows {
			m := &c.results[i]
			zeroed, tripped := census.count(c.rows[i])
			if tripped && stopAtCensus {
				if rep.RejectsFile, err = rejects.finish(); err != nil {
					return "", err
				}
				return "", fmt.Errorf("validating %s: %w", cfg.File, census.refusal(m.line))
			}
			if m.rej == nil && zeroed != 0 {
				m.rej = census.reject(m.line, zeroed)
			}
			if m.rej == nil {
				if d, dup := seen.add(m.id, m.line, m.value); dup {
					if d.same {
						// Harmless, like publish's repeats: the
						// earlier line is sent, this one is not.
						rep.repeat(Repeat{Line: m.line, First: d.first}, cfg.ListRejects)
						continue
					}
					m.rej = d.reject(p, m)
				}
			}
			if m.rej != nil {
				rep.reject(*m.rej, cfg.ListRejects)
				if err := rejects.add(m.rej, c.rows[i]); err != nil {
					return "", err
				}
				continue
			}
			rep.Valid++
			rep.Upgraded += m.upgraded
			rep.Separators += m.separators
			if err := emit(m); err != nil {
				return "", err
			}
			if zeroed != 0 {
				census.hold(m, c.rows[i], zeroed)
			}
		}
		prog.set(c.consumed, int64(rep.Read))
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("validating %s: %w", cfg.File, err)
		}
	}
	if err := ctx.Err(); err != nil {
		// The stages stopped early: done closed before the file's end.
		return "", fmt.Errorf("validating %s: %w", cfg.File, err)
	}
	tripped := len(census.tripped()) > 0
	if tripped {
		if err := census.settle(rep, rejects, cfg.ListRejects); err != nil {
			return "", err
		}
	}
	if rep.RejectsFile, err = rejects.finish(); err != nil {
		return "", err
	}
	if tripped {
		return src.digest(), fmt.Errorf("validating %s: %w", cfg.File, census.refusal(0))
	}
	return src.digest(), nil
}

// eventIDs remembers the event id of every line of a file, to find lines
// that yield the same one, and a digest of each one's event, to tell a
// line repeated as it is (harmless: the hub would ignore it) from a
// change that reuses a record's key and version (a correction the hub
// would never apply). It keeps a 128-bit hash of each id (two
// independently seeded maphashes) rather than the id itself: a file of ten
// million lines would otherwise keep ten million strings alive, for the
// garbage collector to scan at every cycle. Two distinct ids of one file
// share a hash with odds of about n²/2¹²⁹, two events of one id a digest
// with odds of 2⁻⁶⁴: never, in practice.
//
// To say which fields a reused id changed, it also keeps the events
// themselves, in pointer-free blocks, while they fit in keptBytes:
// the whole of any spreadsheet a clerk handles; past that, a reject says
// the content differs without naming the fields.
type eventIDs struct {
	seeds [2]maphash.Seed
	first map[[2]uint64]firstEvent // hash of the id → the first line with it
	// kept holds the first lines' events in blocks of keptBlock bytes
	// (one event longer than that has a block of its own): a block is
	// never grown, so keeping a file's events copies each once, rather
	// than again at every doubling of one buffer.
	kept      [][]byte
	keptTotal int // the bytes of kept, to stay within keptBytes
}

// firstEvent is the first line yielding an id.
type firstEvent struct {
	line  int
	sum   uint64 // maphash of its event
	block int32  // 1 + the index in kept of the block of its event; 0 if not kept
	at    int32  // the offset of its event in that block
	size  int32  // the length of its event
}

// keptBytes bounds the events eventIDs keeps to name changed fields, and
// keptBlock is the size of a block of them.
const (
	keptBytes = 64 << 20
	keptBlock = 1 << 20
)

func newEventIDs() *eventIDs {
	return &eventIDs{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, first: map[[2]uint64]firstEvent{}}
}

// duplicate is a line whose event id an earlier line yields.
type duplicate struct {
	first int    // the earlier line
	same  bool   // the events are the same
	prev  []byte // the earlier line's event, if kept and not the same
}

// add records that line yields id with the encoded event value; if an
// earlier line yields id, it returns that line and how the events
// compare instead.
func (s *eventIDs) add(id string, line int, value []byte) (duplicate, bool) {
	k := [2]uint64{maphash.String(s.seeds[0], id), maphash.String(s.seeds[1], id)}
	sum := maphash.Bytes(s.seeds[0], value)
	if f, ok := s.first[k]; ok {
		d := duplicate{first: f.line, same: f.sum == sum}
		if !d.same && f.block > 0 {
			d.prev = s.kept[f.block-1][f.at : f.at+f.size]
		}
		return d, true
	}
	f := firstEvent{line: line, sum: sum}
	if s.keptTotal+len(value) <= keptBytes {
		last := len(s.kept) - 1
		if last < 0 || cap(s.kept[last])-len(s.kept[last]) < len(value) {
			s.kept = append(s.kept, make([]byte, 0, max(keptBlock, len(value))))
			last++
		}
		b := s.kept[last]
		f.block, f.at, f.size = int32(last+1), int32(len(b)), int32(len(value))
		s.kept[last] = append(b, value...)
		s.keptTotal += len(value)
	}
	s.first[k] = f
	return duplicate{}, false
}

// reject explains the duplicate m, with other content than its earlier
// line (an exact repeat is no reject: see Repeat), to the clerk: a
// correction the hub would drop, so it names the columns that differ and
// the version column to raise. p is nil for JSONL, whose lines carry
// their own ids.
func (d duplicate) reject(p *plan, m *mapped) *Reject {
	rej := &Reject{Line: m.line, Reason: ReasonDuplicateID, Field: "id"}
	if p == nil {
		rej.Detail = fmt.Sprintf("line %d has the same event id and other %s: the hub applies one event per id and would ignore this one; give this change an id of its own",
			d.first, changedText(changedFields(d.prev, m.value), "content"))
		return rej
	}
	// Both lines yield one id, and so one type: the type is part of the
	// record key.
	var cols []string
	for _, f := range changedFields(d.prev, m.value) {
		if c := p.columnOf(m.typ, f); c != "" {
			f = c
		}
		if !slices.Contains(cols, f) {
			cols = append(cols, f)
		}
	}
	// In the file's order, as the clerk sees the columns.
	slices.SortStableFunc(cols, func(a, b string) int {
		return cmp.Compare(p.headerIndex(a), p.headerIndex(b))
	})
	changed := changedText(cols, "cells")
	keys := p.keyNames()
	switch {
	case p.version != nil && p.version.col >= 0:
		rej.Column = p.version.header
		rej.Detail = fmt.Sprintf("the same %s and %s as line %d but other %s: a correction the hub would ignore. To correct line %d, raise %s above line %d's; if this line is a mistake, delete it",
			keys, p.version.header, d.first, changed, d.first, p.version.header, d.first)
	case p.version != nil:
		rej.Detail = fmt.Sprintf("the same %s as line %d but other %s, and the mapping's version is a constant: a correction the hub would ignore. Map id.version to a column the department raises with every correction",
			keys, d.first, changed)
	default:
		rej.Detail = fmt.Sprintf("the same %s as line %d but other %s: a correction the hub would ignore. The mapping has no version: map id.version to a column the department raises with every correction",
			keys, d.first, changed)
	}
	return rej
}

// headerIndex is the position of a column in the header; past the end
// if it is not a column.
func (p *plan) headerIndex(name string) int {
	if i := slices.Index(p.header, name); i >= 0 {
		return i
	}
	return len(p.header)
}

// keyNames names the record key columns of the mapping, for a reject.
func (p *plan) keyNames() string {
	if len(p.keyCols) == 0 {
		return "cells"
	}
	names := make([]string, len(p.keyCols))
	for i, c := range p.keyCols {
		names[i] = p.headerOf(c)
	}
	return strings.Join(names, " and ")
}

// changedText lists changed fields or columns, or says what changed
// without naming them when they are not known.
func changedText(names []string, what string) string {
	if len(names) == 0 {
		return what
	}
	return what + " (" + strings.Join(names, ", ") + ")"
}

// changedFields names the event attributes and data fields (data.x) in
// which two encodings of one event id differ: nil if prev was not kept.
func changedFields(prev, cur []byte) []string {
	if prev == nil {
		return nil
	}
	var a, b map[string]json.RawMessage
	if json.Unmarshal(prev, &a) != nil || json.Unmarshal(cur, &b) != nil {
		return nil
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(mergeKeys(a, b))) {
		if k == "data" {
			var da, db map[string]json.RawMessage
			if json.Unmarshal(a[k], &da) == nil && json.Unmarshal(b[k], &db) == nil {
				for _, f := range slices.Sorted(maps.Keys(mergeKeys(da, db))) {
					if !bytes.Equal(da[f], db[f]) {
						out = append(out, "data."+f)
					}
				}
				continue
			}
		}
		if !bytes.Equal(a[k], b[k]) {
			out = append(out, k)
		}
	}
	return out
}

func mergeKeys(a, b map[string]json.RawMessage) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// chunk is a run of consecutive rows on its way through validate's
// stages.
type chunk struct {
	rows     []row
	results  []mapped // results[i] is rows[i] mapped
	consumed int64    // the file's bytes read up to the chunk's end
	err      error    // reading stopped after rows with this error
}

// chunkRows is how many rows travel together: enough to keep every core
// mapping, few enough that the stages overlap on a small file.
const chunkRows = 2048

// readChunks sends the rows of src to out in chunks, in order, and closes
// out after the last one, after a chunk with an error, or when ctx is
// done.
func readChunks(ctx context.Context, src rowSource, out chan<- *chunk) {
	defer close(out)
	for {
		c := &chunk{rows: make([]row, 0, chunkRows)}
		eof := false
		for len(c.rows) < chunkRows {
			r, err := src.next()
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				c.err = err
				break
			}
			c.rows = append(c.rows, r)
		}
		c.consumed = src.consumed()
		if len(c.rows) == 0 && c.err == nil {
			return
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
		if eof || c.err != nil {
			return
		}
	}
}

// mapChunks maps the rows of every chunk from in on all cores and passes
// the chunk on to out, in order; it closes out when in is closed or ctx
// is done.
func mapChunks(ctx context.Context, p *plan, source schemas.Source, now time.Time, in <-chan *chunk, out chan<- *chunk) {
	defer close(out)
	for c := range in {
		c.results = make([]mapped, len(c.rows))
		par.Ranges(len(c.rows), 128, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				c.results[i] = mapOne(p, source, c.rows[i], now)
			}
		})
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
	}
}

// csvEncoding is the encoding a CSV file is to be read in: Config's,
// else the mapping's; "" to detect it (neither set, or auto).
func (c *Config) csvEncoding() string {
	enc, _ := normalizeEncoding(c.Encoding)
	if enc == "" && c.Mapping != nil {
		enc, _ = normalizeEncoding(c.Mapping.Encoding)
	}
	if enc == encodingAuto {
		return ""
	}
	return enc
}

// csvDelimiter is the delimiter of a CSV file's cells: Config's, else the
// mapping's, else the comma.
func (c *Config) csvDelimiter() rune {
	d := c.Delimiter
	if d == "" && c.Mapping != nil {
		d = c.Mapping.Delimiter
	}
	comma, err := parseDelimiter(d)
	if err != nil { // refused by Validate
		return ','
	}
	return comma
}

// open opens the file's row source and, for tables, binds the mapping to
// its header.
func open(cfg *Config) (rowSource, *plan, error) {
	switch cfg.Format {
	case JSONL:
		s, err := openJSONL(cfg.File)
		return s, nil, err
	case CSV, XLSX:
		m := cfg.Mapping
		var src rowSource
		var err error
		if cfg.Format == CSV {
			src, err = openCSV(cfg.File, cfg.csvEncoding(), cfg.csvDelimiter(), m.HeaderRow)
		} else {
			src, err = openXLSX(cfg.File, sheetChoice{name: m.Sheet, resume: cfg.resume, fits: m.fitsHeader}, m.HeaderRow)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", cfg.File, err)
		}
		p, err := newPlan(m, src.header())
		if err != nil {
			if herr, ok := errors.AsType[*headerError](err); ok && herr.matched == 0 {
				herr.found = findHeader(src, herr)
				if xs, ok := src.(*xlsxSource); ok && herr.found == 0 {
					herr.otherSheet, herr.otherRow = xs.findHeaderSheet(herr)
				}
			}
			src.Close()
			// A header read in the wrong encoding has none of the
			// mapping's Chinese column names.
			if cs, ok := src.(*csvSource); ok && cs.encoding != cs.detected {
				return nil, nil, fmt.Errorf("mapping the columns of %s: %w\n(the file may not be %s; try --encoding auto)", cfg.File, err, cs.encoding)
			}
			if cs, ok := src.(*csvSource); ok {
				if d, ok := otherDelimiter(cs.cols, cs.comma); ok {
					return nil, nil, fmt.Errorf("mapping the columns of %s: %w\n(the header is one cell holding %s: the cells may be delimited by %s; set delimiter: %s in the mapping, or --delimiter %s)",
						cfg.File, err, delimiterWord(d), delimiterWord(d), delimiterName(d), delimiterName(d))
				}
			}
			if xs, ok := src.(*xlsxSource); ok && len(xs.lookedAt) > 0 {
				most := ""
				if xs.holdsSome {
					most = fmt.Sprintf("; sheet %q holds most", xs.sheet)
				}
				if xs.hiddenFit != "" {
					return nil, nil, fmt.Errorf("mapping the columns of %s, sheet %s: %w\n(the mapping names no sheet, and none of the visible sheets %s holds all its columns in row %d%s; the hidden sheet %q does: to read it, name it in the mapping, sheet: %s)",
						cfg.File, xs.sheet, err, quoteAll(xs.lookedAt), max(m.HeaderRow, 1), most, xs.hiddenFit, xs.hiddenFit)
				}
				return nil, nil, fmt.Errorf("mapping the columns of %s, sheet %s: %w\n(the mapping names no sheet, and none of the visible sheets %s holds all its columns in row %d%s: name the sheet to read in the mapping, sheet: NAME, and its header row, header_row: N, if the header is lower)",
					cfg.File, xs.sheet, err, quoteAll(xs.lookedAt), max(m.HeaderRow, 1), most)
			}
			if xs, ok := src.(*xlsxSource); ok {
				return nil, nil, fmt.Errorf("mapping the columns of %s, sheet %s: %w", cfg.File, xs.sheet, err)
			}
			return nil, nil, fmt.Errorf("mapping the columns of %s: %w", cfg.File, err)
		}
		if xs, ok := src.(*xlsxSource); ok {
			p.date1904, p.keyWidth = xs.types.date1904, xs.width
		}
		return src, p, nil
	}
	return nil, nil, formatError(cfg.File, cfg.Format)
}

// headerSearchRows is how far below the header row findHeader looks.
const headerSearchRows = 20

// findHeader looks for the mapping's columns in the rows after the one
// read as the header (a title above the header, most likely) and returns
// the number of the row with most of them, or 0. The rows are read as
// data, so a malformed one (fewer columns than the title) still counts.
func findHeader(src rowSource, herr *headerError) int {
	best, bestScore := 0, 0
	for range headerSearchRows {
		r, err := src.next()
		if err != nil {
			break
		}
		if n := herr.score(r.cells); n > bestScore {
			best, bestScore = r.line, n
			if n == len(herr.columns) {
				break
			}
		}
	}
	return best
}

// mapOne maps a row of a table, or decodes a JSONL line.
func mapOne(p *plan, source schemas.Source, r row, now time.Time) mapped {
	if r.malformed != "" {
		return mapped{line: r.line, rej: &Reject{Line: r.line, Reason: ReasonMalformedRow, Detail: r.malformed}}
	}
	if p != nil {
		return p.mapRow(r.line, r.cells, r.kinds, now)
	}
	return decodeLine(source, r.line, r.text, now)
}

// decodeLine validates a JSONL line as the hub will. A legacy 15-digit
// subject or spouse_id is upgraded first; the event is sent in its
// canonical encoding.
func decodeLine(source schemas.Source, line int, text []byte, now time.Time) mapped {
	out := mapped{line: line}
	topic := schemas.Topic(source)
	ev, err := schemas.Decode(schemas.Input{Topic: topic, Value: text, Now: now})
	if r := schemas.ReasonOf(err); r == schemas.ReasonInvalidSubject || r == schemas.ReasonInvalidData {
		if up, n := upgradeLegacy(text); n > 0 {
			// With its IDs upgraded the line is judged as sent: a bad
			// time or field is what to report, not the IDs' length.
			ev, err = schemas.Decode(schemas.Input{Topic: topic, Value: up, Now: now})
			if err == nil {
				out.upgraded = n
			}
		}
	}
	if err != nil {
		var re *schemas.RejectError
		if errors.As(err, &re) {
			out.rej = &Reject{Line: line, Reason: re.Reason, Field: re.Field, Detail: re.Detail}
		} else {
			out.rej = &Reject{Line: line, Reason: schemas.ReasonNotCloudEvent, Detail: err.Error()}
		}
		return out
	}
	value, err := schemas.Encode(ev)
	if err != nil {
		out.rej = &Reject{Line: line, Reason: schemas.ReasonInvalidData, Field: "data", Detail: err.Error()}
		return out
	}
	out.id, out.key, out.value = ev.ID, []byte(ev.Subject), value
	return out
}

// upgradeLegacy rewrites a 15-digit subject and data.spouse_id to 18
// digits, returning the new line and how many it upgraded.
func upgradeLegacy(text []byte) ([]byte, int) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(text, &env); err != nil {
		return nil, 0
	}
	n := 0
	up := func(raw json.RawMessage) (json.RawMessage, bool) {
		s, err := strconv.Unquote(string(raw))
		if err != nil || len(s) != 15 {
			return raw, false
		}
		id, err := citizenid.Upgrade15(s)
		if err != nil {
			return raw, false
		}
		n++
		return json.RawMessage(strconv.Quote(string(id))), true
	}
	if v, ok := env["subject"]; ok {
		env["subject"], _ = up(v)
	}
	if d, ok := env["data"]; ok {
		var data map[string]json.RawMessage
		if json.Unmarshal(d, &data) == nil {
			if v, ok := data["spouse_id"]; ok {
				if nv, changed := up(v); changed {
					data["spouse_id"] = nv
					if b, err := json.Marshal(data); err == nil {
						env["data"] = b
					}
				}
			}
		}
	}
	if n == 0 {
		return nil, 0
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, 0
	}
	return b, n
}

// The spool holds the validated events between the passes, so that what
// is sent is exactly what was validated, without mapping and decoding
// every line twice: per event, uvarint line, then length-prefixed id, key
// and value. It is a temporary file (mode 0600), removed when Run returns.
func writeSpool(w *bufio.Writer, m *mapped) error {
	var buf [binary.MaxVarintLen64]byte
	w.Write(buf[:binary.PutUvarint(buf[:], uint64(m.line))])
	for _, b := range [][]byte{[]byte(m.id), m.key, m.value} {
		w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(b)))])
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("writing spool: %w", err)
		}
	}
	return nil
}

// spooled is one validated event read back from the spool.
type spooled struct {
	line       int
	id         string
	key, value []byte
}

func readSpool(r *bufio.Reader) (spooled, error) {
	line, err := binary.ReadUvarint(r)
	if err != nil {
		return spooled{}, err // io.EOF at the end
	}
	var parts [3][]byte
	for i := range parts {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return spooled{}, fmt.Errorf("reading spool: %w", io.ErrUnexpectedEOF)
		}
		parts[i] = make([]byte, n)
		if _, err := io.ReadFull(r, parts[i]); err != nil {
			return spooled{}, fmt.Errorf("reading spool: %w", err)
		}
	}
	return spooled{line: int(line), id: string(parts[0]), key: parts[1], value: parts[2]}, nil
}

// rejectsFile writes the rejected lines as validation finds them, each
// with its reason, as CSV in UTF-8 with a byte order mark (so that
// spreadsheet programs open it): line, reason, field, column, detail, then
// the line's own cells (or, for JSONL and for a CSV line whose quoting
// keeps it from being split into cells, the line). It writes to a temporary
// file beside the rejects file and puts it in place when validation has
// gone through, so that an interrupted run leaves the last complete one.
// The file holds personal data, like the input: mode 0600.
type rejectsFile struct {
	path   string
	header []string // the file's column names; nil for JSONL
	// typed writes a workbook row's cells as a CSV file for the mapping
	// holds them (plan.asTyped); nil for a CSV or JSONL file, whose lines
	// are copied as they are.
	typed func(cells []string, kinds []cellKind) []string
	f     *os.File // nil until the first reject
	bw    *bufio.Writer
	w     *csv.Writer
}

func (r *rejectsFile) add(rej *Reject, line row) error {
	if r.f == nil {
		f, err := os.CreateTemp(filepath.Dir(r.path), filepath.Base(r.path)+".*")
		if err != nil {
			return fmt.Errorf("creating rejects file: %w", err)
		}
		r.f, r.bw = f, bufio.NewWriterSize(f, 1<<16)
		r.bw.WriteString(bom)
		r.w = csv.NewWriter(r.bw)
		head := []string{"line", "reason", "field", "column", "detail"}
		if r.header != nil {
			head = append(head, r.header...)
		} else {
			head = append(head, "original")
		}
		r.w.Write(head)
	}
	rec := []string{strconv.Itoa(rej.Line), rej.Reason, rej.Field, rej.Column, rej.Detail}
	if line.text != nil {
		rec = append(rec, string(line.text))
	} else if r.typed != nil {
		rec = append(rec, r.typed(line.cells, line.kinds)...)
	} else {
		rec = append(rec, line.cells...)
	}
	// The file is UTF-8: bytes that are not (a UTF-8 file's, or invalid
	// GBK, see strictGB18030) show as U+FFFD where they were.
	for i := 5; i < len(rec); i++ {
		rec[i] = strings.ToValidUTF8(rec[i], "\uFFFD")
	}
	if err := r.w.Write(rec); err != nil {
		return fmt.Errorf("writing rejects file: %w", err)
	}
	return nil
}

// finish puts the rejects file in place, or, with no rejects, removes a
// stale one of an earlier run; it returns the file's path ("" if none).
func (r *rejectsFile) finish() (string, error) {
	if r.f == nil {
		if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("removing stale rejects file: %w", err)
		}
		return "", nil
	}
	r.w.Flush()
	err := errors.Join(r.w.Error(), r.bw.Flush(), r.f.Close())
	if err == nil {
		err = os.Rename(r.f.Name(), r.path)
	}
	if err != nil {
		os.Remove(r.f.Name())
		return "", fmt.Errorf("writing rejects file: %w", err)
	}
	r.f = nil
	return r.path, nil
}

// discard removes what was written, when validation did not go through.
func (r *rejectsFile) discard() {
	if r.f != nil {
		r.f.Close()
		os.Remove(r.f.Name())
		r.f = nil
	}
}
