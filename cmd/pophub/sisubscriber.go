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

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/consumers/socialinsurance"
	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/schemas"
)

// siSubscriberCommand runs the social-insurance reference subscriber and
// completes its tasks:
//
//	pophub si-subscriber --hub URL --nats URL --region 2301 --postgres URL --http ADDR --api-token-file FILE
//	pophub si-subscriber complete TASK --postgres URL --kafka BROKERS
func siSubscriberCommand(newLogger func() *slog.Logger) *cobra.Command {
	var cfg socialinsurance.Config
	var kafkaBrokers, start string
	var api siAPIFlags
	var ca *caFlag
	var otlp *otlpFlag
	cmd := &cobra.Command{
		Use:   "si-subscriber --region CODE --nats URL --postgres URL [--hub URL] [--http ADDR]",
		Short: "Run the social-insurance reference subscriber: tasks from migrations and deaths",
		Long: `Subscribes to the hub's migrations out of and into --region and deaths in it, and keeps
tasks in its own PostgreSQL schema: transfer_out, transfer_in (moves crossing the region's
boundary; moves within it need no transfer) and stop_benefits. With --hub, the first start
bootstraps the roster from the hub's snapshot of the region and continues with the
notifications after it; otherwise it starts at --start. Tasks are listed at GET /tasks and
completed with POST /tasks/{id}/complete or "pophub si-subscriber complete TASK", which
publishes the completion to the hub through Kafka. With --otlp, the handling of each
notification the hub passes on with sampled trace context is a span of that trace.

The tasks routes show full citizen IDs and change golden records, so they require the
bearer token in --api-token-file (or POPHUB_SI_API_TOKEN) and refuse every request
without one; /healthz and /metrics stay open. --http off the loopback interface is
refused without a token. --tls-cert and --tls-key serve the API over HTTPS only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := parseStart(start)
			if err != nil {
				return err
			}
			cfg.Start = st
			cfg.Kafka = splitList(kafkaBrokers)
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
	f.StringVar(&kafkaBrokers, "kafka", envOr("POPHUB_KAFKA", "127.0.0.1:19092"), "comma-separated Kafka brokers completions are published to (env POPHUB_KAFKA)")
	ca = addCAFlag(f)
	otlp = addOTLPFlag(f)
	lf := cmd.Flags()
	lf.StringVar(&cfg.Region, "region", envOr("POPHUB_SI_REGION", ""), "the bureau's 2-, 4- or 6-digit region code (env POPHUB_SI_REGION)")
	lf.StringVar(&cfg.NATS, "nats", envOr("POPHUB_NATS", "nats://127.0.0.1:14222"), "NATS server URL (env POPHUB_NATS; default: pophub dev's, as --kafka)")
	lf.StringVar(&cfg.NATSUser, "nats-user", envOr("POPHUB_SI_NATS_USER", ""), "NATS user: the bureau's identity under an access policy, which --name must equal (env POPHUB_SI_NATS_USER)")
	lf.StringVar(&cfg.NATSPassword, "nats-password", envOr("POPHUB_SI_NATS_PASSWORD", ""), "its NATS password (env POPHUB_SI_NATS_PASSWORD)")
	lf.StringVar(&cfg.NATSInboxPrefix, "nats-inbox-prefix", envOr("POPHUB_SI_NATS_INBOX_PREFIX", ""), "its private inbox prefix under an access policy, _INBOX_<identity> unless the policy says otherwise (env POPHUB_SI_NATS_INBOX_PREFIX)")
	lf.BoolVar(&cfg.ConsumerPerFilter, "consumer-per-filter", false, "one durable consumer per filter (out, in, deaths), as an access policy requires, instead of one on the subject covering them")
	lf.StringVar(&cfg.Hub, "hub", envOr("POPHUB_HUB", ""), "hub HTTP API for the bootstrap snapshot, e.g. http://127.0.0.1:8780 (env POPHUB_HUB)")
	lf.StringVar(&cfg.Purpose, "purpose", envOr("POPHUB_SI_PURPOSE", "social-insurance transfer (社会保险关系转移)"), "X-Purpose sent to the hub (env POPHUB_SI_PURPOSE)")
	lf.StringVar(&cfg.Token, "token", envOr("POPHUB_SI_TOKEN", ""), "bearer token for the hub (env POPHUB_SI_TOKEN)")
	lf.StringVar(&cfg.HTTPAddr, "http", envOr("POPHUB_SI_HTTP", "127.0.0.1:8090"), "address of the tasks API, /healthz and /metrics (env POPHUB_SI_HTTP)")
	lf.StringVar(&api.tokenFile, "api-token-file", "", "file holding the bearer token the tasks API requires (or the token in env POPHUB_SI_API_TOKEN); without one the API refuses every request")
	lf.StringVar(&api.tlsCert, "tls-cert", envOr("POPHUB_SI_TLS_CERT", ""), "serve the HTTP API over HTTPS only with this PEM certificate chain (env POPHUB_SI_TLS_CERT)")
	lf.StringVar(&api.tlsKey, "tls-key", envOr("POPHUB_SI_TLS_KEY", ""), "the PEM private key of --tls-cert (env POPHUB_SI_TLS_KEY)")
	lf.StringVar(&cfg.Name, "name", "", "durable subscriber name (default socialinsurance-<region>)")
	lf.IntVar(&cfg.Concurrency, "concurrency", 8, "notifications handled in parallel (one citizen at a time)")
	lf.StringVar(&start, "start", "new", "where a new subscription starts without --hub: new, all, seq:N, or an RFC 3339 time")
	cmd.AddCommand(siCompleteCommand(newLogger, &cfg, &kafkaBrokers, ca, otlp))
	return cmd
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

func siCompleteCommand(newLogger func() *slog.Logger, cfg *socialinsurance.Config, kafkaBrokers *string, ca *caFlag, otlp *otlpFlag) *cobra.Command {
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
			pub, err := publisher.New(publisher.Config{Brokers: splitList(*kafkaBrokers), TLS: tc, Source: schemas.SocialInsurance, Logger: log,
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
