package access

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/pophub/pophub/schemas"
)

// DeadLetterPrefix and DeadLetterStream are the subscriber SDK's defaults
// (consumers/sdk): dead letters go to popdlq.<name> in stream POPDLQ.
const (
	DeadLetterPrefix = "popdlq"
	DeadLetterStream = "POPDLQ"
)

// EligibilityBucket is the key-value bucket of the hub's eligibility
// watcher (hub/eligibility/watch).
const EligibilityBucket = "pophub_eligibility"

// NATSPermissions are the publish and subscribe permissions of an
// identity; nil means unrestricted (administrators).
//
// The hub publishes the notification subjects (pop.>) and manages the
// POP stream and the dead-letter stream POPDLQ (subscribers may not
// create streams: a stream is a capture of arbitrary subjects).
//
// An identity with subscriptions may subscribe to its subjects (core
// NATS) and run durable consumers on the POP stream, each filtered to
// one of its subjects: one named after itself, on any one of its
// subjects, and for each subject S one named
// schemas.FilterConsumerName(<name>, S) on exactly S. The second kind is
// what the subscriber SDK creates with Config.ConsumerPerFilter: an
// identity with several subjects cannot cover them with one consumer
// (NATS 2.9 takes one filter subject per consumer, and the cover, e.g.
// pop.>, is more than it may read), so it runs one per subject. The
// JetStream API subjects that needs, found by running the subscriber SDK
// and jetstream.Consumer against an embedded server (see broker_test.go),
// for <c> the identity's name and each per-subject name:
//
//	$JS.API.INFO                                  account info (jetstream.New, AccountInfo)
//	$JS.API.STREAM.NAMES                          StreamNameBySubject (the SDK's dead-letter stream lookup)
//	$JS.API.CONSUMER.INFO.POP.<c>                 binding to the durable consumer
//	$JS.API.CONSUMER.CREATE.POP.<c>.<filter>      create/update it: for <name> once per allowed
//	                                              filter, for a per-subject name only with its own
//	                                              subject; the server refuses a body whose filter
//	                                              differs from the subject's, so the filter is enforced
//	$JS.API.CONSUMER.DELETE.POP.<c>               deleting it
//	$JS.API.CONSUMER.MSG.NEXT.POP.<c>             pull requests
//	$JS.ACK.POP.<c>.>                             acks, naks, in-progress, term
//	$JS.FC.POP.<c>.>                              flow-control replies of a push consumer
//	popdlq.<name>                                 its dead letters (one subject for all its consumers)
//
// and subscribe permission on its private inbox <inbox_prefix>.> (the
// client sets nats.CustomInboxPrefix): pull-consumer messages and API
// replies arrive there. No $JS.API.STREAM.INFO, of POP or POPDLQ: with a
// subjects_filter in its body (which permissions cannot look at) it
// answers how many messages each subject of the stream holds, every
// region's and section's, past the identity's subscriptions and the
// statistics' small-cell suppression, and on POPDLQ the other
// subscribers' names and dead-letter counts. The SDK goes on from its
// consumers' info (CONSUMER.INFO, CONSUMER.CREATE) without it, and
// jetstream.JetStream.Consumer and CreateConsumer need none; only
// JetStream.Stream and the Stream methods do. The older
// $JS.API.CONSUMER.DURABLE.CREATE form,
// which carries no filter in its subject, is not granted, nor is a
// multi-filter consumer (FilterSubjects), for the same reason. A push
// consumer delivering to the identity's inbox works too (the JavaScript
// client and the nats CLI make them): its flow-control replies, to
// $JS.FC.POP.<consumer>.>, are granted for the identity's own consumer
// names, since without them the server stops delivering for good once
// 2 MiB are in flight. Consumer names are the fence between identities: Validate
// refuses an identity named like another's per-subject consumer, which
// would otherwise get that consumer's INFO, MSG.NEXT and ACK subjects as
// its own.
func NATSPermissions(id Identity) *server.Permissions {
	inbox := inboxOf(id)
	switch id.Kind {
	case KindAdmin:
		return nil
	case KindHub:
		// The hub owns the streams: POP, POPDLQ, the eligibility bucket
		// and its own durable consumers (eligibility watcher, status), so
		// it may use the whole JetStream API; it publishes only
		// notifications and its bucket's entries, and the flow-control
		// replies of its push consumers (a bucket's WatchAll, which
		// stalls for good past 2 MiB without them).
		return &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{
				schemas.StreamSubjects, "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$KV." + EligibilityBucket + ".>",
			}},
			Subscribe: &server.SubjectPermission{Allow: []string{inbox + ".>", "_INBOX.>"}},
		}
	}
	perms := &server.Permissions{
		Publish:   &server.SubjectPermission{Deny: []string{">"}}, // an empty allow list reads as "no restriction"
		Subscribe: &server.SubjectPermission{Allow: []string{inbox + ".>"}},
	}
	if len(id.Subscribe) == 0 {
		return perms
	}
	perms.Publish.Deny = nil
	s, n := schemas.StreamName, id.Name
	perms.Publish.Allow = append(perms.Publish.Allow,
		"$JS.API.INFO",
		"$JS.API.STREAM.NAMES",
		"$JS.API.CONSUMER.INFO."+s+"."+n,
		"$JS.API.CONSUMER.DELETE."+s+"."+n,
		"$JS.API.CONSUMER.MSG.NEXT."+s+"."+n,
		"$JS.ACK."+s+"."+n+".>",
		"$JS.FC."+s+"."+n+".>",
		DeadLetterPrefix+"."+n,
	)
	for _, subj := range id.Subscribe {
		perms.Publish.Allow = append(perms.Publish.Allow, "$JS.API.CONSUMER.CREATE."+s+"."+n+"."+subj)
		perms.Subscribe.Allow = append(perms.Subscribe.Allow, subj)
	}
	for _, subj := range id.Subscribe {
		c := schemas.FilterConsumerName(n, subj)
		perms.Publish.Allow = append(perms.Publish.Allow,
			"$JS.API.CONSUMER.CREATE."+s+"."+c+"."+subj,
			"$JS.API.CONSUMER.INFO."+s+"."+c,
			"$JS.API.CONSUMER.DELETE."+s+"."+c,
			"$JS.API.CONSUMER.MSG.NEXT."+s+"."+c,
			"$JS.ACK."+s+"."+c+".>",
			"$JS.FC."+s+"."+c+".>",
		)
	}
	return perms
}

// inboxOf is the prefix of id's private inbox: its NATS credential's
// inbox_prefix, or _INBOX_<name>.
func inboxOf(id Identity) string {
	if id.Credentials.NATS != nil && id.Credentials.NATS.InboxPrefix != "" {
		return id.Credentials.NATS.InboxPrefix
	}
	return "_INBOX_" + id.Name
}

// ConsumerProblem judges a consumer of the notification stream (its name,
// filter subjects, none for the whole stream, and a push consumer's
// deliver subject) against the policy, for notify.PruneConsumers at the hub's start: it returns the
// identity the consumer belongs to and why the policy does not allow it,
// or problem "" to keep it.
//
// NATS grants pulling from a consumer by its name, whatever its filter
// (NATSPermissions grants $JS.API.CONSUMER.MSG.NEXT.POP.<c>), and a
// durable consumer outlives the policy it was created under; so the
// consumers that identities may pull from must filter only what their
// current subscriptions grant. The rule, in order:
//
//  1. A consumer named after an identity belongs to it: named <name>, or
//     <name>-<8 hex digits>, the form of its per-subject consumers
//     (schemas.FilterConsumerName, for a current subject or an older
//     one). Administrators and the hub may read everything: theirs stay.
//     Another identity's stays only if the identity has a NATS credential
//     and subscriptions, each of the consumer's filter subjects lies
//     within one of them (a consumer without a filter reads everything),
//     and a push consumer delivers within the identity's inbox prefix:
//     the server pushes with the account's rights, not its creator's, so
//     one pushing elsewhere puts notifications into other subscriptions.
//  2. Everything else stays: the hub's own consumers (such as the
//     eligibility watcher's pophub-eligibility), what administrators made
//     (an administrator's SDK subscriber under a name of its own
//     included), and those of an identity the policy dropped. Only the
//     hub and administrators may pull from them, since other identities'
//     permissions name only their own consumers and a dropped identity has
//     no NATS user; should a later policy bring the name back, rule 1
//     judges them at that start.
func (p *Policy) ConsumerProblem(name string, filters []string, deliver string) (owner, problem string) {
	id, ok := p.consumerOwner(name)
	if !ok {
		return "", ""
	}
	switch {
	case id.Kind == KindAdmin || id.Kind == KindHub:
		return id.Name, ""
	case id.Credentials.NATS == nil:
		return id.Name, "the identity has no NATS credential"
	case len(id.Subscribe) == 0:
		return id.Name, "the identity subscribes to nothing"
	case len(filters) == 0:
		return id.Name, "it reads the whole stream, more than the identity subscribes to"
	case deliver != "" && !subjectWithin(deliver, inboxOf(id)+".>"):
		return id.Name, fmt.Sprintf("it pushes to %s, outside the identity's inbox prefix %s", deliver, inboxOf(id))
	}
	for _, f := range filters {
		if !slices.ContainsFunc(id.Subscribe, func(s string) bool { return subjectWithin(f, s) }) {
			return id.Name, fmt.Sprintf("filter %s is not within the identity's subscriptions %s", f, strings.Join(id.Subscribe, " "))
		}
	}
	return id.Name, ""
}

// consumerOwner is the identity a consumer name belongs to: the identity
// of that name, else the one whose per-subject consumers are named like
// it (<name>-<8 hex digits>). Validate keeps the two from meeting for the
// current subjects (an identity may not be named like another's
// per-subject consumer).
func (p *Policy) consumerOwner(name string) (Identity, bool) {
	if id, ok := p.Identity(name); ok {
		return id, true
	}
	const suffix = 1 + 8 // "-" and 8 hex digits
	if len(name) <= suffix || name[len(name)-suffix] != '-' || !isLowerHex(name[len(name)-suffix+1:]) {
		return Identity{}, false
	}
	return p.Identity(name[:len(name)-suffix])
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// subjectWithin reports whether every subject that filter matches is
// matched by pattern, both NATS subjects with wildcards ('*' one token,
// '>' the rest): pop.death.23.2301.* is within pop.death.23.>, pop.death.>
// is not within pop.death.23.>.
func subjectWithin(filter, pattern string) bool {
	ft, pt := strings.Split(filter, "."), strings.Split(pattern, ".")
	for i, p := range pt {
		if p == ">" {
			return i < len(ft)
		}
		if i >= len(ft) {
			return false
		}
		switch f := ft[i]; {
		case f == ">":
			return false
		case p == "*":
		case f != p:
			return false
		}
	}
	return len(ft) == len(pt)
}

// filterConsumerNames maps the names of identities' per-subject
// consumers (schemas.FilterConsumerName) to the identity owning each.
func filterConsumerNames(ids []Identity) map[string]string {
	out := map[string]string{}
	for _, id := range ids {
		for _, subj := range id.Subscribe {
			out[schemas.FilterConsumerName(id.Name, subj)] = id.Name
		}
	}
	return out
}

// NATSAuthorize sets opts' accounts and users to NATSConfig's, and so
// turns authorization on: the embedded server runs the configuration an
// operator's own server includes.
func (p *Policy) NATSAuthorize(opts *server.Options) error {
	if err := opts.ProcessConfigString(p.NATSConfig()); err != nil {
		return fmt.Errorf("applying the access policy to the NATS server: %w", err)
	}
	return nil
}

// NATSConfig renders the policy's NATS accounts and users as a nats-server
// configuration fragment to include from the server's configuration file
// (include ./policy-auth.conf; the file's jetstream block stays where it
// is).
//
// The hub's streams, its bucket, the hub and the administrators live in
// account schemas.NATSAccount; every other identity with a NATS credential
// has an account of its own, named after it, which imports from the hub's
// exactly the subjects its permissions name: its JetStream API requests,
// acks, flow-control replies and dead letters as services, its
// subscriptions and its inbox (a push consumer's deliveries) as streams.
// One account per identity is what closes the reply subject: NATS checks a
// publish permission against a message's subject, never its reply subject,
// and a service answers on the reply subject in the account the request
// came from. Were the subscribers in the hub's account, one could have
// JetStream write its answer to a request it may send into the
// notification stream, the dead-letter stream or the eligibility bucket;
// in its own account the answer reaches only subjects of that account,
// and from there only what the account imports, which is its own.
func (p *Policy) NATSConfig() string {
	var b strings.Builder
	b.WriteString("# Generated by `pophub policy nats-config` from the access policy; do not edit.\n")
	b.WriteString("# Passwords are bcrypt hashes; clients set nats.CustomInboxPrefix to their inbox_prefix.\n")
	b.WriteString("accounts {\n")
	fmt.Fprintf(&b, "  # The hub's streams (%s, %s, KV_%s), the hub and the administrators.\n",
		schemas.StreamName, DeadLetterStream, EligibilityBucket)
	fmt.Fprintf(&b, "  %s {\n    jetstream: enabled\n    users = [\n", schemas.NATSAccount)
	for _, id := range p.natsIdentities() {
		if hubAccount(id) {
			writeNATSUser(&b, id)
		}
	}
	b.WriteString("    ]\n")
	if exports := p.natsExports(); len(exports) > 0 {
		b.WriteString("    exports = [\n")
		for _, e := range exports {
			fmt.Fprintf(&b, "      { %s: %s", e.kind(), strconv.Quote(e.subject))
			if e.streamed {
				b.WriteString(", response_type: stream")
			}
			fmt.Fprintf(&b, ", accounts: %s }\n", quoteList(e.accounts))
		}
		b.WriteString("    ]\n")
	}
	b.WriteString("  }\n")
	for _, id := range p.natsIdentities() {
		if hubAccount(id) {
			continue
		}
		fmt.Fprintf(&b, "  # %s (%s)\n  %s {\n    users = [\n", id.Name, id.Kind, strconv.Quote(id.Name))
		writeNATSUser(&b, id)
		b.WriteString("    ]\n")
		if imports := natsImports(id); len(imports) > 0 {
			b.WriteString("    imports = [\n")
			for _, im := range imports {
				fmt.Fprintf(&b, "      { %s: { account: %s, subject: %s } }\n",
					im.kind(), schemas.NATSAccount, strconv.Quote(im.subject))
			}
			b.WriteString("    ]\n")
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// natsIdentities are the identities with a NATS credential, in policy
// order; the others cannot connect.
func (p *Policy) natsIdentities() []Identity {
	var out []Identity
	for _, id := range p.Identities {
		if id.Credentials.NATS != nil {
			out = append(out, id)
		}
	}
	return out
}

// hubAccount reports whether id's NATS user lives in the hub's account.
func hubAccount(id Identity) bool { return id.Kind == KindHub || id.Kind == KindAdmin }

func writeNATSUser(b *strings.Builder, id Identity) {
	c := id.Credentials.NATS
	fmt.Fprintf(b, "      # %s (%s)\n", id.Name, id.Kind)
	if c.Nkey != "" {
		fmt.Fprintf(b, "      { nkey: %s", strconv.Quote(c.Nkey))
	} else {
		fmt.Fprintf(b, "      { user: %s, password: %s", strconv.Quote(id.Name), strconv.Quote(c.PasswordBcrypt))
	}
	if perms := NATSPermissions(id); perms != nil {
		b.WriteString(",\n        permissions: {\n")
		fmt.Fprintf(b, "          publish: %s\n", permText(perms.Publish))
		fmt.Fprintf(b, "          subscribe: %s\n", permText(perms.Subscribe))
		b.WriteString("        }\n      }\n")
	} else {
		b.WriteString(" }\n")
	}
}

// natsImport is a subject an identity's account imports from the hub's:
// a service (its requests go to the hub's account, answers come back) or
// a stream (the hub account's messages on it reach the identity's).
type natsImport struct {
	subject string
	stream  bool
	// streamed marks a service answering one request with many messages:
	// a pull request's deliveries, and an ack-and-next's (+NXT).
	streamed bool
}

func (im natsImport) kind() string {
	if im.stream {
		return "stream"
	}
	return "service"
}

// natsImports are what id's account imports: every subject it may
// publish to is a service of the hub's account (the JetStream API, acks,
// flow-control replies, its dead letters), every subject it may subscribe
// to a stream (its notifications and its inbox, where a push consumer
// delivers). So the permissions stay the one list of what it may do.
func natsImports(id Identity) []natsImport {
	perms := NATSPermissions(id)
	if perms == nil {
		return nil
	}
	var out []natsImport
	for _, s := range perms.Publish.Allow {
		streamed := strings.HasPrefix(s, "$JS.API.CONSUMER.MSG.NEXT.") || strings.HasPrefix(s, "$JS.ACK.")
		out = append(out, natsImport{subject: s, streamed: streamed})
	}
	for _, s := range perms.Subscribe.Allow {
		out = append(out, natsImport{subject: s, stream: true})
	}
	return out
}

// natsExport is a subject the hub's account exports, to the accounts
// importing it.
type natsExport struct {
	natsImport
	accounts []string
}

// natsExports are the hub account's exports: one per subject any
// identity's account imports, open to exactly the accounts importing it.
func (p *Policy) natsExports() []natsExport {
	var out []natsExport
	at := map[natsImport]int{}
	for _, id := range p.natsIdentities() {
		if hubAccount(id) {
			continue
		}
		for _, im := range natsImports(id) {
			i, ok := at[im]
			if !ok {
				i = len(out)
				at[im] = i
				out = append(out, natsExport{natsImport: im})
			}
			out[i].accounts = append(out[i].accounts, id.Name)
		}
	}
	return out
}

func permText(sp *server.SubjectPermission) string {
	var parts []string
	if len(sp.Allow) > 0 {
		parts = append(parts, "allow: "+quoteList(sp.Allow))
	}
	if len(sp.Deny) > 0 {
		parts = append(parts, "deny: "+quoteList(sp.Deny))
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// natsSummary is the Explain text of an identity's NATS permissions.
func natsSummary(id Identity) []string {
	perms := NATSPermissions(id)
	if perms == nil {
		return []string{"unrestricted (administrator), in account " + schemas.NATSAccount}
	}
	account := "account   " + id.Name + ", importing from " + schemas.NATSAccount + " only what it may publish and subscribe to"
	if hubAccount(id) {
		account = "account   " + schemas.NATSAccount + ", the hub's streams"
	}
	return []string{
		account,
		"publish   " + permText(perms.Publish),
		"subscribe " + permText(perms.Subscribe),
	}
}
