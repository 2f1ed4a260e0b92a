package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pophub/pophub/hub/audit"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/schemas/citizenid"
)

// auditCommand is `pophub audit`: verify the audit trail, answer "who
// looked at my data", export a signed archive for the regulator, purge
// by the retention rules, and make the keys.
func auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The audit trail: verify its hash chain, who read a citizen's data, signed exports, retention",
		Long: `Every read of a golden record or its history, every statistics pull and every policy
change is an entry of an append-only, hash-chained log, in PostgreSQL (table audit_log,
--postgres, --schema) or in a JSON-lines file (--file, the embedded hub's).

The log never holds a citizen ID, only its HMAC-SHA-256 under the audit key. The key is
32 random bytes written as hex: --key-file FILE (env POPHUB_AUDIT_KEY_FILE), or the hex
itself in POPHUB_AUDIT_KEY. 'pophub audit keygen --key-file FILE' makes one. The same key
seals every entry, so 'verify' with the key also catches a rewritten chain.`,
	}
	cmd.AddCommand(auditVerifyCommand(), auditWhoReadCommand(), auditExportCommand(),
		auditVerifyExportCommand(), auditPurgeCommand(), auditKeygenCommand(), auditPolicyChangesCommand())
	return cmd
}

// auditTarget is the flags that pick the log and the key.
type auditTarget struct {
	pgURL, schema, file, keyFile string
	flags                        *pflag.FlagSet // tells a flag given from one defaulted to the environment
}

func (a *auditTarget) register(cmd *cobra.Command) {
	f := cmd.Flags()
	a.flags = f
	f.StringVar(&a.pgURL, "postgres", os.Getenv("POPHUB_POSTGRES"), "PostgreSQL URL of the hub's store (env POPHUB_POSTGRES)")
	f.StringVar(&a.schema, "schema", os.Getenv("POPHUB_POSTGRES_SCHEMA"),
		"schema of the audit tables, the hub's (env POPHUB_POSTGRES_SCHEMA; default: the one the --postgres URL's search_path names, else public)")
	f.StringVar(&a.file, "file", os.Getenv("POPHUB_AUDIT_FILE"), "JSON-lines audit file of an embedded hub (env POPHUB_AUDIT_FILE)")
	f.StringVar(&a.keyFile, "key-file", os.Getenv("POPHUB_AUDIT_KEY_FILE"), "audit key file, hex (env POPHUB_AUDIT_KEY_FILE; or the hex in POPHUB_AUDIT_KEY)")
}

// open opens the chosen log, which must exist: the hub creates its log,
// the tool never does, so a mistyped --file or --schema is an error (exit
// status 1) instead of a new empty log that verifies, has no entries, or
// takes the tool's own access entry.
//
// A log named on the command line wins over the other kind's environment
// variable: `--file F` on a host with the hub's POPHUB_POSTGRES exported
// opens F. Both given on the command line, or both only in the
// environment, are refused.
func (a *auditTarget) open(ctx context.Context) (audit.Store, error) {
	pgGiven, fileGiven := a.flags.Changed("postgres"), a.flags.Changed("file")
	switch {
	case pgGiven && fileGiven:
		return nil, errors.New("give either --postgres or --file, not both")
	case pgGiven:
		a.file = ""
	case fileGiven:
		a.pgURL = ""
	case a.pgURL != "" && a.file != "":
		return nil, errors.New("POPHUB_POSTGRES and POPHUB_AUDIT_FILE are both set: give --postgres or --file to choose the log")
	}
	switch {
	case a.pgURL != "":
		schema, err := postgres.SchemaOf(a.pgURL, a.schema)
		if err != nil {
			return nil, err
		}
		s, err := audit.OpenPostgresExisting(ctx, audit.PostgresConfig{URL: a.pgURL, Schema: schema})
		if errors.Is(err, audit.ErrNoLog) {
			return nil, fmt.Errorf("%w; are --postgres and --schema right?", err)
		}
		if err != nil {
			return nil, fmt.Errorf("opening audit log: %w", err)
		}
		return s, nil
	case a.file != "":
		s, err := audit.OpenFileExisting(a.file)
		if errors.Is(err, audit.ErrNoLog) {
			return nil, fmt.Errorf("%w; is the path right?", err)
		}
		if err != nil {
			return nil, fmt.Errorf("opening audit log: %w", err)
		}
		return s, nil
	}
	return nil, errors.New("give --postgres URL or --file PATH")
}

// key loads the audit key; required says whether its absence is an error.
func (a *auditTarget) key(required bool) (audit.Key, error) {
	switch {
	case a.keyFile != "":
		return audit.LoadKey(a.keyFile)
	case os.Getenv("POPHUB_AUDIT_KEY") != "":
		k, err := audit.ParseKey(os.Getenv("POPHUB_AUDIT_KEY"))
		if err != nil {
			return audit.Key{}, fmt.Errorf("POPHUB_AUDIT_KEY: %w", err)
		}
		return k, nil
	case required:
		return audit.Key{}, errors.New("the audit key is required: --key-file FILE, POPHUB_AUDIT_KEY_FILE or POPHUB_AUDIT_KEY")
	}
	return audit.Key{}, nil
}

// checkKey refuses a key other than the one the log is sealed with:
// who-read would find nothing under it, and the tool's own entry sealed
// with it would leave a log that verifies under neither key.
func (a *auditTarget) checkKey(ctx context.Context, s audit.Store, k audit.Key) error {
	if err := audit.CheckKey(ctx, s, k); err != nil {
		if errors.Is(err, audit.ErrKeyMismatch) && a.keyFile != "" {
			return fmt.Errorf("--key-file %s: %w", a.keyFile, err)
		}
		return err
	}
	return nil
}

// record appends the tool's own use of the log (reading it is access too).
func (a *auditTarget) record(ctx context.Context, s audit.Store, k audit.Key, e audit.Entry) error {
	l, err := audit.NewLog(s, k, audit.LogConfig{})
	if err != nil {
		return err
	}
	if err := l.Append(ctx, e); err != nil {
		l.Close(ctx)
		return fmt.Errorf("recording this audit read: %w", err)
	}
	if err := l.Close(ctx); err != nil {
		return fmt.Errorf("recording this audit read: %w", err)
	}
	return nil
}

// operator names who runs the tool, for the log.
func operator(flag string) string {
	if flag != "" {
		return flag
	}
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

// parseAuditTime reads an RFC 3339 time, or a date YYYY-MM-DD in China
// Standard Time; endOfDay moves a date to the start of the next day (an
// inclusive --to).
func parseAuditTime(s string, endOfDay bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, s, chinaTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want YYYY-MM-DD or an RFC 3339 time", s)
	}
	if endOfDay {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

// parseAuditRange reads --from and --to (parseAuditTime) and refuses a
// range that ends before it begins: searched, it would answer "0 entries"
// whatever the log holds.
func parseAuditRange(from, to string) (f, t time.Time, err error) {
	if f, err = parseAuditTime(from, false); err != nil {
		return f, t, fmt.Errorf("--from: %w", err)
	}
	if t, err = parseAuditTime(to, true); err != nil {
		return f, t, fmt.Errorf("--to: %w", err)
	}
	if !t.After(f) {
		return f, t, fmt.Errorf("--from %s is not before --to %s: the range is empty", from, to)
	}
	return f, t, nil
}

// lostFileLog says why the file log at path, when rep finds it holding
// nothing (no entry, no anchor), was emptied or lost: the files a hub
// writes beside it only once it holds entries (audit.Sidecars) are still
// there. This is the case the hub refuses to start on; an empty log
// verifies by itself, so without this the auditor's tool would pass it.
// It is "" for a database log, a log holding entries, or no sidecar.
func lostFileLog(path string, rep audit.Report) string {
	if path == "" || rep.Head.Seq != 0 || rep.Anchor.Seq != 0 {
		return ""
	}
	found := audit.Sidecars(path)
	if len(found) == 0 {
		return ""
	}
	return fmt.Sprintf("lost      the audit log %s holds no entry, but %s, written only once the log holds entries, "+
		"is still there: restore the log from the same backup as that file", path, strings.Join(found, " and "))
}

func auditVerifyCommand() *cobra.Command {
	var t auditTarget
	var manifest, pubKey string
	cmd := &cobra.Command{
		Use:   "verify (--postgres URL [--schema S] | --file PATH) [--key-file F] [--manifest M --public-key P]",
		Short: "Check the whole hash chain and say where an entry was changed, removed or reordered",
		Long: `Reads every entry in stored order and checks each one against its hash, each hash
against the audit key's seal (when the key is given), and each entry's link to the one
before it. It prints the first problems, each with its sequence number:

  changed    the entry's fields do not match its hash
  forged     the hash is not sealed by the audit key (the chain was recomputed)
  removed    entries are missing
  reordered  an entry is linked to another predecessor than the one stored before it
  broken     a link is broken and the cause cannot be told (verify with the key)

Removing the newest entries leaves the rest consistent: --manifest (a signed export's
manifest, checked with --public-key) makes verify require that export's head; a head
that a lawful purge has since removed is noted, not reported as a problem.
Exit status 1 when anything is wrong.`,
		Example: `  pophub audit verify --postgres postgres://postgres@127.0.0.1:5432/pophub --key-file /etc/pophub/audit.key
  pophub audit verify --file pophub-data/audit.jsonl --manifest q1.jsonl.manifest.json --public-key audit-signing.pem.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			k, err := t.key(false)
			if err != nil {
				return err
			}
			opt := audit.VerifyOptions{Key: k}
			if manifest != "" {
				m, err := readSignedManifest(manifest, pubKey)
				if err != nil {
					return err
				}
				opt.Expect = audit.Link{Seq: m.LastSeq, Hash: m.Head}
			}
			s, err := t.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			start := time.Now()
			rep, err := audit.Verify(ctx, s, opt)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, p := range rep.Problems {
				fmt.Fprintf(w, "%-9s seq %d (%d entries): %s\n", p.Kind, p.Seq, p.Count, p.Detail)
			}
			if rep.NumProblems > int64(len(rep.Problems)) {
				fmt.Fprintf(w, "… and %d more problems\n", rep.NumProblems-int64(len(rep.Problems)))
			}
			for _, n := range rep.Notes {
				fmt.Fprintf(w, "note: %s\n", n)
			}
			sealed := "seals checked"
			if !rep.Sealed {
				sealed = "seals NOT checked (no key)"
			}
			if rep.Redacted > 0 {
				fmt.Fprintf(w, "%d of the entries are redacted by retention purges: their links and seals checked, their content gone\n", rep.Redacted)
			}
			fmt.Fprintf(w, "%d entries, seq %d to %d after anchor %d, head %s, %s, in %s\n", rep.Entries,
				rep.Anchor.Seq+1, rep.Head.Seq, rep.Anchor.Seq, rep.Head.Hash, sealed, time.Since(start).Round(time.Millisecond))
			if everySealFails(rep) {
				fmt.Fprintln(w, "every entry's seal fails: is --key-file this log's key? (a log rewritten whole without the key fails the same way)")
			}
			if lost := lostFileLog(t.file, rep); lost != "" {
				fmt.Fprintln(w, lost)
				fmt.Fprintln(w, "the audit log does NOT verify: it held entries and was emptied or lost")
				return exitError(1)
			}
			if !rep.OK() {
				fmt.Fprintf(w, "the audit log does NOT verify: %d problems, the first at seq %d\n", rep.NumProblems, rep.Problems[0].Seq)
				return exitError(1)
			}
			fmt.Fprintln(w, "the audit log verifies")
			return nil
		},
	}
	t.register(cmd)
	cmd.Flags().StringVar(&manifest, "manifest", "", "a signed export's manifest whose head the log must contain")
	cmd.Flags().StringVar(&pubKey, "public-key", "", "public key (PEM) that signed --manifest")
	return cmd
}

// readSignedManifest reads path and path+".sig" and checks the signature.
func readSignedManifest(path, pubKey string) (audit.Manifest, error) {
	var m audit.Manifest
	if pubKey == "" {
		return m, errors.New("--manifest needs --public-key")
	}
	pub, err := audit.LoadPublicKey(pubKey)
	if err != nil {
		return m, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("reading manifest: %w", err)
	}
	sig, err := os.ReadFile(path + ".sig")
	if err != nil {
		return m, fmt.Errorf("reading signature: %w", err)
	}
	return audit.VerifyManifest(b, sig, pub)
}

func auditWhoReadCommand() *cobra.Command {
	var t auditTarget
	var from, to, identity, purpose string
	cmd := &cobra.Command{
		Use:   "who-read CITIZEN_ID (--postgres URL | --file PATH) --key-file F [--from DATE] [--to DATE]",
		Short: "Who looked at a citizen's data, when and why",
		Long: `Lists every audit entry about the citizen: time (China Standard Time), who, what,
which sections, the declared purpose, the result and, when the action alone does not
say it, what was done (an eligibility decision about the citizen, or the citizen
listed as family member in another person's decision). The log is searched by the
HMAC of the ID under the audit key, so the key that was in use when the entries were
written is needed; a key other than the one the log's newest entry is sealed with is
refused. This look-up is itself recorded (action audit_read).`,
		Example: `  pophub audit who-read 230102199001011230 --postgres postgres://… --key-file /etc/pophub/audit.key --from 2026-01-01`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id, err := citizenid.Parse(args[0])
			if err != nil {
				return err // *citizenid.Error never shows the input
			}
			k, err := t.key(true)
			if err != nil {
				return err
			}
			f, tt, err := parseAuditRange(from, to)
			if err != nil {
				return err
			}
			s, err := t.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := t.checkKey(ctx, s, k); err != nil {
				return err
			}
			subject := k.Subject(id)
			entries, err := s.WhoRead(ctx, subject, f, tt)
			if err != nil {
				return err
			}
			if err := t.record(ctx, s, k, audit.Entry{Identity: operator(identity), Action: audit.ActionAuditRead,
				Subject: subject, Purpose: purpose, Result: "ok", Detail: "who-read"}); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %d entries from %s to %s\n", id, len(entries), f.In(chinaTime).Format(time.DateTime), tt.In(chinaTime).Format(time.DateTime))
			for _, e := range entries {
				sections := strings.Join(e.Sections, ",")
				if sections == "" {
					sections = "-"
				}
				// Detail says what was done when the action alone does not
				// (an eligibility decision, a listing as family member).
				detail := ""
				if e.Detail != "" {
					detail = fmt.Sprintf("  detail %q", citizenid.MaskText(e.Detail))
				}
				fmt.Fprintf(w, "%s  seq %-8d %-24s %-18s %-30s purpose %q  %d %s%s\n", e.Time.In(chinaTime).Format(time.DateTime),
					e.Seq, e.Identity, e.Action, sections, citizenid.MaskText(e.Purpose), e.Status, e.Result, detail)
			}
			return nil
		},
	}
	t.register(cmd)
	f := cmd.Flags()
	f.StringVar(&from, "from", "1970-01-01", "first day (YYYY-MM-DD, China Standard Time) or RFC 3339 time")
	f.StringVar(&to, "to", "9999-12-30", "last day, inclusive (YYYY-MM-DD) or RFC 3339 time, exclusive")
	f.StringVar(&identity, "identity", "", "who runs the look-up, for the log (default cli:$USER)")
	f.StringVar(&purpose, "purpose", "citizen access request", "purpose of the look-up, for the log")
	return cmd
}

func auditExportCommand() *cobra.Command {
	var t auditTarget
	var from, to, out, signingKey, identity string
	cmd := &cobra.Command{
		Use:   "export (--postgres URL | --file PATH) --from DATE --to DATE --out FILE --signing-key F",
		Short: "Write a signed archive of the entries in a period for the regulator",
		Long: `Writes the entries of the period (and any entry stored between them, so the archive
is one stretch of the chain) as JSON lines to FILE, a new file (an existing FILE, or
manifest or signature next to it, is refused, never overwritten), checking their chain on the way, and
next to it FILE.manifest.json (period, sequence numbers, count, the hash before the first
entry, the chain head hash, the archive's SHA-256) and FILE.manifest.json.sig, the
manifest's Ed25519 signature by --signing-key ('pophub audit keygen --signing-key F'
makes one; give the regulator F.pub). Check it with 'pophub audit verify-export', or with
openssl and sha256sum as the manifest's documentation shows. The export is itself
recorded (action audit_read) when the audit key is given.`,
		Example: `  pophub audit export --postgres postgres://… --from 2026-01-01 --to 2026-03-31 --out 2026q1.jsonl --signing-key audit-signing.pem`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f, tt, err := parseAuditRange(from, to)
			if err != nil {
				return err
			}
			priv, err := audit.LoadSigningKey(signingKey)
			if err != nil {
				return fmt.Errorf("--signing-key: %w", err)
			}
			k, err := t.key(false)
			if err != nil {
				return err
			}
			s, err := t.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			if !k.IsZero() {
				if err := t.checkKey(ctx, s, k); err != nil {
					return err
				}
			}
			if err := checkExportOut(out, t.file); err != nil {
				return err
			}
			// Every file is created new (O_EXCL) and only those this run
			// created are removed on failure: an export never overwrites
			// or deletes an earlier archive, let alone the log.
			var created []string
			ok := false
			defer func() {
				if !ok {
					for _, p := range created {
						os.Remove(p)
					}
				}
			}()
			file, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("creating archive: %w", err)
			}
			created = append(created, out)
			m, err := audit.Export(ctx, s, f, tt, file, k)
			if cerr := file.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("writing archive: %w", cerr)
			}
			if err != nil {
				return err
			}
			manifest, sig, err := m.Sign(priv)
			if err != nil {
				return err
			}
			if err := writeNewFile(out+".manifest.json", manifest, 0o644, &created); err != nil {
				return fmt.Errorf("writing manifest: %w", err)
			}
			if err := writeNewFile(out+".manifest.json.sig", sig, 0o644, &created); err != nil {
				return fmt.Errorf("writing signature: %w", err)
			}
			ok = true
			if !k.IsZero() {
				if err := t.record(ctx, s, k, audit.Entry{Identity: operator(identity), Action: audit.ActionAuditRead,
					Purpose: "regulator export", Result: "ok", Detail: fmt.Sprintf("export seq %d-%d", m.FirstSeq, m.LastSeq)}); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d entries, seq %d to %d, head %s\n%s.manifest.json and .sig: signed\n",
				out, m.Count, m.FirstSeq, m.LastSeq, m.Head, out)
			return nil
		},
	}
	t.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "first day (YYYY-MM-DD, China Standard Time) or RFC 3339 time (required)")
	fl.StringVar(&to, "to", "", "last day, inclusive (YYYY-MM-DD), or RFC 3339 time, exclusive (required)")
	fl.StringVar(&out, "out", "", "new archive file (never overwritten); the manifest and signature are written next to it (required)")
	fl.StringVar(&signingKey, "signing-key", os.Getenv("POPHUB_AUDIT_SIGNING_KEY"), "Ed25519 private key, PEM (env POPHUB_AUDIT_SIGNING_KEY)")
	fl.StringVar(&identity, "identity", "", "who runs the export, for the log (default cli:$USER)")
	for _, name := range []string{"from", "to", "out"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// checkExportOut refuses an export's output that exists already (the
// archive or its manifest or signature), naming the audit log itself when
// out is the log file under another name (a relative path, a symlink or
// a hard link).
func checkExportOut(out, logFile string) error {
	if logFile != "" {
		if a, err := os.Stat(out); err == nil {
			if b, err := os.Stat(logFile); err == nil && os.SameFile(a, b) {
				return fmt.Errorf("--out %s is the audit log itself (--file %s): give a new file for the archive", out, logFile)
			}
		}
	}
	for _, p := range []string{out, out + ".manifest.json", out + ".manifest.json.sig"} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("--out: %s exists; an export never overwrites a file, give a new name", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("--out: %w", err)
		}
	}
	return nil
}

// writeNewFile writes b to path, which must not exist, and adds path to
// created once it has made the file.
func writeNewFile(path string, b []byte, perm os.FileMode, created *[]string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	*created = append(*created, path)
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func auditVerifyExportCommand() *cobra.Command {
	var pubKey string
	cmd := &cobra.Command{
		Use:   "verify-export ARCHIVE --public-key P",
		Short: "Check a signed export: signature, archive hash, and the chain from its first entry to its head",
		Long: `Reads ARCHIVE, ARCHIVE.manifest.json and ARCHIVE.manifest.json.sig. Exit status 1
when the signature does not verify under the public key, the archive's SHA-256 differs
from the manifest's, or its entries do not form the chain the manifest describes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pubKey == "" {
				return errors.New("--public-key is required: the key the hub's operator published, not the one in the manifest")
			}
			pub, err := audit.LoadPublicKey(pubKey)
			if err != nil {
				return err
			}
			manifest, err := os.ReadFile(args[0] + ".manifest.json")
			if err != nil {
				return fmt.Errorf("reading manifest: %w", err)
			}
			sig, err := os.ReadFile(args[0] + ".manifest.json.sig")
			if err != nil {
				return fmt.Errorf("reading signature: %w", err)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("opening archive: %w", err)
			}
			defer f.Close()
			w := cmd.OutOrStdout()
			m, rep, err := audit.VerifyExport(manifest, sig, pub, f)
			if err != nil {
				for _, p := range rep.Problems {
					fmt.Fprintf(w, "%-9s seq %d (%d entries): %s\n", p.Kind, p.Seq, p.Count, p.Detail)
				}
				fmt.Fprintf(w, "the export does NOT verify: %v\n", err)
				return exitError(1)
			}
			fmt.Fprintf(w, "the export verifies: %d entries, seq %d to %d, %s to %s, head %s\n", m.Count, m.FirstSeq, m.LastSeq,
				m.From.In(chinaTime).Format(time.DateTime), m.To.In(chinaTime).Format(time.DateTime), m.Head)
			return nil
		},
	}
	cmd.Flags().StringVar(&pubKey, "public-key", "", "the signer's Ed25519 public key, PEM (required)")
	return cmd
}

func auditPurgeCommand() *cobra.Command {
	var t auditTarget
	var r audit.Retention
	cmd := &cobra.Command{
		Use:   "purge (--postgres URL | --file PATH) [--access-months N] [--processing-months N]",
		Short: "Delete or redact the entries past their retention, keeping the chain verifiable",
		Long: fmt.Sprintf(`Removes the personal data of every entry past its retention. Access entries (reads,
statistics pulls, audit reads, requests that matched no route) are kept --access-months,
at least %d (Cybersecurity Law art. 21); processing records (policy changes, gateway
requests and anything else) --processing-months, at least %d (PIPL art. 56). Shorter
retentions are refused, 0 included: there is no "keep for ever" setting, give the number
of months to keep.

The expired entries at the start of the log are deleted, and the last one deleted is
kept as the anchor the rest of the chain starts from. An expired entry after an entry
still retained (a gateway request or policy change is kept %d months) is redacted in
place: it keeps only its sequence number, time, action and chain hashes, and verify
takes its stored hash as the link to the next entry. It prints how many entries of each
class it deleted and redacted.

On PostgreSQL it works in transactions of 10,000 entries, oldest first, and the hub
goes on recording meanwhile. Stopped part-way (Ctrl-C, a lost connection), it keeps
what it did and the log still verifies; run it again to finish.`, audit.AccessFloorMonths, audit.ProcessingFloorMonths, audit.ProcessingFloorMonths),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := retentionFlags(r); err != nil {
				return err
			}
			s, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			res, purgeErr := s.Purge(cmd.Context(), time.Now(), r)
			if purgeErr != nil && res == (audit.PurgeResult{}) {
				return purgeErr
			}
			// On PostgreSQL a purge stopped part-way keeps what it did.
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "access entries past %d months: %d deleted, %d redacted\n", cmp.Or(r.AccessMonths, audit.AccessFloorMonths),
				res.Access.Deleted, res.Access.Redacted)
			fmt.Fprintf(w, "processing records past %d months: %d deleted, %d redacted\n", cmp.Or(r.ProcessingMonths, audit.ProcessingFloorMonths),
				res.Processing.Deleted, res.Processing.Redacted)
			if purgeErr != nil {
				return fmt.Errorf("%w: the entries counted above stay purged and the log verifies; run purge again to finish", purgeErr)
			}
			a, err := s.Anchor(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "the log starts after seq %d\n", a.Seq)
			return nil
		},
	}
	t.register(cmd)
	cmd.Flags().IntVar(&r.AccessMonths, "access-months", audit.AccessFloorMonths, "months to keep access entries")
	cmd.Flags().IntVar(&r.ProcessingMonths, "processing-months", audit.ProcessingFloorMonths, "months to keep processing records")
	return cmd
}

// retentionFlags refuses a --access-months or --processing-months below
// its legal floor, naming the flag. 0 is refused too: the library reads a
// zero Retention field as the floor, so a 0 meant as "keep for ever" would
// purge everything past the floor, for good.
func retentionFlags(r audit.Retention) error {
	return errors.Join(
		outsideRetention("--access-months", r.AccessMonths, audit.AccessFloorMonths, "Cybersecurity Law art. 21"),
		outsideRetention("--processing-months", r.ProcessingMonths, audit.ProcessingFloorMonths, "PIPL art. 56"))
}

// outsideRetention refuses months below the legal floor, and above
// audit.MaxRetentionMonths (a very large count, as an operator wanting to
// keep everything might give, would otherwise purge recent entries).
func outsideRetention(flag string, months, floor int, law string) error {
	if months > audit.MaxRetentionMonths {
		return fmt.Errorf("%s %d: %w: want at most %d; to keep these entries for good, do not run purge",
			flag, months, audit.ErrAboveCeiling, audit.MaxRetentionMonths)
	}
	if months >= floor {
		return nil
	}
	var hint string
	if months == 0 {
		hint = `; 0 does not mean "keep for ever": give the number of months to keep, or do not run purge`
	}
	return fmt.Errorf("%s %d: %w: want at least %d (%s)%s", flag, months, audit.ErrBelowFloor, floor, law, hint)
}

func auditKeygenCommand() *cobra.Command {
	var keyFile, signingKey string
	cmd := &cobra.Command{
		Use:   "keygen [--key-file F] [--signing-key F]",
		Short: "Make a new audit key (HMAC and seals) and/or an Ed25519 export signing key pair",
		Long: `--key-file writes 32 random bytes as hex (mode 0600): the audit key the hub, who-read
and verify use. Losing it makes who-read impossible for the entries it keyed.
--signing-key writes an Ed25519 private key (PEM, PKCS #8, mode 0600) and its public key
to F.pub, for signing exports. Existing files are never overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" && signingKey == "" {
				return errors.New("give --key-file and/or --signing-key")
			}
			w := cmd.OutOrStdout()
			if keyFile != "" {
				if err := audit.GenerateKeyFile(keyFile); err != nil {
					return err
				}
				fmt.Fprintf(w, "%s: audit key\n", keyFile)
			}
			if signingKey != "" {
				if _, err := audit.GenerateSigningKey(signingKey); err != nil {
					return err
				}
				fmt.Fprintf(w, "%s: export signing key; %s.pub: its public key, for the regulator\n", signingKey, signingKey)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "audit key file to create")
	cmd.Flags().StringVar(&signingKey, "signing-key", "", "Ed25519 private key file to create")
	return cmd
}

func auditPolicyChangesCommand() *cobra.Command {
	var t auditTarget
	cmd := &cobra.Command{
		Use:   "policy-changes (--postgres URL | --file PATH)",
		Short: "List the access-policy changes the trail records",
		Long: `Lists every policy_change entry: time (China Standard Time), sequence number, who, and
what changed. A hub started with --policy records one whenever the policy's digest
(SHA-256 of its canonical form) differs from the last one recorded, with the old and
new digests and the identities added, removed or changed — names only, never a
credential. A change of a policy too large for one entry is written as several, the
identities' digests first ("part" 1 to "parts" - 1) and the change last; only the
change is listed. It reads the whole log, and needs no key: the entries name no
citizen.`,
		Example: `  pophub audit policy-changes --file pophub-data/audit.jsonl`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := t.open(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			w := cmd.OutOrStdout()
			n := 0
			err = s.Scan(ctx, 0, 0, func(e *audit.Entry) error {
				if e.Action != audit.ActionPolicyChange {
					return nil
				}
				var d policyDetail
				if json.Unmarshal([]byte(e.Detail), &d) == nil && d.Part > 0 && d.Part < d.Parts {
					return nil // identity digests of the change that follows
				}
				n++
				fmt.Fprintf(w, "%s  seq %-8d %-12s %s\n", e.Time.In(chinaTime).Format(time.DateTime), e.Seq, e.Identity, e.Detail)
				return nil
			})
			if err != nil {
				return fmt.Errorf("reading the audit log: %w", err)
			}
			fmt.Fprintf(w, "%d policy changes\n", n)
			return nil
		},
	}
	t.register(cmd)
	return cmd
}

// everySealFails reports whether rep found every entry forged and nothing
// else: a rewrite without the key leaves the untouched entries' seals
// intact, so a verification where none holds most likely had another key.
func everySealFails(rep audit.Report) bool {
	if !rep.Sealed || rep.Entries == 0 || rep.NumProblems > int64(len(rep.Problems)) {
		return false
	}
	var forged int64
	for _, p := range rep.Problems {
		if p.Kind != audit.Forged {
			return false
		}
		forged += int64(p.Count)
	}
	return forged == rep.Entries
}
