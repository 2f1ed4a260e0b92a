package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go/sasl"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"

	"github.com/pophub/pophub/adapters/gateway"
	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/eligibility/watch"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/notify"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/telemetry"
	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/internal/buildinfo"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

// Config is the whole hub's configuration. `pophub dev` and `pophub serve`
// differ only in it: Embedded starts the broker and NATS in-process.
type Config struct {
	// Embedded runs an in-process Kafka-protocol broker on KafkaAddr and
	// a NATS server on NATSAddr, with their data under DataDir.
	Embedded  bool
	KafkaAddr string
	NATSAddr  string
	// NATSSync is how often the embedded JetStream store fsyncs: zero
	// syncs every write (safe against power loss, about 4,600 messages/s on
	// our 2-core machines); an interval syncs in the background (a process
	// crash loses nothing: written data is in the OS page cache).
	NATSSync time.Duration

	// KafkaBrokers and NATSURL name external servers (ignored when Embedded).
	KafkaBrokers []string
	NATSURL      string
	// NATSRepublishWindow is how long the store keeps notifications
	// JetStream acknowledged, which the relay publishes again when it
	// starts and after a reconnect (notify.Config.RepublishWindow): an
	// external server that syncs only every two minutes (JetStream's
	// default) loses acknowledged messages on a hard stop, also when the
	// hub stops with it, and these come back; repeats are dropped by
	// Nats-Msg-Id within the stream's ten-minute duplicate window. Zero
	// for a server that syncs every write, like the embedded one.
	NATSRepublishWindow time.Duration
	// StreamReplicas and StreamMaxAge set the notification stream's
	// replicas and retention (notify.StreamConfig); zero keeps what an
	// existing stream has (1 replica, no age limit when creating it).
	StreamReplicas int
	StreamMaxAge   time.Duration

	// PostgresURL selects the PostgreSQL store; empty selects memdb,
	// persisted under DataDir (in memory only when DataDir is empty).
	PostgresURL    string
	PostgresSchema string
	// PostgresStateCache is how many persons' merge states the
	// PostgreSQL store keeps between batches: 0 the store's default,
	// negative none.
	PostgresStateCache int
	DataDir            string
	// KeysFile is the key file (hub/sealing) that seals personal data at
	// rest in the store; "none" stores it in clear. Empty: POPHUB_KEYS
	// when set, else in dev with a DataDir <data>/keys, generated when
	// missing (a memdb store already written in clear stays so), else in
	// clear.
	KeysFile string
	// KeySource, when set, supplies the keys instead of KeysFile: a KMS or
	// HSM client.
	KeySource sealing.KeySource

	HTTPAddr string // default 127.0.0.1:8780
	// GroupID is the Kafka consumer group. Under PolicyFile it must be
	// the policy's kafka_group, the only group the policy's Kafka ACLs
	// grant the hub, and defaults to it; without a policy the default is
	// "pophub".
	GroupID      string
	Partitions   int    // partitions of topics the hub creates, default 8
	OTLPEndpoint string // OTLP/HTTP trace endpoint; empty disables export
	// SpanProcessor receives every span (tests record them with it).
	SpanProcessor sdktrace.SpanProcessor
	// RegionsFile is an official NBS urban-rural table saved by `pophub
	// regions import`, laid over the built-in region table; default
	// DataDir/regions.tsv.gz when that exists.
	RegionsFile string
	// HTTPReadTimeout bounds the reading of a whole HTTP request, body
	// included (api.Config.ReadTimeout); the gateway answers a body that
	// does not arrive within it 408, naming it. 0 is the default,
	// api.DefaultReadTimeout (1 minute), never no limit; the
	// --http-read-timeout flag takes only a positive duration.
	HTTPReadTimeout time.Duration
	// ShutdownDelay is how long a stop keeps serving, /readyz answering
	// 503, before it stops: behind a load balancer or a Kubernetes
	// Service, the time they take to stop routing requests to the hub
	// (0: stop at once; at most maxShutdownDelay). The stop's own
	// stopBudget comes after it.
	ShutdownDelay time.Duration
	// GatewayTokens is a tokens file (adapters/gateway); when set, the hub
	// takes events over HTTP at POST /v1/events for the departments it
	// names. With PolicyFile the gateway is on for the policy's departments
	// instead, and GatewayTokens is refused.
	GatewayTokens string
	// PoliciesDir holds eligibility policies (the ops/policies layout) to
	// use instead of the built-in ones.
	PoliciesDir string
	// PolicyFile is an access policy (hub/access): with it, every door
	// asks for credentials — bearer tokens and X-Purpose on HTTP, users
	// with permissions on the embedded NATS server — and every read is
	// audited. Without it, everyone may do everything (development).
	PolicyFile string
	// AuditKeyFile holds the audit trail's key (pophub audit keygen);
	// default <data>/audit.key, generated when missing.
	AuditKeyFile string
	// NATSPassword is the hub's own NATS password when a policy is on
	// (the policy keeps only its bcrypt hash).
	NATSPassword string
	// Secrets resolves the policy's secret references (env:NAME,
	// file:PATH) — the Kafka passwords the embedded broker is given and
	// the hub's own; default access.ResolveSecret.
	Secrets access.Resolver
	// EligibilityNotify lists the policies whose newly eligible persons are
	// announced on pop.eligibility.<policy>.<R> ("all" for every one).
	EligibilityNotify []string

	// TLS (`pophub dev --tls`, Embedded only) makes a local CA and a server
	// certificate under DataDir/tls (a temporary directory without
	// DataDir; see tlsconf.EnsureDev) and runs the broker, the NATS server
	// and the HTTP API with TLS only, so that a laptop runs the encrypted
	// stack production runs; TLSCert, TLSKey and TLSCA are then set to the
	// generated files.
	TLS bool
	// TLSCert and TLSKey are the HTTP API's certificate chain and private
	// key (PEM): with them it serves HTTPS only. Both or neither.
	TLSCert, TLSKey string
	// TLSCA is a CA file (PEM) the hub trusts for its Kafka brokers and
	// NATS server: with it, the hub speaks TLS to both. Empty speaks
	// plaintext.
	TLSCA string
	// TLSClientCA, with an HTTPS API, is a CA file (PEM) whose client
	// certificates the API asks for and verifies; a verified certificate
	// whose SHA-256 fingerprint an identity of the access policy lists
	// (credentials.cert_sha256) authenticates as that identity, with or
	// without its bearer token (hub/access). Requests without a
	// certificate are still served, with a token.
	TLSClientCA string
}

func (c *Config) setDefaults() {
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8780"
	}
	if c.GroupID == "" && c.PolicyFile == "" {
		c.GroupID = access.DefaultKafkaGroup // under a policy: policyGroup
	}
	if c.Partitions == 0 {
		c.Partitions = 8
	}
	if c.HTTPReadTimeout == 0 {
		c.HTTPReadTimeout = api.DefaultReadTimeout
	}
	if c.Embedded {
		if c.KafkaAddr == "" {
			c.KafkaAddr = "127.0.0.1:19092"
		}
		if c.NATSAddr == "" {
			c.NATSAddr = "127.0.0.1:14222"
		}
	}
}

// Validate reports configuration errors a person can fix.
func (c *Config) Validate() error {
	var errs []error
	if !c.Embedded {
		if len(c.KafkaBrokers) == 0 {
			errs = append(errs, errors.New("--kafka: at least one broker is required"))
		}
		if c.NATSURL == "" {
			errs = append(errs, errors.New("--nats: a NATS URL is required"))
		}
		// With memdb in memory only, a restart would lose every golden
		// record while the external broker keeps their offsets committed,
		// so nothing would bring them back. (dev without --data may: its
		// broker forgets the offsets along with the records.)
		if c.PostgresURL == "" && c.DataDir == "" {
			errs = append(errs, errors.New("--postgres or --data is required: without either the golden records would be kept in memory only, while their Kafka offsets are committed, and a restart would lose them"))
		}
	}
	if c.StreamReplicas < 0 || c.StreamReplicas > 5 {
		errs = append(errs, errors.New("--stream-replicas must be from 1 to 5 (0 keeps the stream's)"))
	}
	if c.StreamMaxAge != 0 && c.StreamMaxAge < streamMinAge {
		errs = append(errs, fmt.Errorf("--stream-max-age must be at least %v, the stream's duplicate window: a notification published again after a reconnect must still be recognised", streamMinAge))
	}
	if c.NATSRepublishWindow < 0 || c.NATSRepublishWindow >= streamMinAge {
		errs = append(errs, fmt.Errorf("--nats-republish-window must be from 0 to below %v, the stream's duplicate window, which must also cover an outage: a notification published again after it is stored twice", streamMinAge))
	}
	if c.Partitions < 1 {
		errs = append(errs, errors.New("--partitions must be at least 1"))
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay > maxShutdownDelay {
		errs = append(errs, fmt.Errorf("--shutdown-delay must be from 0 to %v: the stop itself takes up to %v more, within the 30 s a supervisor gives before SIGKILL", maxShutdownDelay, stopBudget))
	}
	if embedded.CheckSyncInterval(c.NATSSync) != nil {
		// nats-server would panic on it once the stream is created.
		errs = append(errs, fmt.Errorf("--nats-sync %v: want 0 (every write) or at least %v", c.NATSSync, embedded.MinSyncInterval))
	}
	if c.HTTPReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("--http-read-timeout %v: want a positive duration", c.HTTPReadTimeout))
	}
	if c.TLS && !c.Embedded {
		errs = append(errs, errors.New("--tls makes certificates for the embedded servers only; give external ones --tls-cert, --tls-key and --tls-ca"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.GatewayTokens != "" && c.PolicyFile != "" {
		errs = append(errs, errors.New("--gateway-tokens and --policy: under a policy the gateway's departments are the policy's identities (token_sha256); drop --gateway-tokens"))
	}
	// Both are read only under a policy; without one they would be
	// dropped without a word, and the hub would run unauthenticated or
	// unaudited while its operator believes otherwise.
	if c.PolicyFile == "" && c.NATSPassword != "" {
		errs = append(errs, errors.New("--nats-password (POPHUB_NATS_PASSWORD) is the hub's identity's password under --policy; without a policy give NATS credentials in the --nats URL (nats://user:password@host:4222)"))
	}
	if c.PolicyFile == "" && c.AuditKeyFile != "" {
		errs = append(errs, errors.New("--audit-key-file (POPHUB_AUDIT_KEY_FILE) keys the audit trail, which only a hub under --policy keeps; drop it or give --policy"))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" && !c.TLS {
		errs = append(errs, errors.New("--tls-client-ca needs an HTTPS API: --tls, or --tls-cert and --tls-key"))
	}
	return errors.Join(errs...)
}

// policyGroup settles the Kafka consumer group under access policy p:
// the policy's kafka_group when none is configured; another one is
// refused, since the policy's ACLs let the hub join no other group and
// the hub would run without ever consuming an event.
func (c *Config) policyGroup(p *access.Policy) error {
	switch c.GroupID {
	case "":
		c.GroupID = p.KafkaGroup
	case p.KafkaGroup:
	default:
		return fmt.Errorf("--group (POPHUB_GROUP) %q differs from the access policy's kafka_group %q, the only consumer group the policy's Kafka ACLs grant the hub: use --group %s, or change kafka_group in the policy",
			c.GroupID, p.KafkaGroup, p.KafkaGroup)
	}
	return nil
}

// Main is the running hub: the wiring shared by `pophub dev`, `pophub serve`,
// the demo, the benchmark and the end-to-end tests.
type Main struct {
	Config Config
	Logger *slog.Logger

	Store    hub.Store
	Consumer *ingest.Consumer
	Relay    *notify.Relay
	Policies *eligibility.Catalog
	// Access is the access policy in force (nil: none).
	Access *access.Policy
	// Watcher announces eligibility (nil unless Config.EligibilityNotify).
	Watcher *watch.Watcher

	// kafkaSASL is the hub's Kafka identity when a policy is on.
	kafkaSASL sasl.Mechanism
	// auditor records every access when a policy is on (nil: none), to
	// auditLog over auditStore.
	auditor    access.Auditor
	auditLog   *audit.Log
	auditStore audit.Store
	auditKey   audit.Key
	// authz is the policy's authorizer; Close flushes its counts of
	// suppressed refusals before the audit log closes.
	authz *access.Authorizer
	// keys seal the store (nil: unsealed); the eligibility watcher keys
	// its digests of citizen IDs with them too.
	keys *sealing.Keyring

	// serverTLS is the certificate the HTTP API (and with Config.TLS the
	// embedded servers) present, httpTLS the HTTP API's configuration
	// (serverTLS plus client certificates with TLSClientCA), clientTLS
	// that of the hub's own Kafka and NATS clients. Nil for plaintext.
	serverTLS, httpTLS, clientTLS *tls.Config
	// tempTLSDir holds generated certificates without a data directory;
	// removed on Close.
	tempTLSDir string
	// dataLock holds the dev data directory for this hub alone (nil
	// without one); released last on Close.
	dataLock *os.File

	kafka *embedded.Kafka
	// gatewayPub publishes the events the HTTP gateway takes (nil when off).
	gatewayPub *publisher.Publisher
	natsSrv    *embedded.NATS
	nc         *nats.Conn
	tel        *telemetry.Telemetry
	ln         net.Listener
	brokers    []string
	natsURL    string
	group      *errgroup.Group
	cancel     context.CancelFunc
	closeOnce  sync.Once
	closeErr   error
	// stopping is set when a stop begins: /readyz answers 503 from then.
	stopping atomic.Bool
}

// Brokers returns the Kafka bootstrap addresses in use.
func (m *Main) Brokers() []string { return m.brokers }

// NATSURL returns the NATS URL in use.
func (m *Main) NATSURL() string { return m.natsURL }

// HTTPAddr returns the address the HTTP API listens on.
func (m *Main) HTTPAddr() string { return m.ln.Addr().String() }

// HTTPURL returns the HTTP API's base URL: https:// when it serves TLS.
func (m *Main) HTTPURL() string {
	if m.httpTLS != nil {
		return "https://" + m.HTTPAddr()
	}
	return "http://" + m.HTTPAddr()
}

// CAFile returns the CA file the hub's clients trust (with TLS), for
// printing and for tests; empty without one.
func (m *Main) CAFile() string { return m.Config.TLSCA }

// eligibilityNotifyPolicies resolves --eligibility-notify against the
// catalog: "all" is every policy, and an id the catalog lacks is refused,
// so that a typo stops the start before anything is created.
func eligibilityNotifyPolicies(c *eligibility.Catalog, ids []string) ([]string, error) {
	if len(ids) == 1 && ids[0] == "all" {
		ids = nil
		for _, p := range c.Policies() {
			ids = append(ids, p.ID)
		}
		return ids, nil
	}
	for _, id := range ids {
		if _, ok := c.Policy(id); !ok {
			return nil, fmt.Errorf("--eligibility-notify: no policy %q ('pophub policies list' names them; add --dir DIR for a --policies directory)", id)
		}
	}
	return ids, nil
}

// Start brings the hub up: servers (when embedded), store, topics, stream,
// HTTP, consumer and relay. It returns once everything listens; the parts
// run until Close or until one fails (see Wait).
func (m *Main) Start(ctx context.Context) (err error) {
	m.Config.setDefaults()
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	log := m.Logger
	defer func() {
		if err != nil {
			m.Close()
		}
	}()

	// Checks that need nothing created come first: a refused start must
	// leave no keys, store or certificates behind.
	if m.Policies, err = loadPolicies(m.Config.PoliciesDir); err != nil {
		return err
	}
	notifyPolicies, err := eligibilityNotifyPolicies(m.Policies, m.Config.EligibilityNotify)
	if err != nil {
		return err
	}
	var gatewayTokens []gateway.Token // under a policy, the policy's identities instead
	if m.Config.GatewayTokens != "" {
		if gatewayTokens, err = gateway.LoadTokens(m.Config.GatewayTokens); err != nil {
			return fmt.Errorf("--gateway-tokens: %w", err)
		}
	}
	if m.Config.Embedded && m.Config.DataDir != "" {
		// Before anything (TLS, the embedded servers, keys, the store)
		// touches the directory a running hub may be using.
		if m.dataLock, err = lockDataDir(m.Config.DataDir); err != nil {
			return err
		}
	}

	regions := regionsFile(m.Config.RegionsFile, m.Config.DataDir)
	if err := loadRegions(regions); err != nil {
		return fmt.Errorf("loading the official region table: %w", err)
	}
	if regions != "" {
		log.Info("official region table loaded", "file", regions)
	}
	// otel's own errors (a failed span export, once per batch) would go
	// to standard error past the log level and format.
	telemetry.RouteErrors(log)
	if m.tel, err = telemetry.Setup(ctx, telemetry.Config{ServiceName: "pophub", OTLPEndpoint: m.Config.OTLPEndpoint,
		SpanProcessor: m.Config.SpanProcessor, Logger: log}); err != nil {
		return fmt.Errorf("setting up telemetry: %w", err)
	}
	meter := m.tel.Meter("github.com/pophub/pophub")
	tracer := m.tel.Tracer("github.com/pophub/pophub")

	if m.Config.PolicyFile != "" {
		if m.Access, err = access.Load(m.Config.PolicyFile); err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
		if err := m.Config.policyGroup(m.Access); err != nil {
			return err
		}
		if m.Config.Secrets == nil {
			m.Config.Secrets = access.ResolveSecret
		}
		if m.kafkaSASL, err = identityKafka(m.Access.Hub(), m.Config.Secrets); err != nil {
			return fmt.Errorf("--policy: the hub's Kafka credential: %w", err)
		}
	}
	if err := m.setupTLS(); err != nil {
		return err
	}
	if m.Config.Embedded {
		if err := m.startEmbedded(ctx); err != nil {
			return err
		}
	} else {
		m.brokers, m.natsURL = m.Config.KafkaBrokers, m.Config.NATSURL
	}

	if err := m.openStore(ctx, meter); err != nil {
		return err
	}
	if err := ingest.EnsureTopics(ctx, m.brokers, m.Config.Partitions, m.kafkaSASL, m.clientTLS); err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}

	natsOpts := append([]nats.Option{nats.Name("pophub"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)},
		natsConnectionLog(log, m.natsURL)...)
	if !m.Config.Embedded {
		// An external server may be down when the hub starts (the hub was
		// restarted during an outage): the hub starts anyway, ingests into
		// the outbox, and the relay publishes once the server is there,
		// as after an outage of a running hub. (The embedded server is
		// ours and up: failing to reach it is a fault to report.)
		natsOpts = append(natsOpts, nats.RetryOnFailedConnect(true))
	}
	if m.Access != nil {
		hubID := m.Access.Hub()
		// The server checks the password with bcrypt, which can take longer
		// than the default two-second connect timeout on a busy machine.
		natsOpts = append(natsOpts, nats.UserInfo(hubID.Name, m.Config.NATSPassword), nats.CustomInboxPrefix(inboxPrefix(hubID)),
			nats.Timeout(20*time.Second))
	}
	if m.clientTLS != nil {
		natsOpts = append(natsOpts, nats.Secure(m.clientTLS))
	}
	m.nc, err = nats.Connect(m.natsURL, natsOpts...)
	if err != nil {
		return fmt.Errorf("connecting to NATS: %w", m.explainNATSLogin(err))
	}
	js, err := jetstream.New(m.nc)
	if err != nil {
		return fmt.Errorf("opening JetStream: %w", err)
	}
	// The relay creates the stream again with the same settings if it
	// goes missing.
	stream := notify.StreamConfig{Replicas: m.Config.StreamReplicas, MaxAge: m.Config.StreamMaxAge, Logger: log}
	// streamsReady is closed once the streams are there; until then the
	// eligibility watcher, which reads the stream, waits.
	streamsReady := make(chan struct{})
	natsDown := !m.nc.IsConnected()
	if natsDown {
		args := []any{"nats", redactURL(m.natsURL)}
		if err := m.nc.LastError(); err != nil {
			args = append(args, "err", m.explainNATSLogin(err))
		}
		log.Warn("starting without NATS: notifications wait in the outbox until the NATS server is reachable; /readyz reports it until then", args...)
	} else {
		// Connected: a stream the server refuses (replicas it cannot
		// place, a conflicting stream) stops the start, where it shows.
		if err := m.ensureStreams(ctx, js, stream); err != nil {
			return err
		}
		close(streamsReady)
	}
	republish := m.Config.NATSRepublishWindow
	if m.Config.Embedded && m.Config.NATSSync == 0 {
		republish = 0 // the embedded server synced every write
	}
	relayCfg := notify.Config{Logger: log, Meter: meter, Tracer: tracer, RepublishWindow: republish, Stream: stream}
	if pg, ok := m.Store.(*postgres.Store); ok {
		// Instances sharing the schema take turns: one relay publishes.
		relayCfg.Lease = pg.RelayLease()
	}
	m.Relay = notify.New(relayCfg, js, m.Store)

	// The group's instances compare their region tables by digest; the
	// started line names it.
	regionTable := region.Default().Digest()
	m.Consumer, err = ingest.New(ingest.Config{Brokers: m.brokers, SASL: m.kafkaSASL, TLS: m.clientTLS, GroupID: m.Config.GroupID,
		StoreID: storeID(m.Store), RegionTable: regionTable, Logger: log, Meter: meter, Tracer: tracer},
		wakeAfterApply{m.Store, m.Relay})
	if err != nil {
		return fmt.Errorf("creating consumer: %w", err)
	}

	if len(notifyPolicies) > 0 {
		wcfg := watch.Config{JS: js, Store: m.Store, Catalog: m.Policies, Policies: notifyPolicies, Logger: log, Meter: meter}
		if m.keys != nil { // a nil *Keyring in the interface would not be nil
			wcfg.Keys = m.keys
		}
		m.Watcher, err = watch.New(wcfg)
		if err != nil {
			return fmt.Errorf("--eligibility-notify: %w", err)
		}
	}

	mount := map[string]http.Handler{}
	guarded := map[string]http.Handler{}
	var authorizer api.Authorizer
	if m.Access != nil {
		if err := m.openAudit(ctx); err != nil {
			return err
		}
		az, err := access.NewAuthorizer(access.AuthorizerConfig{Policy: m.Access, Auditor: m.auditor, Meter: meter})
		if err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
		m.authz, authorizer = az, az
	}
	if m.Config.GatewayTokens != "" || m.Access != nil {
		// The API server reads each request within HTTPReadTimeout; the
		// gateway names it when a body does not arrive in time.
		gwCfg := gateway.Config{Propagator: m.tel.Propagator, Logger: log, ReadTimeout: m.Config.HTTPReadTimeout}
		if m.Access != nil {
			// The policy's departments: the authorizer checks their
			// token, X-Purpose and rate limit and audits every request,
			// as on the other /v1 routes.
			gwCfg.Caller = m.gatewayCaller
		} else {
			gwCfg.Tokens = gatewayTokens
		}
		if m.gatewayPub, err = publisher.New(publisher.Config{Brokers: m.brokers, SASL: m.kafkaSASL, TLS: m.clientTLS, Logger: log,
			TracerProvider: m.tel.TracerProvider, Propagator: m.tel.Propagator}); err != nil {
			return fmt.Errorf("creating the gateway's publisher: %w", err)
		}
		gwCfg.Sender = m.gatewayPub
		gw, err := gateway.New(gwCfg)
		if err != nil {
			return err
		}
		guarded[gateway.Route] = gw // served as a plain mount without a policy
	}
	adminCfg := m.adminConfig(js)
	adminCfg.Authorizer = authorizer // with a policy, administrators only
	for pattern, h := range api.AdminHandlers(adminCfg) {
		mount[pattern] = h
	}
	server := api.New(api.Config{
		Authorizer: authorizer,
		Mount:      mount,
		Guarded:    guarded,
		Store:      m.Store,
		Lister:     m.Store,
		StreamSequence: func(ctx context.Context) (uint64, error) {
			st, err := js.Stream(ctx, schemas.StreamName)
			if err != nil {
				return 0, err
			}
			info, err := st.Info(ctx)
			if err != nil {
				return 0, err
			}
			return info.State.LastSeq, nil
		},
		Counter:    m.Store,
		Regions:    apiRegions{},
		Policies:   m.Policies,
		Metrics:    m.tel.MetricsHandler(),
		Logger:     log,
		Meter:      meter,
		Tracer:     tracer,
		Propagator: m.tel.Propagator,
		// Shutdown waits 5 s for requests in flight; a request's body
		// must arrive within ReadTimeout.
		ShutdownTimeout: 5 * time.Second,
		ReadTimeout:     m.Config.HTTPReadTimeout,
		Ready:           m.readyChecks(),
	})
	if m.ln, err = net.Listen("tcp", m.Config.HTTPAddr); err != nil {
		return portTaken(fmt.Errorf("listening for HTTP on %s: %w", m.Config.HTTPAddr, err), "--http")
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	g, gctx := errgroup.WithContext(runCtx)
	m.group = g
	ln := m.ln
	if m.httpTLS != nil {
		cfg := m.httpTLS.Clone()
		if len(cfg.NextProtos) == 0 {
			cfg.NextProtos = []string{"h2", "http/1.1"} // as ServeTLS offers
		}
		ln = tls.NewListener(ln, cfg)
	}
	// The API's own Run: its timeouts, its shutdown and its ErrorLog,
	// which masks citizen IDs in net/http's messages.
	g.Go(func() error { return server.Run(gctx, ln) })
	g.Go(func() error { return ignoreCanceled(m.Consumer.Run(gctx)) })
	g.Go(func() error { return ignoreCanceled(m.Relay.Run(gctx)) })
	if natsDown {
		g.Go(func() error {
			m.ensureStreamsLater(gctx, js, stream)
			close(streamsReady)
			return nil
		})
	}
	if m.Watcher != nil {
		g.Go(func() error {
			select {
			case <-streamsReady:
			case <-gctx.Done():
				return nil
			}
			return ignoreCanceled(m.Watcher.Run(gctx))
		})
	}
	build := buildinfo.Read()
	started := []any{"version", build.Version, "revision", build.ShortRevision(), "http", m.HTTPURL(), "kafka", strings.Join(m.brokers, ","), "nats", redactURL(m.natsURL), "store", m.storeName()}
	if id := storeID(m.Store); id != "" {
		// The id that a consumer group's conflict error names.
		started = append(started, "store_id", id, "group", m.Config.GroupID)
	}
	started = append(started, "region_table", regionTable)
	if m.Config.TLSCA != "" {
		started = append(started, "tls_ca", m.Config.TLSCA)
	}
	log.Info("pophub started", started...)
	return nil
}

// ensureStreams creates or updates the notification stream and, under a
// policy, the subscribers' dead-letter stream, and deletes the
// notification stream's consumers the policy does not allow.
func (m *Main) ensureStreams(ctx context.Context, js jetstream.JetStream, stream notify.StreamConfig) error {
	if err := notify.EnsureStream(ctx, js, stream); err != nil {
		return fmt.Errorf("creating stream: %w", err)
	}
	if m.Access != nil {
		// Subscribers may not create streams under a policy: the hub
		// creates the one their dead letters go to.
		if err := notify.EnsureDeadLetterStream(ctx, js, access.DeadLetterStream, access.DeadLetterPrefix); err != nil {
			return err
		}
		// A durable consumer outlives the policy it was made under, and
		// its owner may pull whatever it filters: consumers made under a
		// wider policy go (access.Policy.ConsumerProblem). The policy is
		// read only at start, so this is the one place. POPDLQ needs no
		// pruning: the policy grants subscribers no consumer there.
		if _, err := notify.PruneConsumers(ctx, js, schemas.StreamName, m.Access.ConsumerProblem, m.Logger); err != nil {
			return fmt.Errorf("pruning consumers the access policy does not allow: %w", err)
		}
	}
	return nil
}

// ensureStreamsLater is ensureStreams for a hub that started without NATS:
// it waits for the connection and tries until the streams are there or ctx
// ends. The relay publishes meanwhile (and creates a missing notification
// stream itself); this also applies the configured limits to an existing
// stream and makes the dead-letter stream.
func (m *Main) ensureStreamsLater(ctx context.Context, js jetstream.JetStream, stream notify.StreamConfig) {
	backoff := time.Second
	for ctx.Err() == nil {
		if !m.nc.IsConnected() {
			sleepCtx(ctx, 250*time.Millisecond)
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.ensureStreams(tctx, js, stream)
		cancel()
		if err == nil {
			m.Logger.Info("NATS is reachable: the notification stream is ready", "nats", redactURL(m.natsURL))
			return
		}
		if ctx.Err() != nil {
			return
		}
		m.Logger.Warn("creating the notification streams after NATS came back", "err", err, "backoff", backoff)
		sleepCtx(ctx, backoff)
		backoff = min(backoff*2, 30*time.Second)
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// setupTLS makes the development certificates when Config.TLS asks for
// them and loads the server and client configurations.
func (m *Main) setupTLS() error {
	c := &m.Config
	if c.TLS {
		dir := ""
		if c.DataDir != "" {
			dir = filepath.Join(c.DataDir, "tls")
		} else {
			tmp, err := os.MkdirTemp("", "pophub-tls-")
			if err != nil {
				return fmt.Errorf("creating TLS directory: %w", err)
			}
			dir, m.tempTLSDir = tmp, tmp
		}
		files, err := tlsconf.EnsureDev(dir)
		if err != nil {
			return fmt.Errorf("--tls: making development certificates: %w", err)
		}
		c.TLSCert, c.TLSKey, c.TLSCA = files.Cert, files.Key, files.CA
	}
	var err error
	if c.TLSCert != "" {
		if m.serverTLS, err = tlsconf.Server(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("--tls-cert: %w", err)
		}
		m.httpTLS = m.serverTLS.Clone()
	}
	if c.TLSClientCA != "" {
		pool, err := tlsconf.LoadPool(c.TLSClientCA)
		if err != nil {
			return fmt.Errorf("--tls-client-ca: %w", err)
		}
		// Optional, so that token-only clients keep working; a certificate
		// that is presented must verify, and hub/access maps it to an
		// identity.
		m.httpTLS.ClientCAs, m.httpTLS.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	if c.TLSCA != "" {
		if m.clientTLS, err = tlsconf.Client(c.TLSCA); err != nil {
			return fmt.Errorf("--tls-ca: %w", err)
		}
	}
	return nil
}

// explainNATSLogin adds to a login the NATS server refused, under a
// policy, whether the hub's password is the one the policy's hash is of:
// a rotation half done otherwise shows only as "Authorization Violation".
// bcrypt is slow on purpose, so only a refusal pays for the check.
func (m *Main) explainNATSLogin(err error) error {
	if m.Access == nil || !errors.Is(err, nats.ErrAuthorization) {
		return err
	}
	if perr := m.Access.Hub().CheckNATSPassword(m.Config.NATSPassword); perr != nil {
		return fmt.Errorf("%w: %w: give the hub the new password (--nats-password, env POPHUB_NATS_PASSWORD), "+
			"or put back the hash of the old one", err, perr)
	}
	return fmt.Errorf("%w (the hub's password is the one its policy's password_bcrypt is of: is the server's configuration the policy's? `pophub policy nats-config`)", err)
}

// identityKafka is the SASL mechanism of an identity's Kafka credential,
// its password read through resolve.
func identityKafka(id access.Identity, resolve access.Resolver) (sasl.Mechanism, error) {
	k := id.Credentials.Kafka
	if k == nil || k.Password == "" {
		return nil, fmt.Errorf("identity %s has no Kafka password reference", id.Name)
	}
	pw, err := resolve(k.Password)
	if err != nil {
		return nil, err
	}
	if err := k.CheckPassword(pw); err != nil {
		return nil, err
	}
	return access.SCRAMClient{User: id.Name, Password: pw}, nil
}

// natsConnectionLog logs the hub's NATS connection coming and going, which
// operators otherwise see only on /readyz: a lost connection at WARN
// (notifications wait in the outbox meanwhile), the connection made or
// made again at INFO. A disconnection without an error is the hub's own
// close, and is not logged.
func natsConnectionLog(log *slog.Logger, url string) []nats.Option {
	addr := redactURL(url)
	connected := func(nc *nats.Conn) {
		log.Info("connected to NATS: publishing the notifications waiting in the outbox", "nats", redactURL(nc.ConnectedUrlRedacted()))
	}
	return []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("lost the connection to NATS: notifications wait in the outbox until it is back", "nats", addr, "err", err)
			}
		}),
		nats.ConnectHandler(connected), // after a start without NATS
		nats.ReconnectHandler(connected),
	}
}

// inboxPrefix is the private reply-subject prefix of an identity's NATS
// client, as the access policy grants it.
func inboxPrefix(id access.Identity) string {
	if id.Credentials.NATS != nil && id.Credentials.NATS.InboxPrefix != "" {
		return id.Credentials.NATS.InboxPrefix
	}
	return "_INBOX_" + id.Name
}

// readyChecks are what /readyz asks: the store (it answers, and batches
// are being applied to it), NATS (the notification stream answers, not
// only the connection), Kafka, under a policy the audit trail, since
// reads go on while it cannot be written, and with --eligibility-notify
// the watcher, which announces nobody while it cannot follow the changes.
func (m *Main) readyChecks() []api.Check {
	checks := []api.Check{
		{Name: "hub", Probe: func(context.Context) error {
			if m.stopping.Load() {
				return errors.New("shutting down")
			}
			return nil
		}},
		{Name: "store", Probe: func(ctx context.Context) error { return errors.Join(m.Store.Ping(ctx), m.Consumer.StoreProblem()) }},
		{Name: "nats", Probe: m.Relay.Ping},
		{Name: "kafka", Probe: m.Consumer.Ping},
	}
	if m.auditLog != nil {
		checks = append(checks, api.Check{Name: "audit", Probe: func(context.Context) error { return m.auditLog.Err() }})
	}
	if m.Watcher != nil {
		checks = append(checks, api.Check{Name: "eligibility", Probe: func(context.Context) error { return m.Watcher.Problem() }})
	}
	return checks
}

// gatewayCaller is the gateway's Caller under a policy: the source of the
// identity the authorizer let through (api.Config.Guarded), its first
// publish grant as in Policy.GatewayTokens.
func (m *Main) gatewayCaller(r *http.Request) (schemas.Source, bool) {
	g, ok := api.GrantOf(r.Context())
	if !ok {
		return "", false
	}
	named, ok := g.(interface{ Identity() string })
	if !ok {
		return "", false
	}
	id, ok := m.Access.Identity(named.Identity())
	if !ok || len(id.Publish) == 0 {
		return "", false
	}
	return id.Publish[0], true
}

// streamMinAge is the shortest retention of the notification stream:
// its duplicate window (notify.StreamConfig.DuplicateWindow's default).
const streamMinAge = 10 * time.Minute

// loadPolicies loads the eligibility policies from dir, or the built-in
// ones when dir is empty.
func loadPolicies(dir string) (*eligibility.Catalog, error) {
	fsys, err := policiesFS("--policies", dir)
	if err != nil {
		return nil, err
	}
	cat, err := eligibility.Load(fsys)
	if err != nil {
		return nil, fmt.Errorf("--policies: %w", err)
	}
	return cat, nil
}

// policiesFS is the policies directory dir, given with flag, or the built-in
// policies when dir is "". os.DirFS reports a missing root as "stat .",
// which names no directory: it is named here.
func policiesFS(flag, dir string) (fs.FS, error) {
	if dir == "" {
		return policies.FS(), nil
	}
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s %s: no such directory", flag, dir)
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", flag, dir, err)
	case !info.IsDir():
		return nil, fmt.Errorf("%s %s: not a directory", flag, dir)
	}
	return os.DirFS(dir), nil
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// storeID is the store's id (postgres.Store.StoreID), by which the
// instances of a consumer group check that they apply to one store
// (ingest.Config.StoreID); "" for a store without one (memdb, which one
// process alone opens).
func storeID(s hub.Store) string {
	if s, ok := s.(interface{ StoreID() string }); ok {
		return s.StoreID()
	}
	return ""
}

func (m *Main) storeName() string {
	switch {
	case m.Config.PostgresURL != "":
		return "postgres"
	case m.Config.DataDir != "":
		return "memdb:" + filepath.Join(m.Config.DataDir, "store")
	}
	return "memdb (in memory)"
}

func (m *Main) startEmbedded(ctx context.Context) error {
	kafkaDir, natsDir := "", ""
	if d := m.Config.DataDir; d != "" {
		kafkaDir, natsDir = filepath.Join(d, "kafka"), filepath.Join(d, "nats")
		for _, dir := range []string{kafkaDir, natsDir} {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("creating data directory: %w", err)
			}
		}
	} else {
		dir, err := os.MkdirTemp("", "pophub-nats-")
		if err != nil {
			return fmt.Errorf("creating NATS store directory: %w", err)
		}
		natsDir = dir
	}
	var err error
	// With --tls the embedded servers present the HTTP API's certificate,
	// which the hub's own clients trust through the generated CA.
	var serverTLS *tls.Config
	if m.Config.TLS {
		serverTLS = m.serverTLS
	}
	kafkaCfg := embedded.KafkaConfig{Addr: m.Config.KafkaAddr, DataDir: kafkaDir, Partitions: m.Config.Partitions, TLS: serverTLS, Logger: m.Logger}
	if m.Access != nil {
		if kafkaCfg.Options, err = m.Access.KfakeOptions(m.Config.Secrets); err != nil {
			return err
		}
		// Enforced at every start: a data directory's saved ACLs (an
		// earlier policy's, or an earlier release's) give way to the
		// policy in force.
		kafkaCfg.ACLs = m.Access.KfakeACLs()
	}
	m.kafka, err = embedded.StartKafka(ctx, kafkaCfg)
	if err != nil {
		return portTaken(fmt.Errorf("starting embedded Kafka-protocol broker: %w", err), "--kafka")
	}
	natsCfg := embedded.NATSConfig{Addr: m.Config.NATSAddr, StoreDir: natsDir, SyncInterval: m.Config.NATSSync, TLS: serverTLS, Logger: m.Logger}
	if m.Access != nil {
		natsCfg.Authorize = m.Access.NATSAuthorize
	}
	m.natsSrv, err = embedded.StartNATS(ctx, natsCfg)
	if err != nil {
		return portTaken(fmt.Errorf("starting embedded NATS server: %w", err), "--nats")
	}
	m.brokers = []string{m.kafka.Addr()}
	m.natsURL = m.natsSrv.ClientURL()
	return nil
}

// portTaken adds to an error of an address already in use what to do: a
// second hub started on one machine (two `pophub dev`) is the usual cause.
func portTaken(err error, flag string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w (another pophub, or another program, already listens there: stop it, or give %s another address)", err, flag)
	}
	return err
}

func (m *Main) openStore(ctx context.Context, meter metric.Meter) error {
	src, err := m.keySource()
	if err != nil {
		return err
	}
	var keys *sealing.Keyring
	if src != nil {
		if keys, err = sealing.Load(ctx, src); err != nil {
			return err
		}
		m.keys = keys
	}
	// m.Store is set only on success: a failed Open returns a nil
	// *Store, which in the interface would not be nil, and Close would
	// call through it.
	if m.Config.PostgresURL != "" {
		s, err := postgres.Open(ctx, postgres.Config{URL: m.Config.PostgresURL, Schema: m.Config.PostgresSchema, Logger: m.Logger, Keys: keys, Meter: meter,
			CacheSize: m.Config.PostgresStateCache})
		if err != nil {
			return fmt.Errorf("opening PostgreSQL store: %w", err)
		}
		// The audit log keeps its tables beside the store's, in the
		// schema the store settled on: --postgres-schema, else the URL's
		// search_path, else public.
		m.Config.PostgresSchema = s.Schema()
		m.Store = s
		return nil
	}
	dir := ""
	if m.Config.DataDir != "" {
		dir = filepath.Join(m.Config.DataDir, "store")
	}
	s, err := memdb.Open(ctx, memdb.Config{Dir: dir, Logger: m.Logger, Keys: keys})
	if err != nil {
		return fmt.Errorf("opening memdb store: %w", err)
	}
	m.Store = s
	return nil
}

// Wait blocks until a part fails or Close is called.
func (m *Main) Wait() error {
	if m.group == nil {
		return nil
	}
	return m.group.Wait()
}

// maxShutdownDelay bounds Config.ShutdownDelay, so that the delay and
// the stop's stopBudget stay under the 30 s before SIGKILL.
const maxShutdownDelay = 10 * time.Second

// stopBudget bounds a whole stop (Close), give or take the quarter second
// each later step still gets: a supervisor sends SIGKILL 30 s after
// SIGTERM (Kubernetes' default), and each step waiting out its own
// timeout on a dependency that went silent added up to 25-36 s.
const stopBudget = 18 * time.Second

// Close shuts down in order: stop consuming and serving, let the relay
// finish, then close NATS, the store and the embedded servers. The steps
// share stopBudget: one that would outlast it is left behind, with a
// warning saying what it did not finish. Safe to call more than once.
func (m *Main) Close() error {
	m.closeOnce.Do(func() {
		m.stopping.Store(true)
		if m.cancel != nil && m.Config.ShutdownDelay > 0 {
			m.Logger.Info("stopping: /readyz answers 503 while the hub serves on for the shutdown delay", "delay", m.Config.ShutdownDelay)
			time.Sleep(m.Config.ShutdownDelay)
		}
		deadline := time.Now().Add(stopBudget)
		var errs []error
		if m.cancel != nil {
			m.cancel()
			errs = append(errs, m.group.Wait()) // bounded by the consumer's grace
		}
		if m.Consumer != nil {
			errs = append(errs, m.Consumer.Close())
		}
		if m.gatewayPub != nil {
			// The Kafka writer's Close waits out the retries of every batch
			// it still holds (about 100 s each while a broker hangs); none
			// of them was acknowledged to a department, which sends them
			// again, so the hub stops without them.
			errs = append(errs, m.closeBy(deadline, "gateway: Kafka did not take the last events within the stop's time; stopping without them (no department got a 202 for them)",
				func(context.Context) error { return m.gatewayPub.Close() }))
		}
		if m.auditLog != nil { // after HTTP stopped: every access is in
			if m.authz != nil {
				m.authz.FlushRefusals() // the last interval's suppressed refusals
			}
			errs = append(errs, m.closeBy(deadline, "audit: the last records were not stored within the stop's time",
				func(ctx context.Context) error { return errors.Join(m.auditLog.Close(ctx), m.auditStore.Close()) }))
		}
		if m.nc != nil {
			m.nc.Close()
		}
		if m.Store != nil {
			// A PostgreSQL that went silent holds each pooled connection's
			// close for 15 s.
			errs = append(errs, m.closeBy(deadline, "the store did not close within the stop's time; stopping without waiting for it (what it committed is kept)",
				func(context.Context) error { return m.Store.Close() }))
		}
		if m.natsSrv != nil {
			m.natsSrv.Close()
		}
		if m.kafka != nil {
			errs = append(errs, m.kafka.Close())
		}
		if m.tel != nil {
			errs = append(errs, m.closeBy(earliest(deadline, time.Now().Add(5*time.Second)), "telemetry: the last spans and metrics were not exported within the stop's time",
				m.tel.Shutdown))
		}
		if m.tempTLSDir != "" {
			errs = append(errs, os.RemoveAll(m.tempTLSDir))
		}
		// Last: every part that writes under the data directory stopped.
		errs = append(errs, unlockDataDir(m.dataLock))
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

// closeBy runs close with a context ending at deadline and waits for it
// until then, a quarter second at least even when the stop's time is
// spent; if it has not returned by then, it logs warning and leaves it
// behind.
func (m *Main) closeBy(deadline time.Time, warning string, close func(context.Context) error) error {
	if soon := time.Now().Add(250 * time.Millisecond); deadline.Before(soon) {
		deadline = soon
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- close(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		m.Logger.Warn(warning, "budget", stopBudget)
		return nil
	}
}

// earliest is the earlier of a and b.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// wakeAfterApply applies a batch and then wakes the relay, so notifications
// leave as soon as their changes are committed.
type wakeAfterApply struct {
	store hub.Store
	relay *notify.Relay
}

func (w wakeAfterApply) Apply(ctx context.Context, batch []hub.Input) (hub.ApplyResult, error) {
	res, err := w.store.Apply(ctx, batch)
	if err == nil && res.Notifications > 0 {
		w.relay.Wake()
	}
	return res, err
}
