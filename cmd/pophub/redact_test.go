package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://hubuser:S3cretPw@127.0.0.1:4222", "nats://hubuser:xxxxx@127.0.0.1:4222"},
		{"nats://s3cr3tT0ken@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"nats://u:pw1@a:4222,nats://u:pw2@b:4222", "nats://u:xxxxx@a:4222,nats://u:xxxxx@b:4222"},
		{"postgres://root:pw@db1,db2/test", "postgres://root:xxxxx@db1,db2/test"},
		{"postgres://postgres@127.0.0.1:5432/test", "postgres://postgres@127.0.0.1:5432/test"},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNATSCredentialsNotLogged: a hub started while its NATS server, given
// with user and password in the URL, is unreachable logs neither.
func TestNATSCredentialsNotLogged(t *testing.T) {
	logs := &testenv.LogBuffer{}
	m := &Main{
		Config: Config{KafkaBrokers: []string{testenv.Kafka(t, 4)}, NATSURL: "nats://hubuser:S3cretPw@127.0.0.1:1", DataDir: t.TempDir(),
			HTTPAddr: "127.0.0.1:0", Partitions: 4, GroupID: fmt.Sprintf("nats-cred-%d", time.Now().UnixNano())},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	waitFor(t, time.Minute, "the start's log lines", func() bool {
		return strings.Contains(logs.String(), "starting without NATS") && strings.Contains(logs.String(), "pophub started")
	})
	if strings.Contains(logs.String(), "S3cretPw") {
		t.Errorf("the logs hold the NATS password:\n%s", logs.String())
	}
}
