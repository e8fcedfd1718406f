package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
)

// The whole demo on port 0 (a free port the listener reports), a few times: it succeeds, the backend
// named before and after the migration is the same, the new socket was one
// a four-tuple hash sends elsewhere, and the listener routed the migrated
// flow by server ID.
func TestQUICMigration(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	before := regexp.MustCompile(`connected, served by (q\d)\n`)
	migrating := regexp.MustCompile(`a four-tuple hash would pick (q\d)\n`)
	after := regexp.MustCompile(`client [0-9.:]+: served by (q\d)\n`)
	for range 3 {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := run(ctx, config{Listen: "127.0.0.1:0", Backends: 3, Timeout: 10 * time.Second}, &out)
		cancel()
		if err != nil {
			t.Fatalf("run: %v; output:\n%s", err, &out)
		}
		b, m, a := before.FindStringSubmatch(out.String()), migrating.FindStringSubmatch(out.String()), after.FindStringSubmatch(out.String())
		if b == nil || m == nil || a == nil {
			t.Fatalf("output lacks the backend before, the hash pick or the backend after:\n%s", &out)
		}
		if a[1] != b[1] {
			t.Errorf("served by %s before migrating, %s after", b[1], a[1])
		}
		if m[1] == b[1] {
			t.Errorf("the new socket hashes to %s, the backend already serving: the migration proves nothing", m[1])
		}
		if !regexp.MustCompile(`listener: [1-9]\d* flow\(s\) routed by server ID`).MatchString(out.String()) {
			t.Errorf("no flow routed by server ID:\n%s", &out)
		}
	}
}

func TestQUICConfig(t *testing.T) {
	for _, cfg := range []config{
		{Listen: "127.0.0.1:4433", Backends: 1},
		{Listen: "127.0.0.1", Backends: 3},
		{Listen: "localhost:4433", Backends: 3},
	} {
		if err := run(context.Background(), cfg, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%+v) = nil, want an error", cfg)
		}
	}
}
