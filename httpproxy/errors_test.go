package httpproxy_test

import (
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/internal/errtest"
)

// Every error the package returns names it once, those of the packages
// it calls (sni, session) included.
func TestErrorsCarryOnePrefix(t *testing.T) {
	g, _ := balancer.New(balancer.Config{})
	p, _ := httpproxy.New(g, httpproxy.Options{})
	errs := map[string]error{
		"group":          errtest.Err(httpproxy.New(nil, httpproxy.Options{})),
		"timeout":        errtest.Err(httpproxy.New(g, httpproxy.Options{RequestTimeout: -time.Second})),
		"rule group":     errtest.Err(httpproxy.New(g, httpproxy.Options{Rules: []httpproxy.Rule{{Path: "/"}}})),
		"rule path":      errtest.Err(httpproxy.New(g, httpproxy.Options{Rules: []httpproxy.Rule{{Path: "api", Group: g}}})),
		"rule host":      errtest.Err(httpproxy.New(g, httpproxy.Options{Rules: []httpproxy.Rule{{Host: "a..b", Group: g}}})),
		"hash two":       errtest.Err(httpproxy.New(g, httpproxy.Options{HashBy: httpproxy.HashPolicy{Path: true, Query: "q"}})),
		"hash header":    errtest.Err(httpproxy.New(g, httpproxy.Options{HashBy: httpproxy.HashPolicy{Header: "a b"}})),
		"server nothing": errtest.Err(p.NewServer(nil, httpproxy.ServerConfig{}, nil)),
		"accept proxy":   errtest.Err(p.NewServer(nil, httpproxy.ServerConfig{AcceptProxy: httpproxy.AcceptProxy{Required: true}}, nil)),
	}
	errtest.OnePrefix(t, "httpproxy", errs)
}
