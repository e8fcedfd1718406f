package acl_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/acl"
)

func TestNewGroup(t *testing.T) {
	tests := []struct {
		name    string
		group   string
		family  acl.Family
		entries []acl.Entry
		wantErr string
		isFam   bool
	}{
		{name: "empty v4", group: "office", family: acl.IPv4},
		{name: "v6 with entries", group: "lab-6", family: acl.IPv6, entries: []acl.Entry{entry("2001:db8::/32", "")}},
		{name: "name punctuation", group: "team/a:b_c.d-e", family: acl.IPv4},
		{name: "unicode name", group: "büro", family: acl.IPv4},
		{name: "longest name", group: strings.Repeat("n", acl.MaxNameLen), family: acl.IPv4},
		{name: "empty name", group: "", family: acl.IPv4, wantErr: `acl: Name "": empty name`},
		{name: "long name", group: strings.Repeat("n", acl.MaxNameLen+1), family: acl.IPv4, wantErr: "longer than 64 bytes"},
		{name: "space in name", group: "my group", family: acl.IPv4, wantErr: `acl: Name "my group": character ' ' not allowed`},
		{name: "bad utf8", group: "a\xff", family: acl.IPv4, wantErr: "not valid UTF-8"},
		{name: "zero family", group: "g", family: 0, wantErr: `acl: Family "Family(0)": want IPv4 or IPv6`},
		{name: "wrong family entry", group: "g", family: acl.IPv4, entries: []acl.Entry{entry("2001:db8::/32", "")},
			wantErr: `acl: Entry "2001:db8::/32": IPv6 entry in IPv4 group "g"`, isFam: true},
		{name: "invalid entry", group: "g", family: acl.IPv4, entries: []acl.Entry{{}}, wantErr: `acl: Entry "invalid Prefix": invalid prefix`},
		{name: "host bits entry", group: "g", family: acl.IPv4, entries: []acl.Entry{{Prefix: netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 8)}},
			wantErr: `acl: Entry "10.0.0.1/8": host bits set; want 10.0.0.0/8`},
		{name: "bad comment", group: "g", family: acl.IPv4, entries: []acl.Entry{entry("10.0.0.0/8", "a\nb")},
			wantErr: "comment holds unprintable character U+000A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := acl.NewGroup(acl.GroupConfig{Name: tt.group, Family: tt.family}, tt.entries...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewGroup(%q) error = %v", tt.group, err)
				}
				if g.Name() != tt.group || g.Family() != tt.family || g.Len() != len(tt.entries) {
					t.Fatalf("NewGroup(%q) = %s %s len %d, want %s len %d", tt.group, g.Name(), g.Family(), g.Len(), tt.family, len(tt.entries))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewGroup(%q) error = %v, want %q", tt.group, err, tt.wantErr)
			}
			var ce *acl.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("NewGroup(%q) error %T, want *ConfigError", tt.group, err)
			}
			if got := errors.Is(err, acl.ErrFamily); got != tt.isFam {
				t.Fatalf("errors.Is(%v, ErrFamily) = %v, want %v", err, got, tt.isFam)
			}
		})
	}
}

func TestGroupUpdates(t *testing.T) {
	type step struct {
		op      string // add, remove, replace
		args    []string
		wantErr string
		want    []string // entries after the step, as Entry.String
	}
	tests := []struct {
		name   string
		family acl.Family
		start  []string
		steps  []step
	}{
		{
			name: "add then remove", family: acl.IPv4, start: []string{"10.0.0.0/8"},
			steps: []step{
				{op: "add", args: []string{"192.0.2.0/24 # b", "192.0.2.7"}, want: []string{"10.0.0.0/8", "192.0.2.0/24 # b", "192.0.2.7/32"}},
				{op: "remove", args: []string{"10.0.0.0/8"}, want: []string{"192.0.2.0/24 # b", "192.0.2.7/32"}},
			},
		},
		{
			name: "duplicates removed together", family: acl.IPv4, start: []string{"10.0.0.0/8 # a", "10.0.0.0/8 # b", "10.1.0.0/16"},
			steps: []step{
				{op: "remove", args: []string{"10.0.0.0/8", "10.0.0.0/8"}, want: []string{"10.1.0.0/16"}},
			},
		},
		{
			name: "bad add applies nothing", family: acl.IPv4, start: []string{"10.0.0.0/8"},
			steps: []step{
				{op: "add", args: []string{"192.0.2.0/24", "2001:db8::/32"}, wantErr: `acl: Entry "2001:db8::/32": IPv6 entry in IPv4 group "g"`, want: []string{"10.0.0.0/8"}},
			},
		},
		{
			name: "bad remove applies nothing", family: acl.IPv6, start: []string{"2001:db8::/32", "2001:db8:1::/48"},
			steps: []step{
				{op: "remove", args: []string{"2001:db8::/32", "2001:db8:2::/48"}, wantErr: `acl: Entry "2001:db8:2::/48": not in group "g"`, want: []string{"2001:db8::/32", "2001:db8:1::/48"}},
				{op: "remove", args: []string{"2001:db8::/32", "10.0.0.0/8"}, wantErr: `IPv4 entry in IPv6 group`, want: []string{"2001:db8::/32", "2001:db8:1::/48"}},
			},
		},
		{
			name: "replace", family: acl.IPv6, start: []string{"2001:db8::/32"},
			steps: []step{
				{op: "replace", args: []string{"2001:db8:1::/48", "::1"}, want: []string{"2001:db8:1::/48", "::1/128"}},
				{op: "replace", args: []string{"2001:db8::/32", "10.0.0.0/8"}, wantErr: "IPv4 entry in IPv6 group", want: []string{"2001:db8:1::/48", "::1/128"}},
				{op: "replace", want: []string{}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := acl.NewGroup(acl.GroupConfig{Name: "g", Family: tt.family}, entries(t, tt.start...)...)
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range tt.steps {
				args := entries(t, st.args...)
				switch st.op {
				case "add":
					err = g.Add(args...)
				case "remove":
					var ps []netip.Prefix
					for _, e := range args {
						ps = append(ps, e.Prefix)
					}
					err = g.Remove(ps...)
				case "replace":
					err = g.Replace(args...)
				}
				if st.wantErr == "" && err != nil {
					t.Fatalf("step %d %s: error %v", i, st.op, err)
				}
				if st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)) {
					t.Fatalf("step %d %s: error %v, want %q", i, st.op, err, st.wantErr)
				}
				var got []string
				for _, e := range g.Entries() {
					got = append(got, e.String())
				}
				if !slices.Equal(got, st.want) && !(len(got) == 0 && len(st.want) == 0) {
					t.Fatalf("step %d %s: Entries() = %q, want %q", i, st.op, got, st.want)
				}
			}
		})
	}
}

func TestRemoveNotFoundIs(t *testing.T) {
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "g", Family: acl.IPv4})
	err := g.Remove(netip.MustParsePrefix("10.0.0.0/8"))
	if !errors.Is(err, acl.ErrNotFound) {
		t.Fatalf("Remove(absent) = %v, want ErrNotFound", err)
	}
}

// TestGroupContainsAcrossBatchSizes drives both update paths (path copy
// for small batches, clone for large ones) and checks every entry matches
// after adding and none after removing.
func TestGroupContainsAcrossBatchSizes(t *testing.T) {
	for _, n := range []int{1, 10, 64, 65, 500} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			g, _ := acl.NewGroup(acl.GroupConfig{Name: "g", Family: acl.IPv4})
			var es []acl.Entry
			var ps []netip.Prefix
			for i := range n {
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
				es = append(es, acl.Entry{Prefix: p})
				ps = append(ps, p)
			}
			keep := netip.MustParsePrefix("192.0.2.0/24")
			if err := g.Add(acl.Entry{Prefix: keep}); err != nil {
				t.Fatal(err)
			}
			if err := g.Add(es...); err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if a := p.Addr().Next(); !g.Contains(a) {
					t.Fatalf("Contains(%s) = false after Add, want true", a)
				}
			}
			if err := g.Remove(ps...); err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if a := p.Addr().Next(); g.Contains(a) {
					t.Fatalf("Contains(%s) = true after Remove, want false", a)
				}
			}
			if !g.Contains(netip.MustParseAddr("192.0.2.9")) || g.Len() != 1 {
				t.Fatalf("unrelated entry lost: Len() = %d", g.Len())
			}
		})
	}
}

func TestEntriesIsACopy(t *testing.T) {
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "g", Family: acl.IPv4}, entry("10.0.0.0/8", "a"))
	es := g.Entries()
	es[0].Comment = "changed"
	if got := g.Entries()[0].Comment; got != "a" {
		t.Fatalf("Entries()[0].Comment = %q after caller edit, want %q", got, "a")
	}
}
