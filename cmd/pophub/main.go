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
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/pophub/pophub/internal/buildinfo"
	"github.com/spf13/cobra"
)

func main() {
	// The write path allocates many short-lived objects per batch; trading
	// memory for fewer collections buys throughput. GOGC still overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal the command stops in order; a second
		// one ends the process at once, as signals do by default.
		<-ctx.Done()
		stop()
	}()
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

// rootCommand is the pophub command: the tree commandTree declares, with
// the rules that hold for every command group and every command applied.
func rootCommand() *cobra.Command {
	root := commandTree()
	rejectUnknownSubcommands(root)
	refuseStrayArguments(root)
	return root
}

// commandTree declares the commands.
func commandTree() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "pophub",
		Short:         "Population data-sharing hub: department events in, golden records and notifications out",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Read().String(),
	}
	root.SetVersionTemplate("pophub {{.Version}}\n")
	root.PersistentFlags().StringVar(&logLevel, "log-level", envOr("POPHUB_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env POPHUB_LOG_LEVEL)")
	var lvl slog.Level
	// A level that is not one is refused before the command runs: read
	// as info, a mistyped "debgu" would hide the very messages asked for.
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
			if cmd.Flags().Changed("log-level") {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			return fmt.Errorf("POPHUB_LOG_LEVEL=%q: want debug, info, warn or error", logLevel)
		}
		return nil
	}
	newLogger := func() *slog.Logger {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	root.AddCommand(devCommand(newLogger), serveCommand(newLogger), demoCommand(newLogger),
		publishCommand(newLogger), importCommand(newLogger), cdcCommand(newLogger), synthCommand(), eligibilityCommand(), policiesCommand(), dlqCommand(), policyCommand(), auditCommand(), reconcileCommand(), statusCommand(), statsCommand(newLogger), regionsCommand(), siSubscriberCommand(newLogger), benchCommand(newLogger), healthcheckCommand(), tlsCommand(), keysCommand(), offsetsCommand(), versionCommand())
	return root
}

// rejectUnknownSubcommands makes every command below the root that has
// subcommands refuse an argument that names none of them, with the error
// cobra gives only at the root: `unknown command "verfy" for "pophub
// audit"`, exit status 1. Left to cobra, a group without a Run prints its
// help and exits 0 (a script's typo passes for success), one with a Run
// runs with the typo as an ignored argument (`pophub bench verfy` runs
// the benchmark), and a typo followed by the subcommand's flags is
// blamed on the first flag. A group given no argument still prints its
// help. Commands that declare their own Args are left alone.
func rejectUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		rejectUnknownSubcommands(sub)
	}
	if !c.HasParent() || !c.HasSubCommands() || c.Args != nil {
		return
	}
	c.Args = unknownSubcommand
	if !c.Runnable() {
		c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	}
	// Flags are parsed before Args is checked, so `pophub stats verfy
	// --postgres x` fails on --postgres, unknown to the group; the
	// positional arguments parsed before it tell the truer story. The
	// function is inherited by the subcommands: it leaves theirs alone.
	c.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if cmd.HasSubCommands() && cmd.Args != nil {
			if args := cmd.Flags().Args(); len(args) > 0 {
				return unknownSubcommand(cmd, args)
			}
		}
		return err
	})
}

// refuseStrayArguments makes every runnable command without subcommands
// that declares no Args refuse positional arguments. Left to cobra, such a
// command takes any and ignores them: `pophub publish --file
// housing-*.jsonl`, the glob expanded by the shell, published the first
// file, dropped the others without a word and exited 0. A command that
// reads a --file says it takes one; the others point to their flags.
// Commands that declare their own Args are left alone.
func refuseStrayArguments(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseStrayArguments(sub)
	}
	if !c.HasParent() || c.HasSubCommands() || !c.Runnable() || c.Args != nil {
		return
	}
	c.Args = strayArguments
}

// strayArguments is the Args of a command that takes none. Like
// noArgsUse, it does not repeat the arguments: one might be a citizen ID.
func strayArguments(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.Flags().Lookup("file") != nil {
		return fmt.Errorf("%s takes no arguments: it reads one --file; run it once per file", cmd.CommandPath())
	}
	return fmt.Errorf("%s takes no arguments: its settings are flags (%s --help)", cmd.CommandPath(), cmd.CommandPath())
}

// unknownSubcommand is the Args of a command group: no argument but a
// subcommand's name, which cobra has already taken.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	var also string
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		also = "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return fmt.Errorf("unknown command %q for %q%s", args[0], cmd.CommandPath(), also)
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// redactURL drops a password from a connection URL before printing it;
// a comma-separated list of URLs (NATS servers) has each redacted.
func redactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, part := range parts {
		if !strings.Contains(part, "@") {
			continue // no user information to hide
		}
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.User == nil {
			parts[i] = "(a URL with credentials)"
			continue
		}
		if _, hasPassword := u.User.Password(); !hasPassword && (u.Scheme == "nats" || u.Scheme == "tls") {
			u.User = url.User("xxxxx") // a NATS token is given as the user
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}
