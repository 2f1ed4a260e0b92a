package postgres

import (
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// TestTurns: concurrent batches take effect in the order of their turns
// (hub.WithTurn).
func TestTurns(t *testing.T) {
	storetest.TurnOrder(t, func(t *testing.T) hub.Store { return openTestStore(t, testenv.Schema(t)) })
}
