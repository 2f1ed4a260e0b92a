package notify

import (
	"context"
	"testing"
	"time"
)

// TestDeadLetterStreamKeepsDeadLetters: the dead-letter stream the hub
// creates deletes nothing by itself, as the Kafka DLQ keeps its rejects
// until an operator deletes them; a limit an operator set on an existing
// one stays.
func TestDeadLetterStreamKeepsDeadLetters(t *testing.T) {
	js := connect(t, natsServer(t, 0).ClientURL())
	ctx := context.Background()
	if err := EnsureDeadLetterStream(ctx, js, "POPDLQ", "popdlq"); err != nil {
		t.Fatal(err)
	}
	cfg := streamConfig(t, js, "POPDLQ")
	if cfg.MaxAge != 0 || cfg.MaxMsgs > 0 || cfg.MaxBytes > 0 || cfg.MaxMsgsPerSubject > 0 {
		t.Errorf("created with max age %v, max msgs %d, max bytes %d, max msgs per subject %d; want no limit",
			cfg.MaxAge, cfg.MaxMsgs, cfg.MaxBytes, cfg.MaxMsgsPerSubject)
	}

	cfg.MaxAge = 30 * 24 * time.Hour
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDeadLetterStream(ctx, js, "POPDLQ", "popdlq"); err != nil {
		t.Fatal(err)
	}
	if got := streamConfig(t, js, "POPDLQ").MaxAge; got != 30*24*time.Hour {
		t.Errorf("the operator's 30-day limit became %v", got)
	}
}
