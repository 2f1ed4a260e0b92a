// Package embedded runs the hub's infrastructure in-process for `pophub dev`,
// the demo and tests: a Kafka-protocol broker (kfake) and a NATS server with
// JetStream. Both speak their real wire protocols over TCP, so any Kafka or
// NATS client can connect to them.
package embedded

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pophub/pophub/schemas"
)

// KafkaConfig configures the embedded broker.
type KafkaConfig struct {
	// Addr is host:port to listen on; port 0 picks a free port.
	// Default 127.0.0.1:0. The broker advertises the address it listens
	// on in metadata, so the host must be one clients can reach (not
	// 0.0.0.0).
	Addr string
	// DataDir persists the log and consumer-group offsets; every produced
	// batch is fsynced before it is acknowledged, so acknowledged records
	// survive kill -9. Empty keeps everything in memory.
	DataDir string
	// Partitions of each topic seeded on first start (default 8).
	Partitions int
	// Options are added to the broker's, e.g. SASL users from the access
	// policy (access.Policy.KfakeOptions). Their users are the broker's
	// at every start: the ones a data directory saved are dropped.
	Options []kfake.Opt
	// ACLs, when not empty, turn on SASL and ACL enforcement, and are
	// then exactly the ACLs the broker holds once StartKafka returns, on
	// a new data directory or one written by an earlier start or release
	// (access.Policy.KfakeACLs; each with its Principal, User:<name>).
	// Empty leaves ACLs to Options (kfake seeds them only into a new
	// cluster); an earlier start's saved ACLs are dropped either way.
	ACLs []kfake.ACL
	// TLS, when set, makes the broker speak only TLS with this server
	// configuration; plaintext clients are refused.
	TLS    *tls.Config
	Logger *slog.Logger
}

// Kafka is a running embedded Kafka-protocol broker.
type Kafka struct {
	cluster *kfake.Cluster
	addr    string
	once    sync.Once
}

// StartKafka starts a single-broker cluster with the eight source topics
// and the DLQ topic. Its users and ACLs are those of cfg, whatever the
// data directory saved (see acls.go for how and why).
func StartKafka(ctx context.Context, cfg KafkaConfig) (*Kafka, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 8
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("parsing Kafka listen address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("parsing Kafka listen port %q: %w", portStr, err)
	}
	topics := schemas.Topics()
	var ln *localListener
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.SeedTopics(int32(cfg.Partitions), topics...),
		// kfake always binds 127.0.0.1; honour another host if asked.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				return nil, err
			}
			ln = newLocalListener(steadyListener{Listener: l, log: cfg.Logger})
			return ln, nil
		}),
	}
	if cfg.DataDir != "" {
		if err := removeAuthFiles(cfg.DataDir); err != nil {
			return nil, err
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir), kfake.SyncWrites())
	}
	id, err := clusterID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kfake.ClusterID(id),
		// Records are kept until deleted. kfake applies time retention by
		// the producers' timestamps (it has no LogAppendTime), so with
		// Kafka's seven days a department's client that stamps records
		// with their business time (last year's registrations, Kafka
		// Connect, MirrorMaker) saw acknowledged records the hub had not
		// read yet deleted within the hour.
		kfake.BrokerConfigs(map[string]string{"log.retention.ms": "-1"}))
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(kafkaLogger{cfg.Logger}))
	}
	if cfg.TLS != nil {
		opts = append(opts, kfake.TLS(cfg.TLS))
	}
	opts = append(opts, cfg.Options...)
	var bootstrapPW string
	if len(cfg.ACLs) > 0 {
		if bootstrapPW, err = bootstrapPassword(); err != nil {
			return nil, err
		}
		opts = append(opts, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser(bootstrapMechanism, bootstrapUser, bootstrapPW))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting kfake: %w", err)
	}
	// The DLQ keeps rejects until an operator deletes them, as
	// ingest.EnsureTopics creates it on any broker; seeded, it would take
	// the broker's seven-day retention. A data directory keeps its own.
	if c.TopicInfo(schemas.DLQTopic) == nil {
		if err := c.CreateTopic(schemas.DLQTopic, int32(cfg.Partitions), map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}); err != nil {
			c.Close()
			return nil, fmt.Errorf("creating topic %s: %w", schemas.DLQTopic, err)
		}
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, errors.New("starting kfake: no listener")
	}
	if len(cfg.ACLs) > 0 {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		created, deleted, err := enforceACLs(ctx, ln, addrs[0], cfg.TLS != nil, bootstrapPW, cfg.ACLs)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("installing the broker's ACLs: %w", err)
		}
		if cfg.Logger != nil && (created > 0 || deleted > 0) {
			cfg.Logger.Info("embedded Kafka broker: ACLs set to the configured ones", "acls", len(cfg.ACLs), "created", created, "deleted", deleted)
		}
	}
	return &Kafka{cluster: c, addr: addrs[0]}, nil
}

// Addr is the bootstrap address clients connect to.
func (k *Kafka) Addr() string { return k.addr }

// clusterID is the broker's cluster id: kept beside its data directory,
// so that a restart is the same cluster, and new for a new directory or
// an in-memory broker. kfake's default, "kfake" for every broker, made
// two pophub dev brokers look like one cluster to clients that tell
// clusters apart by it (the importer's checkpoint does).
func clusterID(dataDir string) (string, error) {
	path := ""
	if dataDir != "" {
		path = filepath.Clean(dataDir) + ".cluster-id"
		switch b, err := os.ReadFile(path); {
		case err == nil && len(bytes.TrimSpace(b)) > 0:
			return string(bytes.TrimSpace(b)), nil
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return "", fmt.Errorf("reading the Kafka cluster id: %w", err)
		}
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("making a Kafka cluster id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw[:]) // as Kafka writes its ids
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", fmt.Errorf("saving the Kafka cluster id: %w", err)
		}
		if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("saving the Kafka cluster id: %w", err)
		}
	}
	return id, nil
}

// Cluster exposes the kfake cluster, for fault injection in tests.
func (k *Kafka) Cluster() *kfake.Cluster { return k.cluster }

// Close stops the broker, flushing its data directory. Safe to call twice.
func (k *Kafka) Close() error {
	k.once.Do(k.cluster.Close)
	return nil
}

// MinSyncInterval is the shortest NATSConfig.SyncInterval other than
// zero: nats-server panics, once a stream is created, on an interval
// below two nanoseconds, and one below a millisecond is no less costly
// than syncing every write.
const MinSyncInterval = time.Millisecond

// CheckSyncInterval refuses a NATSConfig.SyncInterval that is neither
// zero (every write) nor at least MinSyncInterval.
func CheckSyncInterval(d time.Duration) error {
	if d != 0 && d < MinSyncInterval {
		return fmt.Errorf("JetStream sync interval %v: want 0 (every write) or at least %v", d, MinSyncInterval)
	}
	return nil
}

// NATSConfig configures the embedded NATS server.
type NATSConfig struct {
	// Addr is host:port; port 0 picks a free port. Default 127.0.0.1:0.
	Addr string
	// StoreDir holds JetStream's file store (required).
	StoreDir string
	// SyncInterval is how often JetStream fsyncs its store; zero syncs every
	// write, so that an acknowledged notification survives a hard stop.
	SyncInterval time.Duration
	// Authorize, when set, adjusts the server's options before it starts:
	// accounts, users and permissions from the access policy
	// (access.Policy.NATSAuthorize), which put the hub's streams in
	// account schemas.NATSAccount.
	Authorize func(*server.Options) error
	// TLS, when set, makes the server require TLS with this server
	// configuration; ClientURL then starts with tls://.
	TLS    *tls.Config
	Logger *slog.Logger
}

// NATS is a running embedded NATS server with JetStream.
type NATS struct {
	srv  *server.Server
	once sync.Once
}

// StartNATS starts a NATS server with JetStream on a file store that syncs
// every write: JetStream's default (fsync every two minutes) can lose
// acknowledged messages on a hard stop.
func StartNATS(ctx context.Context, cfg NATSConfig) (*NATS, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.StoreDir == "" {
		return nil, errors.New("starting NATS: a JetStream store directory is required")
	}
	if err := CheckSyncInterval(cfg.SyncInterval); err != nil {
		return nil, fmt.Errorf("starting NATS: %w", err)
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("parsing NATS listen address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("parsing NATS listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else if port > 0 {
		// The server reports a listen error only to its log and then
		// never becomes ready: say at once that the port is taken, as
		// the broker and the HTTP server do, rather than after the wait.
		l, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("starting NATS server: %w", err)
		}
		l.Close()
	}
	opts := &server.Options{
		ServerName:   "pophub-embedded",
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncAlways:   cfg.SyncInterval == 0,
		SyncInterval: cfg.SyncInterval,
		NoSigs:       true,
		NoLog:        true,
	}
	if cfg.TLS != nil {
		opts.TLS, opts.TLSConfig = true, cfg.TLS
		// The server's default of two seconds is short for a handshake
		// under the race detector on a busy two-core machine.
		opts.TLSTimeout = 5
	}
	if err := moveStreams(cfg.StoreDir, cfg.Authorize != nil, cfg.Logger); err != nil {
		return nil, fmt.Errorf("starting NATS: %w", err)
	}
	if cfg.Authorize != nil {
		if err := cfg.Authorize(opts); err != nil {
			return nil, fmt.Errorf("starting NATS: %w", err)
		}
		// With users the server checks a password with bcrypt before it
		// answers the client's first PING. Under the race detector on a
		// busy machine that takes longer than the short first PING (2 s
		// and a bit) the server sends a new client, which nats.go then
		// reads where it expects its PONG and fails the connection
		// ("expected 'PONG', got 'PING'"), only to retry into the same
		// wait. The regular ping interval applies instead.
		opts.DisableShortFirstPing = true
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating NATS server: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLogger(natsLogger{cfg.Logger}, false, false)
	}
	go srv.Start()
	wait := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("starting NATS server: not ready after %v", wait.Round(time.Millisecond))
	}
	return &NATS{srv: srv}, nil
}

// moveStreams keeps the hub's streams, their consumers and its bucket
// where the hub will look for them. JetStream stores each account's
// streams in a directory of that account: the global account's ($G) when
// the server runs without an access policy, and schemas.NATSAccount's
// when it runs with one (releases before 2026-12-07 kept them in $G in
// both cases). A store found under the other account's name, with none
// under the one about to be used, is moved there before the server
// starts, so that switching a policy on or off, or upgrading, loses no
// notification and no subscriber's position.
func moveStreams(storeDir string, withPolicy bool, log *slog.Logger) error {
	from, to := globalAccount, schemas.NATSAccount
	if !withPolicy {
		from, to = to, from
	}
	js := filepath.Join(storeDir, server.JetStreamStoreDir)
	src, dst := filepath.Join(js, from), filepath.Join(js, to)
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("looking for JetStream's store of account %s: %w", from, err)
	}
	if _, err := os.Stat(dst); err == nil {
		// Both: a release before the move run again on this directory
		// (a rollback) wrote to $G while the moved store waited. Using one
		// would leave the other's notifications and positions aside unsaid.
		if holdsStreams(src) && holdsStreams(dst) {
			return fmt.Errorf("JetStream's store holds streams of account %s (%s) and of account %s (%s), and the hub uses %s's: "+
				"keep the one to go on with and move the other out of %s (its notifications and subscribers' positions are not merged)",
				from, src, to, dst, to, js)
		}
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("looking for JetStream's store of account %s: %w", to, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("moving JetStream's store from account %s to %s: %w", from, to, err)
	}
	if log != nil {
		log.Info("moved the notification streams to the account the hub now uses", "from", from, "to", to, "dir", js)
	}
	return nil
}

// holdsStreams reports whether an account's JetStream directory holds a
// stream.
func holdsStreams(accountDir string) bool {
	entries, err := os.ReadDir(filepath.Join(accountDir, "streams"))
	return err == nil && len(entries) > 0
}

// globalAccount is the account of a NATS server's clients when it has no
// accounts configured.
const globalAccount = "$G"

// ClientURL is the nats:// URL clients connect to.
func (n *NATS) ClientURL() string { return n.srv.ClientURL() }

// Server exposes the NATS server, for tests that restart it.
func (n *NATS) Server() *server.Server { return n.srv }

// Close shuts the server down and waits for it. Safe to call twice.
func (n *NATS) Close() {
	n.once.Do(func() {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	})
}

// kafkaLogger passes kfake's warnings and errors to slog; its per-request
// info lines go to debug.
type kafkaLogger struct{ log *slog.Logger }

func (l kafkaLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	lv := slog.LevelDebug
	switch level {
	case kfake.LogLevelNone:
		return
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	}
	if !l.log.Enabled(context.Background(), lv) {
		return
	}
	l.log.Log(context.Background(), lv, "kafka broker: "+fmt.Sprintf(msg, args...), "component", "kfake")
}

// natsLogger passes the NATS server's log to slog: notices (its start-up
// banner) at debug, warnings and errors as such, but for a client refused
// by its permissions (a publish or subscription violation), which is the
// policy working, not a server fault, and is logged as a warning: a
// subscriber under a policy asking to list consumers is one, and expected
// (README, Subscribers). Debug and trace logging stay off in the server,
// so message contents are never logged.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) logf(lv slog.Level, format string, v ...any) {
	if !l.log.Enabled(context.Background(), lv) {
		return
	}
	l.log.Log(context.Background(), lv, "nats server: "+fmt.Sprintf(format, v...), "component", "nats-server")
}

func (l natsLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v...) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.logf(slog.LevelError, format, v...) }
func (l natsLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	lv := slog.LevelError
	if strings.Contains(msg, "Publish Violation") || strings.Contains(msg, "Subscription Violation") {
		lv = slog.LevelWarn
	}
	l.logf(lv, "%s", msg)
}
func (l natsLogger) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v...) }
func (l natsLogger) Tracef(format string, v ...any) { l.logf(slog.LevelDebug-4, format, v...) }
