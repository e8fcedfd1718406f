package session

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
)

var (
	testKey  = bytes.Repeat([]byte("k"), 32)
	otherKey = bytes.Repeat([]byte("o"), 32)
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// clock is a settable time source for Config.Now.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newSticky(tb testing.TB, cfg Config) *Sticky {
	tb.Helper()
	if cfg.Key == nil {
		cfg.Key = testKey
	}
	if cfg.Backends == nil {
		cfg.Backends = []string{"a", "b", "10.0.0.3:8080"}
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("New(%+v): %v", cfg, err)
	}
	return s
}

func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
