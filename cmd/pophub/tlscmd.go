package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pophub/pophub/hub/tlsconf"
)

// tlsCommand is `pophub tls`: certificates from the development CA that
// `pophub dev --tls` makes.
func tlsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Development certificates: client certificates from the CA of 'pophub dev --tls'",
	}
	cmd.AddCommand(tlsClientCertCommand())
	return cmd
}

func tlsClientCertCommand() *cobra.Command {
	var dir, out string
	cmd := &cobra.Command{
		Use:   "client-cert NAME [--dir pophub-data/tls] [--out NAME]",
		Short: "Issue a client certificate for mutual TLS and print the fingerprint an access policy lists",
		Long: `Issues a client certificate with common name NAME, signed by the development CA in
--dir (made by 'pophub dev --tls'), to OUT.pem and OUT-key.pem, and prints its SHA-256
fingerprint. Existing files are never overwritten. List it as the identity's credentials.cert_sha256 in the access policy
and run the hub with --tls-client-ca <dir>/ca.pem: the certificate then authenticates
as that identity over HTTPS.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if out == "" {
				out = name
			}
			if dir == "" {
				return errors.New("--dir is required")
			}
			files := tlsconf.DevFilesIn(dir)
			certFile, keyFile := out+".pem", out+"-key.pem"
			// As keys init and audit keygen, never overwrite: a re-run would
			// replace a deployed client's key, and --out <dir>/ca the CA's.
			for _, p := range []string{certFile, keyFile} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s exists; client-cert never overwrites a certificate or key: give another --out, or remove it first", p)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("--out: %w", err)
				}
			}
			if err := tlsconf.IssueClient(files, name, certFile, keyFile); err != nil {
				return fmt.Errorf("%w ('pophub dev --tls --data DIR' makes the CA in DIR/tls)", err)
			}
			fp, err := tlsconf.Fingerprint(certFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s, %s\ncert_sha256: %s\n", certFile, keyFile, fp)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", filepath.Join(envOr("POPHUB_DATA", "pophub-data"), "tls"), "the development CA's directory (default: tls in the hub's data directory, env POPHUB_DATA)")
	cmd.Flags().StringVar(&out, "out", "", "file name prefix (default NAME)")
	return cmd
}
