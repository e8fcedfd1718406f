package httpproxy

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/lbkit/lbkit/internal/proxyin"
	"github.com/lbkit/lbkit/tlspolicy"
)

// hopByHop are the fields that describe one connection rather than the
// message (RFC 9110 §7.6.1, and those net/http/httputil also removes),
// in net/http's canonical form. Both lanes remove them, from requests and
// responses, with those a Connection field names.
var hopByHop = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Headers the proxy sets, in the spelling the CLB documents.
const (
	hdrSLBID   = "SLB-ID"
	hdrSLBIP   = "SLB-IP"
	hdrProto   = "X-Forwarded-Proto"
	hdrPort    = "X-Forwarded-Port"
	hdrSrcPort = "X-Forwarded-Client-srcport"
	hdrXFF     = "X-Forwarded-For"
)

// Client-certificate headers under mutual TLS.
var certHeaders = [...]string{
	"X-Client-Cert-Subject-Dn", "X-Client-Cert-Issuer-Dn", "X-Client-Cert-Fingerprint", "X-Client-Cert-Verify",
}

// fieldValue is where a field the proxy sets takes its value from.
type fieldSource uint8

const (
	fromID      fieldSource = iota // Identity.ID
	fromAddr                       // Identity.Addr
	fromProto                      // "http" or "https", by the connection
	fromPort                       // the port the request came in on
	fromSrcPort                    // the client's source port
)

// setField is a request field the proxy sets, replacing any the client
// sent.
type setField struct {
	name  string // as written to the backend
	canon string // as net/http keys it
	lower string // as the fast lane's parser matches it
	from  fieldSource
}

// headerPlan is what the proxy does to every request's header, computed
// once from the Options: the fields it removes (hop-by-hop, those it
// sets, forged client-certificate fields), whether it appends the
// client to X-Forwarded-For, and the fields it sets. Both lanes apply
// the same plan: the general lane to an http.Header (apply), the fast
// lane while parsing (drops) and writing (set, xff) a raw head.
type headerPlan struct {
	xff     bool
	trusted proxyin.Trust // peers whose X-Forwarded-For names the client (trust.go)
	set     []setField
	drop    []string // canonical names removed from every request
	byLen   nameSet  // drop, for the fast lane's parser
	certs   bool     // client-certificate fields are set
}

func newHeaderPlan(o *Options) headerPlan {
	p := headerPlan{xff: !o.NoXForwardedFor, certs: o.ClientCertHeaders}
	p.trusted, _, _ = proxyin.NewTrust(o.TrustedProxies) // compile refused bad ones
	for _, f := range []struct {
		on   bool
		name string
		from fieldSource
	}{
		{o.SLBID, hdrSLBID, fromID},
		{o.SLBIP, hdrSLBIP, fromAddr},
		{o.XForwardedProto, hdrProto, fromProto},
		{o.XForwardedPort, hdrPort, fromPort},
		{o.XForwardedClientSrcPort, hdrSrcPort, fromSrcPort},
	} {
		if f.on {
			p.set = append(p.set, setField{f.name, textproto.CanonicalMIMEHeaderKey(f.name), strings.ToLower(f.name), f.from})
		}
	}
	p.drop = append(p.drop, hopByHop[:]...)
	for _, f := range p.set {
		p.drop = append(p.drop, f.canon)
	}
	if p.certs {
		p.drop = append(p.drop, certHeaders[:]...)
	}
	p.byLen = newNameSet(p.drop)
	return p
}

// readsXFF reports whether the fast lane's parser collects the
// X-Forwarded-For fields: to append to them, or to find the client.
func (p *headerPlan) readsXFF() bool { return p.xff || !p.trusted.Empty() }

// drops reports whether the plan removes a request field of this name
// (any case): the fast lane's test for each line it parses.
func (p *headerPlan) drops(name []byte) bool { return p.byLen.has(name) }

// hopNames are hopByHop for the fast lane's response parser.
var hopNames = newNameSet(hopByHop[:])

// nameSet is a set of field names the fast lane looks up by a raw name
// of any case without allocating: lower-case names by length.
type nameSet [32][]string

func newNameSet(names []string) nameSet {
	var s nameSet
	for _, k := range names {
		s[len(k)] = append(s[len(k)], strings.ToLower(k))
	}
	return s
}

// has reports whether name, in any case, is in the set.
func (s *nameSet) has(name []byte) bool {
	if len(name) >= len(s) {
		return false
	}
	for _, k := range s[len(name)] {
		if equalFold(name, k) {
			return true
		}
	}
	return false
}

// identity is the SLB-ID and SLB-IP values of a server, shared by every
// request.
type identity struct{ id, addr []string }

func newIdentity(i Identity) identity {
	return identity{[]string{i.ID}, []string{i.Addr}}
}

// value is the value of field f for a request on connection hc to a
// server of identity who.
func (p *headerPlan) value(f *setField, hc *connInfo, who *identity) []string {
	switch f.from {
	case fromID:
		return who.id
	case fromAddr:
		return who.addr
	case fromProto:
		return hc.proto
	case fromPort:
		return hc.dstPort
	}
	return hc.srcPort
}

// apply turns a client's request header into the backend's, in place:
// the general lane's way of writing the plan. An upgrade keeps its
// Connection and Upgrade fields; cut is where X-Forwarded-For ends
// (headerPlan.client).
func (p *headerPlan) apply(r *http.Request, hc *connInfo, who *identity, upgrade bool, cut xffCut) {
	h := r.Header
	var up []string
	if upgrade {
		up = h["Upgrade"]
	}
	removeConnectionListed(h)
	for _, k := range p.drop {
		delete(h, k)
	}
	if upgrade {
		h["Connection"] = upgradeValue
		h["Upgrade"] = up
	}
	switch prior := h[hdrXFF]; {
	case !p.xff:
	case cut != noCut && cut.line < len(prior) && cut.end <= len(prior[cut.line]):
		// (A field the Connection field named is gone: appended to.)
		h[hdrXFF] = []string{xffCutValue(prior, cut)}
	default:
		if len(prior) > 0 {
			h[hdrXFF] = []string{strings.Join(prior, ", ") + ", " + hc.ip[0]}
		} else {
			h[hdrXFF] = hc.ip
		}
	}
	for i := range p.set {
		f := &p.set[i]
		h[f.name] = p.value(f, hc, who)
	}
	if p.certs && r.TLS != nil {
		cc := hc.cert.Load()
		if cc == nil {
			d := tlspolicy.DescribeClientCert(*r.TLS)
			cc = &d
			hc.cert.Store(cc)
		}
		if cc.Subject != "" {
			h[certHeaders[0]] = []string{cc.Subject}
			h[certHeaders[1]] = []string{cc.Issuer}
			h[certHeaders[2]] = []string{cc.Fingerprint}
		}
		h[certHeaders[3]] = []string{cc.Verify}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyValue // not Go's default
	}
}

// removeConnectionListed deletes the fields h's Connection fields name.
func removeConnectionListed(h http.Header) {
	for _, v := range h["Connection"] {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if t = textproto.TrimString(t); t != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(t))
			}
		}
	}
}

// isHop reports whether the canonical header key k is hop-by-hop.
func isHop(k string) bool {
	for _, h := range hopByHop {
		if k == h {
			return true
		}
	}
	return false
}

// copyResponseHeader copies src's end-to-end fields to dst, sharing the
// value slices (src is the backend response, ours to give away).
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if isHop(k) || (conn != nil && listed(conn, k)) {
			continue
		}
		if old := dst[k]; old != nil {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv
		}
	}
	if _, ok := src["Content-Type"]; !ok {
		dst["Content-Type"] = nil // no sniffing: pass the response as it is
	}
}

func listed(conn []string, k string) bool {
	for _, v := range conn {
		if hasToken(v, k) {
			return true
		}
	}
	return false
}

// hasToken reports whether the comma-separated list v holds token,
// ignoring case.
func hasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(textproto.TrimString(t), token) {
			return true
		}
	}
	return false
}

// Header values shared by every request and response; never modified.
var (
	emptyValue   = []string{""}
	upgradeValue = []string{"Upgrade"}
	closeValue   = []string{"close"}
)
