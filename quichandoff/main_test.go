package quichandoff_test

import (
	"os"
	"testing"

	"github.com/lbkit/lbkit/internal/leakcheck"
)

// TestMain checks, after all tests and examples, that none left a
// goroutine running.
func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
