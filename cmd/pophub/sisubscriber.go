package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/socialinsurance"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/schemas"
)

// siSubscriberCommand runs the social-insurance reference subscriber and
// completes its tasks:
//
//	pophub si-subscriber --hub URL --nats URL --region 2301 --postgres URL --http ADDR --api-token-file FILE
//	pophub si-subscriber complete TASK --postgres URL --kafka BROKERS [--kafka-user USER --kafka-password PW]
func siSubscriberCommand(newLogger func() *slog.Logger) *cobra.Command {
	var cfg socialinsurance.Config
	var kafkaBrokers, start string
	var login *kafkaLogin
	var api siAPIFlags
	var ca *caFlag
	var otlp *otlpFlag
	cmd := &cobra.Command{
		Use:   "si-subscriber --region CODE --nats URL --postgres URL [--hub URL] [--http ADDR]",
		Short: "Run the social-insurance reference subscriber: tasks from migrations and deaths",
		Long: fmt.Sprintf(`Subscribes to the hub's migrations out of and into --region and deaths in it, and keeps
tasks in its own PostgreSQL schema: transfer_out, transfer_in (moves crossing the region's
boundary; moves within it need no transfer) and stop_benefits. It also follows the status
changes in the region (pop.changed.<region>.status, the status section only): a person
active again after a death (a hukou restored) has their open stop_benefits task cancelled
(status cancelled, with cancel_reason; completing it is refused) and a done one flagged
with reactivated_at for review. A person whose hukou moved out of the region on or before
the death (the move may arrive after the death, which the hub then announces again in the
county moved to) has their open stop_benefits task cancelled likewise, naming that county,
and a done one flagged with moved_out_at for review: the bureau of the county moved to
stops the benefits. With --hub, the first start
bootstraps the roster from the hub's snapshot of the region and continues with the
notifications after it; otherwise it starts at --start. The service keeps where its
consumers got to in its database: a consumer that disappears while it is stopped is
created again there, and what the stream deleted meanwhile is logged and counted as a
gap. To start over after a gap, stop it, delete its consumers and start it with
--start-over and --hub: the bootstrap records the deaths it missed as stop_benefits
tasks (reopening one a restoration ended) without a date of death (the golden record
carries none), whose completion ends the insurances on the day the task was recorded; a
date of death announced later is kept as the task's corrected date for review. People
who moved out during the gap get no transfer_out task. Tasks are listed at GET /tasks and
completed with POST /tasks/{id}/complete or "pophub si-subscriber complete TASK", which
publishes the completion to the hub through Kafka; brokers that require a login (an
access policy) take the identity that may write social_insurance events with
--kafka-user and --kafka-password (env POPHUB_SI_KAFKA_USER, POPHUB_SI_KAFKA_PASSWORD).
With --otlp, the handling of each notification the hub passes on with sampled trace
context is a span of that trace.

GET /tasks answers a JSON array of tasks in id order, one page at a time: at most limit
tasks (default %d, at most %d) whose id is above after. Parameters: status=open|done|cancelled,
citizen_id=ID, corrected=true (stop_benefits tasks whose date of death was corrected after
completion), reactivated=true (stop_benefits tasks whose person became active again),
moved_out=true (stop_benefits tasks whose person moved out of the region before the death),
after=ID, limit=N. POST /tasks/{id}/complete answers 409 for a cancelled task. A full page carries a header Link: <...>; rel="next", the same
request with after= the page's last id; follow it until an answer has no Link. A
stop_benefits task shows date_of_death (the one its completion reported once done) and
corrected_date_of_death (a different date announced afterwards, for review), as YYYY-MM-DD.
GET /healthz answers 200 while the database answers and the subscriber consumes, and 503
with the reason otherwise (setting up, e.g. the hub's stream missing; NATS unreachable).
A durable consumer of --name that filters another region (--region changed under the
same name) stops the subscriber with an error naming it: delete the consumer or use another
--name. With --consumer-per-filter (one consumer per filter, named --name, "-" and 8 hex
digits) the subscriber lists the stream's consumers to find the old region's, which a NATS
user under an access policy may not do: it then logs a warning and starts the new region's
consumers at --start (or from the bootstrap) next to the old region's. There, give a new
region a new --schema, and have a NATS administrator delete the old region's consumers.

The tasks routes show full citizen IDs and change golden records, so they require the
bearer token in --api-token-file (or POPHUB_SI_API_TOKEN) and refuse every request
without one; /healthz and /metrics stay open. --http off the loopback interface is
refused without a token. --tls-cert and --tls-key serve the API over HTTPS only.`, socialinsurance.DefaultTaskLimit, socialinsurance.MaxTaskLimit),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := parseStart(start)
			if err != nil {
				return err
			}
			cfg.Start = st
			cfg.Kafka = splitList(kafkaBrokers)
			if cfg.KafkaSASL, err = siKafkaMechanism(login); err != nil {
				return err
			}
			cfg.NATSInboxPrefix = siInboxPrefix(cfg.NATSUser, cfg.NATSInboxPrefix)
			if cfg.TLS, err = ca.tls(); err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			if cfg.APIToken, cfg.HTTPTLS, err = api.load(); err != nil {
				return err
			}
			cfg.Logger = newLogger()
			tel, err := otlp.setup(cmd.Context(), "pophub-si-subscriber", continuesTraces, cfg.Logger)
			if err != nil {
				return err
			}
			defer shutdownTelemetry(tel, cfg.Logger)
			cfg.TracerProvider = tel.TracerProvider
			svc, err := socialinsurance.New(cmd.Context(), cfg)
			if errors.Is(err, socialinsurance.ErrAPITokenRequired) {
				return fmt.Errorf("--http %s: give --api-token-file or POPHUB_SI_API_TOKEN: %w", cfg.HTTPAddr, err)
			}
			if err != nil {
				return err
			}
			defer svc.Close()
			if cfg.HTTPAddr != "" && cfg.APIToken == "" {
				cfg.Logger.Warn("the tasks API refuses every request: no API token (--api-token-file or POPHUB_SI_API_TOKEN)")
			}
			cfg.Logger.Info("social-insurance subscriber running", "region", cfg.Region, "http", cfg.HTTPAddr, "https", cfg.HTTPTLS != nil)
			return svc.Run(cmd.Context())
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&cfg.Postgres, "postgres", envOr("POPHUB_SI_POSTGRES", ""), "PostgreSQL URL (env POPHUB_SI_POSTGRES)")
	f.StringVar(&cfg.Schema, "schema", envOr("POPHUB_SI_SCHEMA", "socialinsurance"), "the service's PostgreSQL schema (env POPHUB_SI_SCHEMA)")
	// --kafka and --nats read the subscriber's own variables, not the
	// hub's POPHUB_KAFKA and POPHUB_NATS, so that a shell set up for
	// `pophub serve` does not silently point the subscriber at the hub's.
	f.StringVar(&kafkaBrokers, "kafka", envOr("POPHUB_SI_KAFKA", "127.0.0.1:19092"), "comma-separated Kafka brokers completions are published to (env POPHUB_SI_KAFKA)")
	login = addSIKafkaLoginFlags(f)
	ca = addCAFlag(f)
	otlp = addOTLPFlag(f)
	lf := cmd.Flags()
	lf.StringVar(&cfg.Region, "region", envOr("POPHUB_SI_REGION", ""), "the bureau's 2-, 4- or 6-digit region code (env POPHUB_SI_REGION)")
	lf.StringVar(&cfg.NATS, "nats", envOr("POPHUB_SI_NATS", "nats://127.0.0.1:14222"), "NATS server URL (env POPHUB_SI_NATS; default: pophub dev's, as --kafka)")
	lf.StringVar(&cfg.NATSUser, "nats-user", envOr("POPHUB_SI_NATS_USER", ""), "NATS user: the bureau's identity under an access policy, which --name must equal (env POPHUB_SI_NATS_USER)")
	lf.StringVar(&cfg.NATSPassword, "nats-password", envOr("POPHUB_SI_NATS_PASSWORD", ""), "its NATS password (env POPHUB_SI_NATS_PASSWORD)")
	lf.StringVar(&cfg.NATSInboxPrefix, "nats-inbox-prefix", envOr("POPHUB_SI_NATS_INBOX_PREFIX", ""), "its private inbox prefix under an access policy: the identity's inbox_prefix when the policy sets one (default with --nats-user: _INBOX_<nats-user>, the policy's default; env POPHUB_SI_NATS_INBOX_PREFIX)")
	lf.BoolVar(&cfg.ConsumerPerFilter, "consumer-per-filter", false, "one durable consumer per filter (out, in, deaths, status changes), as an access policy requires, instead of one on the subject covering them; the policy must grant the identity each filter's subject")
	lf.StringVar(&cfg.Hub, "hub", envOr("POPHUB_HUB", ""), "hub HTTP API for the bootstrap snapshot, e.g. http://127.0.0.1:8780 (env POPHUB_HUB)")
	lf.StringVar(&cfg.Purpose, "purpose", envOr("POPHUB_SI_PURPOSE", "social-insurance transfer (社会保险关系转移)"), "X-Purpose sent to the hub (env POPHUB_SI_PURPOSE)")
	lf.StringVar(&cfg.Token, "token", envOr("POPHUB_SI_TOKEN", ""), "bearer token for the hub (env POPHUB_SI_TOKEN)")
	lf.StringVar(&cfg.HTTPAddr, "http", envOr("POPHUB_SI_HTTP", "127.0.0.1:8090"), "address of the tasks API, /healthz and /metrics (env POPHUB_SI_HTTP)")
	lf.StringVar(&api.tokenFile, "api-token-file", "", "file holding the bearer token the tasks API requires (or the token in env POPHUB_SI_API_TOKEN); without one the API refuses every request")
	lf.StringVar(&api.tlsCert, "tls-cert", envOr("POPHUB_SI_TLS_CERT", ""), "serve the HTTP API over HTTPS only with this PEM certificate chain (env POPHUB_SI_TLS_CERT)")
	lf.StringVar(&api.tlsKey, "tls-key", envOr("POPHUB_SI_TLS_KEY", ""), "the PEM private key of --tls-cert (env POPHUB_SI_TLS_KEY)")
	lf.StringVar(&cfg.Name, "name", "", "durable subscriber name (default socialinsurance-<region>)")
	cfg.Concurrency = 8
	lf.Var((*positiveInt)(&cfg.Concurrency), "concurrency", "notifications handled in parallel (one citizen at a time)")
	lf.StringVar(&start, "start", "new", "where a new subscription starts without --hub: new, all, seq:N, or an RFC 3339 time")
	lf.BoolVar(&cfg.StartOver, "start-over", false, "forget where the consumers had got to, so that consumers deleted beforehand start again from a bootstrap (--hub) or at --start: the way back after a gap")
	cmd.AddCommand(siCompleteCommand(newLogger, &cfg, &kafkaBrokers, login, ca, otlp))
	return cmd
}

// addSIKafkaLoginFlags adds --kafka-user and --kafka-password, the login
// completions are published with when the brokers ask for one: under an
// access policy, the identity that may write social_insurance events
// (social_insurance in ops/policy.example.yaml), not the bureau's NATS
// identity. They read the subscriber's own variables, as its other
// settings do, so that one shell can run it next to a department's
// commands, which read POPHUB_KAFKA_USER.
func addSIKafkaLoginFlags(f *pflag.FlagSet) *kafkaLogin {
	l := &kafkaLogin{}
	f.StringVar(&l.user, "kafka-user", os.Getenv("POPHUB_SI_KAFKA_USER"),
		"SASL/SCRAM-SHA-512 user completions are published as when the brokers ask for one: the identity that may write social_insurance events (env POPHUB_SI_KAFKA_USER)")
	f.StringVar(&l.password, "kafka-password", os.Getenv("POPHUB_SI_KAFKA_PASSWORD"),
		"its password (env POPHUB_SI_KAFKA_PASSWORD)")
	return l
}

// siKafkaMechanism is l's SASL mechanism (kafkaLogin.mechanism): nil
// without a login; a user without a password, or a password without a
// user, is refused naming the subscriber's own variable.
func siKafkaMechanism(l *kafkaLogin) (sasl.Mechanism, error) {
	switch {
	case l.user == "" && l.password != "":
		return nil, errors.New("--kafka-password is set but --kafka-user is not (env POPHUB_SI_KAFKA_USER)")
	case l.user != "" && l.password == "":
		return nil, errors.New("--kafka-user is set but --kafka-password is not (env POPHUB_SI_KAFKA_PASSWORD)")
	}
	return l.mechanism()
}

// siInboxPrefix is the inbox prefix the subscriber connects to NATS with:
// prefix when given; for a NATS user without one, the private inbox the
// access policy grants an identity by default, _INBOX_<user> (the
// policy's NATS permissions allow it no other); without a user, "" (the
// client's _INBOX).
func siInboxPrefix(user, prefix string) string {
	if prefix != "" || user == "" {
		return prefix
	}
	return inboxPrefix(access.Identity{Name: user})
}

// siAPIFlags are the credentials of the subscriber's own HTTP API.
type siAPIFlags struct {
	tokenFile, tlsCert, tlsKey string
}

// load reads the API token (--api-token-file, else POPHUB_SI_API_TOKEN;
// "" when neither is given) and the HTTPS configuration (nil without
// --tls-cert).
func (f siAPIFlags) load() (token string, tc *tls.Config, err error) {
	token = strings.TrimSpace(os.Getenv("POPHUB_SI_API_TOKEN"))
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", nil, fmt.Errorf("--api-token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return "", nil, fmt.Errorf("--api-token-file %s holds no token", f.tokenFile)
		}
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return "", nil, errors.New("--tls-cert and --tls-key go together")
	}
	if f.tlsCert != "" {
		if tc, err = tlsconf.Server(f.tlsCert, f.tlsKey); err != nil {
			return "", nil, fmt.Errorf("--tls-cert: %w", err)
		}
	}
	return token, tc, nil
}

func siCompleteCommand(newLogger func() *slog.Logger, cfg *socialinsurance.Config, kafkaBrokers *string, login *kafkaLogin, ca *caFlag, otlp *otlpFlag) *cobra.Command {
	return &cobra.Command{
		Use:   "complete TASK",
		Short: "Complete a task: publish social_insurance.transferred (or .terminated) to the hub and mark it done",
		Long: `Publishes the task's completion to the hub through Kafka, then marks it done. The event
id is derived from the task, so completing twice sends nothing new and the hub applies the
event once. With --otlp, the completion's publish starts a trace.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("task %q: want a task id", args[0])
			}
			if cfg.Postgres == "" {
				return fmt.Errorf("--postgres is required")
			}
			mech, err := siKafkaMechanism(login)
			if err != nil {
				return err
			}
			tc, err := ca.tls()
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			log := newLogger()
			store, err := socialinsurance.OpenStore(cmd.Context(), cfg.Postgres, cfg.Schema, log)
			if err != nil {
				return err
			}
			defer store.Close()
			tel, err := otlp.setup(cmd.Context(), "pophub-si-subscriber", startsTraces, log)
			if err != nil {
				return err
			}
			defer shutdownTelemetry(tel, log)
			pub, err := publisher.New(publisher.Config{Brokers: splitList(*kafkaBrokers), TLS: tc, SASL: mech, Source: schemas.SocialInsurance, Logger: log,
				TracerProvider: tel.TracerProvider, Propagator: tel.Propagator})
			if err != nil {
				return fmt.Errorf("creating publisher: %w", err)
			}
			defer pub.Close()
			task, err := socialinsurance.Complete(cmd.Context(), store, pub, id)
			if err != nil {
				return fmt.Errorf("completing task %d: %w", id, err)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			return enc.Encode(task)
		},
	}
}

// parseStart reads --start: new, all, seq:N or an RFC 3339 time.
func parseStart(s string) (sdk.Start, error) {
	switch {
	case s == "" || s == "new":
		return sdk.Start{Policy: sdk.StartNew}, nil
	case s == "all":
		return sdk.Start{Policy: sdk.StartAll}, nil
	case strings.HasPrefix(s, "seq:"):
		n, err := strconv.ParseUint(strings.TrimPrefix(s, "seq:"), 10, 64)
		if err != nil || n == 0 {
			return sdk.Start{}, fmt.Errorf("--start %q: want seq:N with N ≥ 1", s)
		}
		return sdk.Start{Policy: sdk.StartSequence, Sequence: n}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return sdk.Start{}, fmt.Errorf("--start %q: want new, all, seq:N or an RFC 3339 time", s)
	}
	return sdk.Start{Policy: sdk.StartTime, Time: t}, nil
}
