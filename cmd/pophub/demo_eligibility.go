package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
)

// demoPolicy is the policy whose newly eligible persons the demo hub
// announces: settling in Daqing (黑政发〔2014〕25号 一（二）).
const demoPolicy = "heilongjiang/daqing"

// demoNewcomer is a worker registered in Qitaihe (230902) who moved to
// Daqing for a job.
var demoNewcomer = func() citizenid.ID {
	first := "230902199503120778"[:17]
	return citizenid.ID(first + string(citizenid.CheckChar(first)))
}()

// demoEmployer is the newcomer's employer's unified social credit code.
var demoEmployer = func() string {
	first := "91230600MA1C2D3E4"
	c, _ := codes.USCCCheckChar(first)
	return first + string(c)
}()

// demoEligibility shows a person becoming eligible to settle in Daqing
// from shared records alone: the departments' events put them one month of
// insurance short, the clerk's view says so; the social-insurance bureau's
// next contribution makes them eligible, the hub announces it on
// pop.eligibility, and the clerk's view now explains why.
func demoEligibility(ctx context.Context, out io.Writer, m *Main, pub *demoDepartments, creds demoCreds) error {
	fmt.Fprintf(out, "\nSettling in Daqing (%s), decided from shared records:\n", demoPolicy)
	js, err := jetstream.New(m.nc)
	if err != nil {
		return err
	}
	// Listen as a county's public-security bureau would.
	cons, err := js.OrderedConsumer(ctx, schemas.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{schemas.EligibilityFilter(demoPolicy, "2306")}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return fmt.Errorf("subscribing to eligibility notifications: %w", err)
	}

	now := time.Now().In(chinaTime)
	month := func(back int) time.Time {
		return time.Date(now.Year(), now.Month()-time.Month(back), 15, 9, 0, 0, 0, chinaTime)
	}
	day := func(t time.Time) string { return t.Format(time.DateOnly) }
	rentedSince, hiredOn := month(26), month(14)
	ev := func(t schemas.Type, key string, at time.Time, data schemas.Data) schemas.Event {
		return schemas.Event{SpecVersion: schemas.SpecVersion, ID: publisher.EventID(schemas.SourceOf(t), key, 1),
			Source: schemas.SourceOf(t), Type: t, Subject: demoNewcomer, Time: at, DataContentType: "application/json", Payload: data}
	}
	events := []schemas.Event{
		ev(schemas.HukouRegistered, "demo-newcomer", time.Date(1995, 3, 12, 9, 0, 0, 0, chinaTime), &schemas.HukouRegisteredData{
			Name: "赵磊", Gender: "1", BirthDate: "1995-03-12", Ethnicity: "01", AddressCode: "230902031001", HouseholdID: "H2309020077", Reason: "birth"}),
		ev(schemas.RentalRegistered, "lease-DQ-5521", rentedSince, &schemas.RentalRegisteredData{
			LeaseID: "DQ-5521", AddressCode: "230602013001", Start: day(rentedSince)}),
		ev(schemas.ContractStarted, "contract-DQ-88", hiredOn, &schemas.ContractStartedData{
			ContractID: "DQ-88", EmployerID: demoEmployer, EmployerName: "大庆石化机械", WorkRegion: "230602", Start: day(hiredOn)}),
	}
	// 23 months of pension contributions, up to two months ago.
	for back := 24; back >= 2; back-- {
		t := month(back)
		events = append(events, ev(schemas.ContributionRecorded, "contrib-"+t.Format("2006-01"), t, &schemas.ContributionRecordedData{
			Month: t.Format("2006-01"), Region: "230602", Insurances: []string{"pension", "medical"}}))
	}
	if err := publishAll(ctx, pub, events); err != nil {
		return err
	}
	desk := func(u string, d *eligibility.Decision) error {
		_, err := hubGet(ctx, http.DefaultClient, u, creds.token("public_security"), "settlement application", d)
		return err
	}
	// The events travel on four departments' topics and are applied in any
	// order: ask only once all of them are in the record, so that the clerk
	// sees the one month short and not whatever arrived first.
	if err := waitApplied(ctx, m, int64(len(events))); err != nil {
		return err
	}
	before, err := waitDecision(ctx, m, desk, func(d eligibility.Decision) bool { return len(d.Conditions) > 0 })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %d events from public security, housing, employment and social insurance; then GET /v1/eligibility/%s?policy=%s:\n",
		len(events), demoNewcomer.Masked(), demoPolicy)
	for _, c := range before.Conditions {
		if !c.Met {
			fmt.Fprintf(out, "    not yet: %s — missing %s\n", c.ID, c.Missing)
		}
	}

	last := month(1)
	fmt.Fprintf(out, "  social insurance records the contribution for %s …\n", last.Format("2006-01"))
	if err := publishAll(ctx, pub, []schemas.Event{ev(schemas.ContributionRecorded, "contrib-"+last.Format("2006-01"), last,
		&schemas.ContributionRecordedData{Month: last.Format("2006-01"), Region: "230602", Insurances: []string{"pension", "medical"}})}); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		msg, err := cons.Next(jetstream.FetchContext(wctx))
		if err != nil {
			return fmt.Errorf("waiting for the eligibility notification: %w", err)
		}
		var n schemas.EligibilityNotification
		if err := json.Unmarshal(msg.Data(), &n); err != nil {
			return fmt.Errorf("decoding an eligibility notification: %w", err)
		}
		if n.CitizenID != demoNewcomer {
			continue
		}
		fmt.Fprintf(out, "  … and the hub announces on %s: %s is eligible in %s as of %s\n\n", msg.Subject(), n.CitizenID.Masked(), n.Place, n.AsOf)
		break
	}
	after, err := waitDecision(ctx, m, desk, func(d eligibility.Decision) bool { return d.Eligible })
	if err != nil {
		return err
	}
	var b strings.Builder
	printDecision(&b, after)
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if line != "" {
			fmt.Fprint(out, "    "+line)
		}
	}
	return nil
}

// waitApplied waits until the newcomer's golden record holds n events
// (every event applied raises its version by one).
func waitApplied(ctx context.Context, m *Main, n int64) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := m.Store.Person(ctx, demoNewcomer)
		if err == nil && r.Version >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for the newcomer's %d events to be applied: version %d, %v", n, r.Version, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitDecision asks the hub for the newcomer's decision until ok accepts
// it (the hub applies events asynchronously).
func waitDecision(ctx context.Context, m *Main, get func(string, *eligibility.Decision) error, ok func(eligibility.Decision) bool) (eligibility.Decision, error) {
	u := "http://" + m.HTTPAddr() + "/v1/eligibility/" + string(demoNewcomer) + "?policy=" + demoPolicy
	deadline := time.Now().Add(30 * time.Second)
	for {
		var d eligibility.Decision
		err := get(u, &d)
		if err == nil && ok(d) {
			return d, nil
		}
		if time.Now().After(deadline) {
			return d, fmt.Errorf("waiting for the newcomer's decision: %v", err)
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func publishAll(ctx context.Context, pub *demoDepartments, events []schemas.Event) error {
	results, err := pub.Publish(ctx, events...)
	if err != nil {
		return fmt.Errorf("publishing events: %w", err)
	}
	for i, r := range results {
		if r.Err != nil {
			return fmt.Errorf("publishing event %s: %w", events[i].ID, r.Err)
		}
	}
	return nil
}

// demoWhoRead answers, from the audit trail, who looked at the newcomer's
// data (pophub audit who-read); only a hub with an access policy keeps one.
func demoWhoRead(ctx context.Context, out io.Writer, m *Main) error {
	if m.auditLog == nil {
		return nil
	}
	if err := m.auditLog.Flush(ctx); err != nil {
		return fmt.Errorf("flushing the audit log: %w", err)
	}
	entries, err := m.auditStore.WhoRead(ctx, m.auditKey.Subject(demoNewcomer), time.Time{}, time.Now().Add(time.Minute))
	if err != nil {
		return fmt.Errorf("asking the audit trail: %w", err)
	}
	fmt.Fprintf(out, "\nWho looked at %s's data (pophub audit who-read):\n", demoNewcomer.Masked())
	for _, e := range entries {
		fmt.Fprintf(out, "  %s  %-16s %-18s %-3d purpose %q\n", e.Time.In(chinaTime).Format("2006-01-02 15:04:05"), e.Identity, e.Action, e.Status, e.Purpose)
	}
	if len(entries) == 0 {
		return errors.New("the audit trail holds no read of the newcomer")
	}
	return nil
}
