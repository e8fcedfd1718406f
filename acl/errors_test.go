package acl_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/internal/errtest"
)

// Every error the package returns names it once, including those that
// wrap ErrFamily or ErrNotFound.
func TestErrorsCarryOnePrefix(t *testing.T) {
	g, _ := acl.NewGroup(acl.GroupConfig{Name: "office", Family: acl.IPv4})
	v6, _ := acl.ParseEntry("2001:db8::/32")
	p, _ := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: acl.Whitelist})
	one, _ := acl.ParseEntry("10.0.0.0/8")
	_ = g.Add(one)
	errs := map[string]error{
		"empty entry":       errtest.Err(acl.ParseEntry("")),
		"bad address":       errtest.Err(acl.ParseEntry("10.0.0.300")),
		"zone":              errtest.Err(acl.ParseEntry("fe80::1%eth0")),
		"prefix length":     errtest.Err(acl.ParseEntry("10.0.0.0/33")),
		"host bits":         errtest.Err(acl.ParseEntry("10.0.0.1/8")),
		"long comment":      errtest.Err(acl.ParseEntry("10.0.0.0/8 # " + strings.Repeat("x", acl.MaxCommentLen+1))),
		"entries":           errtest.Err(acl.ParseEntries("10.0.0.0/8", "nope")),
		"mode":              errtest.Err(acl.ParseMode("greylist")),
		"group name":        errtest.Err(acl.NewGroup(acl.GroupConfig{Family: acl.IPv4})),
		"group family":      errtest.Err(acl.NewGroup(acl.GroupConfig{Name: "g"})),
		"entry family":      errtest.Err(acl.NewGroup(acl.GroupConfig{Name: "g", Family: acl.IPv4}, v6)),
		"add family":        g.Add(v6),
		"replace family":    g.Replace(v6),
		"remove absent":     g.Remove(netip.MustParsePrefix("192.168.0.0/16")),
		"policy group":      errtest.Err(acl.NewPolicy(acl.PolicyConfig{Mode: acl.Whitelist})),
		"policy mode":       errtest.Err(acl.NewPolicy(acl.PolicyConfig{Group: g})),
		"policy bad family": errtest.Err(acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: acl.Blacklist, Family: 9})),
		"policy family":     errtest.Err(acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: acl.Blacklist, Family: acl.IPv6})),
		"denied":            p.Check(netip.MustParseAddr("192.0.2.1")),
	}
	errtest.OnePrefix(t, "acl", errs)
}
