package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pophub/pophub/hub/api"
)

func devCommand(newLogger func() *slog.Logger) *cobra.Command {
	var cfg Config
	tlsEnv, tlsEnvErr := envBool("POPHUB_TLS")
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole hub in one process: embedded Kafka-protocol broker, NATS JetStream and store",
		Long: `Runs the hub with an in-process Kafka-protocol broker and NATS server, and the
golden-record store in go-memdb persisted under --data (or PostgreSQL with --postgres).
Any Kafka client (kcat, librdkafka, franz-go, kafka-go) can publish to --kafka.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tlsEnvErr != nil && !cmd.Flags().Changed("tls") {
				return tlsEnvErr
			}
			cfg.Embedded = true
			return runUntilSignal(cmd, newLogger(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", envOr("POPHUB_DATA", "pophub-data"), "directory for the broker log, NATS store and memdb store (env POPHUB_DATA)")
	f.StringVar(&cfg.HTTPAddr, "http", envOr("POPHUB_HTTP", "127.0.0.1:8780"), "HTTP API listen address (env POPHUB_HTTP)")
	f.StringVar(&cfg.KafkaAddr, "kafka", envOr("POPHUB_KAFKA_LISTEN", "127.0.0.1:19092"), "embedded Kafka-protocol broker listen address (env POPHUB_KAFKA_LISTEN)")
	f.StringVar(&cfg.NATSAddr, "nats", envOr("POPHUB_NATS_LISTEN", "127.0.0.1:14222"), "embedded NATS listen address (env POPHUB_NATS_LISTEN)")
	f.StringVar(&cfg.PostgresURL, "postgres", os.Getenv("POPHUB_POSTGRES"), "use PostgreSQL at this URL instead of memdb (env POPHUB_POSTGRES)")
	keysFlag(f, &cfg.KeysFile, `; default <data>/keys, generated when missing; "none" stores in clear`)
	f.StringVar(&cfg.OTLPEndpoint, "otlp", os.Getenv("POPHUB_OTLP"), "export traces to this OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318 (env POPHUB_OTLP)")
	f.StringVar(&cfg.RegionsFile, "regions", os.Getenv("POPHUB_REGIONS"), "official NBS urban-rural table saved by 'pophub regions import' (env POPHUB_REGIONS)")
	f.StringVar(&cfg.GatewayTokens, "gateway-tokens", os.Getenv("POPHUB_GATEWAY_TOKENS"), "department tokens file: take events at POST /v1/events (env POPHUB_GATEWAY_TOKENS)")
	f.StringVar(&cfg.PoliciesDir, "policies", os.Getenv("POPHUB_POLICIES"), "directory of eligibility policies to use instead of the built-in ones (env POPHUB_POLICIES)")
	f.StringSliceVar(&cfg.EligibilityNotify, "eligibility-notify", splitList(os.Getenv("POPHUB_ELIGIBILITY_NOTIFY")), "policies whose newly eligible persons are announced on pop.eligibility.<policy>.<R>, or \"all\" (env POPHUB_ELIGIBILITY_NOTIFY)")
	f.StringVar(&cfg.PolicyFile, "policy", os.Getenv("POPHUB_POLICY"), "access policy (see ops/policy.example.yaml): credentials at every door, reads audited (env POPHUB_POLICY)")
	f.StringVar(&cfg.AuditKeyFile, "audit-key-file", os.Getenv("POPHUB_AUDIT_KEY_FILE"), "the audit trail's key, from 'pophub audit keygen' (env POPHUB_AUDIT_KEY_FILE; dev default <data>/audit.key)")
	f.StringVar(&cfg.NATSPassword, "nats-password", os.Getenv("POPHUB_NATS_PASSWORD"), "the hub's own NATS password when --policy is on (env POPHUB_NATS_PASSWORD)")
	cfg.Partitions = 8
	f.Var((*positiveInt)(&cfg.Partitions), "partitions", "partitions per source topic")
	f.BoolVar(&cfg.TLS, "tls", tlsEnv, "serve Kafka, NATS and HTTP over TLS only, with a local CA and certificate made in <data>/tls; clients trust <data>/tls/ca.pem (env POPHUB_TLS, true or false)")
	tlsClientCAFlag(f, &cfg)
	httpReadTimeoutFlag(f, &cfg)
	shutdownDelayFlag(f, &cfg)
	f.DurationVar(&cfg.NATSSync, "nats-sync", time.Second, "how often the embedded JetStream store fsyncs; 0 = every write (durable against power loss, slower)")
	f.DurationVar(&cfg.NATSRepublishWindow, "nats-republish-window", 5*time.Second,
		"keep acknowledged notifications this long in the store and publish them again at start and after a reconnect (cover --nats-sync)")
	return cmd
}

func serveCommand(newLogger func() *slog.Logger) *cobra.Command {
	var cfg Config
	var brokers string
	var stateCache stateCacheFlag
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the hub against external Kafka, PostgreSQL and NATS (production)",
		Long: `Runs one hub instance. Several instances with the same --group share the source
topics' partitions and may apply events of one person concurrently: the PostgreSQL
store locks the touched persons' rows, so no update is lost.
Without --postgres the store is go-memdb persisted under --data (one instance only).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.KafkaBrokers = splitList(brokers)
			if err := stateCache.apply(cmd, &cfg); err != nil {
				return err
			}
			log := newLogger()
			if cfg.PolicyFile == "" {
				// Production without a policy is a deployment mistake
				// more often than a choice: say so where operators look.
				log.Warn("no --policy: the HTTP API answers every golden record to anyone who can reach it, unauthenticated and unaudited",
					"http", cfg.HTTPAddr)
			}
			return runUntilSignal(cmd, log, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokers, "kafka", os.Getenv("POPHUB_KAFKA"), "comma-separated Kafka bootstrap brokers (env POPHUB_KAFKA)")
	f.StringVar(&cfg.NATSURL, "nats", os.Getenv("POPHUB_NATS"), "NATS URL (env POPHUB_NATS)")
	f.DurationVar(&cfg.NATSRepublishWindow, "nats-republish-window", 150*time.Second,
		"keep acknowledged notifications this long in the store and publish them again at start and after a reconnect; above the server's sync interval (2 min by default), below the stream's 10-minute duplicate window, 0 when it syncs every write")
	f.IntVar(&cfg.StreamReplicas, "stream-replicas", 0, "replicas of the notification stream POP (0: keep the stream's; 1 when creating it)")
	f.DurationVar(&cfg.StreamMaxAge, "stream-max-age", 0, "keep notifications this long, at least 10m (0: keep the stream's limit; none when creating it)")
	f.StringVar(&cfg.PostgresURL, "postgres", os.Getenv("POPHUB_POSTGRES"), "PostgreSQL URL (env POPHUB_POSTGRES)")
	f.StringVar(&cfg.PostgresSchema, "postgres-schema", os.Getenv("POPHUB_POSTGRES_SCHEMA"),
		"PostgreSQL schema for the hub's tables (env POPHUB_POSTGRES_SCHEMA; default: the one the --postgres URL's search_path names, else public; a URL naming another is refused)")
	f.StringVar(&cfg.DataDir, "data", os.Getenv("POPHUB_DATA"), "memdb store directory, when --postgres is not given (env POPHUB_DATA)")
	keysFlag(f, &cfg.KeysFile, "; without it the store is in clear")
	f.StringVar(&cfg.HTTPAddr, "http", envOr("POPHUB_HTTP", "127.0.0.1:8780"), "HTTP API listen address (env POPHUB_HTTP)")
	f.StringVar(&cfg.GroupID, "group", os.Getenv("POPHUB_GROUP"), "Kafka consumer group (env POPHUB_GROUP; default: the access policy's kafka_group with --policy, else pophub)")
	f.StringVar(&cfg.OTLPEndpoint, "otlp", os.Getenv("POPHUB_OTLP"), "OTLP/HTTP trace endpoint (env POPHUB_OTLP)")
	f.StringVar(&cfg.RegionsFile, "regions", os.Getenv("POPHUB_REGIONS"), "official NBS urban-rural table saved by 'pophub regions import' (env POPHUB_REGIONS)")
	f.StringVar(&cfg.GatewayTokens, "gateway-tokens", os.Getenv("POPHUB_GATEWAY_TOKENS"), "department tokens file: take events at POST /v1/events (env POPHUB_GATEWAY_TOKENS)")
	f.StringVar(&cfg.PoliciesDir, "policies", os.Getenv("POPHUB_POLICIES"), "directory of eligibility policies to use instead of the built-in ones (env POPHUB_POLICIES)")
	f.StringSliceVar(&cfg.EligibilityNotify, "eligibility-notify", splitList(os.Getenv("POPHUB_ELIGIBILITY_NOTIFY")), "policies whose newly eligible persons are announced on pop.eligibility.<policy>.<R>, or \"all\" (env POPHUB_ELIGIBILITY_NOTIFY)")
	f.StringVar(&cfg.PolicyFile, "policy", os.Getenv("POPHUB_POLICY"), "access policy (see ops/policy.example.yaml): credentials at every door, reads audited (env POPHUB_POLICY)")
	f.StringVar(&cfg.AuditKeyFile, "audit-key-file", os.Getenv("POPHUB_AUDIT_KEY_FILE"), "the audit trail's key, from 'pophub audit keygen' (env POPHUB_AUDIT_KEY_FILE; dev default <data>/audit.key)")
	f.StringVar(&cfg.NATSPassword, "nats-password", os.Getenv("POPHUB_NATS_PASSWORD"), "the hub's own NATS password when --policy is on (env POPHUB_NATS_PASSWORD)")
	cfg.Partitions = 8
	f.Var((*positiveInt)(&cfg.Partitions), "partitions", "partitions for topics the hub creates")
	stateCache.register(f)
	f.StringVar(&cfg.TLSCert, "tls-cert", os.Getenv("POPHUB_TLS_CERT"), "serve the HTTP API over HTTPS only with this PEM certificate chain (env POPHUB_TLS_CERT)")
	f.StringVar(&cfg.TLSKey, "tls-key", os.Getenv("POPHUB_TLS_KEY"), "the PEM private key of --tls-cert (env POPHUB_TLS_KEY)")
	f.StringVar(&cfg.TLSCA, "tls-ca", os.Getenv("POPHUB_TLS_CA"), "speak TLS to Kafka and NATS, trusting the CA certificates in this PEM file (env POPHUB_TLS_CA)")
	tlsClientCAFlag(f, &cfg)
	httpReadTimeoutFlag(f, &cfg)
	shutdownDelayFlag(f, &cfg)
	return cmd
}

// tlsClientCAFlag adds --tls-client-ca, the same for dev and serve.
func tlsClientCAFlag(f *pflag.FlagSet, cfg *Config) {
	f.StringVar(&cfg.TLSClientCA, "tls-client-ca", os.Getenv("POPHUB_TLS_CLIENT_CA"),
		"ask HTTPS clients for certificates signed by this PEM CA; one whose fingerprint a policy identity lists (cert_sha256) authenticates as it (env POPHUB_TLS_CLIENT_CA)")
}

// httpReadTimeoutFlag adds --http-read-timeout, the same for dev and serve.
// It takes a positive duration only: Go's http.Server reads 0 as no limit,
// and so would an operator, but a hub without one lets a client that sends
// slowly on purpose hold connections for ever (slowloris), so there is no
// such setting; Config's 0, the default, is not for the command line.
func httpReadTimeoutFlag(f *pflag.FlagSet, cfg *Config) {
	cfg.HTTPReadTimeout = api.DefaultReadTimeout
	f.Var((*positiveDuration)(&cfg.HTTPReadTimeout), "http-read-timeout",
		"how long a client may take to send a whole HTTP request, body included; a gateway body that takes longer is answered 408 "+
			"(at the 16 MiB body limit, 1m asks for about 280 kB/s); 0 is refused: there is no unlimited setting, "+
			"since a client sending slowly on purpose would hold its connection for ever")
}

// shutdownDelayFlag declares --shutdown-delay (Config.ShutdownDelay).
func shutdownDelayFlag(f *pflag.FlagSet, cfg *Config) {
	f.DurationVar(&cfg.ShutdownDelay, "shutdown-delay", 0,
		"on SIGTERM, serve on this long with /readyz answering 503 before stopping, for a load balancer or Kubernetes Service to stop routing here (at most 10s)")
}

// positiveDuration is a flag of a duration greater than zero.
type positiveDuration time.Duration

func (d *positiveDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 90s or 5m")
	}
	if v <= 0 {
		return errors.New("want a positive duration (there is no unlimited setting: give a longer one, such as 10m, for slow uploads)")
	}
	*d = positiveDuration(v)
	return nil
}

func (d *positiveDuration) String() string { return time.Duration(*d).String() }

func (d *positiveDuration) Type() string { return "duration" }

// positiveInt is a flag of a count of at least 1: 0 or below is refused
// naming the flag, where the settings behind it (Config, the store, the
// SDK) would quietly read it as their default.
type positiveInt int

func (n *positiveInt) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	if v < 1 {
		return errors.New("want at least 1")
	}
	*n = positiveInt(v)
	return nil
}

func (n *positiveInt) String() string { return strconv.Itoa(int(*n)) }

func (n *positiveInt) Type() string { return "int" }

// defaultStateCache is --postgres-state-cache's default: the store's own.
const defaultStateCache = 100_000

// stateCacheFlag is --postgres-state-cache, with POPHUB_POSTGRES_STATE_CACHE
// as its default, read when the command runs so that a bad value is
// refused with its name.
type stateCacheFlag struct{ n countValue }

func (f *stateCacheFlag) register(fs *pflag.FlagSet) {
	f.n = defaultStateCache
	fs.Var(&f.n, "postgres-state-cache", "persons whose merge states the PostgreSQL store keeps in memory between batches, to save reading them "+
		"again: it holds up to twice as many, about 8 kB each for a person with twenty events (1.6 GB at the default); 0 keeps none (env POPHUB_POSTGRES_STATE_CACHE)")
}

func (f *stateCacheFlag) apply(cmd *cobra.Command, cfg *Config) error {
	if v := os.Getenv("POPHUB_POSTGRES_STATE_CACHE"); v != "" && !cmd.Flags().Changed("postgres-state-cache") {
		if err := f.n.Set(v); err != nil {
			return fmt.Errorf("POPHUB_POSTGRES_STATE_CACHE=%q: %w", v, err)
		}
	}
	cfg.PostgresStateCache = int(f.n)
	if f.n == 0 {
		cfg.PostgresStateCache = -1 // none; Config's 0 is the store's default
	}
	return nil
}

// countValue is a flag holding a whole number, 0 or more.
type countValue int

func (n *countValue) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	if v < 0 {
		return errors.New("want 0 or more")
	}
	*n = countValue(v)
	return nil
}

func (n *countValue) String() string { return strconv.Itoa(int(*n)) }

func (n *countValue) Type() string { return "int" }

func runUntilSignal(cmd *cobra.Command, log *slog.Logger, cfg Config) error {
	m := &Main{Config: cfg, Logger: log}
	ctx := cmd.Context()
	if err := m.Start(ctx); err != nil {
		if ctx.Err() != nil {
			// A stop asked for while starting is a clean stop: nothing
			// was started that it cut off.
			log.Info("stopped while starting", "step", err.Error())
			return nil
		}
		return err
	}
	printRunning(cmd.OutOrStdout(), m)
	errc := make(chan error, 1)
	go func() { errc <- m.Wait() }()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		if err != nil {
			log.Error("hub stopped", "err", err)
		}
		m.Close()
		return err
	}
	return m.Close()
}

// envBool reads a boolean environment variable as strconv.ParseBool does
// (1, t, true, TRUE, 0, f, false …; unset or empty is false). Anything else
// is an error rather than false: POPHUB_TLS=yes must not run without TLS.
func envBool(key string) (bool, error) {
	v := os.Getenv(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", key, v)
	}
	return b, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// printRunning tells the operator where the running hub m listens and
// what it serves there.
func printRunning(out io.Writer, m *Main) {
	fmt.Fprintf(out, "pophub is running (store: %s)\n", m.storeName())
	fmt.Fprintf(out, "  HTTP API   %s  (GET /v1/persons/{citizen_id}, /v1/eligibility/{citizen_id}, /stats, /healthz, /metrics)\n", m.HTTPURL())
	if m.gatewayPub != nil {
		fmt.Fprintf(out, "  gateway    %s/v1/events  (POST one CloudEvent or a batch of up to 1,000, with a department's bearer token)\n", m.HTTPURL())
	}
	// Addresses may carry credentials (nats://user:password@…): hidden
	// here as in the logs, since the banner lands in terminals and files.
	fmt.Fprintf(out, "  Kafka      %s  (topics pop.events.<source>, rejects in pop.events.dlq)\n", redactURL(strings.Join(m.Brokers(), ",")))
	fmt.Fprintf(out, "  NATS       %s  (stream POP, subjects pop.>)\n", redactURL(m.NATSURL()))
	if m.CAFile() != "" {
		fmt.Fprintf(out, "  TLS CA     %s  (clients trust it: --ca %s, curl --cacert %s)\n", m.CAFile(), m.CAFile(), m.CAFile())
	}
}
