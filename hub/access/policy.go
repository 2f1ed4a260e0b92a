// Package access is the hub's access policy: one YAML file that names every
// system allowed near the hub — the departments that publish, the
// subscribers, the statistics bureau, the administrators and the hub
// itself — with what each may publish, read and subscribe to, and its
// credentials, stored only as hashes or references to secrets.
//
// The policy is enforced in three places, all generated from the same
// Policy so they cannot disagree:
//
//   - HTTP: Authorizer implements hub/api's Authorizer (bearer tokens by
//     SHA-256, optional client-certificate fingerprints, the X-Purpose
//     header, a token bucket per identity, section filtering of records and
//     history, an audit seam), also in front of the department gateway
//     (RouteEvents), whose source is the identity's publish grant.
//   - NATS: NATSConfig renders nats-server accounts and users (the hub's
//     streams in an account of their own, each other identity in its own
//     account importing from it) whose publish and subscribe permissions
//     allow exactly the identity's subjects and the JetStream API calls its
//     durable pull consumers need (one named after it, or one per subject:
//     see NATSPermissions); NATSAuthorize applies the same to the embedded
//     server.
//   - Kafka: KfakeOptions gives the embedded broker SCRAM-SHA-512 users and
//     ACLs; KafkaScript renders kafka-configs.sh and kafka-acls.sh commands
//     for a real cluster.
//
// Load validates the whole file and reports every problem with its path,
// for example
//
//	identities[3] "tax": read[1]: unknown section "salary" (known: identity, hukou, …)
//
// A Policy is immutable after Load and safe for concurrent use.
package access

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pophub/pophub/schemas"
)

// Kind is what an identity is.
type Kind string

// Identity kinds.
const (
	// KindDepartment publishes its own source's events (Kafka topic
	// pop.events.<source>, or the HTTP gateway) and may read and subscribe.
	KindDepartment Kind = "department"
	// KindSubscriber reads records and consumes notifications.
	KindSubscriber Kind = "subscriber"
	// KindStatistics is the statistics bureau: statistics without cell
	// suppression.
	KindStatistics Kind = "statistics"
	// KindAdmin operates the hub: a Kafka superuser and unrestricted on NATS.
	KindAdmin Kind = "admin"
	// KindHub is the hub itself: it reads every source topic, writes the
	// DLQ and publishes notifications. Exactly one identity has this kind.
	KindHub Kind = "hub"
)

// Kinds lists the identity kinds.
var Kinds = []Kind{KindDepartment, KindSubscriber, KindStatistics, KindAdmin, KindHub}

// AllSections in a read list grants every section.
const AllSections = "*"

// Policy is a validated access policy.
type Policy struct {
	// Version of the file format; 1.
	Version int `yaml:"version"`
	// StatsMinCell is the smallest count shown to identities that read
	// statistics and are not the statistics bureau, unless an identity sets
	// its own (larger) one. Default 5 when zero.
	StatsMinCell int `yaml:"stats_min_cell"`
	// RateLimit applies to identities that set none. Default 20/s, burst 40.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// Kafka names the hub's consumer group (default "pophub").
	KafkaGroup string `yaml:"kafka_group"`
	// Identities, in file order.
	Identities []Identity `yaml:"identities"`

	byName map[string]int
}

// Identity is one system's grants and credentials.
type Identity struct {
	// Name is the identity: Kafka principal User:<name>, NATS user and
	// durable consumer name (and prefix of its per-subject consumers'
	// names, schemas.FilterConsumerName), audit name. Lower-case letters,
	// digits, '-' and '_'.
	Name string `yaml:"name"`
	Kind Kind   `yaml:"kind"`
	// Description is free text for Explain.
	Description string `yaml:"description"`
	// Source is a department's own source; it defaults to Name when Name
	// is a source.
	Source schemas.Source `yaml:"source"`
	// Publish lists the sources the identity may publish (departments only,
	// and only their own).
	Publish []schemas.Source `yaml:"publish"`
	// Read lists the golden-record sections the identity may read over
	// HTTP ("*" for all).
	Read []string `yaml:"read"`
	// Subscribe lists NATS subject patterns of the hub's notification
	// scheme (pop.changed.<R>.<section>, pop.migration.<R>.<R>,
	// pop.death.<R>, pop.eligibility.<policy>.<R>, R = three region
	// tokens). Each needs the sections its notifications carry, hukou
	// when the region of a changed or death subject is not one county,
	// and Eligibility for eligibility subjects.
	Subscribe []string `yaml:"subscribe"`
	// Stats allows the statistics routes.
	Stats bool `yaml:"stats"`
	// Eligibility allows settlement and residence-permit decisions
	// (GET /v1/eligibility/{id}): a clerk's desk. A decision shows facts
	// of every section its policy reads, so it is a grant of its own.
	Eligibility bool `yaml:"eligibility"`
	// StatsMinCell overrides the policy's for this identity; it may only
	// raise it. The statistics bureau sees every cell.
	StatsMinCell int `yaml:"stats_min_cell"`
	// RateLimit bounds HTTP requests; default the policy's.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// Purposes, when set, lists the X-Purpose values the identity may
	// send; others are refused (403).
	Purposes []string `yaml:"purposes"`
	// Credentials authenticate the identity.
	Credentials Credentials `yaml:"credentials"`
}

// RateLimit is a token bucket: RPS requests a second on average, Burst at
// once.
type RateLimit struct {
	RPS   float64 `yaml:"rps"`
	Burst int     `yaml:"burst"`
}

// Credentials are hashes and references, never secrets.
type Credentials struct {
	// TokenSHA256 is the lower-case hex SHA-256 of the HTTP bearer token,
	// or of each of its tokens while one is rotated (see Digests).
	// Tokens are 256-bit random strings (NewToken), so a fast hash is
	// right: there is nothing to brute-force that a slow hash would
	// protect, and every request can be checked in nanoseconds.
	TokenSHA256 Digests `yaml:"token_sha256"`
	// CertSHA256 is the SHA-256 fingerprint (hex, colons allowed) of the
	// identity's TLS client certificate, or of each of its certificates
	// while one is renewed, as an alternative to the token or, when both
	// are set, bound to it.
	CertSHA256 Digests `yaml:"cert_sha256"`
	// Kafka is the identity's SASL/SCRAM-SHA-512 credential.
	Kafka *KafkaCredential `yaml:"kafka"`
	// NATS is the identity's NATS credential.
	NATS *NATSCredential `yaml:"nats"`
}

// KafkaCredential is a SCRAM-SHA-512 credential (RFC 5802, RFC 7677): the
// derived keys a broker stores, a reference to the password, or both (then
// Policy.VerifySecrets checks that they agree). Provisioning a broker
// through its admin API (and the embedded broker) needs the password, so
// the reference is what the generators use; the keys document the
// credential and let it be checked without the secret.
type KafkaCredential struct {
	SCRAM *SCRAMKeys `yaml:"scram_sha512"`
	// Password is a secret reference: env:NAME or file:PATH.
	Password string `yaml:"password"`
}

// SCRAMKeys are the stored form of a SCRAM-SHA-512 password: base64 salt,
// iteration count, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
// ServerKey = HMAC(SaltedPassword, "Server Key").
type SCRAMKeys struct {
	Salt       string `yaml:"salt"`
	Iterations int    `yaml:"iterations"`
	StoredKey  string `yaml:"stored_key"`
	ServerKey  string `yaml:"server_key"`
}

// NATSCredential is a bcrypt password hash or an nkey public key.
type NATSCredential struct {
	PasswordBcrypt string `yaml:"password_bcrypt"`
	Nkey           string `yaml:"nkey"`
	// InboxPrefix is the private reply-subject prefix the identity's
	// client must use (nats.CustomInboxPrefix); default "_INBOX_<name>".
	// Nobody else may subscribe under it, so replies — including the
	// messages a pull consumer is sent — reach only the identity. It is
	// one subject token, unlike every other identity's, and none of the
	// roots the hub shares (pop, popdlq, _INBOX, $…): the identity may
	// subscribe to everything under it.
	InboxPrefix string `yaml:"inbox_prefix"`
}

// Defaults.
const (
	DefaultStatsMinCell = 5
	DefaultKafkaGroup   = "pophub"
)

// DefaultRateLimit applies when neither the identity nor the policy sets one.
var DefaultRateLimit = RateLimit{RPS: 20, Burst: 40}

// Load reads and validates a policy file.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("loading policy %s: %w", path, err)
	}
	return p, nil
}

// Parse decodes and validates a policy. Unknown fields are errors. The
// error is a *ValidationError listing every problem found, decoding and
// validation alike.
func Parse(b []byte) (*Policy, error) {
	var p Policy
	ve := &ValidationError{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(&p)
	var te *yaml.TypeError
	switch {
	case errors.Is(err, io.EOF):
		ve.add("", "the policy is empty")
		return nil, ve
	case errors.As(err, &te):
		// yaml.v3 keeps decoding past type errors and unknown fields:
		// report them all, then validate what was decoded.
		for _, m := range te.Errors {
			ve.add("", "%s", yamlHint(m))
		}
	case err != nil:
		ve.add("", "%s", err.Error())
		return nil, ve
	}
	p.validate(ve)
	if len(ve.Problems) > 0 {
		return nil, ve
	}
	p.index()
	return &p, nil
}

// LoadPrevious reads a policy as `policy kafka-acls --previous` needs it:
// decoded and given its defaults, but not held to this release's rules.
// It is the policy a cluster was last set up from, often written for an
// earlier release, and a rule added since (one secret per identity, say)
// must not keep what it granted from being taken away. Only a file that
// does not decode, or has fields no policy has, is refused.
func LoadPrevious(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding policy %s: %w", path, err)
	}
	if len(p.Identities) == 0 {
		return nil, fmt.Errorf("decoding policy %s: it names no identity", path)
	}
	p.index()
	return &p, nil
}

// yamlHint adds advice to yaml.v3's unknown-field messages that look like
// an attempt to write a secret in clear.
func yamlHint(m string) string {
	for _, f := range []string{"field token ", "field password ", "field secret ", "field nats_password ", "field kafka_password "} {
		if strings.Contains(m, f) {
			return m + " (secrets are never written in clear: use token_sha256, password_bcrypt, scram_sha512 or an env:/file: reference)"
		}
	}
	return m
}

func (p *Policy) index() {
	p.byName = make(map[string]int, len(p.Identities))
	for i, id := range p.Identities {
		p.byName[id.Name] = i
	}
	if p.StatsMinCell == 0 {
		p.StatsMinCell = DefaultStatsMinCell
	}
	if p.RateLimit == nil {
		rl := DefaultRateLimit
		p.RateLimit = &rl
	}
	if p.KafkaGroup == "" {
		p.KafkaGroup = DefaultKafkaGroup
	}
	for i := range p.Identities {
		id := &p.Identities[i]
		if id.Kind == KindDepartment && id.Source == "" {
			id.Source = schemas.Source(id.Name)
		}
		if id.RateLimit == nil {
			id.RateLimit = p.RateLimit
		}
		if id.Credentials.NATS != nil && id.Credentials.NATS.InboxPrefix == "" {
			id.Credentials.NATS.InboxPrefix = "_INBOX_" + id.Name
		}
		for i, t := range id.Credentials.TokenSHA256 {
			id.Credentials.TokenSHA256[i] = strings.ToLower(t)
		}
		for i, f := range id.Credentials.CertSHA256 {
			id.Credentials.CertSHA256[i] = normalizeFingerprint(f)
		}
	}
}

// Identity returns the named identity.
func (p *Policy) Identity(name string) (Identity, bool) {
	i, ok := p.byName[name]
	if !ok {
		return Identity{}, false
	}
	return p.Identities[i], true
}

// Hub returns the hub's identity (validation guarantees one).
func (p *Policy) Hub() Identity {
	for _, id := range p.Identities {
		if id.Kind == KindHub {
			return id
		}
	}
	return Identity{}
}

// CanRead reports whether the identity may read the section.
func (id Identity) CanRead(s schemas.Section) bool {
	return slices.Contains(id.Read, AllSections) || slices.Contains(id.Read, string(s))
}

// Sections returns the sections the identity may read, in record order.
func (id Identity) Sections() []schemas.Section {
	var out []schemas.Section
	for _, s := range schemas.Sections {
		if id.CanRead(s) {
			out = append(out, s)
		}
	}
	return out
}

// MinCell is the smallest statistics cell the identity is shown: 0 for the
// statistics bureau (every cell) and for identities without statistics.
func (p *Policy) MinCell(id Identity) int {
	if !id.Stats || id.Kind == KindStatistics {
		return 0
	}
	return max(id.StatsMinCell, p.StatsMinCell)
}
