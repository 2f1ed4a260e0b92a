// Command pophub runs the population data-sharing hub and its tools.
//
//	pophub dev      the whole hub in one process (embedded Kafka-protocol broker, NATS, memdb or PostgreSQL)
//	pophub demo     the embedded hub fed with a synthetic population, then a summary
//	pophub serve    production: external Kafka, PostgreSQL and NATS
//	pophub publish  publish a JSONL file of events
//	pophub bench    measure ingest throughput and notification latency
//
// main only parses flags and environment into a Config and runs Main; the
// end-to-end tests run the same Main.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	// The write path allocates many short-lived objects per batch; trading
	// memory for fewer collections buys throughput. GOGC still overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(int(exit))
		}
		fmt.Fprintln(os.Stderr, "pophub:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a status code after the command has
// already printed why.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func rootCommand() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "pophub",
		Short:         "Population data-sharing hub: department events in, golden records and notifications out",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", envOr("POPHUB_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env POPHUB_LOG_LEVEL)")
	newLogger := func() *slog.Logger {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
			lvl = slog.LevelInfo
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	root.AddCommand(devCommand(newLogger), serveCommand(newLogger), demoCommand(newLogger),
		publishCommand(newLogger), importCommand(newLogger), cdcCommand(newLogger), synthCommand(), eligibilityCommand(), policiesCommand(), dlqCommand(), policyCommand(), auditCommand(), reconcileCommand(), statusCommand(), statsCommand(), regionsCommand(), siSubscriberCommand(newLogger), benchCommand(newLogger), healthcheckCommand(), tlsCommand(), keysCommand())
	return root
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}
