package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/ingest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// securedKafka starts a broker that, as under an access policy, serves
// only clients logged in with SASL/SCRAM-SHA-512; its one user is u/pw.
func securedKafka(t *testing.T) (addr string, login sasl.Mechanism) {
	t.Helper()
	// The flags default to these; the machine's own must not leak in.
	t.Setenv("POPHUB_KAFKA_USER", "")
	t.Setenv("POPHUB_KAFKA_PASSWORD", "")
	return testenv.Kafka(t, 2, kfake.EnableSASL(), kfake.Superuser(access.SCRAMMechanism, "u", "pw")),
		access.SCRAMClient{User: "u", Password: "pw"}
}

// eventFile writes the scenario's first event as a one-line JSONL file
// and returns it with the event's source.
func eventFile(t *testing.T) (string, schemas.Source) {
	t.Helper()
	msg := scenario(t)[0]
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, append(msg.Value, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, schemas.SourceOfTopic(msg.Topic)
}

// TestKafkaLoginPublishAndImport: `pophub publish` and `pophub import`
// send to brokers that require SASL/SCRAM-SHA-512 with --kafka-user and
// --kafka-password, and are refused without them. The hub's broker
// refuses a wrong password by closing the connection, which a client
// cannot tell from a connection lost: `pophub publish` says the
// credentials may have been refused, beside publishing the file again.
func TestKafkaLoginPublishAndImport(t *testing.T) {
	newLogger := func() *slog.Logger { return testLogger(t) }
	for _, tc := range []struct {
		name string
		cmd  func() *cobra.Command
		sent string // in the output of a run that sent the event
	}{
		{"publish", func() *cobra.Command { return publishCommand(newLogger) }, "1 published"},
		{"import", func() *cobra.Command { return importCommand(newLogger) }, "1 sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, login := securedKafka(t)
			file, src := eventFile(t)
			args := []string{"--source", string(src), "--file", file, "--kafka", addr}

			out, err := execute(t, tc.cmd(), append(args, "--kafka-user", "u", "--kafka-password", "pw")...)
			if err != nil || !strings.Contains(out, tc.sent) {
				t.Fatalf("with the login: %v\n%s", err, out)
			}
			if n := testenv.RecordCountAs(t, addr, login, schemas.Topic(src)); n != 1 {
				t.Errorf("%d records on %s, want 1", n, schemas.Topic(src))
			}

			if tc.name == "publish" {
				out, err = execute(t, tc.cmd(), append(args, "--kafka-user", "u", "--kafka-password", "guess")...)
				// The embedded broker closes the connection without a
				// word, which a client cannot tell from a connection
				// lost: the error says it may be either.
				if err == nil || !strings.Contains(err.Error(), "credentials refused: are they right") {
					t.Errorf("with a wrong password: %v\n%s\nwant a hint that the credentials may have been refused", err, out)
				}
			}
			if tc.name == "import" {
				// A new file: the same one would be resumed, with nothing to send.
				file, _ = eventFile(t)
				args[3] = file
			}
			out, err = execute(t, tc.cmd(), args...)
			if err == nil {
				t.Errorf("without a login the command succeeded:\n%s", out)
			} else if !strings.Contains(err.Error()+out, "does it require") {
				// All the client sees is the connection closing: say why it may.
				t.Errorf("without a login: %v\n%s\nwant a hint that the broker may require credentials", err, out)
			}
		})
	}
}

// TestKafkaLoginDLQ: `pophub dlq` lists, shows and replays on brokers
// that require SASL/SCRAM-SHA-512, logged in by flags or by environment.
func TestKafkaLoginDLQ(t *testing.T) {
	addr, login := securedKafka(t)
	id := string(personID(t, 7))
	marriage := schemas.Topic(schemas.Marriage)
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: schemas.DLQTopic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }), Transport: &kafka.Transport{SASL: login}}
	err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte(id), Value: []byte(`{"subject":"` + id + `"`),
		Headers: []kafka.Header{
			{Key: ingest.HeaderReason, Value: []byte(schemas.ReasonNotJSON)},
			{Key: ingest.HeaderTopic, Value: []byte(marriage)},
			{Key: ingest.HeaderPartition, Value: []byte("0")},
			{Key: ingest.HeaderOffset, Value: []byte(strconv.Itoa(0))},
		}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	dlqAs := func(args ...string) (string, error) {
		t.Helper()
		return execute(t, dlqCommand(), append(args, "--kafka", addr)...)
	}
	flags := []string{"--kafka-user", "u", "--kafka-password", "pw"}

	if out, err := dlqAs("list"); err == nil {
		t.Errorf("dlq list without a login succeeded:\n%s", out)
	}
	if out, err := dlqAs(append([]string{"show", "0:0"}, flags...)...); err != nil || !strings.Contains(out, "origin:  "+marriage) {
		t.Errorf("dlq show: %v\n%s", err, out)
	}
	if out, err := dlqAs(append([]string{"replay", "--offset", "0:0"}, flags...)...); err != nil || !strings.Contains(out, "replayed 0:0 -> "+marriage) {
		t.Errorf("dlq replay: %v\n%s", err, out)
	}
	if n := testenv.RecordCountAs(t, addr, login, marriage); n != 1 {
		t.Errorf("%d records on %s after the replay, want 1", n, marriage)
	}
	t.Setenv("POPHUB_KAFKA_USER", "u")
	t.Setenv("POPHUB_KAFKA_PASSWORD", "pw")
	if out, err := dlqAs("list"); err != nil || !strings.Contains(out, "1 records") {
		t.Errorf("dlq list logged in by environment: %v\n%s", err, out)
	}
}

// TestKafkaLoginHalfGiven: a user without a password, or a password
// without a user, is a configuration error naming the missing flag, on
// every command that logs into Kafka; nothing is sent.
func TestKafkaLoginHalfGiven(t *testing.T) {
	t.Setenv("POPHUB_KAFKA_USER", "")
	t.Setenv("POPHUB_KAFKA_PASSWORD", "")
	newLogger := func() *slog.Logger { return testLogger(t) }
	file, src := eventFile(t)
	mapping := filepath.Join("..", "..", "adapters", "cdc", "examples", "rentals.yaml")
	// Nothing listens there: a command that went on would fail otherwise.
	const nowhere = "127.0.0.1:1"
	commands := []struct {
		name string
		cmd  func() *cobra.Command
		args []string
	}{
		{"publish", func() *cobra.Command { return publishCommand(newLogger) }, []string{"--source", string(src), "--file", file}},
		{"import", func() *cobra.Command { return importCommand(newLogger) }, []string{"--source", string(src), "--file", file}},
		{"cdc", func() *cobra.Command { return cdcCommand(newLogger) },
			[]string{"--source", "housing", "--postgres", "postgres://nobody@127.0.0.1:1/x", "--table", "rentals", "--mapping", mapping}},
		{"dlq", dlqCommand, []string{"list"}},
		{"reconcile", reconcileCommand, []string{"--hub", "http://" + nowhere}},
	}
	for _, c := range commands {
		for _, half := range []struct {
			name, given, missing string
		}{
			{"user only", "--kafka-user", "--kafka-password"},
			{"password only", "--kafka-password", "--kafka-user"},
		} {
			t.Run(c.name+"/"+half.name, func(t *testing.T) {
				args := append(append([]string{}, c.args...), "--kafka", nowhere, half.given, "x")
				out, err := execute(t, c.cmd(), args...)
				if err == nil || !strings.Contains(err.Error(), half.missing+" is not") {
					t.Errorf("error %v, want one saying %s is not set\n%s", err, half.missing, out)
				}
			})
		}
	}
}
