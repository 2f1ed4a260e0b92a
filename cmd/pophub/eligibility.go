package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub/eligibility"
)

// eligibilityCommand is `pophub eligibility CITIZEN_ID --policy P`: a
// clerk's decision, asked of the hub's API.
func eligibilityCommand() *cobra.Command {
	var hubURL, policy, asOf, token, purpose string
	var asJSON bool
	var ca *caFlag
	cmd := &cobra.Command{
		Use:   "eligibility CITIZEN_ID --policy ID",
		Short: "Decide whether a person may settle or get a residence permit, with the explanation",
		Long: `Asks the hub (GET /v1/eligibility/{citizen_id}) whether the person meets a
policy as of a day, and prints every condition with the facts and source events
behind it, what is missing, the day the person will qualify if nothing changes
and the family members who may come along. 'pophub policies list' names the
policies.`,
		Example: `  pophub eligibility 230102199001011230 --policy heilongjiang/daqing
  pophub eligibility 230102199001011230 --policy residence-permit/jilin --as-of 2026-06-30 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if policy == "" {
				return errors.New("--policy is required ('pophub policies list' names them)")
			}
			q := url.Values{"policy": {policy}}
			if asOf != "" {
				q.Set("as_of", asOf)
			}
			u := strings.TrimRight(hubURL, "/") + "/v1/eligibility/" + url.PathEscape(args[0]) + "?" + q.Encode()
			hc, err := ca.httpClient(0)
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			var d eligibility.Decision
			body, err := hubGet(cmd.Context(), hc, u, token, purpose, &d)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			printDecision(cmd.OutOrStdout(), d)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&hubURL, "hub", envOr("POPHUB_URL", "http://127.0.0.1:8780"), "hub API base URL (env POPHUB_URL)")
	f.StringVar(&policy, "policy", "", "policy id, e.g. heilongjiang/daqing (required)")
	f.StringVar(&asOf, "as-of", "", "decide as of the end of this day, YYYY-MM-DD (default the end of today, China Standard Time)")
	f.StringVar(&token, "token", os.Getenv("POPHUB_TOKEN"), "bearer token (env POPHUB_TOKEN)")
	f.StringVar(&purpose, "purpose", "settlement-application", "the purpose sent as X-Purpose")
	f.BoolVar(&asJSON, "json", false, "print the hub's JSON answer")
	ca = addCAFlag(f)
	return cmd
}

// hubGet GETs a hub API URL and decodes its JSON answer into v, turning a
// problem+json answer into an error carrying its detail.
func hubGet(ctx context.Context, hc *http.Client, u, token, purpose string, v any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if purpose != "" {
		req.Header.Set("X-Purpose", purpose)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the hub at %s: %w", hubBase(req.URL), withoutURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the hub's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			return nil, fmt.Errorf("hub: %s: %s", p.Title, p.Detail)
		}
		return nil, fmt.Errorf("hub answered %s", resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("decoding the hub's answer: %w", err)
	}
	return body, nil
}

// hubBase is the scheme and host of a hub API URL: its path and query may
// carry a citizen ID (/v1/eligibility/{citizen_id}), its user info a
// password, and neither belongs in an error message.
func hubBase(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}

// withoutURL unwraps the *url.Error of a failed request, whose message
// repeats the full URL (and with it any citizen ID in the path), to the
// cause: "dial tcp …: connection refused", "context deadline exceeded".
func withoutURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// printDecision writes a decision as a clerk reads it.
func printDecision(w io.Writer, d eligibility.Decision) {
	verdict := "NOT ELIGIBLE"
	if d.Eligible {
		verdict = "ELIGIBLE"
	}
	fmt.Fprintf(w, "%s — %s (%s)\n", d.Title, d.Policy, d.Place)
	fmt.Fprintf(w, "%s: %s as of %s (route %s)\n", verdict, d.CitizenID, d.AsOf, d.Route)
	// Which policy text and which state of the records the answer came
	// from: an edited policy file, or an event recorded late, may answer
	// otherwise for the same day.
	if d.PolicyDigest != "" {
		fmt.Fprintf(w, "policy version %s", d.PolicyDigest)
		if d.RecordVersion > 0 {
			fmt.Fprintf(w, ", record version %d", d.RecordVersion)
		}
		fmt.Fprintln(w)
	}
	if d.QualifiesOn != "" {
		fmt.Fprintf(w, "qualifies on %s if nothing changes\n", d.QualifiesOn)
	}
	fmt.Fprintln(w)
	for _, c := range d.Conditions {
		mark := "✗"
		if c.Met {
			mark = "✓"
		}
		fmt.Fprintf(w, "%s %s  [%s]\n    %s\n", mark, c.ID, c.Seed, strings.TrimSpace(c.Text))
		for _, f := range c.Facts {
			src := ""
			if f.EventID != "" {
				src = fmt.Sprintf("  (%s event %s)", f.Source, f.EventID)
			}
			fmt.Fprintf(w, "    · %s%s\n", f.Text, src)
		}
		if c.Missing != "" {
			fmt.Fprintf(w, "    missing: %s\n", c.Missing)
		}
		if c.Note != "" {
			fmt.Fprintf(w, "    note: %s\n", strings.TrimSpace(c.Note))
		}
	}
	if d.FamilyNote != "" {
		fmt.Fprintf(w, "\nfamily: %s\n", d.FamilyNote)
	}
	if len(d.Family) > 0 {
		fmt.Fprintln(w, "\nfamily who may settle along:")
		for _, m := range d.Family {
			fmt.Fprintf(w, "    %s %s %s (%s)", m.Relation, m.CitizenID, m.Name, m.Basis)
			if v, ok := d.RelativesVersions[m.CitizenID]; ok {
				fmt.Fprintf(w, ", record version %d", v)
			}
			fmt.Fprintln(w)
		}
	}
}

// policiesCommand is `pophub policies list|test`.
func policiesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policies",
		Short: "The settlement and residence-permit policies: list them, run their example cases",
	}
	var dir string
	load := func() (*eligibility.Catalog, func() []eligibility.CaseResult, error) {
		fsys, err := policiesFS("--dir", dir)
		if err != nil {
			return nil, nil, err
		}
		cat, err := eligibility.Load(fsys)
		if err != nil {
			return nil, nil, err
		}
		return cat, func() []eligibility.CaseResult { return eligibility.RunCases(cat, fsys) }, nil
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the policies with their titles, the golden-record sections they read and their digests",
		Long: `Lists each policy's id, title, the golden-record sections it reads and its
digest (sha256:…, the version of what the policy says, which a decision names
as policy_digest): an edit of a requirement changes it, one of the file's
comments or layout does not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, _, err := load()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, s := range cat.Policies() {
				p, _ := cat.Policy(s.ID)
				var secs []string
				for _, sec := range eligibility.RelevantSections(p) {
					secs = append(secs, string(sec))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ID, s.Title, strings.Join(secs, ","), s.Digest)
			}
			return tw.Flush()
		},
	}
	var verbose bool
	test := &cobra.Command{
		Use:   "test",
		Short: "Validate every policy file and run the example cases kept next to each",
		Long: `Loads every policy (each must validate) and runs the example cases of
<policy>_cases.yaml against it; exits non-zero if a policy is invalid or a case
does not reach its expected decision.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, run, err := load()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			failed := 0
			results := run()
			for _, r := range results {
				if r.Passed {
					if verbose {
						fmt.Fprintf(w, "ok    %s: %s\n", r.Policy, r.Case)
					}
					continue
				}
				failed++
				fmt.Fprintf(w, "FAIL  %s %s: %s\n", r.File, r.Case, strings.Join(r.Problems, "; "))
			}
			fmt.Fprintf(w, "%d cases, %d failed\n", len(results), failed)
			if failed > 0 || len(results) == 0 {
				return fmt.Errorf("%d of %d example cases failed", failed, len(results))
			}
			return nil
		},
	}
	test.Flags().BoolVarP(&verbose, "verbose", "v", false, "list the cases that pass too")
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "a directory of policy files to use instead of the built-in ones (ops/policies layout)")
	cmd.AddCommand(list, test)
	return cmd
}
