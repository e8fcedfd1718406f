package acl_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/acl"
)

func TestAllow(t *testing.T) {
	v4 := []string{"10.0.0.0/8", "192.0.2.7"}
	v6 := []string{"2001:db8::/32", "fe80::1"}
	tests := []struct {
		name    string
		family  acl.Family
		mode    acl.Mode
		entries []string
		src     string // "" means the zero netip.Addr
		want    bool
	}{
		{name: "v4 whitelist hit", family: acl.IPv4, mode: acl.Whitelist, entries: v4, src: "10.1.2.3", want: true},
		{name: "v4 whitelist host hit", family: acl.IPv4, mode: acl.Whitelist, entries: v4, src: "192.0.2.7", want: true},
		{name: "v4 whitelist miss", family: acl.IPv4, mode: acl.Whitelist, entries: v4, src: "192.0.2.8", want: false},
		{name: "v4 blacklist hit", family: acl.IPv4, mode: acl.Blacklist, entries: v4, src: "10.1.2.3", want: false},
		{name: "v4 blacklist miss", family: acl.IPv4, mode: acl.Blacklist, entries: v4, src: "11.0.0.1", want: true},
		{name: "v4 whitelist empty", family: acl.IPv4, mode: acl.Whitelist, src: "10.1.2.3", want: true},
		{name: "v4 blacklist empty", family: acl.IPv4, mode: acl.Blacklist, src: "10.1.2.3", want: true},

		{name: "v6 whitelist hit", family: acl.IPv6, mode: acl.Whitelist, entries: v6, src: "2001:db8:1::5", want: true},
		{name: "v6 whitelist miss", family: acl.IPv6, mode: acl.Whitelist, entries: v6, src: "2001:db9::5", want: false},
		{name: "v6 whitelist zone ignored", family: acl.IPv6, mode: acl.Whitelist, entries: v6, src: "fe80::1%eth0", want: true},
		{name: "v6 blacklist hit", family: acl.IPv6, mode: acl.Blacklist, entries: v6, src: "2001:db8::1", want: false},
		{name: "v6 blacklist miss", family: acl.IPv6, mode: acl.Blacklist, entries: v6, src: "::1", want: true},
		{name: "v6 whitelist empty", family: acl.IPv6, mode: acl.Whitelist, src: "::1", want: true},
		{name: "v6 blacklist empty", family: acl.IPv6, mode: acl.Blacklist, src: "::1", want: true},

		{name: "mapped whitelist hit", family: acl.IPv4, mode: acl.Whitelist, entries: v4, src: "::ffff:10.9.9.9", want: true},
		{name: "mapped whitelist miss", family: acl.IPv4, mode: acl.Whitelist, entries: v4, src: "::ffff:11.9.9.9", want: false},
		{name: "mapped blacklist hit", family: acl.IPv4, mode: acl.Blacklist, entries: v4, src: "::ffff:192.0.2.7", want: false},
		{name: "mapped blacklist miss", family: acl.IPv4, mode: acl.Blacklist, entries: v4, src: "::ffff:192.0.2.8", want: true},
		// A dual-stack IPv6 listener sees IPv4 clients as mapped sources;
		// unmapped, no IPv6 entry covers them, even ::/0.
		{name: "mapped on v6 whitelist", family: acl.IPv6, mode: acl.Whitelist, entries: []string{"::/0"}, src: "::ffff:10.0.0.1", want: false},
		{name: "mapped on v6 blacklist", family: acl.IPv6, mode: acl.Blacklist, entries: []string{"::/0"}, src: "::ffff:10.0.0.1", want: true},
		{name: "v6 source on v4 whitelist", family: acl.IPv4, mode: acl.Whitelist, entries: []string{"0.0.0.0/0"}, src: "2001:db8::1", want: false},
		{name: "v6 source on v4 blacklist", family: acl.IPv4, mode: acl.Blacklist, entries: []string{"0.0.0.0/0"}, src: "2001:db8::1", want: true},

		{name: "invalid source whitelist", family: acl.IPv4, mode: acl.Whitelist, entries: v4, want: false},
		{name: "invalid source blacklist", family: acl.IPv4, mode: acl.Blacklist, entries: v4, want: false},
		{name: "invalid source empty group", family: acl.IPv4, mode: acl.Blacklist, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := acl.NewGroup(acl.GroupConfig{Name: "g", Family: tt.family}, entries(t, tt.entries...)...)
			if err != nil {
				t.Fatal(err)
			}
			p, err := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: tt.mode, Family: tt.family})
			if err != nil {
				t.Fatal(err)
			}
			var src netip.Addr
			if tt.src != "" {
				src = netip.MustParseAddr(tt.src)
			}
			if got := p.Allow(src); got != tt.want {
				t.Fatalf("%s Allow(%v) = %v, want %v", tt.mode, src, got, tt.want)
			}
			wantErr := error(nil)
			if !tt.want {
				wantErr = acl.ErrDenied
			}
			if got := p.Check(src); got != wantErr {
				t.Fatalf("%s Check(%v) = %v, want %v", tt.mode, src, got, wantErr)
			}
		})
	}
}

func TestNilPolicyAllows(t *testing.T) {
	var p *acl.Policy
	if !p.Allow(netip.MustParseAddr("10.0.0.1")) || p.Check(netip.MustParseAddr("::1")) != nil {
		t.Fatal("nil *Policy denied a source, want allow")
	}
	if p.Group() != nil || p.Mode() != 0 {
		t.Fatalf("nil *Policy: Group() = %v, Mode() = %v; want nil, 0", p.Group(), p.Mode())
	}
}

func TestNewPolicy(t *testing.T) {
	g4, _ := acl.NewGroup(acl.GroupConfig{Name: "office", Family: acl.IPv4})
	g6, _ := acl.NewGroup(acl.GroupConfig{Name: "lab", Family: acl.IPv6})
	tests := []struct {
		name     string
		group    *acl.Group
		mode     acl.Mode
		listener acl.Family
		wantErr  string
		isFam    bool
	}{
		{name: "v4 whitelist", group: g4, mode: acl.Whitelist, listener: acl.IPv4},
		{name: "v6 blacklist", group: g6, mode: acl.Blacklist, listener: acl.IPv6},
		{name: "zero family is the group's", group: g6, mode: acl.Blacklist},
		{name: "v6 group on v4 listener", group: g6, mode: acl.Whitelist, listener: acl.IPv4,
			wantErr: `acl: Family "IPv4": listener cannot use IPv6 group "lab"`, isFam: true},
		{name: "v4 group on v6 listener", group: g4, mode: acl.Blacklist, listener: acl.IPv6,
			wantErr: `acl: Family "IPv6": listener cannot use IPv4 group "office"`, isFam: true},
		{name: "nil group", mode: acl.Whitelist, listener: acl.IPv4, wantErr: "no group given"},
		{name: "zero mode", group: g4, listener: acl.IPv4, wantErr: `acl: Mode "Mode(0)": want whitelist or blacklist`},
		{name: "bad listener family", group: g4, mode: acl.Whitelist, listener: 5, wantErr: `acl: Family "Family(5)": want IPv4 or IPv6`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := acl.NewPolicy(acl.PolicyConfig{Group: tt.group, Mode: tt.mode, Family: tt.listener})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewPolicy error = %v", err)
				}
				if p.Group() != tt.group || p.Mode() != tt.mode {
					t.Fatalf("NewPolicy = group %v mode %v, want %v %v", p.Group(), p.Mode(), tt.group, tt.mode)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewPolicy error = %v, want %q", err, tt.wantErr)
			}
			var ce *acl.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("NewPolicy error %T, want *ConfigError", err)
			}
			if got := errors.Is(err, acl.ErrFamily); got != tt.isFam {
				t.Fatalf("errors.Is(%v, ErrFamily) = %v, want %v", err, got, tt.isFam)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    acl.Mode
		wantErr bool
	}{
		{name: "whitelist", in: "whitelist", want: acl.Whitelist},
		{name: "blacklist upper", in: "BLACKLIST", want: acl.Blacklist},
		{name: "unknown", in: "allowlist", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := acl.ParseMode(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseMode(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err == nil && got.String() != strings.ToLower(tt.in) {
				t.Fatalf("%v.String() = %q, want %q", got, got.String(), strings.ToLower(tt.in))
			}
		})
	}
}

func TestFamilyString(t *testing.T) {
	for f, want := range map[acl.Family]string{acl.IPv4: "IPv4", acl.IPv6: "IPv6", 0: "Family(0)"} {
		if got := f.String(); got != want {
			t.Errorf("Family(%d).String() = %q, want %q", uint8(f), got, want)
		}
	}
}
