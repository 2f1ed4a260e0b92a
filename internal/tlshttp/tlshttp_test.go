package tlshttp

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestTransportLeavesTLSConfigAlone: a request over HTTP/2 leaves the
// caller's configuration as it was, so the Kafka and NATS clients that
// share it read it without a race.
func TestTransportLeavesTLSConfigAlone(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}

	resp, err := (&http.Client{Transport: Transport(tc)}).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if tc.NextProtos != nil {
		t.Errorf("the caller's TLS configuration was changed: NextProtos = %q", tc.NextProtos)
	}
}
