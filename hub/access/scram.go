package access

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
)

// SCRAMClient is a SASL SCRAM-SHA-512 client mechanism (RFC 5802, RFC 7677)
// for kafka-go (Dialer.SASLMechanism, Transport.SASL). kafka-go's own
// sasl/scram needs github.com/xdg-go/scram, which this module does not
// require; this one uses the standard library only. It is safe for
// concurrent use; each Start begins a new exchange.
type SCRAMClient struct {
	User     string
	Password string
}

// Name implements sasl.Mechanism.
func (SCRAMClient) Name() string { return SCRAMMechanism }

// Start implements sasl.Mechanism: it sends client-first-message.
func (c SCRAMClient) Start(context.Context) (sasl.StateMachine, []byte, error) {
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("reading random bytes: %w", err)
	}
	user := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.User)
	s := &scramSession{c: c, nonce: base64.RawStdEncoding.EncodeToString(nonce)}
	s.bare = "n=" + user + ",r=" + s.nonce
	return s, []byte("n,," + s.bare), nil
}

type scramSession struct {
	c         SCRAMClient
	nonce     string
	bare      string
	serverSig []byte
}

// Next implements sasl.StateMachine: it answers server-first-message with
// the proof, then verifies the server's signature.
func (s *scramSession) Next(_ context.Context, challenge []byte) (bool, []byte, error) {
	if s.serverSig != nil {
		v, ok := strings.CutPrefix(string(challenge), "v=")
		if !ok {
			return false, nil, fmt.Errorf("SCRAM: server-final-message %q", challenge)
		}
		sig, err := base64.StdEncoding.DecodeString(v)
		if err != nil || !hmac.Equal(sig, s.serverSig) {
			return false, nil, errors.New("SCRAM: the server's signature is wrong")
		}
		return true, nil, nil
	}
	var nonce, salt64, iter string
	for _, f := range strings.Split(string(challenge), ",") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "r":
			nonce = v
		case "s":
			salt64 = v
		case "i":
			iter = v
		case "e":
			return false, nil, fmt.Errorf("SCRAM: server error %q", v)
		}
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	n, err2 := strconv.Atoi(iter)
	if err != nil || err2 != nil || !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) || n < MinSCRAMIterations {
		return false, nil, errors.New("SCRAM: malformed server-first-message")
	}
	salted, err := pbkdf2.Key(sha512.New, s.c.Password, salt, n, sha512.Size)
	if err != nil {
		return false, nil, fmt.Errorf("SCRAM: %w", err)
	}
	clientKey := hmacSHA512(salted, "Client Key")
	stored := sha512.Sum512(clientKey)
	withoutProof := "c=biws,r=" + nonce
	authMsg := s.bare + "," + string(challenge) + "," + withoutProof
	sig := hmacSHA512(stored[:], authMsg)
	proof := bytes.Clone(clientKey)
	for i := range proof {
		proof[i] ^= sig[i]
	}
	s.serverSig = hmacSHA512(hmacSHA512(salted, "Server Key"), authMsg)
	return false, []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}
