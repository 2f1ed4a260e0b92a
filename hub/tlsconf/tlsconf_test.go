package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// handshake runs a TLS handshake between server and client configurations
// over an in-memory pipe, the client dialing serverName.
func handshake(t testing.TB, server, client *tls.Config, serverName string) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srvErr := make(chan error, 1)
	go func() {
		srv := tls.Server(a, server)
		err := srv.HandshakeContext(ctx)
		if err == nil {
			// TLS 1.3 clients finish before the server checks their
			// certificate; reading surfaces the server's verdict.
			_, err = srv.Read(make([]byte, 1))
		}
		a.Close()
		srvErr <- err
	}()
	cc := client.Clone()
	cc.ServerName = serverName
	conn := tls.Client(b, cc)
	err := conn.HandshakeContext(ctx)
	if err == nil {
		_, err = conn.Write([]byte{1})
	}
	b.Close()
	sErr := <-srvErr
	if err != nil {
		return err
	}
	return sErr
}

func TestEnsureDevFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	f, err := EnsureDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		mode os.FileMode
	}{{f.CA, 0o644}, {f.CAKey, 0o600}, {f.Cert, 0o644}, {f.Key, 0o600}} {
		fi, err := os.Stat(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.mode {
			t.Errorf("%s: mode %v, want %v", filepath.Base(c.file), got, c.mode)
		}
	}
	srv, err := Server(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	if srv.MinVersion != tls.VersionTLS12 {
		t.Errorf("server MinVersion = %#x, want TLS 1.2", srv.MinVersion)
	}
	cli, err := Client(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for _, name := range []string{"127.0.0.1", "::1", "localhost", host} {
		t.Run("trusted/"+name, func(t *testing.T) {
			if err := handshake(t, srv, cli, name); err != nil {
				t.Fatalf("handshake as %s: %v", name, err)
			}
		})
	}
	t.Run("other host", func(t *testing.T) {
		if err := handshake(t, srv, cli, "example.org"); err == nil {
			t.Fatal("a certificate for local names was accepted for example.org")
		}
	})
	t.Run("other CA", func(t *testing.T) {
		other, err := EnsureDev(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		stranger, err := Client(other.CA)
		if err != nil {
			t.Fatal(err)
		}
		if err := handshake(t, srv, stranger, "localhost"); err == nil {
			t.Fatal("a client trusting another CA accepted the server")
		}
	})
}

func TestEnsureDevReuse(t *testing.T) {
	read := func(t *testing.T, f DevFiles) map[string][]byte {
		t.Helper()
		out := map[string][]byte{}
		for _, p := range []string{f.CA, f.CAKey, f.Cert, f.Key} {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(p)] = b
		}
		return out
	}
	tests := []struct {
		name string
		// spoil damages the files between the two calls.
		spoil func(t *testing.T, f DevFiles)
		// keep lists the files that must be unchanged by the second call.
		keep []string
		// renew lists the files that must be new.
		renew []string
	}{
		{name: "valid files are kept", spoil: func(*testing.T, DevFiles) {},
			keep: []string{CAFile, CAKeyFile, CertFile, KeyFile}},
		{name: "expiring server certificate is reissued by the same CA",
			spoil: func(t *testing.T, f DevFiles) {
				ca, key, err := loadCA(f)
				if err != nil {
					t.Fatal(err)
				}
				// Issued a year ago, it has an hour left.
				past := time.Now().Add(-certLifetime + time.Hour)
				if err := issue(f.Cert, f.Key, ca, key, leafSpec{hosts: devHosts(), server: true}, past); err != nil {
					t.Fatal(err)
				}
			},
			keep: []string{CAFile, CAKeyFile}, renew: []string{CertFile, KeyFile}},
		{name: "server certificate missing a host is reissued",
			spoil: func(t *testing.T, f DevFiles) {
				ca, key, err := loadCA(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := issue(f.Cert, f.Key, ca, key, leafSpec{hosts: []string{"127.0.0.1"}, server: true}, time.Now()); err != nil {
					t.Fatal(err)
				}
			},
			keep: []string{CAFile, CAKeyFile}, renew: []string{CertFile, KeyFile}},
		{name: "missing server key is reissued",
			spoil: func(t *testing.T, f DevFiles) { os.Remove(f.Key) },
			keep:  []string{CAFile, CAKeyFile}, renew: []string{CertFile}},
		{name: "missing CA key renews everything",
			spoil: func(t *testing.T, f DevFiles) { os.Remove(f.CAKey) },
			renew: []string{CAFile, CertFile, KeyFile}},
		{name: "corrupt CA renews everything",
			spoil: func(t *testing.T, f DevFiles) {
				if err := os.WriteFile(f.CA, []byte("not a certificate"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			renew: []string{CAKeyFile, CertFile, KeyFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := EnsureDev(dir)
			if err != nil {
				t.Fatal(err)
			}
			before := read(t, f)
			tt.spoil(t, f)
			if _, err := EnsureDev(dir); err != nil {
				t.Fatal(err)
			}
			after := read(t, f)
			for _, name := range tt.keep {
				if !bytes.Equal(before[name], after[name]) {
					t.Errorf("%s changed, want it kept", name)
				}
			}
			for _, name := range tt.renew {
				if bytes.Equal(before[name], after[name]) {
					t.Errorf("%s kept, want it made anew", name)
				}
			}
			srv, err := Server(f.Cert, f.Key)
			if err != nil {
				t.Fatal(err)
			}
			cli, err := Client(f.CA)
			if err != nil {
				t.Fatal(err)
			}
			if err := handshake(t, srv, cli, "localhost"); err != nil {
				t.Fatalf("handshake after renewal: %v", err)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	f, err := EnsureDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Server(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := LoadPool(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	srv.ClientCAs, srv.ClientAuth = pool, tls.RequireAndVerifyClientCert
	cli, err := Client(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "alice.pem"), filepath.Join(dir, "alice-key.pem")
	if err := IssueClient(f, "alice", certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	withCert, err := WithClientCert(cli, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(cli.Certificates) != 0 {
		t.Fatal("WithClientCert changed its argument")
	}
	if err := handshake(t, srv, withCert, "localhost"); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	if err := handshake(t, srv, cli, "localhost"); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		load func() error
	}{
		{"client: missing CA", func() error { _, err := Client(missing); return err }},
		{"client: CA without certificates", func() error { _, err := Client(junk); return err }},
		{"server: missing files", func() error { _, err := Server(missing, missing); return err }},
		{"server: junk", func() error { _, err := Server(junk, junk); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.load()
			if err == nil {
				t.Fatal("no error")
			}
			if tt.name == "client: missing CA" && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("error %v does not wrap os.ErrNotExist", err)
			}
		})
	}
}
