package schemas

import (
	"strings"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/region"
)

// EligibilityNotification is the body of pop.eligibility.<policy>.<R>: a
// person became eligible under a settlement or residence-permit policy
// (opt-in per policy; see hub/eligibility/watch). The decision itself, with
// its explanation, is GET /v1/eligibility/{citizen_id}?policy=<Policy>.
type EligibilityNotification struct {
	// ChangeID is also the Nats-Msg-Id: a digest of policy, person and
	// day (no citizen ID in headers), so that a person is announced at
	// most once a day per policy.
	ChangeID  string       `json:"change_id"`
	CitizenID citizenid.ID `json:"citizen_id"`
	Policy    string       `json:"policy"`
	// PolicyDigest names the version of the policy that decided:
	// "sha256:" and the hex SHA-256 of what the policy says once loaded
	// (a comment or layout edit of its file keeps it), so that a
	// subscriber can tell a decision made under one text of an edited
	// policy from one made under another. Absent from notifications of
	// releases before it.
	PolicyDigest string `json:"policy_digest,omitempty"`
	Title        string `json:"title"`
	Place        string `json:"place"`
	// RegionCode is the 6-digit division of the subject's R tokens.
	RegionCode string `json:"region_code"`
	Route      string `json:"route"`
	AsOf       string `json:"as_of"`
	// Trigger is the change notification that led to the evaluation,
	// "scheduled" for a decision made on a day the watcher set: the day
	// an earlier decision said the person would qualify, or the China day
	// of a change stamped ahead of the day it arrived; or
	// "policy_changed" for a decision made again because the policy's
	// text changed since the last decision was saved.
	Trigger     string    `json:"trigger"`
	EvaluatedAt time.Time `json:"evaluated_at"`
}

// PolicyToken renders a policy id ("heilongjiang/daqing") as one subject
// token ("heilongjiang_daqing"): policy ids are lower-case letters, digits
// and '-' around one '/'.
func PolicyToken(policyID string) string { return strings.ReplaceAll(policyID, "/", "_") }

// EligibilitySubject is pop.eligibility.<policy>.<R>.
func EligibilitySubject(policyID, code string) string {
	return "pop.eligibility." + PolicyToken(policyID) + "." + region.Tokens(code)
}

// EligibilityFilter matches a policy's eligibility notifications in a
// 2-, 4- or 6-digit region ("" for every region); policyID "" matches
// every policy.
func EligibilityFilter(policyID, code string) string {
	p := "*"
	if policyID != "" {
		p = PolicyToken(policyID)
	}
	return "pop.eligibility." + p + "." + region.Filter(code)
}
