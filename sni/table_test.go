package sni_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lbkit/lbkit/sni"
)

// newTable binds each pattern to itself.
func newTable(t *testing.T, patterns ...string) *sni.Table[string] {
	t.Helper()
	tab := new(sni.Table[string])
	for _, p := range patterns {
		if err := tab.Set(p, p); err != nil {
			t.Fatalf("Set(%q): %v", p, err)
		}
	}
	return tab
}

func TestTableMatch(t *testing.T) {
	tab := newTable(t,
		"www.example.com",
		"example.com",
		"*.example.com",
		"*.market.example.com",
		"info.market.example.com",
		"*.deep.market.example.com",
		"*.org",
		"localhost",
	)
	tests := []struct {
		name string
		host string
		want string // pattern that should match; "" for none
	}{
		{name: "exact beats wildcards", host: "www.example.com", want: "www.example.com"},
		{name: "apex exact", host: "example.com", want: "example.com"},
		{name: "wide wildcard", host: "shop.example.com", want: "*.example.com"},
		{name: "wide wildcard two deep", host: "a.b.example.com", want: "*.example.com"},
		{name: "narrow beats wide", host: "news.market.example.com", want: "*.market.example.com"},
		{name: "exact beats narrow", host: "info.market.example.com", want: "info.market.example.com"},
		{name: "narrow two deep", host: "x.y.market.example.com", want: "*.market.example.com"},
		{name: "narrowest of three", host: "a.deep.market.example.com", want: "*.deep.market.example.com"},
		{name: "wildcard apex falls to wider", host: "deep.market.example.com", want: "*.market.example.com"},
		{name: "narrow apex falls to wide", host: "market.example.com", want: "*.example.com"},
		{name: "single-label wildcard", host: "example.org", want: "*.org"},
		{name: "single-label wildcard not apex", host: "org"},
		{name: "single label exact", host: "LOCALHOST", want: "localhost"},
		{name: "mixed case exact", host: "WWW.Example.Com", want: "www.example.com"},
		{name: "mixed case wildcard", host: "News.MARKET.example.COM", want: "*.market.example.com"},
		{name: "trailing dot exact", host: "www.example.com.", want: "www.example.com"},
		{name: "trailing dot wildcard", host: "shop.example.com.", want: "*.example.com"},
		{name: "two trailing dots", host: "www.example.com.."},
		{name: "miss", host: "example.net"},
		{name: "lookalike miss", host: "notexample.com"},
		{name: "port not stripped", host: "www.example.com:443"},
		{name: "port stripped", host: sni.StripPort("www.example.com:443"), want: "www.example.com"},
		{name: "empty", host: ""},
		{name: "dot", host: "."},
		{name: "empty label", host: "a..example.com"},
		{name: "leading dot", host: ".example.com"},
		{name: "literal star", host: "*.example.com"},
		{name: "underscore name", host: "_acme.example.com", want: "*.example.com"},
		{name: "non-ASCII", host: "bücher.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := tab.Match(tt.host)
			if got := map[bool]string{true: v}[ok]; got != tt.want {
				t.Errorf("Match(%q) = %q, %v; want %q", tt.host, v, ok, tt.want)
			}
			p, v2, ok2 := tab.MatchPattern(tt.host)
			if ok2 != ok || v2 != v || (ok && p != tt.want) {
				t.Errorf("MatchPattern(%q) = %q, %q, %v; want %q", tt.host, p, v2, ok2, tt.want)
			}
		})
	}
}

func TestTableZeroValue(t *testing.T) {
	var tab sni.Table[int]
	if v, ok := tab.Match("example.com"); ok || v != 0 {
		t.Errorf("zero Table: Match = %v, %v; want 0, false", v, ok)
	}
	if _, ok := tab.Get("example.com"); ok || tab.Len() != 0 {
		t.Errorf("zero Table: Get ok = %v, Len = %d; want false, 0", ok, tab.Len())
	}
	for p := range tab.All() {
		t.Errorf("zero Table: All yielded %q", p)
	}
	if err := tab.Delete("example.com"); err != nil {
		t.Errorf("zero Table: Delete: %v", err)
	}
}

func TestTableSetReplaceDelete(t *testing.T) {
	var tab sni.Table[int]
	steps := []struct {
		name   string
		do     func() error
		host   string
		want   int // 0 means no match
		wanted int // Len after the step
	}{
		{name: "add wildcard", do: func() error { return tab.Set("*.Example.com.", 1) }, host: "a.example.com", want: 1, wanted: 1},
		{name: "add exact", do: func() error { return tab.Set("a.example.com", 2) }, host: "a.example.com", want: 2, wanted: 2},
		{name: "replace exact via other spelling", do: func() error { return tab.Set("A.EXAMPLE.COM.", 3) }, host: "a.example.com", want: 3, wanted: 2},
		{name: "delete exact falls back", do: func() error { return tab.Delete("a.example.com") }, host: "a.example.com", want: 1, wanted: 1},
		{name: "delete absent is fine", do: func() error { return tab.Delete("b.example.com") }, host: "a.example.com", want: 1, wanted: 1},
		{name: "delete wildcard", do: func() error { return tab.Delete("*.example.com") }, host: "a.example.com", wanted: 0},
	}
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("step %d (%s): %v", i, st.name, err)
		}
		if got, _ := tab.Match(st.host); got != st.want || tab.Len() != st.wanted {
			t.Errorf("step %d (%s): Match(%q) = %d, Len = %d; want %d, %d", i, st.name, st.host, got, tab.Len(), st.want, st.wanted)
		}
	}
}

func TestTableGetAndAll(t *testing.T) {
	tab := newTable(t, "b.example.com", "*.example.com", "a.example.com", "*.a.example.com")
	if v, ok := tab.Get("*.EXAMPLE.com"); !ok || v != "*.example.com" {
		t.Errorf(`Get("*.EXAMPLE.com") = %q, %v; want the wildcard`, v, ok)
	}
	if _, ok := tab.Get("x.example.com"); ok {
		t.Error(`Get("x.example.com") found a value; Get is not a lookup by name`)
	}
	if _, ok := tab.Get("bad..name"); ok {
		t.Error(`Get("bad..name") found a value`)
	}
	got := slices.Collect(maps.Keys(maps.Collect(tab.All())))
	slices.Sort(got)
	var ordered []string
	for p, v := range tab.All() {
		if p != v {
			t.Errorf("All yielded %q → %q", p, v)
		}
		ordered = append(ordered, p)
	}
	want := []string{"*.a.example.com", "*.example.com", "a.example.com", "b.example.com"}
	if !slices.Equal(ordered, want) || !slices.Equal(got, want) {
		t.Errorf("All = %q, want %q in that order", ordered, want)
	}
	for p := range tab.All() {
		if p != want[0] {
			t.Errorf("All after break: %q", p)
		}
		break
	}
}

func TestTableRefusesBadPatterns(t *testing.T) {
	tab := newTable(t, "keep.example.com")
	for _, p := range []string{"", "*", "a..b", "a_b.com", "*.*.com", "x.*.com"} {
		var ce *sni.ConfigError
		if err := tab.Set(p, "x"); !errors.As(err, &ce) {
			t.Errorf("Set(%q) = %v, want a *ConfigError", p, err)
		}
		if err := tab.Delete(p); !errors.As(err, &ce) {
			t.Errorf("Delete(%q) = %v, want a *ConfigError", p, err)
		}
	}
	if tab.Len() != 1 {
		t.Errorf("Len = %d after refused changes, want 1", tab.Len())
	}
}

func TestTableUpdateAllOrNothing(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(b *sni.Batch[string]) error
		wantErr func(error) bool
		want    []string // patterns bound afterwards
	}{
		{
			name: "applied",
			fn: func(b *sni.Batch[string]) error {
				_ = b.Set("new.example.com", "new.example.com")
				return b.Delete("old.example.com")
			},
			wantErr: func(err error) bool { return err == nil },
			want:    []string{"*.example.com", "new.example.com"},
		},
		{
			name: "refused pattern ignored by fn",
			fn: func(b *sni.Batch[string]) error {
				_ = b.Set("new.example.com", "new.example.com")
				_ = b.Set("bad pattern", "x") // error dropped, Update still fails
				_ = b.Delete("old.example.com")
				return nil
			},
			wantErr: func(err error) bool { var ce *sni.ConfigError; return errors.As(err, &ce) },
			want:    []string{"*.example.com", "old.example.com"},
		},
		{
			name: "fn error",
			fn: func(b *sni.Batch[string]) error {
				b.Clear()
				return boom
			},
			wantErr: func(err error) bool { return errors.Is(err, boom) },
			want:    []string{"*.example.com", "old.example.com"},
		},
		{
			name: "clear and reload",
			fn: func(b *sni.Batch[string]) error {
				b.Clear()
				return b.Set("*.example.net", "*.example.net")
			},
			wantErr: func(err error) bool { return err == nil },
			want:    []string{"*.example.net"},
		},
		{
			name:    "no change",
			fn:      func(b *sni.Batch[string]) error { return b.Delete("absent.example.com") },
			wantErr: func(err error) bool { return err == nil },
			want:    []string{"*.example.com", "old.example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTable(t, "old.example.com", "*.example.com")
			if err := tab.Update(tt.fn); !tt.wantErr(err) {
				t.Fatalf("Update error = %v", err)
			}
			var got []string
			for p := range tab.All() {
				got = append(got, p)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("after Update: %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBatchAfterUpdate(t *testing.T) {
	var tab sni.Table[int]
	var kept *sni.Batch[int]
	if err := tab.Update(func(b *sni.Batch[int]) error { kept = b; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := kept.Set("example.com", 1); err == nil {
		t.Error("Batch.Set after Update returned nil error")
	}
	if err := kept.Delete("example.com"); err == nil {
		t.Error("Batch.Delete after Update returned nil error")
	}
	kept.Clear()
	if tab.Len() != 0 {
		t.Errorf("Len = %d, want 0", tab.Len())
	}
}

// TestTableConcurrent edits a table live while readers look names up; run
// with -race. Readers check what holds in every snapshot: a name always
// matches itself or the wildcard, never nothing; and a pair written by one
// Update (b set before a, versions rising) is never seen torn: reading b
// and then a, a is at least b.
func TestTableConcurrent(t *testing.T) {
	var tab sni.Table[int]
	if err := tab.Set("*.example.com", -1); err != nil {
		t.Fatal(err)
	}
	const writes = 3000
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				host := fmt.Sprintf("h%d.example.com", (i+r)%8)
				if p, _, ok := tab.MatchPattern(host); !ok || (p != host && p != "*.example.com") {
					t.Errorf("MatchPattern(%q) = %q, %v", host, p, ok)
					return
				}
				b, _ := tab.Match("pair-b.example.net")
				a, _ := tab.Match("pair-a.example.net")
				if a < b {
					t.Errorf("torn Update: pair-a = %d after pair-b = %d", a, b)
					return
				}
			}
		})
	}
	for i := range writes {
		host := fmt.Sprintf("h%d.example.com", i%8)
		var err error
		switch i % 3 {
		case 0:
			err = tab.Set(host, i)
		case 1:
			err = tab.Delete(host)
		case 2:
			err = tab.Update(func(b *sni.Batch[int]) error {
				_ = b.Set("pair-b.example.net", i)
				return b.Set("pair-a.example.net", i)
			})
		}
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	stop.Store(true)
	wg.Wait()
}
