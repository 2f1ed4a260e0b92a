package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub/dlq"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// dlqCommand is `pophub dlq list|show|replay`: inspect the records the hub
// rejected and, after a fix, send chosen ones back to their topics.
func dlqCommand() *cobra.Command {
	var brokers string
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect rejected records (" + schemas.DLQTopic + ") and replay them after a fix",
		Long: `Inspects the dead-letter topic ` + schemas.DLQTopic + `, where the hub copies every record it
could not apply, and replays chosen records to their original topic.

A DLQ record is named PARTITION:OFFSET as 'dlq list' prints it (a bare OFFSET
works when the DLQ has one partition). Citizen IDs are masked (first four and
last four characters) everywhere, unless 'dlq show --reveal'.

Replay is idempotent: the DLQ records replayed are kept in the topic
` + dlq.LedgerTopic + ` and skipped next time; and the hub applies each
(source, event id) once, so a record sent twice anyway changes nothing.`,
	}
	cmd.PersistentFlags().StringVar(&brokers, "kafka", envOr("POPHUB_KAFKA", "127.0.0.1:19092"), "comma-separated Kafka bootstrap brokers (env POPHUB_KAFKA; default: pophub dev's)")
	ca := addCAFlag(cmd.PersistentFlags())
	login := addKafkaLoginFlags(cmd.PersistentFlags(), "an administrator of the access policy")
	client := func() (*dlq.Client, error) {
		tc, err := ca.tls()
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		mech, err := login.mechanism()
		if err != nil {
			return nil, err
		}
		return dlq.New(dlq.Config{Brokers: splitList(brokers), TLS: tc, SASL: mech})
	}
	cmd.AddCommand(dlqListCommand(client), dlqShowCommand(client), dlqReplayCommand(client))
	return cmd
}

func dlqListCommand(client func() (*dlq.Client, error)) *cobra.Command {
	var source, reason string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Count rejects by source and reason and list them (never their keys or values)",
		Args:  noArgsUse("--source S or --reason R to narrow the list"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			recs, err := c.Records(cmd.Context(), dlq.Filter{Source: schemas.Source(source), Reason: reason})
			if err != nil {
				return err
			}
			printList(cmd.OutOrStdout(), recs)
			return nil
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "only records from this source's topic")
	cmd.Flags().StringVar(&reason, "reason", "", "only records with this reject reason")
	return cmd
}

func printList(out io.Writer, recs []dlq.Record) {
	sum := dlq.Summarize(recs)
	fmt.Fprintf(out, "%s: %d records\n", schemas.DLQTopic, sum.Total)
	if sum.Total == 0 {
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSOURCE\tREASON\tRECORDS")
	for _, src := range slices.Sorted(maps.Keys(sum.Counts)) {
		for _, reason := range slices.Sorted(maps.Keys(sum.Counts[src])) {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", orDash(string(src)), text(reason), sum.Counts[src][reason])
		}
	}
	fmt.Fprintln(tw, "\nDLQ\tTIME\tORIGIN\tREASON\tFIELD\tERROR")
	for _, r := range recs {
		origin := "-"
		if r.Topic != "" {
			origin = printable([]byte(r.Topic)) + "/" + strconv.Itoa(r.Partition) + "@" + strconv.FormatInt(r.Offset, 10)
		}
		errText := printable([]byte(r.Error))
		if r.ReplayOf != "" {
			errText += " (replay of " + printable([]byte(r.ReplayOf)) + ")"
		}
		if r.ReplayClaim != "" {
			errText += " (claims to be a replay of " + printable([]byte(r.ReplayClaim)) + "; the replay ledger does not confirm it)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Time.UTC().Format(time.RFC3339), origin,
			text(r.Reason), citizenid.MaskText(text(r.Field)), citizenid.MaskText(errText))
	}
	tw.Flush()
}

func dlqShowCommand(client func() (*dlq.Client, error)) *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:   "show PARTITION:OFFSET",
		Short: "Print one rejected record in full: headers, key and value (citizen IDs masked)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := dlq.ParseID(args[0])
			if err != nil {
				return err
			}
			c, err := client()
			if err != nil {
				return err
			}
			r, err := c.Record(cmd.Context(), id)
			if err != nil {
				return err
			}
			printRecord(cmd.OutOrStdout(), r, reveal)
			return nil
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print citizen IDs in full")
	return cmd
}

func printRecord(out io.Writer, r dlq.Record, reveal bool) {
	mask := citizenid.MaskText
	if reveal {
		mask = func(s string) string { return s }
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "record:\t%s %s\n", schemas.DLQTopic, r.ID)
	fmt.Fprintf(tw, "time:\t%s\n", r.Time.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "reason:\t%s\n", text(r.Reason))
	// The field names a member, which a producer may have named with an
	// ID; records rejected before the decoder masked such names keep it.
	fmt.Fprintf(tw, "field:\t%s\n", mask(text(r.Field)))
	fmt.Fprintf(tw, "error:\t%s\n", mask(text(r.Error)))
	if r.Topic != "" {
		fmt.Fprintf(tw, "origin:\t%s partition %d offset %d\n", printable([]byte(r.Topic)), r.Partition, r.Offset)
	} else {
		fmt.Fprintf(tw, "origin:\tunknown (no pophub-topic header)\n")
	}
	if r.ReplayOf != "" {
		fmt.Fprintf(tw, "replay of:\t%s\n", printable([]byte(r.ReplayOf)))
	}
	if r.ReplayClaim != "" {
		fmt.Fprintf(tw, "replay claim:\t%s (not confirmed by the replay ledger: the record's own %s header, which a replay sends back)\n",
			printable([]byte(r.ReplayClaim)), dlq.HeaderReplayOf)
	}
	switch {
	case r.Dropped != "" && r.OriginalGone:
		fmt.Fprintf(tw, "left out:\t%s (the copy was too large for the DLQ, and its origin no longer holds the original: "+
			"deleted by the topic's retention, or with the topic; what was left out is lost)\n", printable([]byte(r.Dropped)))
	case r.Dropped != "" && r.OriginalUnknown != "":
		fmt.Fprintf(tw, "left out:\t%s (the copy was too large for the DLQ; whether its origin still holds the original is unknown: %s)\n",
			printable([]byte(r.Dropped)), printable([]byte(r.OriginalUnknown)))
	case r.Dropped != "":
		fmt.Fprintf(tw, "left out:\t%s (the copy was too large for the DLQ; the original is at its origin only until the topic's retention deletes it)\n",
			printable([]byte(r.Dropped)))
	}
	tw.Flush()
	fmt.Fprintln(out, "headers:")
	if len(r.Headers) == 0 {
		fmt.Fprintln(out, "  (none)")
	}
	for _, h := range r.Headers {
		fmt.Fprintf(out, "  %s: %s\n", mask(printable([]byte(h.Key))), mask(printable(h.Value)))
	}
	if r.Key == nil {
		fmt.Fprintln(out, "key: (none)")
	} else {
		fmt.Fprintf(out, "key: %s\n", mask(printable(r.Key)))
	}
	fmt.Fprintln(out, "value:")
	var pretty bytes.Buffer
	// Trailing white space (a value ending in CRLF) is not the value's.
	if json.Valid(r.Value) && utf8.Valid(r.Value) && json.Indent(&pretty, bytes.TrimRight(r.Value, " \t\r\n"), "  ", "  ") == nil {
		fmt.Fprintf(out, "  %s\n", mask(escapeControls(pretty.String())))
	} else {
		fmt.Fprintf(out, "  %s (not JSON)\n", mask(printable(r.Value)))
	}
}

func dlqReplayCommand(client func() (*dlq.Client, error)) *cobra.Command {
	var offsets []string
	var source, reason string
	var all, dryRun bool
	cmd := &cobra.Command{
		Use:   "replay (--offset PARTITION:OFFSET... | --source S [--reason R] | --reason R | --all) [--dry-run]",
		Short: "Send chosen rejects back to their original topic, once",
		Long: `Writes the chosen DLQ records back to the topic named in their pophub-topic
header, with their original key, value and headers (the pophub-* reject headers
removed, headers the department named pophub-* given back their names,
pophub-replay-of added), waiting for all in-sync replicas. A
pophub-replay-of the ledger does not confirm (a department may send one)
is the record's own header and goes back with it. Records
replayed before (per the ledger ` + dlq.LedgerTopic + `) are skipped.
Every chosen record is checked before anything is sent.

Choose the records one way: --offset names them; --source S chooses every
record from S's topic, --reason R every record with that reject reason, and
both together the records of S with reason R (as 'dlq list --source S
--reason R' lists them); --all chooses the whole DLQ. --offset and --all
take neither --source nor --reason.`,
		Args: noArgsUse("--offset PARTITION:OFFSET (repeatable), --source S, --reason R or --all"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sel := dlq.Selection{Source: schemas.Source(source), Reason: reason, All: all}
			for _, o := range offsets {
				id, err := dlq.ParseID(o)
				if err != nil {
					return err
				}
				sel.IDs = append(sel.IDs, id)
			}
			// An unknown source or reason is said as dlq list says it; a
			// wrong choice names the flags.
			if err := sel.Validate(); err != nil {
				if errors.Is(err, dlq.ErrSelection) {
					err = fmt.Errorf("%w (--offset; --source, --reason or both; or --all)", err)
				}
				return err
			}
			c, err := client()
			if err != nil {
				return err
			}
			res, err := c.Replay(cmd.Context(), sel, dryRun)
			printReplay(cmd.OutOrStdout(), res)
			return err
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&offsets, "offset", nil, "DLQ record PARTITION:OFFSET to replay (repeatable, or comma-separated)")
	f.StringVar(&source, "source", "", "replay every record from this source's topic (with --reason: those with that reason)")
	f.StringVar(&reason, "reason", "", "replay every record with this reject reason (with --source: from that source)")
	f.BoolVar(&all, "all", false, "replay every record in the DLQ")
	f.BoolVar(&dryRun, "dry-run", false, "print what would be replayed, send nothing")
	return cmd
}

// noArgsUse is cobra.NoArgs for a command that takes its input from a
// flag, naming the flag: cobra.NoArgs answers `unknown command "6:0" for
// "pophub dlq replay"`, which reads as a mistyped subcommand. The argument
// itself is not repeated: it might be a citizen ID.
func noArgsUse(flag string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%s takes no arguments: use %s", cmd.CommandPath(), flag)
		}
		return nil
	}
}

func printReplay(out io.Writer, res dlq.ReplayResult) {
	verb := "replayed"
	if res.DryRun {
		verb = "would replay"
	}
	for _, r := range res.Sent {
		fmt.Fprintf(out, "%s %s -> %s (%s)\n", verb, r.ID, printable([]byte(r.Topic)), text(r.Reason))
	}
	for _, r := range res.Skipped {
		fmt.Fprintf(out, "skipped %s: replayed before\n", r.ID)
	}
	fmt.Fprintf(out, "%d chosen, %d %s, %d skipped as replayed before\n", len(res.Chosen), len(res.Sent), verb, len(res.Skipped))
}

// printable shows bytes as text when they are valid UTF-8 without control
// characters or bidirectional formatting, quoted otherwise. Everything
// `dlq list`, `show` and `replay` print from a record goes through it (or
// text): a department fills the record's headers, names and values alike,
// and a raw escape sequence would run in the operator's terminal, a bidi
// override reorder what it shows. Other text, Chinese with its full-width
// spaces included, is shown as it is.
func printable(b []byte) string {
	s := string(b)
	if !utf8.ValidString(s) || strings.IndexFunc(s, unsafeToShow) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// unsafeToShow reports whether r must not reach a terminal raw: a control
// character, or a bidirectional control that reorders the text around it.
func unsafeToShow(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }

// escapeControls writes the control characters of indented JSON, but its
// line breaks, as \u escapes: valid JSON may hold DEL and the C1 controls
// (U+0080 to U+009F, CSI among them) raw in its strings, where the escape
// means the same.
func escapeControls(s string) string {
	var b strings.Builder
	for _, c := range s {
		if unsafeToShow(c) && c != '\n' {
			fmt.Fprintf(&b, `\u%04x`, c)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// text is a header's text from a record, printable, or "-" when empty.
func text(s string) string { return orDash(printable([]byte(s))) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
