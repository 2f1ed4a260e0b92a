package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// KnownEventsPath is the hub's admin route that answers KnownEvents
// (hub/api AdminHandlers).
const KnownEventsPath = "/v1/admin/known-events"

// HubClient asks a running hub which events it applied, over its admin
// API. The zero value is not usable: set URL.
type HubClient struct {
	// URL is the hub's base URL, e.g. http://127.0.0.1:8780.
	URL string
	// Token, when set, is sent as a bearer token.
	Token string
	// HTTP is the client to use (default: one with a 60 s timeout).
	HTTP *http.Client
}

// wireKey is one key of a known-events request.
type wireKey struct {
	Source schemas.Source `json:"source"`
	ID     string         `json:"id"`
}

// KnownEvents implements KeyStore with one POST per call (at most
// hub.MaxKnownEvents keys).
func (c *HubClient) KnownEvents(ctx context.Context, keys []schemas.EventKey) ([]bool, error) {
	if err := hub.CheckKnownEvents(keys); err != nil {
		return nil, err
	}
	body := make([]wireKey, len(keys))
	for i, k := range keys {
		body[i] = wireKey{Source: k.Source, ID: k.ID}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding event keys: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+KnownEventsPath, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("asking the hub about events: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Purpose", "operations") // reconciliation is operations work
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the hub about events: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the hub's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("asking the hub about events: %s: %s", resp.Status, problemDetail(raw))
	}
	var out []bool
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decoding the hub's answer: %w", err)
	}
	if len(out) != len(keys) {
		return nil, fmt.Errorf("the hub answered %d of %d event keys", len(out), len(keys))
	}
	return out, nil
}

// problemDetail extracts the detail of a problem+json body, or a prefix of
// the body.
func problemDetail(raw []byte) string {
	var p struct {
		Detail string `json:"detail"`
		Title  string `json:"title"`
	}
	if json.Unmarshal(raw, &p) == nil && (p.Detail != "" || p.Title != "") {
		if p.Detail != "" {
			return p.Detail
		}
		return p.Title
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
