package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/term"

	"github.com/pophub/pophub/adapters/importer"
	"github.com/pophub/pophub/schemas"
)

func importCommand(newLogger func() *slog.Logger) *cobra.Command {
	var source, file, format, mapping, encoding, delimiter, brokers, rejects string
	var dryRun, stream bool
	var rejectLimit int
	var ca *caFlag
	var login *kafkaLogin
	var otlp *otlpFlag
	cmd := &cobra.Command{
		Use:   "import --source S --file F [--format csv|jsonl|xlsx] [--mapping mapping.yaml] [--dry-run] [--reject-limit N | --stream]",
		Short: "Import a department's export file (CSV, XLSX or JSONL) into the hub's Kafka topics",
		Long: `Maps each row of a department's table to a CloudEvent with a mapping file (the
shipped example for the source when --mapping is not given; JSONL needs none),
validates every line as the hub will and reports every bad line, writing them
with their reasons to F.rejects.csv. Unless --dry-run, the valid lines are then
sent to pop.events.<source>; with --reject-limit N, nothing is sent when N lines
or more were rejected (a wrong mapping or a broken export, most likely). With
--stream, valid lines are sent while later ones are still being validated:
faster on large exports, but lines go out before every bad line is known.
Legacy 15-digit ID numbers are upgraded to 18.

An interrupted import resumes where it stopped when run again on the same file
(checkpoint F.pophub-import.json): no line is sent twice. The checkpoint also
records the lines rejected, and a later run of the same file sends those that
are valid by then (a time that lay in the future, say), even after a complete
import. A UTF-8 file told to be GBK (by the mapping or --encoding) is refused
before it is read: set encoding: auto in the mapping, or --encoding auto. A line that repeats
an earlier one exactly (the same row twice) is sent once and counted as
repeated, not rejected: it calls for no fix. The exit status is 1 if any line
was rejected. With --otlp, the import is one span whose trace context
every record sent carries.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			src := schemas.Source(source)
			if !src.Valid() {
				return fmt.Errorf("--source: %q is not a department source (one of %v)", source, schemas.Sources)
			}
			if file == "" {
				return errors.New("--file is required")
			}
			tc, err := ca.tls()
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			mech, err := login.mechanism()
			if err != nil {
				return err
			}
			log := newLogger()
			tel, err := otlp.setup(cmd.Context(), "pophub-import", startsTraces, log)
			if err != nil {
				return err
			}
			defer shutdownTelemetry(tel, log)
			cfg := importer.Config{TLS: tc, SASL: mech, Source: src, File: file, Format: importer.Format(format), Encoding: encoding, Delimiter: delimiter,
				DryRun: dryRun, Stream: stream, RejectLimit: rejectLimit, Brokers: splitList(brokers), RejectsFile: rejects, Logger: log,
				Progress: os.Stderr, Terminal: term.IsTerminal(int(os.Stderr.Fd()))}
			if cfg.Format == "" {
				cfg.Format = importer.FormatOf(file)
			}
			if cfg.Format != importer.JSONL {
				var err error
				if mapping != "" {
					cfg.Mapping, err = importer.LoadMapping(mapping)
					if errors.Is(err, fs.ErrNotExist) {
						err = fmt.Errorf("%w (leave out --mapping to use the example mapping of --source %s, which ships in the binary; "+
							"the examples to copy and adapt are in adapters/importer/mappings/ of the source tree)", err, src)
					}
				} else {
					cfg.Mapping, err = importer.ExampleMapping(src)
				}
				if err != nil {
					return err
				}
			}
			rep, err := runImport(cmd.Context(), tel.Tracer("github.com/pophub/pophub/cmd/pophub"), cfg)
			if rep == nil {
				return err // a configuration error: nothing was done
			}
			out := cmd.OutOrStdout()
			for _, r := range rep.Rejects {
				fmt.Fprintln(out, r)
			}
			if more := rep.Rejected - len(rep.Rejects); more > 0 {
				fmt.Fprintf(out, "… and %d more rejected lines, listed in the rejects file\n", more)
			}
			// Apart from the rejects: they call for no fix.
			for _, r := range rep.Repeats {
				fmt.Fprintln(out, r)
			}
			if more := rep.Repeated - len(rep.Repeats); more > 0 {
				fmt.Fprintf(out, "… and %d more repeated lines\n", more)
			}
			fmt.Fprintln(out, importSummary(rep, err))
			if rep.RejectsFile != "" {
				fmt.Fprintf(out, "rejected lines written to %s\n", rep.RejectsFile)
			}
			if err != nil {
				// Only an import that stopped while sending has something
				// to resume; a refused file, a changed one, or one that
				// could not be read or mapped fails the same way again.
				if rep.Resumable && !errors.Is(err, importer.ErrFileChanged) {
					return fmt.Errorf("importing %s: %w (run again to resume)", file, err)
				}
				return fmt.Errorf("importing %s: %w", file, err)
			}
			// Repeats call for no fix, so they do not fail the command,
			// as with pophub publish: a nightly export with a row twice
			// must not fail every night.
			if rep.Rejected > 0 {
				return exitError(1)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "department source: the events' source and topic (required)")
	f.StringVar(&file, "file", "", "the file to import (required)")
	f.StringVar(&format, "format", "", "csv, jsonl or xlsx (default: from the file's extension)")
	f.StringVar(&mapping, "mapping", "", "mapping file for csv and xlsx (default: the example mapping of the source)")
	f.StringVar(&encoding, "encoding", "", "encoding of a csv file: auto (detect, even over the mapping's), utf-8 or gbk (default: the mapping's, else detected)")
	f.StringVar(&delimiter, "delimiter", "", "delimiter of a csv file's cells: , ; | or tab (default: the mapping's, else ,)")
	f.BoolVar(&dryRun, "dry-run", false, "validate and report only; send nothing")
	f.BoolVar(&stream, "stream", false, "send valid lines while later ones are still being validated (not with --reject-limit)")
	f.IntVar(&rejectLimit, "reject-limit", 0, "send nothing when this many lines or more are rejected (1: any bad line; 0: no limit)")
	f.StringVar(&rejects, "rejects", "", "file for the rejected lines (default: FILE.rejects.csv)")
	f.StringVar(&brokers, "kafka", envOr("POPHUB_KAFKA", "127.0.0.1:19092"), "comma-separated Kafka bootstrap brokers (env POPHUB_KAFKA; default: pophub dev's)")
	ca = addCAFlag(f)
	login = addKafkaLoginFlags(f, "the department's identity in the access policy")
	otlp = addOTLPFlag(f)
	return cmd
}

// importSummary is the one-line account of an import that returned err.
// A finished one, or one refused at the reject limit, is the importer's
// Summary. One that stopped is accounted for from what the report knows
// for sure. The lines read but not checked when it stopped are counted as
// such, so that the counts add up (read = valid + rejected + repeated +
// not checked). And Report.Sent counts only the records
// whose acknowledgement came back: the chunk being sent when the import
// stopped may have been written in part or in whole (the broker
// acknowledged records the client never heard about). So a stopped import
// says how many records were acknowledged at least, and how many more may
// have been sent: at most the valid lines neither acknowledged in this run
// nor found sent by an earlier one, which a resumed run looks for on the
// topic before sending them.
func importSummary(rep *importer.Report, err error) string {
	if err == nil || rep.Refused() {
		return rep.Summary()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: stopped: %d read: %d valid, %d rejected", filepath.Base(rep.File), rep.Read, rep.Valid, rep.Rejected)
	if by := rep.ByReason(); len(by) > 0 {
		for i, k := range slices.Sorted(maps.Keys(by)) {
			sep := ", "
			if i == 0 {
				sep = " ("
			}
			fmt.Fprintf(&b, "%s%s %d", sep, k, by[k])
		}
		b.WriteString(")")
	}
	if rep.Repeated > 0 {
		fmt.Fprintf(&b, ", %d repeated (the same row as an earlier line: not sent twice, nothing to fix)", rep.Repeated)
	}
	if unchecked := rep.Read - rep.Valid - rep.Rejected - rep.Repeated; unchecked > 0 {
		fmt.Fprintf(&b, ", %d not checked", unchecked)
	}
	unconfirmed := max(rep.Valid-rep.Sent-rep.AlreadySent, 0)
	switch {
	case rep.DryRun:
		b.WriteString("; dry run: nothing sent")
	case rep.Sent == 0 && rep.AlreadySent == 0 && !rep.Resumable:
		// Sending had not begun, in this run or an earlier one.
		b.WriteString("; nothing sent")
	case errors.Is(err, importer.ErrFileChanged), unconfirmed == 0:
		// A changed file stops the validation, not the sending: every
		// chunk handed on was acknowledged.
		fmt.Fprintf(&b, "; %d sent", rep.Sent)
	default:
		fmt.Fprintf(&b, "; at least %d acknowledged, up to %d more may have been sent", rep.Sent, unconfirmed)
	}
	if rep.AlreadySent > 0 {
		fmt.Fprintf(&b, " (%d already sent by an earlier run)", rep.AlreadySent)
	}
	if rep.SetAside != "" {
		fmt.Fprintf(&b, " (afresh: %s)", rep.SetAside)
	}
	fmt.Fprintf(&b, "; %d legacy IDs upgraded", rep.Upgraded)
	if rep.Separators > 0 {
		// The lines sent carry · for what was typed, stopped or not.
		fmt.Fprintf(&b, ", %d name separators replaced by the middle dot ·", rep.Separators)
	}
	fmt.Fprintf(&b, ", %s", rep.Elapsed.Round(time.Millisecond))
	return b.String()
}

// runImport runs the import under a producer span. The importer starts no
// spans of its own; it puts the trace context of the one it is given into
// the headers of every record it sends. No attribute names the file (its
// name is the department's choice) or a line's content.
func runImport(ctx context.Context, tracer trace.Tracer, cfg importer.Config) (*importer.Report, error) {
	topic := schemas.Topic(cfg.Source)
	ctx, span := tracer.Start(ctx, "import "+topic, trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.operation.name", "import"),
			attribute.String("messaging.destination.name", topic),
			attribute.Bool("pophub.import.dry_run", cfg.DryRun))
	}
	rep, err := importer.Run(ctx, cfg)
	if rep != nil && span.IsRecording() {
		span.SetAttributes(
			attribute.Int("pophub.import.read", rep.Read),
			attribute.Int("pophub.import.rejected", rep.Rejected),
			attribute.Int("pophub.import.repeated", rep.Repeated),
			attribute.Int("pophub.import.sent", rep.Sent))
	}
	if err != nil {
		span.SetStatus(codes.Error, "import failed")
	}
	return rep, err
}
