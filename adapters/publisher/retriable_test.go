package publisher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestRetriable: Retriable tells a refusal that sending again will not
// mend from a passing failure, for the errors Results carry.
func TestRetriable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"message size too large", fmt.Errorf("sending to Kafka: %w", kafka.MessageSizeTooLarge), false},
		{"message too large for the batch", fmt.Errorf("sending to Kafka: %w", kafka.MessageTooLargeError{}), false},
		{"topic authorization failed", fmt.Errorf("sending to Kafka: %w", kafka.TopicAuthorizationFailed), false},
		{"SASL authentication failed", fmt.Errorf("sending 3 events: %w", kafka.SASLAuthenticationFailed), false},
		{"topic missing", &TopicMissingError{Topic: "pop.events.housing"}, false},
		{"reject", &schemas.RejectError{Reason: schemas.ReasonInvalidData, Field: "data"}, false},
		{"not enough replicas", fmt.Errorf("sending to Kafka: %w", kafka.NotEnoughReplicas), true},
		{"leader moved", fmt.Errorf("sending to Kafka: %w", kafka.NotLeaderForPartition), true},
		{"request timed out", fmt.Errorf("sending to Kafka: %w", kafka.RequestTimedOut), true},
		{"deadline", fmt.Errorf("sending to Kafka: %w", context.DeadlineExceeded), true},
		{"connection closed", fmt.Errorf("sending to Kafka: %w", io.ErrUnexpectedEOF), true},
		// A retry loop on the publisher that returned it would spin
		// forever: every later call says ErrClosed at once.
		{"closed publisher", ErrClosed, false},
		{"login refused", fmt.Errorf("sending to Kafka: %w", &LoginError{Credentials: true}), false},
		{"no error", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retriable(tt.err); got != tt.want {
				t.Errorf("Retriable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestRetriableRefusals: the Results of events a broker refused say
// whether to send them again: not those refused for good (a topic whose
// max.message.bytes is below the batch), those refused for the moment
// (too few in-sync replicas) yes.
func TestRetriableRefusals(t *testing.T) {
	tests := []struct {
		name      string
		code      int16
		retriable bool
	}{
		{"MESSAGE_TOO_LARGE", 10, false},
		{"NOT_ENOUGH_REPLICAS", 19, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, schemas.Topics()...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			// Partition 0 of every topic refuses every produce.
			c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				req := kr.(*kmsg.ProduceRequest)
				if len(req.Topics) != 1 || len(req.Topics[0].Partitions) != 1 || req.Topics[0].Partitions[0].Partition != 0 {
					return nil, nil, false
				}
				resp := req.ResponseKind().(*kmsg.ProduceResponse)
				rt := kmsg.NewProduceResponseTopic()
				rt.Topic = req.Topics[0].Topic
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.ErrorCode = tt.code
				rt.Partitions = append(rt.Partitions, rp)
				resp.Topics = append(resp.Topics, rt)
				return resp, nil, true
			})
			p := newPublisher(t, Config{Brokers: c.ListenAddrs(), MaxAttempts: 2})
			events := population(t, 20) // citizens on every partition
			results, _ := p.Publish(context.Background(), events...)
			refused, delivered := 0, 0
			for _, r := range results {
				if r.Err == nil {
					delivered++
					continue
				}
				refused++
				if Retriable(r.Err) != tt.retriable {
					t.Errorf("event %s: Retriable(%v) = %v, want %v", r.ID, r.Err, !tt.retriable, tt.retriable)
				}
			}
			if refused == 0 || delivered == 0 {
				t.Fatalf("%d events refused and %d delivered; want partition 0's refused, the others delivered", refused, delivered)
			}
			var ke kafka.Error
			for _, r := range results {
				if r.Err != nil && (!errors.As(r.Err, &ke) || int16(ke) != tt.code) {
					t.Errorf("event %s: %v; want Kafka's error %d", r.ID, r.Err, tt.code)
				}
			}
		})
	}
}

// TestLoginRefused: the hub's embedded broker (`pophub dev --policy`)
// closes the connection, without a word, on a wrong password or an
// unknown user, and every broker requiring a login closes that of a
// client without credentials at its first request. kafka-go reports
// either as a connection lost (unexpected EOF), which Retriable took for
// a passing trouble, under a hint asking whether the broker requires
// credentials: a retry loop sent again for ever. The publisher tells
// these refusals apart: each event's error is a *LoginError, [58] SASL
// Authentication Failed to errors.Is, and not retriable.
func TestLoginRefused(t *testing.T) {
	const user, password = "housing", "pw"
	allow := func(op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: schemas.Topic(schemas.Housing),
			Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	addr := testenv.Kafka(t, partitions, kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.User(access.SCRAMMechanism, user, password, allow(kmsg.ACLOperationDescribe), allow(kmsg.ACLOperationWrite)))
	tests := []struct {
		name        string
		login       sasl.Mechanism
		credentials bool // want LoginError.Credentials
		want        string
	}{
		{"wrong password", access.SCRAMClient{User: user, Password: "guess"}, true, "in answer to this client's SASL credentials"},
		{"unknown user", access.SCRAMClient{User: "tax", Password: password}, true, "in answer to this client's SASL credentials"},
		{"no credentials", nil, false, "this client was given no SASL credentials"},
	}
	ev := bySource(t)[schemas.Housing][0]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPublisher(t, Config{Brokers: []string{addr}, SASL: tt.login, MaxAttempts: 2})
			for attempt := range 2 { // a retry meets the same refusal
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				results, err := p.Publish(ctx, ev)
				cancel()
				got := results[0].Err
				var le *LoginError
				if err == nil || !errors.As(got, &le) || le.Credentials != tt.credentials {
					t.Fatalf("attempt %d: %v (call: %v); want a LoginError with Credentials %v", attempt, got, err, tt.credentials)
				}
				if !errors.Is(got, kafka.SASLAuthenticationFailed) || !strings.Contains(got.Error(), tt.want) {
					t.Errorf("attempt %d: %v; want [58] SASL Authentication Failed saying %q", attempt, got, tt.want)
				}
				if Retriable(got) {
					t.Errorf("attempt %d: Retriable(%v) = true", attempt, got)
				}
			}
		})
	}

	// The right credentials: delivered, through the same watch.
	p := newPublisher(t, Config{Brokers: []string{addr}, SASL: access.SCRAMClient{User: user, Password: password}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if results, err := p.Publish(ctx, ev); err != nil || results[0].Err != nil {
		t.Fatalf("with the right credentials: %v, %v", err, results[0].Err)
	}
}

// TestLoginRefusedOverTLS: the login is watched over TLS too, which the
// publisher then speaks itself.
func TestLoginRefusedOverTLS(t *testing.T) {
	ca, serverTLS := testTLS(t)
	addr := testenv.Kafka(t, partitions, kfake.EnableSASL(), kfake.Superuser(access.SCRAMMechanism, "housing", "pw"), kfake.TLS(serverTLS))
	ev := bySource(t)[schemas.Housing][0]
	for _, password := range []string{"guess", "pw"} {
		p := newPublisher(t, Config{Brokers: []string{addr}, TLS: &tls.Config{RootCAs: ca},
			SASL: access.SCRAMClient{User: "housing", Password: password}, MaxAttempts: 2})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		results, _ := p.Publish(ctx, ev)
		cancel()
		var le *LoginError
		if refused := errors.As(results[0].Err, &le); refused != (password == "guess") {
			t.Errorf("password %q over TLS: %v", password, results[0].Err)
		}
	}
}

// testTLS makes a development CA and a server certificate it signed for
// 127.0.0.1: the pool of the CA and the server's configuration.
func testTLS(t testing.TB) (*x509.CertPool, *tls.Config) {
	t.Helper()
	f, err := tlsconf.EnsureDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("the development CA is not PEM")
	}
	return pool, &tls.Config{Certificates: []tls.Certificate{cert}}
}
