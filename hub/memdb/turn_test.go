package memdb

import (
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
)

// TestTurns: concurrent batches take effect in the order of their turns
// (hub.WithTurn), in memory and with the log.
func TestTurns(t *testing.T) {
	t.Run("InMemory", func(t *testing.T) {
		storetest.TurnOrder(t, func(t *testing.T) hub.Store { return open(t, "") })
	})
	t.Run("Persisted", func(t *testing.T) {
		storetest.TurnOrder(t, func(t *testing.T) hub.Store { return open(t, t.TempDir()) })
	})
}
