package acl_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/lbkit/lbkit/acl"
)

// A listener on an IPv4 address allows only the office network.
func Example() {
	office, err := acl.ParseEntries("10.0.0.0/8 # office", "192.0.2.7 # VPN gateway")
	if err != nil {
		panic(err)
	}
	group, err := acl.NewGroup(acl.GroupConfig{Name: "office", Family: acl.IPv4}, office...)
	if err != nil {
		panic(err)
	}
	// At listener build time: the family check happens here.
	policy, err := acl.NewPolicy(acl.PolicyConfig{Group: group, Mode: acl.Whitelist, Family: acl.IPv4})
	if err != nil {
		panic(err)
	}
	// Per connection, before any byte reaches a backend.
	for _, src := range []string{"10.1.2.3", "192.0.2.7", "203.0.113.9", "::ffff:10.1.2.3"} {
		fmt.Println(src, policy.Allow(netip.MustParseAddr(src)))
	}
	// Output:
	// 10.1.2.3 true
	// 192.0.2.7 true
	// 203.0.113.9 false
	// ::ffff:10.1.2.3 true
}

func ExampleParseEntry() {
	e, err := acl.ParseEntry("2001:db8::/32 # lab")
	fmt.Println(e.Prefix, e.Comment, err)

	_, err = acl.ParseEntry("10.0.0.0/33")
	fmt.Println(err)
	_, err = acl.ParseEntry("10.0.0.1/8")
	fmt.Println(err)
	// Output:
	// 2001:db8::/32 lab <nil>
	// acl: Entry "10.0.0.0/33": prefix length out of range 0–32
	// acl: Entry "10.0.0.1/8": host bits set; want 10.0.0.0/8
}

func ExampleParseEntries() {
	_, err := acl.ParseEntries("10.0.0.0/8", "10.0.0.256", "192.0.2.0/24")
	var ce *acl.ConfigError
	if errors.As(err, &ce) {
		fmt.Println(ce.Field, ce.Value, ce.Reason)
	}
	// Output:
	// Entry "10.0.0.256" invalid IP address
}

func ExampleEntry_String() {
	e, _ := acl.ParseEntry("  192.0.2.7   #   printer ")
	fmt.Printf("%q\n", e.String())
	// Output:
	// "192.0.2.7/32 # printer"
}

func ExampleNewGroup() {
	g, err := acl.NewGroup(acl.GroupConfig{Name: "lab", Family: acl.IPv6})
	fmt.Println(g.Name(), g.Family(), g.Len(), err)

	_, err = acl.NewGroup(acl.GroupConfig{Name: "my lab", Family: acl.IPv6})
	fmt.Println(err)
	// Output:
	// lab IPv6 0 <nil>
	// acl: Name "my lab": character ' ' not allowed; use letters, digits and -_.:/
}

func ExampleGroup_Add() {
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "blocked", Family: acl.IPv4})
	batch, _ := acl.ParseEntries("198.51.100.0/24", "2001:db8::1")
	err := g.Add(batch...) // the IPv6 entry is refused, so nothing is added
	fmt.Println(err)
	fmt.Println(errors.Is(err, acl.ErrFamily), g.Len())
	// Output:
	// acl: Entry "2001:db8::1/128": IPv6 entry in IPv4 group "blocked"
	// true 0
}

func ExampleGroup_Remove() {
	es, _ := acl.ParseEntries("10.0.0.0/8 # a", "10.0.0.0/8 # duplicate", "192.0.2.0/24")
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "g", Family: acl.IPv4}, es...)
	err := g.Remove(netip.MustParsePrefix("10.0.0.0/8"))
	fmt.Println(g.Entries(), err)

	err = g.Remove(netip.MustParsePrefix("10.0.0.0/8"))
	fmt.Println(err)
	// Output:
	// [192.0.2.0/24] <nil>
	// acl: Entry "10.0.0.0/8": not in group "g"
}

func ExampleGroup_Replace() {
	old, _ := acl.ParseEntries("10.0.0.0/8")
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "g", Family: acl.IPv4}, old...)
	p, _ := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: acl.Whitelist, Family: acl.IPv4})
	src := netip.MustParseAddr("203.0.113.9")

	fmt.Println(p.Allow(src))
	_ = g.Replace() // an empty group allows everything
	fmt.Println(p.Allow(src))
	next, _ := acl.ParseEntries("203.0.113.0/24")
	_ = g.Replace(next...)
	fmt.Println(p.Allow(src), g.Entries())
	// Output:
	// false
	// true
	// true [203.0.113.0/24]
}

func ExampleGroup_Contains() {
	es, _ := acl.ParseEntries("10.0.0.0/8")
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "g", Family: acl.IPv4}, es...)
	fmt.Println(g.Contains(netip.MustParseAddr("10.9.9.9")))
	fmt.Println(g.Contains(netip.MustParseAddr("::ffff:10.9.9.9")))
	fmt.Println(g.Contains(netip.MustParseAddr("11.0.0.1")))
	// Output:
	// true
	// true
	// false
}

func ExampleGroup_Entries() {
	es, _ := acl.ParseEntries("2001:db8::/32 # lab", "::1")
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "v6", Family: acl.IPv6}, es...)
	for _, e := range g.Entries() {
		fmt.Println(e)
	}
	// Output:
	// 2001:db8::/32 # lab
	// ::1/128
}

func ExampleNewPolicy() {
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "lab", Family: acl.IPv6})
	_, err := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: acl.Blacklist, Family: acl.IPv4})
	fmt.Println(err)
	fmt.Println(errors.Is(err, acl.ErrFamily))

	// A zero Family means the group's.
	p, err := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: acl.Blacklist})
	fmt.Println(p.Group().Name(), p.Mode(), err)
	// Output:
	// acl: Family "IPv4": listener cannot use IPv6 group "lab"
	// true
	// lab blacklist <nil>
}

func ExamplePolicy_Allow() {
	es, _ := acl.ParseEntries("2001:db8:bad::/48")
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "abusers", Family: acl.IPv6}, es...)
	p, _ := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: acl.Blacklist, Family: acl.IPv6})
	fmt.Println(p.Allow(netip.MustParseAddr("2001:db8:bad::1")))
	fmt.Println(p.Allow(netip.MustParseAddr("2001:db8:600d::1")))
	// A dual-stack listener's IPv4 client: no IPv6 entry lists it.
	fmt.Println(p.Allow(netip.MustParseAddr("::ffff:192.0.2.1")))

	var none *acl.Policy // no ACL configured
	fmt.Println(none.Allow(netip.MustParseAddr("2001:db8:bad::1")))
	// Output:
	// false
	// true
	// true
	// true
}

func ExamplePolicy_Check() {
	es, _ := acl.ParseEntries("10.0.0.0/8")
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "office", Family: acl.IPv4}, es...)
	p, _ := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: acl.Whitelist, Family: acl.IPv4})
	err := p.Check(netip.MustParseAddr("203.0.113.9"))
	fmt.Println(err, errors.Is(err, acl.ErrDenied))
	// Output:
	// acl: source denied true
}

func ExampleParseMode() {
	m, err := acl.ParseMode("Whitelist")
	fmt.Println(m, err)
	_, err = acl.ParseMode("allowlist")
	fmt.Println(err)
	// Output:
	// whitelist <nil>
	// acl: Mode "allowlist": want whitelist or blacklist
}

func ExampleFamily_String() {
	fmt.Println(acl.IPv4, acl.IPv6)
	// Output:
	// IPv4 IPv6
}

func ExampleMode_String() {
	fmt.Println(acl.Whitelist, acl.Blacklist)
	// Output:
	// whitelist blacklist
}
