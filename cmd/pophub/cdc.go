package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/adapters/cdc"
	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/schemas"
)

// cdcCommand streams a department's own PostgreSQL table to the hub.
func cdcCommand(newLogger func() *slog.Logger) *cobra.Command {
	var source, postgres, table, mapping, brokers, slot, publication string
	var ca *caFlag
	var login *kafkaLogin
	var otlp *otlpFlag
	cmd := &cobra.Command{
		Use:   "cdc --source S --postgres URL --table T --mapping mapping.yaml",
		Short: "Stream a department's PostgreSQL table to the hub by change data capture",
		Long: `Streams the inserts, updates and deletes of one table of a department's own
PostgreSQL database to pop.events.<source> through logical replication, turning
rows into events with a YAML mapping (see adapters/cdc/examples/rentals.yaml).
On first start it creates the publication pophub_<table> and the replication
slot pophub_<source>_<table> (--publication and --slot name others) and sends
the rows already in the table. <table> is --table in lower case, with _ for
what is not a letter or digit; a name with non-ASCII characters, or too long
for PostgreSQL's 63 bytes, drops what does not fit and ends with _ and 8 hex
digits of a hash of --table, so that every table has its own (the slot of
租赁备案 in housing is pophub_housing_9a5b7eb9); a table streamed before under
the names earlier versions gave it keeps them. The slot holds the position: a
restart loses nothing and repeats nothing. The default names are the same
for every spelling of the table (rentals, public.rentals), and a slot the
table was streamed under with another spelling is continued.

The slot keeps the department's WAL from its position on: while pophub cdc is
stopped, WAL accumulates on the database server until its disk fills. The
progress log says how much (retained_wal_bytes), and each start warns about
inactive slots of the table with the SQL to drop them. To stop streaming a
table for good, drop its slot: SELECT pg_drop_replication_slot('<slot>');
(and DROP PUBLICATION <publication>; when no other source streams the table).
A slot the server invalidated (its WAL outgrew max_slot_wal_keep_size) stops
the stream with the SQL that drops it; the start after the drop copies the
table again, and rows deleted in between are not ended in the hub.

The database needs wal_level=logical and a user with REPLICATION that owns the
publication (see adapters/cdc for the grants). Runs until interrupted. With
--otlp, each produce request is a span whose trace context its records carry.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			src := schemas.Source(source)
			if !src.Valid() {
				return fmt.Errorf("--source: %q is not a department source (one of %v)", source, schemas.Sources)
			}
			switch {
			case postgres == "":
				return errors.New("--postgres is required (or POPHUB_CDC_POSTGRES)")
			case table == "":
				return errors.New("--table is required")
			case mapping == "":
				return errors.New("--mapping is required")
			}
			m, err := cdc.LoadMapping(mapping)
			if err != nil {
				return err
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
			tel, err := otlp.setup(cmd.Context(), "pophub-cdc", startsTraces, log)
			if err != nil {
				return err
			}
			defer shutdownTelemetry(tel, log)
			pub, err := publisher.New(publisher.Config{Brokers: splitList(brokers), TLS: tc, SASL: mech, Source: src, Logger: log,
				TracerProvider: tel.TracerProvider, Propagator: tel.Propagator})
			if err != nil {
				return fmt.Errorf("creating publisher: %w", err)
			}
			defer pub.Close()
			s, err := cdc.New(cdc.Config{Source: src, Postgres: postgres, Table: table, Mapping: m,
				Publisher: pub, Slot: slot, Publication: publication, Logger: log})
			if err != nil {
				return err
			}
			err = s.Run(cmd.Context())
			st := s.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d existing rows copied, %d events published, %d bad rows, %d legacy IDs upgraded, %d changes ignored; confirmed %s\n",
				table, st.Snapshot, st.Published, st.Rejected, st.Upgraded, st.Ignored, st.Confirmed)
			if st.Truncated > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d truncates; the rows they removed are not ended in the hub (the log says how to send their ends)\n",
					table, st.Truncated)
			}
			if st.RetainedWAL >= 0 {
				// Stopped, the slot keeps WAL growing until the next start.
				fmt.Fprintln(cmd.OutOrStdout(), cdcStopAdvice(s.Slot(), s.Publication(), st.RetainedWAL))
			}
			if errors.Is(err, context.Canceled) {
				return nil // interrupted: a clean stop
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "department source: the events' source and topic (required)")
	f.StringVar(&postgres, "postgres", envOr("POPHUB_CDC_POSTGRES", ""), "the department database's URL; its user needs REPLICATION (env POPHUB_CDC_POSTGRES)")
	f.StringVar(&table, "table", "", "the table to stream, optionally schema-qualified (required)")
	f.StringVar(&mapping, "mapping", "", "YAML mapping of the table's rows to events (required)")
	f.StringVar(&brokers, "kafka", envOr("POPHUB_KAFKA", "127.0.0.1:19092"), "comma-separated Kafka bootstrap brokers (env POPHUB_KAFKA; default: pophub dev's)")
	f.StringVar(&slot, "slot", "", "replication slot name (default pophub_<source>_<table>)")
	f.StringVar(&publication, "publication", "", "publication name (default pophub_<table>)")
	ca = addCAFlag(f)
	login = addKafkaLoginFlags(f, "the department's identity in the access policy")
	otlp = addOTLPFlag(f)
	return cmd
}

// cdcStopAdvice says, when pophub cdc stops, what its slot keeps and how
// to stop streaming for good: drop the slot, which keeps WAL, and the
// publication, which, while it publishes a table's updates and deletes,
// makes PostgreSQL refuse them should the table lose its replica
// identity.
func cdcStopAdvice(slot, publication string, retained int64) string {
	return fmt.Sprintf("slot %s keeps %d bytes of WAL on the database server, and more while stopped; "+
		"to stop streaming for good: SELECT pg_drop_replication_slot('%s'); and, unless another source streams the table, DROP PUBLICATION %s;",
		slot, retained, slot, publication)
}
