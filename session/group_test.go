package session_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/session"
)

var _ session.Group = (*balancer.Group)(nil)

// A Sticky given a group follows its Add and Remove with no loop of the
// caller's: tokens of a removed member stop decoding, those of an added
// one start, on the next call.
func TestStickyFollowsGroup(t *testing.T) {
	g, err := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: "192.0.2.1:80"})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := balancer.New(balancer.Config{}, balancer.Backend{ID: "r", Addr: "192.0.2.9:80"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, err := session.New(session.Config{Key: bytes.Repeat([]byte{3}, 32), Groups: []session.Group{g, rules}})
	if err != nil {
		t.Fatal(err)
	}
	decodes := func(id string) bool {
		got, ok := st.DecodeAt(st.EncodeAt(id, now), now)
		return ok && got == id
	}
	if !decodes("a") || !decodes("r") || decodes("b") {
		t.Fatalf("at start: a, r, b decode = %v %v %v; want true true false", decodes("a"), decodes("r"), decodes("b"))
	}
	if err := g.Add(balancer.Backend{ID: "b", Addr: "192.0.2.2:80"}); err != nil {
		t.Fatal(err)
	}
	if !decodes("b") {
		t.Error("b added to the group: its token does not decode")
	}
	// A change that is not of membership keeps the set.
	if err := g.SetHealthy("b", false); err != nil {
		t.Fatal(err)
	}
	if !decodes("b") || decodes("x") {
		t.Error("after a health change: b no longer decodes, or x does")
	}
	if err := g.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if decodes("a") {
		t.Error("a removed from the group: its token still decodes")
	}
	if err := rules.Remove("r"); err != nil {
		t.Fatal(err)
	}
	if decodes("r") {
		t.Error("r removed from the second group: its token still decodes")
	}
	var ce *session.ConfigError
	if err := st.SetBackends("a"); !errors.As(err, &ce) {
		t.Errorf("SetBackends on a Sticky following groups = %v, want a *ConfigError", err)
	}

}

// BenchmarkDecodeFollowingGroup: with the group unchanged, following it
// costs one look at its Changed channel and allocates nothing.
func BenchmarkDecodeFollowingGroup(b *testing.B) {
	g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: "192.0.2.1:80"})
	st, _ := session.New(session.Config{Key: bytes.Repeat([]byte{3}, 32), Groups: []session.Group{g}})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	token := st.EncodeAt("a", now)
	b.ReportAllocs()
	for b.Loop() {
		st.DecodeAt(token, now)
	}
}
