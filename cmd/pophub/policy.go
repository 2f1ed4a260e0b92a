package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

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
	var path, previous string
	cmd := &cobra.Command{
		Use:   "kafka-acls --policy FILE [--previous OLD-FILE]",
		Short: "Print a shell script of kafka-configs.sh and kafka-acls.sh commands generated from the policy",
		Long: `Prints a shell script that sets up a Kafka cluster's SCRAM users and ACLs as the
policy grants them. A cluster keeps what earlier scripts granted: with
--previous, the policy the cluster was last set up from, the script first
removes the ACLs that one granted and this one does not, and deletes the SCRAM
users of identities that no longer have a Kafka credential. Without it the
script only adds.`,
		Args: noArgsUse("--policy FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPolicy(path)
			if err != nil {
				return err
			}
			var prev *access.Policy
			if previous != "" {
				if prev, err = access.LoadPrevious(previous); err != nil {
					return fmt.Errorf("--previous: %w", err)
				}
			}
			_, err = io.WriteString(cmd.OutOrStdout(), p.KafkaScript(prev))
			return err
		},
	}
	policyFlag(cmd, &path)
	cmd.Flags().StringVar(&previous, "previous", "", "the policy the cluster was last set up from: remove what it granted and this one does not")
	return cmd
}

// policyDemoEnvCommand is `pophub policy demo-env FILE`: the environment a
// hub and its clients need to run under the example policy, whose secrets
// are public demo secrets (access.DemoSecret): every env: Kafka password
// reference, the hub's NATS password, and each identity's bearer token and
// NATS password, without which a newcomer's every /v1 request answers 401.
// It refuses a policy whose Kafka keys are not the demo's, and prints a
// token or NATS password only when the policy's hash is of the demo
// secret, so it never prints guesses for a real one.
func policyDemoEnvCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo-env FILE",
		Short: "Print the shell exports that run a hub and its clients under the example policy (its public demo secrets)",
		Long: `Prints, for eval in a shell, the environment pophub dev or serve needs under
the example policy: each env: Kafka password reference and the hub's NATS
password (POPHUB_NATS_PASSWORD); and what its clients need: each identity's
bearer token (POPHUB_TOKEN_<IDENTITY>, for --token, POPHUB_TOKEN or
POPHUB_SI_TOKEN) and the NATS password of each identity other than the hub
(POPHUB_NATS_PW_<IDENTITY>, for si-subscriber --nats-password). <IDENTITY>
is the identity's name upper-cased, other characters than letters and digits
written _ (si-harbin: POPHUB_TOKEN_SI_HARBIN). The example policy's secrets
are public demo secrets; a policy whose Kafka keys are not the demo's is
refused, and a token or NATS password not the demo's, or a Kafka password
reference without keys to tell, is not printed.

  eval "$(pophub policy demo-env ops/policy.example.yaml)"
  pophub dev --policy ops/policy.example.yaml
  pophub status --token "$POPHUB_TOKEN_ADMIN"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := access.Load(args[0])
			if err != nil {
				return err
			}
			if err := p.VerifySecrets(access.DemoResolver); err != nil {
				return fmt.Errorf("%s does not hold the demo's secrets, which are for the example policy only: %w", args[0], err)
			}
			return writeDemoEnv(cmd.OutOrStdout(), p)
		},
	}
}

// demoExport is one line of demo-env: a variable and its demo secret.
type demoExport struct{ name, value string }

// writeDemoEnv writes the exports of p's demo secrets: the Kafka
// passwords and the hub's NATS password, then the clients' tokens and NATS
// passwords, each group under a comment that says which flags and
// variables take them.
func writeDemoEnv(out io.Writer, p *access.Policy) error {
	tokens, natsPasswords, skipped, err := demoClientSecrets(p)
	if err != nil {
		return err
	}
	// The caller checked every Kafka password that has keys; one without
	// keys could be a real password's reference, which an export of the
	// demo secret would overwrite.
	var brokers []demoExport
	for _, id := range p.Identities {
		if k := id.Credentials.Kafka; k != nil {
			if name, ok := strings.CutPrefix(k.Password, "env:"); ok {
				if k.SCRAM == nil {
					skipped = append(skipped, id.Name+"'s Kafka password (no scram_sha512 keys to tell the demo's)")
					continue
				}
				brokers = append(brokers, demoExport{name, access.DemoSecret(k.Password)})
			}
		}
	}
	if h := p.Hub(); h.Name != "" {
		if pw := access.DemoSecret("nats:" + h.Name); h.CheckNATSPassword(pw) != nil {
			skipped = append(skipped, h.Name+"'s NATS password")
		} else {
			brokers = append(brokers, demoExport{"POPHUB_NATS_PASSWORD", pw})
		}
	}
	fmt.Fprintln(out, "# pophub demo secrets: public, for the example policy only, never for production")
	writeExports(out, brokers)
	if len(tokens) > 0 {
		fmt.Fprintf(out, "# bearer tokens: give one as --token, or as POPHUB_TOKEN (status, stats, eligibility, reconcile) or POPHUB_SI_TOKEN (si-subscriber), e.g. export POPHUB_TOKEN=\"$%s\"\n", tokens[0].name)
		writeExports(out, tokens)
	}
	if len(natsPasswords) > 0 {
		fmt.Fprintln(out, "# NATS passwords (user: the identity's name): si-subscriber --nats-user and --nats-password (POPHUB_SI_NATS_USER, POPHUB_SI_NATS_PASSWORD)")
		writeExports(out, natsPasswords)
	}
	for _, s := range skipped {
		fmt.Fprintf(out, "# %s: not the demo's, not printed\n", s)
	}
	return nil
}

func writeExports(out io.Writer, exports []demoExport) {
	for _, e := range exports {
		fmt.Fprintf(out, "export %s='%s'\n", e.name, e.value)
	}
}

// demoClientSecrets are the bearer tokens (POPHUB_TOKEN_<IDENTITY>) and
// the NATS passwords of identities other than the hub
// (POPHUB_NATS_PW_<IDENTITY>) whose hashes in p are of the demo secrets,
// and, for the others, which credential is not the demo's. Two identities
// whose names give one variable are an error: one export would overwrite
// the other.
func demoClientSecrets(p *access.Policy) (tokens, natsPasswords []demoExport, skipped []string, err error) {
	owner := map[string]string{} // variable → identity
	add := func(list *[]demoExport, prefix, identity, secret string) error {
		v := prefix + envSuffix(identity)
		if o, ok := owner[v]; ok && o != identity {
			return fmt.Errorf("identities %s and %s both export as %s: rename one", o, identity, v)
		}
		owner[v] = identity
		*list = append(*list, demoExport{v, secret})
		return nil
	}
	for _, id := range p.Identities {
		if h := id.Credentials.TokenSHA256; len(h) > 0 {
			tok := access.DemoSecret("token:" + id.Name)
			if !slices.Contains(h, access.HashToken(tok)) {
				skipped = append(skipped, id.Name+"'s token")
			} else if err := add(&tokens, "POPHUB_TOKEN_", id.Name, tok); err != nil {
				return nil, nil, nil, err
			}
		}
		if n := id.Credentials.NATS; n != nil && n.PasswordBcrypt != "" && id.Kind != access.KindHub {
			pw := access.DemoSecret("nats:" + id.Name)
			if bcrypt.CompareHashAndPassword([]byte(n.PasswordBcrypt), []byte(pw)) != nil {
				skipped = append(skipped, id.Name+"'s NATS password")
			} else if err := add(&natsPasswords, "POPHUB_NATS_PW_", id.Name, pw); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	return tokens, natsPasswords, skipped, nil
}

// envSuffix is an identity's name as a variable name's end: upper-cased,
// every character but a letter or digit written _ (si-harbin: SI_HARBIN),
// as the example policy names its Kafka password variables.
func envSuffix(identity string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, identity)
}
