// Package tlsconf builds the TLS configurations of the hub's servers and
// clients from PEM files, and makes a local certificate authority for
// `pophub dev --tls`, so that the embedded Kafka-protocol broker, NATS
// server and HTTP API can run encrypted on a laptop without an outside CA.
//
// Clients of a development hub trust its CA file (ca.pem); they never turn
// off verification, so the code path they run is the production one.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Server is a server configuration presenting the certificate chain in
// certFile with the private key in keyFile (both PEM). TLS 1.2 is the
// minimum: older versions have known weaknesses and no client we support
// needs them.
func Server(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Client is a client configuration that trusts the certificate
// authorities in caFile (PEM) in addition to none other: a hub's clients
// name the CA they expect rather than the system's whole trust store.
// The server name is left empty; kafka-go, nats.go and net/http fill it
// in from the address they dial.
func Client(caFile string) (*tls.Config, error) {
	pool, err := LoadPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// WithClientCert adds the client certificate in certFile and keyFile to
// cfg, for servers that ask for mutual TLS. It returns a copy.
func WithClientCert(cfg *tls.Config, certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading TLS client certificate %s and key %s: %w", certFile, keyFile, err)
	}
	out := cfg.Clone()
	out.Certificates = append(out.Certificates, cert)
	return out, nil
}

// LoadPool reads the PEM certificates in file into a pool.
func LoadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("reading CA file %s: %w", file, errNoCertificates)
	}
	return pool, nil
}

var errNoCertificates = errors.New("no PEM certificates found")
