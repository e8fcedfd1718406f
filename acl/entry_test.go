package acl_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/acl"
)

func TestParseEntry(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    acl.Entry
		wantErr string // full message; "" means success
	}{
		{name: "v4 host", in: "192.0.2.7", want: entry("192.0.2.7/32", "")},
		{name: "v4 cidr", in: "10.0.0.0/8", want: entry("10.0.0.0/8", "")},
		{name: "v4 /0", in: "0.0.0.0/0", want: entry("0.0.0.0/0", "")},
		{name: "v4 /32", in: "10.1.2.3/32", want: entry("10.1.2.3/32", "")},
		{name: "v6 host", in: "2001:db8::1", want: entry("2001:db8::1/128", "")},
		{name: "v6 cidr", in: "2001:db8::/32", want: entry("2001:db8::/32", "")},
		{name: "v6 /0", in: "::/0", want: entry("::/0", "")},
		{name: "comment", in: "10.0.0.0/8 # office LAN", want: entry("10.0.0.0/8", "office LAN")},
		{name: "comment no spaces", in: "10.0.0.0/8#x", want: entry("10.0.0.0/8", "x")},
		{name: "comment with hash", in: "10.0.0.0/8 # a # b", want: entry("10.0.0.0/8", "a # b")},
		{name: "empty comment", in: "10.0.0.0/8 #", want: entry("10.0.0.0/8", "")},
		{name: "white space", in: "\t 10.0.0.0/8 \n", want: entry("10.0.0.0/8", "")},
		{name: "unicode comment", in: "10.0.0.0/8 # büro", want: entry("10.0.0.0/8", "büro")},

		{name: "empty", in: "", wantErr: `acl: Entry "": empty address`},
		{name: "only comment", in: "# x", wantErr: `acl: Entry "# x": empty address`},
		{name: "v4 bits out of range", in: "10.0.0.0/33", wantErr: `acl: Entry "10.0.0.0/33": prefix length out of range 0–32`},
		{name: "v6 bits out of range", in: "2001:db8::/129", wantErr: `acl: Entry "2001:db8::/129": prefix length out of range 0–128`},
		{name: "bits too long", in: "10.0.0.0/0008", wantErr: `acl: Entry "10.0.0.0/0008": invalid prefix length`},
		{name: "bits leading zero", in: "10.0.0.0/08", wantErr: `acl: Entry "10.0.0.0/08": invalid prefix length`},
		{name: "bits sign", in: "10.0.0.0/+8", wantErr: `acl: Entry "10.0.0.0/+8": invalid prefix length`},
		{name: "bits empty", in: "10.0.0.0/", wantErr: `acl: Entry "10.0.0.0/": invalid prefix length`},
		{name: "bits not a number", in: "10.0.0.0/x", wantErr: `acl: Entry "10.0.0.0/x": invalid prefix length`},
		{name: "bad address", in: "10.0.0.256", wantErr: `acl: Entry "10.0.0.256": invalid IP address`},
		{name: "hostname", in: "example.com", wantErr: `acl: Entry "example.com": invalid IP address`},
		{name: "double slash", in: "10.0.0.0/8/8", wantErr: `acl: Entry "10.0.0.0/8/8": invalid prefix length`},
		{name: "host bits", in: "10.0.0.1/8", wantErr: `acl: Entry "10.0.0.1/8": host bits set; want 10.0.0.0/8`},
		{name: "v6 host bits", in: "2001:db8::1/64", wantErr: `acl: Entry "2001:db8::1/64": host bits set; want 2001:db8::/64`},
		{name: "zone", in: "fe80::1%eth0", wantErr: `acl: Entry "fe80::1%eth0": IPv6 zone not allowed`},
		{name: "zone with bits", in: "fe80::%eth0/64", wantErr: `acl: Entry "fe80::%eth0/64": IPv6 zone not allowed`},
		{name: "mapped host", in: "::ffff:10.0.0.1", wantErr: `acl: Entry "::ffff:10.0.0.1": IPv4-mapped IPv6 prefix never matches; write 10.0.0.1/32`},
		{name: "mapped cidr", in: "::ffff:10.0.0.0/104", wantErr: `acl: Entry "::ffff:10.0.0.0/104": IPv4-mapped IPv6 prefix never matches; write 10.0.0.0/8`},
		{name: "control char in comment", in: "10.0.0.0/8 # a\x00b", wantErr: `acl: Entry "10.0.0.0/8 # a\x00b": comment holds unprintable character U+0000`},
		{name: "long comment", in: "10.0.0.0/8 # " + strings.Repeat("x", acl.MaxCommentLen+1), wantErr: "comment longer than 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := acl.ParseEntry(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseEntry(%q) = %v, want error %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEntry(%q) error = %q, want %q", tt.in, err, tt.wantErr)
				}
				var ce *acl.ConfigError
				if !errors.As(err, &ce) || ce.Field != "Entry" {
					t.Fatalf("ParseEntry(%q) error %T is not a ConfigError for Entry", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEntry(%q) error = %v, want %v", tt.in, err, tt.want)
			}
			if got != tt.want {
				t.Fatalf("ParseEntry(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			again, err := acl.ParseEntry(got.String())
			if err != nil || again != got {
				t.Fatalf("ParseEntry(%q) = %v, %v; want round trip to %v", got.String(), again, err, got)
			}
		})
	}
}

func TestParseEntries(t *testing.T) {
	es, err := acl.ParseEntries("10.0.0.0/8", "192.0.2.1 # host")
	if err != nil || len(es) != 2 {
		t.Fatalf("ParseEntries = %v, %v; want 2 entries", es, err)
	}
	_, err = acl.ParseEntries("10.0.0.0/8", "10.0.0.0/33", "nonsense")
	if err == nil || !strings.Contains(err.Error(), `"10.0.0.0/33"`) {
		t.Fatalf("ParseEntries error = %v, want one naming 10.0.0.0/33", err)
	}
}

func entry(pfx, comment string) acl.Entry {
	return acl.Entry{Prefix: netip.MustParsePrefix(pfx), Comment: comment}
}

func entries(t testing.TB, lines ...string) []acl.Entry {
	t.Helper()
	es, err := acl.ParseEntries(lines...)
	if err != nil {
		t.Fatal(err)
	}
	return es
}
