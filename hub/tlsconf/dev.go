package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The files EnsureDev keeps in its directory.
const (
	CAFile     = "ca.pem"
	CAKeyFile  = "ca-key.pem"
	CertFile   = "server.pem"
	KeyFile    = "server-key.pem"
	caLifetime = 2 * 365 * 24 * time.Hour
	// certLifetime stays under the 398 days browsers accept for a leaf.
	certLifetime = 365 * 24 * time.Hour
	// minRemaining is how long a kept certificate must still be valid: a
	// hub started today must not see its certificate expire tomorrow.
	minRemaining = 24 * time.Hour
)

// DevFiles are the paths of a development CA and server certificate.
type DevFiles struct {
	Dir string
	// CA is the certificate clients trust; CAKey signs server and client
	// certificates (mode 0600).
	CA, CAKey string
	// Cert and Key are the server's certificate and key (mode 0600).
	Cert, Key string
}

// DevFilesIn names the files of a development CA in dir.
func DevFilesIn(dir string) DevFiles {
	return DevFiles{Dir: dir, CA: filepath.Join(dir, CAFile), CAKey: filepath.Join(dir, CAKeyFile),
		Cert: filepath.Join(dir, CertFile), Key: filepath.Join(dir, KeyFile)}
}

// EnsureDev makes dir hold a development CA (ECDSA P-256) and a server
// certificate it signed for 127.0.0.1, ::1, localhost and this machine's
// host name, and returns their paths. Files already there are kept while
// they are valid for at least another day and the certificate still names
// every host, so clients that trust ca.pem keep working across restarts;
// the server certificate alone is reissued when only it falls short, and
// everything is made anew when the CA does.
func EnsureDev(dir string) (DevFiles, error) {
	f := DevFilesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevFiles{}, fmt.Errorf("creating TLS directory: %w", err)
	}
	now := time.Now()
	hosts := devHosts()
	ca, caKey, err := loadCA(f)
	if err != nil || !validFor(ca, now) {
		if ca, caKey, err = newCA(f, now); err != nil {
			return DevFiles{}, err
		}
	} else if serverUsable(f, ca, hosts, now) {
		return f, nil
	}
	if err := issue(f.Cert, f.Key, ca, caKey, leafSpec{hosts: hosts, server: true}, now); err != nil {
		return DevFiles{}, fmt.Errorf("issuing the server certificate: %w", err)
	}
	return f, nil
}

// IssueClient writes a client certificate for mutual TLS, with common
// name cn, signed by the development CA in f, to certFile and keyFile.
func IssueClient(f DevFiles, cn, certFile, keyFile string) error {
	ca, caKey, err := loadCA(f)
	if err != nil {
		return err
	}
	if err := issue(certFile, keyFile, ca, caKey, leafSpec{cn: cn}, time.Now()); err != nil {
		return fmt.Errorf("issuing a client certificate for %s: %w", cn, err)
	}
	return nil
}

// Fingerprint is the SHA-256 of the first certificate in certFile, in
// lower-case hex: what an access policy lists as an identity's
// cert_sha256.
func Fingerprint(certFile string) (string, error) {
	c, err := readCert(certFile)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:]), nil
}

// devHosts are the names a development server answers to.
func devHosts() []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		hosts = append(hosts, h)
	}
	return hosts
}

func validFor(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && now.Add(minRemaining).Before(c.NotAfter)
}

// serverUsable reports whether the server certificate and key on disk
// belong together, chain to ca, stay valid and name every host.
func serverUsable(f DevFiles, ca *x509.Certificate, hosts []string, now time.Time) bool {
	if _, err := Server(f.Cert, f.Key); err != nil {
		return false
	}
	cert, err := readCert(f.Cert)
	if err != nil || !validFor(cert, now) {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now}); err != nil {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func loadCA(f DevFiles) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	ca, err := readCert(f.CA)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(f.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("reading CA key: %w", err)
	}
	key, err := parseKey(b)
	if err != nil {
		return nil, nil, fmt.Errorf("reading CA key %s: %w", f.CAKey, err)
	}
	if !key.PublicKey.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("reading CA key %s: %w", f.CAKey, errors.New("it does not match the CA certificate"))
	}
	return ca, key, nil
}

func newCA(f DevFiles, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"pophub development"}, CommonName: "pophub development CA " + host},
		NotBefore:             now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	if err := writeKey(f.CAKey, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(f.CA, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// leafSpec describes a certificate the CA issues: a server's for hosts,
// or a client's named cn.
type leafSpec struct {
	hosts  []string
	cn     string
	server bool
}

func issue(certFile, keyFile string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, spec leafSpec, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"pophub development"}, CommonName: spec.cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter // a leaf cannot outlive its CA
	}
	if spec.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.Subject.CommonName = "pophub development server"
		for _, h := range spec.hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating certificate: %w", err)
	}
	// The key first: a certificate without its key is never left behind.
	if err := writeKey(keyFile, key); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der, 0o644)
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n, nil
}

func readCert(file string) (*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("reading certificate %s: %w", file, errNoCertificates)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate %s: %w", file, err)
	}
	return c, nil
}

func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return ek, nil
}

func writeKey(file string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key: %w", err)
	}
	return writePEM(file, "PRIVATE KEY", der, 0o600)
}

// writePEM replaces file atomically, so a hub starting while another
// writes never reads half a certificate.
func writePEM(file, typ string, der []byte, mode os.FileMode) error {
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: typ, Bytes: der}); err != nil {
		return fmt.Errorf("encoding %s: %w", file, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}
