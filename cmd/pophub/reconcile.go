package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/reconcile"
	"github.com/pophub/pophub/schemas"
)

// reconcileCommand is `pophub reconcile`: prove that every record up to the
// hub's committed offsets was applied, was a duplicate, or is in the DLQ.
func reconcileCommand() *cobra.Command {
	var hubURL, brokers, group, source, token string
	var ca *caFlag
	var login *kafkaLogin
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Check that every record up to the committed offsets was applied, a duplicate, or rejected (exit 1 on a gap)",
		Long: `Reconciles the source topics against the DLQ and the hub's store, independently
of the hub's counters. For each source topic partition it scans the records from
the log start up to the consumer group's committed offset and classifies each:

  rejected   the DLQ holds a copy made from its topic, partition and offset
  applied    the store holds its (source, id) and it is the first such record
  duplicate  the store holds its (source, id) and an earlier record carried it
  skipped    shaped like a transaction marker (4-byte key, 6-byte value), which
             the hub skips without a DLQ copy; shown as "+ N skipped as
             transaction markers" in the equation when there are some
  gap        none of these: the hub committed past a record it lost

Offsets between the committed offset and a higher log start are "expired
unread": retention deleted them before the hub read them, and they count
as lost.

and prints, per source,

  housing: 12,345 records up to committed offsets = 12,000 applied + 300 duplicates + 45 rejected; gap 0

then every gap (topic/partition@offset and event id, never a citizen ID or a
record value). Records past the committed offsets are in flight and not checked.
The exit status is 1 when there is a gap. The store is asked through the hub's
admin API (POST /v1/admin/known-events).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tc, err := ca.tls()
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			mech, err := login.mechanism()
			if err != nil {
				return err
			}
			hc := newHTTPClient(tc, 60*time.Second)
			group, err := hubGroup(cmd.Context(), hc, hubURL, token, group)
			if err != nil {
				return err
			}
			cfg := reconcile.Config{Brokers: splitList(brokers), Group: group, TLS: tc, SASL: mech,
				Store: &reconcile.HubClient{URL: hubURL, Token: token, HTTP: hc}}
			if source != "" {
				s := schemas.Source(source)
				if !s.Valid() {
					return fmt.Errorf("--source: unknown source %q", source)
				}
				cfg.Sources = []schemas.Source{s}
			}
			start := time.Now()
			rep, err := reconcile.Run(cmd.Context(), cfg)
			if err != nil {
				return fmt.Errorf("reconciling: %w", err)
			}
			out := cmd.OutOrStdout()
			if err := rep.Write(out); err != nil {
				return err
			}
			fmt.Fprintf(out, "group %s; %s DLQ records read; took %s\n", rep.Group, reconcile.Commas(rep.DLQRecords), time.Since(start).Round(time.Millisecond))
			if n := rep.Gaps(); n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "pophub reconcile: %d records lost (gap)\n", n)
				// A store restored from a backup is the common cause, and
				// one the hub cannot see: its offsets are past the backup.
				fmt.Fprintf(cmd.ErrOrStderr(), "if the store was restored from a backup, stop every hub instance and run "+
					"`pophub offsets rewind --group %s --to-time <time of the backup>`: the hub then reads the records since again "+
					"and drops those its store already holds\n", rep.Group)
				return exitError(1)
			}
			return nil
		},
	}
	ca = hubFlags(cmd, &hubURL, &token)
	cmd.Flags().StringVar(&brokers, "kafka", envOr("POPHUB_KAFKA", "127.0.0.1:19092"), "comma-separated Kafka bootstrap brokers (env POPHUB_KAFKA; default: pophub dev's)")
	cmd.Flags().StringVar(&group, "group", os.Getenv("POPHUB_GROUP"), "the hub's consumer group, checked against the one the hub reports (env POPHUB_GROUP; default: the hub's)")
	cmd.Flags().StringVar(&source, "source", "", "check only this source's topic")
	login = addKafkaLoginFlags(cmd.Flags(), "an administrator of the access policy")
	return cmd
}

// hubGroup returns the consumer group to reconcile: the one the hub at
// hubURL reports it consumes with. A group given by the operator must be
// that one: another group's committed offsets say nothing about what this
// hub applied, and reconciling them would report "gap 0" having checked
// nothing.
func hubGroup(ctx context.Context, hc *http.Client, hubURL, token, given string) (string, error) {
	body, err := getStatus(ctx, hc, hubURL, token)
	if err != nil {
		return "", err
	}
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return "", fmt.Errorf("decoding the hub's status: %w", err)
	}
	var reported string
	if st.Ingest != nil {
		reported = st.Ingest.Group
	}
	switch {
	case reported == "" && given == "":
		return "", fmt.Errorf("the hub at %s does not report its consumer group: give --group", hubURL)
	case reported == "":
		return given, nil
	case given != "" && given != reported:
		return "", fmt.Errorf("--group %s is not the consumer group of the hub at %s, which consumes as %s", given, hubURL, reported)
	}
	return reported, nil
}

// hubFlags adds --hub, --token and --ca, for commands that talk to a
// running hub.
func hubFlags(cmd *cobra.Command, hubURL, token *string) *caFlag {
	cmd.Flags().StringVar(hubURL, "hub", envOr("POPHUB_URL", "http://127.0.0.1:8780"), "the hub's HTTP API (env POPHUB_URL)")
	cmd.Flags().StringVar(token, "token", envOr("POPHUB_TOKEN", ""), "bearer token for the admin API (env POPHUB_TOKEN)")
	return addCAFlag(cmd.Flags())
}
