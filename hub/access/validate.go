package access

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/pophub/pophub/schemas"
)

// ValidationError lists every problem of a policy.
type ValidationError struct {
	Problems []Problem
}

// Problem is one invalid value and where it is.
type Problem struct {
	// Path locates the value: identities[3] "tax": read[1]; empty for
	// problems of the file as a whole (yaml decoding errors carry their
	// line instead).
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	if len(lines) == 1 {
		return "invalid policy: " + lines[0]
	}
	return fmt.Sprintf("invalid policy, %d problems:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

func (e *ValidationError) add(path, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	envRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	inboxRE  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	bcryptRE = regexp.MustCompile(`^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$`)
	nkeyRE   = regexp.MustCompile(`^U[A-Z2-7]{55}$`)
)

func (p *Policy) validate(ve *ValidationError) {
	if p.Version != 1 {
		ve.add("version", "want 1, not %d", p.Version)
	}
	if p.StatsMinCell < 0 || p.StatsMinCell == 1 || p.StatsMinCell == 2 {
		ve.add("stats_min_cell", "want 3 or more (0 for the default %d), not %d: a cell of 1 is a person, and \"<2\" would say it is 1", DefaultStatsMinCell, p.StatsMinCell)
	}
	if p.RateLimit != nil {
		validateRate("rate_limit", *p.RateLimit, ve)
	}
	if p.KafkaGroup != "" && !nameRE.MatchString(p.KafkaGroup) {
		ve.add("kafka_group", "%q: want lower-case letters, digits, '-' and '_'", p.KafkaGroup)
	}
	if len(p.Identities) == 0 {
		ve.add("identities", "the policy names no identity")
		return
	}
	names := map[string]int{}
	tokens := map[string]int{}
	certs := map[string]int{}
	inboxes := map[string]int{}
	secrets := map[string]int{} // credential field and value → identity
	hubs := 0
	for i := range p.Identities {
		id := &p.Identities[i]
		path := fmt.Sprintf("identities[%d]", i)
		if id.Name != "" {
			path += fmt.Sprintf(" %q", id.Name)
		}
		switch {
		case id.Name == "":
			ve.add(path, "name is required")
		case !nameRE.MatchString(id.Name):
			ve.add(path, "name %q: want lower-case letters, digits, '-' and '_' (it names the Kafka principal, NATS user and durable consumer)", id.Name)
		case id.Name == schemas.EligibilityWatcherConsumer:
			ve.add(path, "name %q is the hub's eligibility watcher's consumer, which holds every notification: an identity of that name could read them all", id.Name)
		default:
			if j, dup := names[id.Name]; dup {
				ve.add(path, "name %q is also identities[%d]'s", id.Name, j)
			}
			names[id.Name] = i
		}
		if id.Kind == KindHub {
			hubs++
		}
		id.validate(p, path, ve)

		c := id.Credentials
		c.TokenSHA256.unique(ve, path, i, "token_sha256", "token", strings.ToLower, tokens)
		c.CertSHA256.unique(ve, path, i, "cert_sha256", "certificate", normalizeFingerprint, certs)
		// A secret copied from another identity's entry (mid-rotation,
		// meant to be edited) would let either one act as the other.
		shared := func(field, what, v string) {
			if v == "" {
				return
			}
			if j, dup := secrets[field+"\x00"+v]; dup {
				ve.add(path+": credentials."+field, "the same %s as identities[%d]: each identity needs its own", what, j)
			}
			secrets[field+"\x00"+v] = i
		}
		if k := c.Kafka; k != nil {
			shared("kafka.password", "Kafka password reference", k.Password)
			if k.SCRAM != nil {
				shared("kafka.scram_sha512", "Kafka SCRAM keys", k.SCRAM.StoredKey)
			}
		}
		if n := c.NATS; n != nil {
			shared("nats.password_bcrypt", "NATS password hash", n.PasswordBcrypt)
			shared("nats.nkey", "NATS nkey", n.Nkey)
		}
		if c.NATS != nil {
			pre := c.NATS.InboxPrefix
			if pre == "" {
				pre = "_INBOX_" + id.Name
			}
			if j, dup := inboxes[pre]; dup {
				ve.add(path+": credentials.nats.inbox_prefix", "%q is also identities[%d]'s: inboxes must be private", pre, j)
			}
			inboxes[pre] = i
		}
	}
	if hubs != 1 {
		ve.add("identities", "want exactly one identity of kind hub, not %d", hubs)
	}
	// An identity named like another's per-subject consumer would hold
	// that consumer's NATS API subjects as its own (see NATSPermissions).
	consumers := filterConsumerNames(p.Identities)
	for i, id := range p.Identities {
		if owner, ok := consumers[id.Name]; ok && owner != id.Name {
			ve.add(fmt.Sprintf("identities[%d] %q", i, id.Name), "name is that of a durable consumer of identity %q (one per subject it subscribes to): choose another", owner)
		}
		seen := map[string]string{}
		for _, subj := range id.Subscribe {
			c := schemas.FilterConsumerName(id.Name, subj)
			if other, dup := seen[c]; dup && other != subj {
				ve.add(fmt.Sprintf("identities[%d] %q", i, id.Name), "subjects %q and %q get the same consumer name %s: rename the identity", other, subj, c)
			}
			seen[c] = subj
		}
	}
}

func (id *Identity) validate(p *Policy, path string, ve *ValidationError) {
	if !slices.Contains(Kinds, id.Kind) {
		ve.add(path, "kind %q: want one of %s", id.Kind, joinKinds())
	}

	// Publishing: departments, their own source only.
	own := id.Source
	if id.Kind == KindDepartment && own == "" && schemas.Source(id.Name).Valid() {
		own = schemas.Source(id.Name)
	}
	switch {
	case id.Source != "" && id.Kind != KindDepartment:
		ve.add(path, "source: only department identities have a source")
	case id.Kind == KindDepartment && own == "":
		ve.add(path, "source: a department whose name is not a source (%s) must name its source", joinSources())
	case id.Kind == KindDepartment && !own.Valid():
		ve.add(path, "source: unknown source %q (known: %s)", own, joinSources())
	}
	for j, s := range id.Publish {
		at := fmt.Sprintf("%s: publish[%d]", path, j)
		switch {
		case !s.Valid():
			ve.add(at, "unknown source %q (known: %s)", s, joinSources())
		case id.Kind != KindDepartment:
			ve.add(at, "only department identities publish; a %s does not", id.Kind)
		case own.Valid() && s != own:
			ve.add(at, "department %q may publish only its own source %s, not %s", id.Name, own, s)
		case slices.Index(id.Publish, s) < j:
			ve.add(at, "%s is listed twice", s)
		}
	}

	// Reading.
	for j, s := range id.Read {
		at := fmt.Sprintf("%s: read[%d]", path, j)
		switch {
		case s == AllSections:
			if len(id.Read) > 1 {
				ve.add(at, `"*" grants every section; list nothing else`)
			}
		case !slices.Contains(schemas.Sections, schemas.Section(s)):
			ve.add(at, "unknown section %q (known: %s)", s, joinSections())
		case slices.Index(id.Read, s) < j:
			ve.add(at, "section %s is listed twice", s)
		}
	}
	if id.Kind == KindHub && (len(id.Read) > 0 || id.Stats || id.Eligibility || len(id.Subscribe) > 0) {
		ve.add(path, "the hub identity reads nothing over HTTP and subscribes to nothing; it publishes the notifications")
	}

	// Subscribing.
	for j, s := range id.Subscribe {
		at := fmt.Sprintf("%s: subscribe[%d]", path, j)
		needs, err := checkSubject(s)
		if err != nil {
			ve.add(at, "%q: %v", s, err)
			continue
		}
		var missing []string
		for _, sec := range needs.sections {
			if !id.CanRead(sec) {
				missing = append(missing, string(sec))
			}
		}
		if len(missing) > 0 {
			ve.add(at, "%q carries data of sections the identity may not read: %s (add them to read or narrow the subject)", s, strings.Join(missing, ", "))
		}
		if needs.regionHukou && !id.CanRead(schemas.SecHukou) && !slices.Contains(needs.sections, schemas.SecHukou) {
			ve.add(at, "%q names each person's hukou county in its region tokens, and the identity may not read hukou (add hukou to read or fix the region to one county, e.g. 23.2301.230102)", s)
		}
		if needs.eligibility && !id.Eligibility {
			ve.add(at, "%q names citizens and the policies they qualify under: the identity needs eligibility: true", s)
		}
		if slices.Index(id.Subscribe, s) < j {
			ve.add(at, "%q is listed twice", s)
		}
	}

	// Statistics.
	switch {
	case id.Kind == KindStatistics && !id.Stats:
		ve.add(path, "stats: the statistics bureau must have stats: true")
	case id.Kind == KindStatistics && id.StatsMinCell != 0:
		ve.add(path, "stats_min_cell: the statistics bureau sees every cell; remove it")
	case !id.Stats && id.StatsMinCell != 0:
		ve.add(path, "stats_min_cell without stats: true")
	case id.StatsMinCell < 0:
		ve.add(path, "stats_min_cell must not be negative")
	case id.StatsMinCell > 0 && id.StatsMinCell < policyMinCell(p):
		ve.add(path, "stats_min_cell %d is below the policy's %d; an identity can only raise it", id.StatsMinCell, policyMinCell(p))
	}

	if id.RateLimit != nil {
		validateRate(path+": rate_limit", *id.RateLimit, ve)
	}
	for j, s := range id.Purposes {
		if msg := purposeProblem(s); msg != "" {
			ve.add(fmt.Sprintf("%s: purposes[%d]", path, j), "a purpose %s", msg)
		} else if slices.Index(id.Purposes, s) < j {
			ve.add(fmt.Sprintf("%s: purposes[%d]", path, j), "%q is listed twice", s)
		}
	}

	id.Credentials.validate(id, path+": credentials", ve)
}

func policyMinCell(p *Policy) int {
	if p.StatsMinCell == 0 {
		return DefaultStatsMinCell
	}
	return p.StatsMinCell
}

func validateRate(path string, r RateLimit, ve *ValidationError) {
	if r.RPS <= 0 {
		ve.add(path, "rps must be positive, not %v", r.RPS)
	}
	if r.Burst < 1 {
		ve.add(path, "burst must be at least 1, not %d", r.Burst)
	}
}

// purposeProblem says what is wrong with an X-Purpose value, or "". It is
// the one rule for the purposes a policy lists and the X-Purpose header a
// request sends, so its text is a predicate ("is at most 200 bytes …")
// that each caller puts after its own subject ("a purpose", "the
// X-Purpose header"). It never repeats the value, which may hold personal
// data.
func purposeProblem(s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "must not be empty"
	case len(s) > maxPurpose:
		return fmt.Sprintf("is at most %d bytes (got %d)", maxPurpose, len(s))
	case !utf8.ValidString(s):
		// An HTTP/1.1 client's Latin-1 (Python sends "café" so): the
		// audit trail could record only U+FFFD for it, so that two
		// purposes read alike.
		return "must be UTF-8 (send other text as an RFC 8187 ext-value, UTF-8'' and the purpose percent-encoded)"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}

const maxPurpose = 200

func (c Credentials) validate(id *Identity, path string, ve *ValidationError) {
	for k, t := range c.TokenSHA256 {
		if b, err := hex.DecodeString(t); err != nil || len(b) != 32 {
			ve.add(path+"."+c.TokenSHA256.field("token_sha256", k), "want the 64 hexadecimal digits of the token's SHA-256 (`pophub policy hash-token`), never the token itself")
		}
	}
	for k, f := range c.CertSHA256 {
		if b, err := hex.DecodeString(normalizeFingerprint(f)); err != nil || len(b) != 32 {
			ve.add(path+"."+c.CertSHA256.field("cert_sha256", k), "want the certificate's SHA-256 fingerprint: 64 hexadecimal digits, colons allowed")
		}
	}
	if k := c.Kafka; k != nil {
		kp := path + ".kafka"
		if k.SCRAM == nil && k.Password == "" {
			ve.add(kp, "give scram_sha512, a password reference, or both")
		}
		if k.Password != "" {
			if msg := refProblem(k.Password); msg != "" {
				ve.add(kp+".password", "%s", msg)
			}
		}
		if s := k.SCRAM; s != nil {
			sp := kp + ".scram_sha512"
			if b, err := base64.StdEncoding.DecodeString(s.Salt); err != nil || len(b) < 16 {
				ve.add(sp+".salt", "want at least 16 random bytes, base64")
			}
			if s.Iterations < MinSCRAMIterations {
				ve.add(sp+".iterations", "want at least %d (RFC 7677), not %d", MinSCRAMIterations, s.Iterations)
			}
			if b, err := base64.StdEncoding.DecodeString(s.StoredKey); err != nil || len(b) != 64 {
				ve.add(sp+".stored_key", "want 64 bytes (SHA-512), base64")
			}
			if b, err := base64.StdEncoding.DecodeString(s.ServerKey); err != nil || len(b) != 64 {
				ve.add(sp+".server_key", "want 64 bytes (HMAC-SHA-512), base64")
			}
		}
	}
	if n := c.NATS; n != nil {
		np := path + ".nats"
		switch {
		case n.PasswordBcrypt == "" && n.Nkey == "":
			ve.add(np, "give password_bcrypt or nkey")
		case n.PasswordBcrypt != "" && n.Nkey != "":
			ve.add(np, "give password_bcrypt or nkey, not both")
		case n.PasswordBcrypt != "":
			if !bcryptRE.MatchString(n.PasswordBcrypt) {
				ve.add(np+".password_bcrypt", "not a bcrypt hash ($2a$…, `pophub policy hash-password`); a password is never written in clear")
			} else if cost, err := bcrypt.Cost([]byte(n.PasswordBcrypt)); err != nil || cost < 10 {
				ve.add(np+".password_bcrypt", "bcrypt cost must be at least 10")
			}
		case !nkeyRE.MatchString(n.Nkey):
			ve.add(np+".nkey", "want a user public nkey (U followed by 55 base32 characters); never the seed")
		}
		switch pre := n.InboxPrefix; {
		case pre == "":
		case !strings.HasPrefix(pre, "$") && !inboxRE.MatchString(pre):
			ve.add(np+".inbox_prefix", "%q: want one subject token of letters, digits, '-' and '_'", pre)
		case sharedRoot(pre) != "":
			ve.add(np+".inbox_prefix", "%q is %s, shared by every identity; an inbox must be private: leave inbox_prefix out for the default _INBOX_%s or choose another", pre, sharedRoot(pre), id.Name)
		}
	}

	// Each grant needs a credential that can use it.
	http := len(c.TokenSHA256) > 0 || len(c.CertSHA256) > 0
	if (len(id.Read) > 0 || id.Stats) && !http {
		ve.add(path, "reads over HTTP but has neither token_sha256 nor cert_sha256")
	}
	if len(id.Subscribe) > 0 && c.NATS == nil {
		ve.add(path, "subscribes but has no nats credential")
	}
	if len(id.Publish) > 0 && c.Kafka == nil && !http {
		ve.add(path, "publishes but has neither a kafka credential nor an HTTP credential (token_sha256 or cert_sha256) for the gateway")
	}
	if id.Kind == KindHub && (c.Kafka == nil || c.NATS == nil) {
		ve.add(path, "the hub needs a kafka and a nats credential")
	}
	if id.Kind == KindHub && c.NATS != nil && c.NATS.PasswordBcrypt == "" {
		ve.add(path+".nats", "the hub logs in to NATS with a password (--nats-password): give password_bcrypt, not an nkey")
	}
}

// sharedRoots are the first tokens of the subjects the hub shares among
// identities. The policy grants each identity subscribe permission on
// <inbox_prefix>.> (NATSPermissions), so a prefix equal to one of them
// would let it receive every message under it.
var sharedRoots = []struct{ root, what string }{
	{strings.TrimSuffix(schemas.StreamSubjects, ".>"), "every notification"},
	{DeadLetterPrefix, "every subscriber's dead letters"},
	{"_INBOX", "the hub's replies"},
}

// sharedRoot describes the shared subjects an inbox prefix would cover,
// or is "". A prefix is one subject token (inboxRE), so it overlaps a
// root at token boundaries only by being equal to it; Policy.validate
// refuses two identities with the same prefix the same way.
func sharedRoot(pre string) string {
	if strings.HasPrefix(pre, "$") {
		return "a server subject root ($JS, $KV, $SYS: JetStream and system traffic)"
	}
	// The server answers a request that crossed an account import on a
	// reply subject of its own under _R_ in the exporting account (every
	// identity's pulls, in the hub's), and gateways under _GR_: an inbox
	// there would be exported with them (NATSConfig).
	if pre == "_R_" || pre == "_GR_" {
		return "the server's reply root " + pre + " (the answers to every identity's requests to the hub's account, the notifications they pull)"
	}
	for _, r := range sharedRoots {
		if pre == r.root {
			return fmt.Sprintf("the hub's subject root %s (%s)", r.root, r.what)
		}
	}
	return ""
}

// refProblem says what is wrong with a secret reference, or "".
func refProblem(ref string) string {
	scheme, rest, ok := strings.Cut(ref, ":")
	switch {
	case !ok || (scheme != "env" && scheme != "file"):
		return "a clear-text secret is not allowed here: give a reference, env:NAME or file:PATH"
	case scheme == "env" && !envRE.MatchString(rest):
		return fmt.Sprintf("env:%s: not an environment variable name", rest)
	case scheme == "file" && !strings.HasPrefix(rest, "/"):
		return fmt.Sprintf("file:%s: want an absolute path", rest)
	}
	return ""
}

func normalizeFingerprint(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, ":", ""))
}

func joinSections() string {
	s := make([]string, len(schemas.Sections))
	for i, v := range schemas.Sections {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func joinSources() string {
	s := make([]string, len(schemas.Sources))
	for i, v := range schemas.Sources {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func joinKinds() string {
	s := make([]string, len(Kinds))
	for i, v := range Kinds {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
