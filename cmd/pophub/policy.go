package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub/access"
)

// policyCommand is `pophub policy`: check, explain and render the access
// policy, and make the hashes it stores.
func policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "The access policy: check it, explain an identity, make token hashes, render NATS and Kafka configuration",
	}
	cmd.AddCommand(policyCheckCommand(), policyExplainCommand(), policyHashTokenCommand(), policyNewTokenCommand(),
		policyHashPasswordCommand(), policyNATSConfigCommand(), policyKafkaACLsCommand(), policyDemoEnvCommand())
	return cmd
}

// policyFlag is --policy, which has no default beyond POPHUB_POLICY: a
// default file would let kafka-acls or nats-config print the example's
// grants for a real cluster when the flag is forgotten.
func policyFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "policy", envOr("POPHUB_POLICY", ""), "policy file (env POPHUB_POLICY; required)")
}

// loadPolicy loads the policy file that --policy names.
func loadPolicy(path string) (*access.Policy, error) {
	if path == "" {
		return nil, errors.New("no policy file: give --policy FILE or set POPHUB_POLICY (the example is ops/policy.example.yaml)")
	}
	return access.Load(path)
}

func policyCheckCommand() *cobra.Command {
	var secrets bool
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a policy file, listing every problem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := access.Load(args[0])
			var ve *access.ValidationError
			switch {
			case errors.As(err, &ve):
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d problem(s):\n", args[0], len(ve.Problems))
				for _, pr := range ve.Problems {
					fmt.Fprintf(cmd.ErrOrStderr(), "  %s\n", pr)
				}
				return exitError(1)
			case err != nil:
				return err
			}
			if secrets {
				if err := p.VerifySecrets(access.ResolveSecret); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: secrets:\n  %s\n", args[0], strings.ReplaceAll(err.Error(), "\n", "\n  "))
					return exitError(1)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d identities, valid\n", args[0], len(p.Identities))
			return nil
		},
	}
	cmd.Flags().BoolVar(&secrets, "secrets", false, "also resolve every Kafka password reference and check it against the SCRAM keys")
	return cmd
}

func policyExplainCommand() *cobra.Command {
	var path, identity string
	cmd := &cobra.Command{
		Use:   "explain --identity NAME --policy FILE",
		Short: "Print what an identity may do over HTTP, Kafka and NATS",
		Args:  noArgsUse("--policy FILE and --identity NAME"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPolicy(path)
			if err != nil {
				return err
			}
			if identity == "" {
				names := make([]string, len(p.Identities))
				for i, id := range p.Identities {
					names[i] = id.Name
				}
				return fmt.Errorf("--identity is required (one of: %s)", strings.Join(names, ", "))
			}
			text, err := p.Explain(identity)
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), text)
			return err
		},
	}
	policyFlag(cmd, &path)
	cmd.Flags().StringVar(&identity, "identity", "", "identity name (required)")
	return cmd
}

// readSecret reads one line from r, the way a secret is piped in.
func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	s := strings.TrimRight(line, "\r\n")
	if s == "" {
		return "", errors.New("standard input is empty: pipe the secret in")
	}
	return s, nil
}

func policyHashTokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-token < token.txt",
		Short: "Print the token_sha256 of a bearer token read from standard input",
		Args:  noArgsUse("standard input (pophub policy hash-token < token.txt)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := readSecret(cmd.InOrStdin())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), access.HashToken(tok))
			return nil
		},
	}
}

func policyNewTokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "new-token",
		Short: "Print a new random bearer token and its token_sha256",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, hash, err := access.NewToken()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token:        %s\ntoken_sha256: %s\n", tok, hash)
			return nil
		},
	}
}

func policyHashPasswordCommand() *cobra.Command {
	var iterations int
	cmd := &cobra.Command{
		Use:   "hash-password < password.txt",
		Short: "Print the NATS password_bcrypt and Kafka scram_sha512 of a password read from standard input",
		Args:  noArgsUse("standard input (pophub policy hash-password < password.txt)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readSecret(cmd.InOrStdin())
			if err != nil {
				return err
			}
			bc, err := access.HashPassword(pw)
			if err != nil {
				return err
			}
			k, err := access.NewSCRAMKeys(pw, iterations)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "nats:\n  password_bcrypt: %q\nkafka:\n  scram_sha512:\n    salt: %s\n    iterations: %d\n    stored_key: %s\n    server_key: %s\n",
				bc, k.Salt, k.Iterations, k.StoredKey, k.ServerKey)
			return nil
		},
	}
	cmd.Flags().IntVar(&iterations, "iterations", 8192, "SCRAM iteration count (at least 4096)")
	return cmd
}

func policyNATSConfigCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "nats-config --policy FILE",
		Short: "Print the nats-server authorization block generated from the policy",
		Args:  noArgsUse("--policy FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPolicy(path)
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), p.NATSConfig())
			return err
		},
	}
	policyFlag(cmd, &path)
	return cmd
}

func policyKafkaACLsCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "kafka-acls --policy FILE",
		Short: "Print a shell script of kafka-configs.sh and kafka-acls.sh commands generated from the policy",
		Args:  noArgsUse("--policy FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPolicy(path)
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), p.KafkaScript())
			return err
		},
	}
	policyFlag(cmd, &path)
	return cmd
}

// policyDemoEnvCommand is `pophub policy demo-env FILE`: the environment a
// hub needs to run under the example policy, whose secrets are public
// demo secrets (access.DemoSecret): every env: Kafka password reference,
// and the hub's NATS password. It refuses a policy whose Kafka keys are
// not the demo's, so it never prints guesses for a real one.
func policyDemoEnvCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo-env FILE",
		Short: "Print the shell exports that run a hub under the example policy (its public demo secrets)",
		Long: `Prints, for eval in a shell, the environment pophub dev or serve needs under
the example policy: each env: Kafka password reference and the hub's NATS
password (POPHUB_NATS_PASSWORD). The example policy's secrets are public demo
secrets; a policy whose Kafka keys are not the demo's is refused.

  eval "$(pophub policy demo-env ops/policy.example.yaml)"
  pophub dev --policy ops/policy.example.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := access.Load(args[0])
			if err != nil {
				return err
			}
			if err := p.VerifySecrets(access.DemoResolver); err != nil {
				return fmt.Errorf("%s does not hold the demo's secrets, which are for the example policy only: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "# pophub demo secrets: public, for the example policy only, never for production")
			for _, id := range p.Identities {
				if k := id.Credentials.Kafka; k != nil {
					if name, ok := strings.CutPrefix(k.Password, "env:"); ok {
						fmt.Fprintf(out, "export %s='%s'\n", name, access.DemoSecret(k.Password))
					}
				}
			}
			if hub := p.Hub(); hub.Name != "" {
				fmt.Fprintf(out, "export POPHUB_NATS_PASSWORD='%s'\n", access.DemoSecret("nats:"+hub.Name))
			}
			return nil
		},
	}
}
