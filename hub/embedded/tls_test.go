package embedded

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/schemas"
)

// TestTLS: with TLS configured, both servers serve clients that trust the
// CA and refuse plaintext clients and clients that trust another CA.
func TestTLS(t *testing.T) {
	files, err := tlsconf.EnsureDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := tlsconf.Server(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	trusting, err := tlsconf.Client(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlsconf.EnsureDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := tlsconf.Client(other.CA)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := startKafka(t, KafkaConfig{Partitions: 1, TLS: srvTLS})
	n, err := StartNATS(ctx, NATSConfig{StoreDir: t.TempDir(), TLS: srvTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	if !strings.HasPrefix(n.ClientURL(), "tls://") {
		t.Errorf("ClientURL %q, want tls://", n.ClientURL())
	}
	plainURL := "nats://" + strings.TrimPrefix(n.ClientURL(), "tls://")

	tests := []struct {
		name   string
		client *tls.Config // nil: plaintext
		ok     bool
	}{
		{"trusting the CA", trusting, true},
		{"plaintext", nil, false},
		{"trusting another CA", stranger, false},
	}
	for _, tt := range tests {
		t.Run("kafka/"+tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			cl := &kafka.Client{Addr: kafka.TCP(k.Addr()), Timeout: 5 * time.Second}
			if tt.client != nil {
				cl.Transport = &kafka.Transport{TLS: tt.client, DialTimeout: 5 * time.Second}
			}
			_, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{schemas.DLQTopic}})
			if tt.ok && err != nil {
				t.Fatalf("metadata: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("metadata answered")
			}
		})
		t.Run("nats/"+tt.name, func(t *testing.T) {
			url, opts := n.ClientURL(), []nats.Option{nats.Timeout(5 * time.Second)}
			if tt.client != nil {
				opts = append(opts, nats.Secure(tt.client))
			} else {
				url = plainURL
			}
			nc, err := nats.Connect(url, opts...)
			if err == nil {
				err = nc.Flush()
				nc.Close()
			}
			if tt.ok && err != nil {
				t.Fatalf("connecting: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("connected")
			}
		})
	}
}
