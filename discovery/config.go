package discovery

import (
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Type is the kind of DNS record a DNS source asks for. The zero value
// is A.
type Type int

// The record types a DNS source follows (ParseType).
const (
	// A: each address of the name (A and AAAA records, see
	// DNSConfig.Family) is one member, on DNSConfig.Port.
	A Type = iota
	// SRV: each SRV record's target is resolved to its addresses, each
	// address one member on the record's port, with the record's weight;
	// the lowest priority value is the primary tier, every other value
	// the standby tier.
	SRV
)

// String returns the name of t: "A" or "SRV".
func (t Type) String() string {
	switch t {
	case A:
		return "A"
	case SRV:
		return "SRV"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType parses a record type, A or SRV, in any case; AAAA is A (a
// name's addresses of both families, narrowed by DNSConfig.Family).
func ParseType(s string) (Type, error) {
	switch strings.ToUpper(s) {
	case "A", "AAAA":
		return A, nil
	case "SRV":
		return SRV, nil
	}
	return 0, configErr("Type", s, "unknown; want A or SRV")
}

// Defaults of DNSConfig.
const (
	// DefaultMinTTL is the shortest wait between two lookups. Answers
	// with a TTL of 0 (dnsmasq's default for its own names) would
	// otherwise have the source ask without pause.
	DefaultMinTTL = time.Second
	// DefaultMaxTTL is the longest wait: a record with a TTL of a day
	// still has its changes seen within five minutes, the bound Envoy's
	// and nginx's re-resolution are commonly run with.
	DefaultMaxTTL = 5 * time.Minute
	// DefaultTimeout bounds one DNS exchange, as miekg/dns's own default.
	DefaultTimeout = 2 * time.Second
	// maxRetry caps the backoff after failed lookups (still bounded by
	// MaxTTL), so a resolver that comes back is noticed soon.
	maxRetry = 30 * time.Second
)

// resolvConf is where the default resolver is read from.
const resolvConf = "/etc/resolv.conf"

// DNSConfig configures a DNS source. Name is required, and Port with
// Type A; every other zero field means its default.
type DNSConfig struct {
	// Name is the DNS name to follow, e.g. "api.svc.example" (A) or
	// "_http._tcp.api.svc.example" (SRV). A trailing dot is optional:
	// the name is always taken as fully qualified, never searched.
	Name string
	// Type is A (the name's addresses, on Port) or SRV (targets, ports,
	// weights and priorities from the records). If zero, A.
	Type Type
	// Port is the members' port with Type A, 1–65535; it must be zero
	// with SRV, whose records carry the port.
	Port int
	// Weight is every member's weight with Type A, 1–65535. If zero,
	// balancer.DefaultWeight. SRV members take their record's weight.
	Weight int
	// Family narrows the addresses taken: "ipv4" (A records only),
	// "ipv6" (AAAA only), or "" for both.
	Family string
	// Resolver is the DNS server asked, as host:port (a host without a
	// port means port 53). If empty, the first nameserver of
	// /etc/resolv.conf.
	Resolver string
	// MinTTL and MaxTTL bound the wait between lookups: the source asks
	// again when the answer's shortest TTL runs out, but not sooner than
	// MinTTL nor later than MaxTTL. If zero, DefaultMinTTL (1s) and
	// DefaultMaxTTL (5m). MinTTL ≤ MaxTTL.
	MinTTL, MaxTTL time.Duration
	// Timeout bounds one exchange with the resolver (one UDP query, or
	// its TCP retry). If zero, DefaultTimeout (2s).
	Timeout time.Duration
	// Logger receives a record of every membership change and every
	// failed lookup. If nil, slog.Default().
	Logger *slog.Logger
}

// normalize fills the defaults of c and validates it.
func (c DNSConfig) normalize() (DNSConfig, error) {
	if c.Name == "" {
		return c, configErr("Name", c.Name, "required")
	}
	if _, ok := dns.IsDomainName(c.Name); !ok {
		return c, configErr("Name", c.Name, "not a domain name")
	}
	c.Name = dns.Fqdn(c.Name)
	switch c.Type {
	case A:
		if c.Port < 1 || c.Port > 65535 {
			return c, configErr("Port", c.Port, "out of range 1–65535 (required with Type A)")
		}
	case SRV:
		if c.Port != 0 {
			return c, configErr("Port", c.Port, "must be zero with Type SRV: the records carry the port")
		}
	default:
		return c, configErr("Type", c.Type, "unknown; want A or SRV")
	}
	if c.Weight < 0 || c.Weight > 65535 {
		return c, configErr("Weight", c.Weight, "out of range 1–65535")
	}
	if c.Family != "" && c.Family != "ipv4" && c.Family != "ipv6" {
		return c, configErr("Family", c.Family, `want "ipv4", "ipv6" or ""`)
	}
	var err error
	if c.Resolver, err = resolverAddr(c.Resolver); err != nil {
		return c, err
	}
	if c.MinTTL == 0 {
		c.MinTTL = DefaultMinTTL
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = max(DefaultMaxTTL, c.MinTTL)
	}
	if c.MinTTL < 0 {
		return c, configErr("MinTTL", c.MinTTL, "negative")
	}
	if c.MaxTTL < c.MinTTL {
		return c, configErr("MaxTTL", c.MaxTTL, "below MinTTL "+c.MinTTL.String())
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		return c, configErr("Timeout", c.Timeout, "negative")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// resolverAddr returns the server to ask as host:port: addr with port 53
// added when it has none, or the first nameserver of /etc/resolv.conf.
func resolverAddr(addr string) (string, error) {
	if addr == "" {
		cc, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return "", wrapErr("Resolver", addr, "none given, and "+resolvConf+" unreadable", err)
		}
		if len(cc.Servers) == 0 {
			return "", configErr("Resolver", addr, "none given, and "+resolvConf+" names no nameserver")
		}
		return net.JoinHostPort(cc.Servers[0], cc.Port), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = strings.Trim(addr, "[]"), "53"
	}
	if host == "" {
		return "", configErr("Resolver", addr, "empty host")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", configErr("Resolver", addr, "port out of range 1–65535")
	}
	return net.JoinHostPort(host, port), nil
}
