// Package tlshttp builds HTTP transports for clients that share one TLS
// configuration with their Kafka and NATS connections.
package tlshttp

import (
	"crypto/tls"
	"net/http"
)

// Transport is net/http's default transport with tc's roots and
// settings (nil: the system's). It holds a copy of tc: net/http adds its
// protocols to the configuration's NextProtos on first use, a write that
// would race with every other client reading the same tc.
func Transport(tc *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tc.Clone()
	return t
}
