package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
)

func publishCommand(newLogger func() *slog.Logger) *cobra.Command {
	var source, file, brokers string
	var ca *caFlag
	var login *kafkaLogin
	var otlp *otlpFlag
	cmd := &cobra.Command{
		Use:   "publish --source S --file events.jsonl",
		Short: "Publish a file of CloudEvents (one JSON event per line) to the hub's Kafka topics",
		Long: `Validates every line locally and publishes the valid events to pop.events.<source>,
keyed by the citizen ID, waiting for the broker's acknowledgement. Bad lines are
reported with their line number and are not sent; the exit status is 1 if any line
was bad. A line with the source and id of an earlier line is bad (duplicate_id,
naming that line): the hub would drop it as a repeat, so a change needs an id of
its own. The same event repeated is not bad: it is reported with its line number
and counted as repeated, sent once, and leaves the exit status 0.
Re-publishing a file is harmless: the hub applies each (source, id) once.
An interrupt (Ctrl-C, SIGTERM) stops it at once, even while it waits for a named
pipe or standard input (--file /dev/stdin) that has nothing to give: it prints how
many lines it read and published (lines read and not yet sent are not published)
and exits 1; publish the file again.
With --otlp, each produce request is a span whose trace context the records carry,
so the hub and the subscribers continue its trace.`,
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
			tel, err := otlp.setup(cmd.Context(), "pophub-publish", startsTraces, log)
			if err != nil {
				return err
			}
			defer shutdownTelemetry(tel, log) // after Close: the last produce's span has ended
			pub, err := publisher.New(publisher.Config{Brokers: splitList(brokers), TLS: tc, SASL: mech, Source: src, Logger: log,
				TracerProvider: tel.TracerProvider, Propagator: tel.Propagator})
			if err != nil {
				return fmt.Errorf("creating publisher: %w", err)
			}
			defer pub.Close()
			rep, err := pub.PublishFile(cmd.Context(), file)
			out := cmd.OutOrStdout()
			if err != nil {
				// The report says how far it got before the failure (an
				// interrupt, a broker gone): the department needs to know
				// that sending it all again is the remedy, and safe.
				printFileReport(out, rep)
				printFileCounts(out, file, rep)
				again := "publish the file again"
				if !publisher.Retriable(err) {
					// A refused login, a missing topic: sending again
					// as it is fails the same way.
					again += " once that is fixed"
				}
				return fmt.Errorf("publishing %s: %w; %s: the hub applies each event once", file, err, again)
			}
			printFileReport(out, rep)
			printFileCounts(out, file, rep)
			// Repeats call for no fix, so they do not fail the command: a
			// file published again after lines were appended must not.
			if rep.BadLines > 0 {
				return exitError(1)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "department source: the events' source and topic (required)")
	f.StringVar(&file, "file", "", "JSONL file of CloudEvents (required)")
	f.StringVar(&brokers, "kafka", envOr("POPHUB_KAFKA", "127.0.0.1:19092"), "comma-separated Kafka bootstrap brokers (env POPHUB_KAFKA; default: pophub dev's)")
	ca = addCAFlag(f)
	login = addKafkaLoginFlags(f, "the department's identity in the access policy")
	otlp = addOTLPFlag(f)
	return cmd
}

// printFileReport prints the listed bad and repeated lines of rep, in
// line order, and how many more there are than listed.
func printFileReport(out io.Writer, rep publisher.FileReport) {
	bad, repeats := rep.Bad, rep.Repeats
	for len(bad) > 0 || len(repeats) > 0 {
		if len(repeats) == 0 || len(bad) > 0 && bad[0].Line < repeats[0].Line {
			fmt.Fprintf(out, "line %d: %v\n", bad[0].Line, bad[0].Err)
			bad = bad[1:]
			continue
		}
		r := repeats[0]
		fmt.Fprintf(out, "line %d: repeats line %d exactly (the same event): harmless, only line %d is sent; nothing to fix (delete the line to silence this)\n", r.Line, r.First, r.First)
		repeats = repeats[1:]
	}
	if more := rep.BadLines - len(rep.Bad); more > 0 {
		fmt.Fprintf(out, "… and %d more bad lines\n", more)
	}
	if more := rep.Repeated - len(rep.Repeats); more > 0 {
		fmt.Fprintf(out, "… and %d more repeated lines\n", more)
	}
}

// printFileCounts prints the summary line of rep.
func printFileCounts(out io.Writer, file string, rep publisher.FileReport) {
	fmt.Fprintf(out, "%s: %d lines read, %d published, %d bad", file, rep.Read, rep.Published, rep.BadLines)
	if rep.Repeated > 0 {
		fmt.Fprintf(out, ", %d repeated (harmless, sent once)", rep.Repeated)
	}
	fmt.Fprintln(out)
}

// healthcheckCommand probes a URL; the container image has no curl.
func healthcheckCommand() *cobra.Command {
	var url string
	var ca *caFlag
	cmd := &cobra.Command{
		Use:    "healthcheck",
		Short:  "Exit 0 if the URL answers 200 (for container health checks)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			hc, err := ca.httpClient(0)
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %s", url, resp.Status)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8780/readyz", "URL to probe")
	ca = addCAFlag(cmd.Flags())
	return cmd
}
