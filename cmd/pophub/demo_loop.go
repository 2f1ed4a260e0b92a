package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/socialinsurance"
	"github.com/pophub/pophub/consumers/statsbureau"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/schemas"
)

// demoRegion is the city whose statistics and social-insurance bureau the
// demo shows: Harbin, where most of the synthetic population lives.
const demoRegion = "2301"

// demoBureau is the identity of Harbin's social-insurance bureau in the
// example access policy.
const demoBureau = "si-harbin"

// demoStatistics prints Harbin's registered population by urban/rural
// class today, district by district, as the statistics bureau pulls it.
func demoStatistics(ctx context.Context, out io.Writer, m *Main, creds demoCreds) error {
	c, err := statsbureau.New(statsbureau.Config{HubURL: "http://" + m.HTTPAddr(), Token: creds.token("stats-bureau"),
		Purpose: creds.purpose("stats-bureau", "")})
	if err != nil {
		return err
	}
	rep, err := c.Pull(ctx, demoRegion, "", 6)
	if err != nil {
		return fmt.Errorf("pulling statistics: %w", err)
	}
	fmt.Fprintf(out, "\nRegistered population of %s by urban/rural class as of %s (GET /v1/stats/urban-rural; page at http://%s/stats?region=%s):\n",
		rep.Rows[0].Name, rep.AsOf, m.HTTPAddr(), demoRegion)
	for _, r := range rep.Rows {
		if r.Total == (statsbureau.Count{}) && len(r.Code) > len(demoRegion) {
			continue
		}
		share := "" // the demo reads as the statistics bureau: nothing is hidden
		if r.UrbanShare != nil {
			share = fmt.Sprintf("  (%.0f%% urban)", 100**r.UrbanShare)
		}
		fmt.Fprintf(out, "  %-6s %-8s urban %6s  rural %6s  total %6s%s\n", r.Code, r.Name, r.Urban, r.Rural, r.Total, share)
	}
	return nil
}

// demoSocialInsurance closes the loop department → hub → subscriber → hub:
// Harbin's social-insurance subscriber turns the migrations and deaths
// into tasks in its own PostgreSQL schema, completes one transfer, which
// goes back to the hub as social_insurance.transferred through pub (the
// social_insurance department's publisher), and shows the person's golden
// record afterwards. Under an access policy the bureau is identity
// si-harbin throughout: its NATS user, a durable consumer per filter (it
// may not read the subject covering its three), its token and purpose for
// the read, which shows only the sections it may read. It needs PostgreSQL
// for the tasks and says so when there is none.
func demoSocialInsurance(ctx context.Context, out io.Writer, log *slog.Logger, m *Main, pub socialinsurance.EventPublisher,
	creds demoCreds, pgURL string) error {
	fmt.Fprintf(out, "\nSocial-insurance bureau of %s (pophub si-subscriber):\n", demoRegion)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	conn, err := pgx.Connect(pctx, pgURL)
	cancel()
	if err != nil {
		fmt.Fprintf(out, "  skipped: its tasks live in PostgreSQL and none answers at %s (--si-postgres)\n", postgres.Server(pgURL))
		return nil
	}
	schema := fmt.Sprintf("pophub_demo_si_%d", time.Now().UnixNano())
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		conn.Close(context.WithoutCancel(ctx))
	}()

	cfg := socialinsurance.Config{Region: demoRegion, NATS: m.NATSURL(), Postgres: pgURL, Schema: schema,
		Start: sdk.Start{Policy: sdk.StartAll}, Logger: log}
	reader := "" // who reads the golden record at the end
	if m.Access != nil {
		reader = demoBureau
		cfg.Name, cfg.ConsumerPerFilter = demoBureau, true
		cfg.NATSUser, cfg.NATSPassword, cfg.NATSInboxPrefix = creds.nats(demoBureau)
		fmt.Fprintf(out, "  as identity %s (NATS user %s), one durable consumer per filter, each on a subject the policy grants it:\n", demoBureau, cfg.NATSUser)
		for _, f := range socialinsurance.Filters(demoRegion) {
			subj := f.Subject("pop")
			fmt.Fprintf(out, "    %-20s %s\n", schemas.FilterConsumerName(demoBureau, subj), subj)
		}
	}
	svc, err := socialinsurance.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("starting the social-insurance subscriber: %w", err)
	}
	defer svc.Close()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(rctx) }()
	defer func() { stop(); <-done }()

	// Wait until the task list stops growing.
	var tasks []socialinsurance.Task
	err = waitSettled(ctx, done, 100*time.Millisecond, func(ctx context.Context) (int, error) {
		var err error
		if tasks, err = svc.Store().Tasks(ctx, socialinsurance.TaskFilter{Limit: 100000}); err != nil {
			return 0, fmt.Errorf("reading tasks: %w", err)
		}
		return len(tasks), nil
	})
	if err != nil {
		return err
	}
	kinds := map[string]int{}
	var transfer *socialinsurance.Task
	for i, t := range tasks {
		kinds[t.Kind]++
		if transfer == nil && t.Kind == socialinsurance.TransferOut {
			transfer = &tasks[i]
		}
	}
	fmt.Fprintf(out, "  tasks created    %d (transfer_out %d, transfer_in %d, stop_benefits %d), one per notification\n",
		len(tasks), kinds[socialinsurance.TransferOut], kinds[socialinsurance.TransferIn], kinds[socialinsurance.StopBenefits])
	if transfer == nil {
		return nil
	}

	before := m.Consumer.Counts().Applied
	if _, err := socialinsurance.Complete(ctx, svc.Store(), pub, transfer.ID); err != nil {
		return fmt.Errorf("completing task %d: %w", transfer.ID, err)
	}
	for m.Consumer.Counts().Applied == before {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the hub to apply the transfer: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "  completed task %d: transfer_out of %s from %s to %s, sent back as social_insurance.transferred\n",
		transfer.ID, transfer.CitizenID.Masked(), transfer.FromRegion, transfer.ToRegion)
	rec, err := getJSON(ctx, "http://"+m.HTTPAddr()+"/v1/persons/"+string(transfer.CitizenID), creds, reader)
	if err != nil {
		return err
	}
	if reader != "" {
		id, _ := m.Access.Identity(reader)
		fmt.Fprintf(out, "  the person's golden record now, as %s reads it (purpose %q; sections %s):\n%s\n",
			reader, creds.purpose(reader, ""), strings.Join(id.Read, ", "), rec)
		return nil
	}
	fmt.Fprintf(out, "  the person's golden record now:\n%s\n", rec)
	return nil
}

// waitSettled polls count every poll until it has returned the same number
// ten polls in a row, or thirty when that number is 0: a small population
// may give the subscriber nothing to do (no migration, no death), and the
// demo must then go on rather than wait for its timeout, but a subscriber
// that has not yet caught up also shows 0 at first, so an empty list is
// trusted only after a longer quiet. It returns early with the error of
// count, of ctx, or the one the subscriber stopped with on done.
func waitSettled(ctx context.Context, done <-chan error, poll time.Duration, count func(context.Context) (int, error)) error {
	for last, still := -1, 0; ; {
		n, err := count(ctx)
		if err != nil {
			return err
		}
		if n == last {
			still++
		} else {
			still, last = 0, n
		}
		if still >= 10 && n > 0 || still >= 30 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for tasks: %w", ctx.Err())
		case err := <-done:
			return fmt.Errorf("social-insurance subscriber stopped: %w", err)
		case <-time.After(poll):
		}
	}
}
