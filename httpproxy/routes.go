package httpproxy

import (
	"strings"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/sni"
)

// routes are the forwarding rules, immutable once built (buildRoutes).
type routes struct {
	hosts  *sni.Table[[]route] // nil when no rule names a host
	any    []route             // rules without a host
	groups []*balancer.Group   // every group, the default first
}

type route struct {
	prefix string
	g      *balancer.Group
}

// group returns the group for a request's host and path: the best host
// pattern's longest prefix, then the host-less rules', then the default.
func (rs *routes) group(host, path string) *balancer.Group {
	if rs.hosts != nil {
		if r, ok := rs.hosts.Match(sni.StripPort(host)); ok {
			if g := matchPrefix(r, path); g != nil {
				return g
			}
		}
	}
	if g := matchPrefix(rs.any, path); g != nil {
		return g
	}
	return rs.groups[0]
}

// matchPrefix returns the group of the first route (longest prefix first)
// whose prefix path has.
func matchPrefix(rs []route, path string) *balancer.Group {
	for _, r := range rs {
		if strings.HasPrefix(path, r.prefix) {
			return r.g
		}
	}
	return nil
}
