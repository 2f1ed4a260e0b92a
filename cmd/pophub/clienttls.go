package main

import (
	"crypto/tls"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/pophub/pophub/hub/tlsconf"
	"github.com/pophub/pophub/internal/tlshttp"
)

// caFlag is the --ca flag every command that talks to a hub shares: a CA
// file (PEM) that the command's HTTP client, Kafka client and NATS
// connection trust. With it, Kafka and NATS are spoken over TLS; an
// https:// hub URL works with or without it (without, the system's trust
// store decides). `pophub dev --tls` prints the file to give.
type caFlag struct{ file string }

// addCAFlag adds --ca (env POPHUB_CA) to f.
func addCAFlag(f *pflag.FlagSet) *caFlag {
	c := &caFlag{}
	f.StringVar(&c.file, "ca", os.Getenv("POPHUB_CA"),
		"trust this CA file (PEM) and speak TLS to Kafka and NATS; https:// hub URLs trust it too ('pophub dev --tls' prints it; env POPHUB_CA)")
	return c
}

// tls is the client configuration for Kafka and NATS: nil (plaintext)
// without --ca.
func (c *caFlag) tls() (*tls.Config, error) {
	if c == nil || c.file == "" {
		return nil, nil
	}
	return tlsconf.Client(c.file)
}

// httpClient is an HTTP client with the given timeout that trusts --ca
// for https:// URLs.
func (c *caFlag) httpClient(timeout time.Duration) (*http.Client, error) {
	tc, err := c.tls()
	if err != nil {
		return nil, err
	}
	return newHTTPClient(tc, timeout), nil
}

// newHTTPClient is net/http's default client with a timeout whose
// transport trusts tc's roots (nil: the system's).
func newHTTPClient(tc *tls.Config, timeout time.Duration) *http.Client {
	if tc == nil {
		return &http.Client{Timeout: timeout}
	}
	return &http.Client{Timeout: timeout, Transport: tlshttp.Transport(tc)}
}
