package listener

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/internal/proxyin"
)

// Protocol is a listener's front-end protocol.
type Protocol string

// Listener protocols.
const (
	TCP   Protocol = "tcp"
	UDP   Protocol = "udp"
	HTTP  Protocol = "http"
	HTTPS Protocol = "https"
)

// Defaults of Config: the CLB's values, which the library only uses for
// zero fields. The CLB's ranges are the clb example's (docs/model.md §0).
const (
	DefaultEstablishedTimeout     = 900 * time.Second
	DefaultConnectTimeout         = httpproxy.DefaultConnectTimeout // one default for every protocol
	DefaultUDPIdleTimeout         = 90 * time.Second
	DefaultConnectionDrainTimeout = 300 * time.Second
	DefaultMaxFlows               = 65536
)

// Config describes one listener. The zero value of each optional field
// means its default; Protocol, Port and Group are required. A field whose
// doc names the protocols it is for is refused, when set, on the others
// (HTTP excepted: TCP and UDP listeners ignore it).
type Config struct {
	// Protocol is tcp, udp, http or https. Required.
	Protocol Protocol
	// Port is the listening port, 0–65535. Port 0 binds a port the
	// system picks when the listener first starts; the listener keeps it
	// across Stop and Start, and Port and Addrs report it. The clb
	// example enforces the CLB's 1–65535 and refuses UDP ports 250, 4789
	// and 4790, which the CLB reserves.
	Port int
	// EndPort, for TCP and UDP, makes the listener listen on every port
	// from Port to EndPort ("all ports") and forward each to the same
	// port on the chosen backend, ignoring the backend's own port. If
	// zero, only Port is used. Range Port–65535; refused with Port 0.
	EndPort int
	// Name names the listener: 1–256 characters, letters (CJK included),
	// digits, '-', '/', '.', '_'. If empty, "protocol_port" is used; on
	// port 0, "protocol_0", or "protocol_0.2", "protocol_0.3"… if the
	// instance already has that name.
	Name string
	// Host is the address to listen on. If empty, all interfaces.
	Host string
	// ServiceAddr is the address and port clients reach the listener at
	// — the VIP a fleet of replicas shares — and what a pick key's Dst
	// carries, so that tch (and any scheduler reading Dst) places a flow
	// alike on replicas bound to different local addresses or ports
	// (docs/model.md §4). A zero port keeps the port the connection
	// arrived on, and must be zero with EndPort. If unset, Dst is the
	// connection's local address. It changes no socket: PROXY headers
	// and X-Forwarded-Port still carry the local address.
	ServiceAddr netip.AddrPort
	// Group is the server group traffic is balanced over; the listener
	// follows its changes live. Its scheduler must suit the protocol:
	// TCP takes all but qch, UDP all, HTTP and HTTPS wrr, rr, wlc, hash
	// and ewma (custom schedulers are allowed everywhere). Required.
	Group *balancer.Group
	// ACL filters clients before any byte reaches a backend. Build it
	// with acl.NewPolicy for this listener's address family. If nil,
	// every client is allowed.
	ACL *acl.Policy
	// PersistenceTimeout, for TCP and UDP, keeps a client IP on the
	// backend it was last sent to for this long after its last
	// connection or datagram. 0 (the default) is off; negative is
	// refused. The clb example enforces the CLB's 0–3600 s.
	PersistenceTimeout time.Duration
	// EstablishedTimeout, for TCP, is the idle timeout of a proxied
	// connection: with no byte in either direction for this long, both
	// sides are reset (RST), between EstablishedTimeout and
	// EstablishedTimeout + 0.5 s after the last byte (one sweep of the
	// listener's connections every 0.25 s, plus at most 0.25 s before a
	// copy records its last byte). If zero, 900 s is used; negative is
	// refused. The clb example enforces the CLB's 10–900 s.
	EstablishedTimeout time.Duration
	// IdleTimeout, for UDP, ends a flow that has seen no datagram in
	// either direction for this long. If zero, 90 s is used; negative is
	// refused. The clb example enforces the CLB's 1–3600 s.
	IdleTimeout time.Duration
	// ConnectTimeout bounds each backend connection attempt; after it
	// the next backend is tried. If zero, 5 s is used; negative is
	// refused.
	ConnectTimeout time.Duration
	// ConnectionDrain, for TCP, closes the established connections of a
	// backend that is removed, drained or put in maintenance
	// (balancer.Group.SetState) once
	// ConnectionDrainTimeout has passed. If false, such connections go on
	// until they end by themselves.
	ConnectionDrain bool
	// ConnectionDrainTimeout is the drain time. If zero, 300 s is used;
	// negative is refused. The clb example enforces the CLB's 10–900 s.
	ConnectionDrainTimeout time.Duration
	// ProxyProtocol, for TCP and UDP, sends a PROXY protocol header
	// carrying the client's address to the backend: 0 (off, the default),
	// 1 (text, TCP only) or 2 (binary; for UDP, one header per datagram).
	// HTTP and HTTPS listeners refuse it: they carry the client's address
	// in X-Forwarded-For (HTTPOptions).
	ProxyProtocol int
	// Bandwidth caps the listener's traffic in Mbps, each direction
	// separately, shared by all its connections. If zero, the listener
	// is uncapped and shares the instance's cap, if any; negative is
	// refused. The clb example enforces the CLB's 1–5120 Mbps.
	Bandwidth int
	// QUICRouter, for UDP listeners with the qch scheduler, maps the
	// destination connection ID of a flow's first packet to a backend ID
	// (the IETF QUIC-LB scheme: see balancer/quiclb). A backend it names
	// is used if it is a healthy member; flows it cannot route fall
	// back to the scheduler by four-tuple, as the draft asks. If nil,
	// qch hashes the connection ID.
	QUICRouter QUICRouter
	// AcceptProxy, for TCP, HTTP and HTTPS, reads the PROXY protocol
	// header of the balancers in front, so the listener sees the real
	// client (see AcceptProxy). If its From is empty, no header is read.
	AcceptProxy AcceptProxy
	// HTTP configures HTTP and HTTPS listeners; ignored by TCP and UDP.
	HTTP HTTPOptions
	// HealthCheck, if set, runs active health checks on the members of
	// every group the listener sends to (Group, and an HTTP listener's
	// rule groups: one checker per group, made by health.Follow) while the
	// listener runs, marking them healthy or not in their group, and feeds
	// the listener's backend connection failures to passive checking. A
	// member gets traffic after its first passed probe, unless
	// HealthCheck.TrustNew; WaitProbed waits for the first round.
	// HealthCheck.Setter must be nil: each group is told. If nil, no
	// checks run and members stay as the group says.
	HealthCheck *health.Config
	// MaxFlows, for UDP, bounds the flow table; datagrams that would
	// start a flow beyond it are dropped and counted. If zero, 65536 is
	// used; negative is refused.
	MaxFlows int
	// QUICConnIDLength, for UDP listeners routing by QUIC connection ID
	// (qch), is the length in bytes of the connection IDs the backends
	// issue: a short-header packet does not carry its destination
	// connection ID's length, so the listener must be told. Set it to the
	// servers' setting (quic-go's Transport.ConnectionIDLength defaults
	// to 4). If zero, 8 is used. Range 1–20 (RFC 9000 §17.2).
	QUICConnIDLength int
	// Listener, for TCP, HTTP and HTTPS, is a socket to serve on instead
	// of binding Host:Port: one inherited from another process, taken
	// from systemd (socket activation: net.FileListener of descriptor 3),
	// or bound by the caller ahead of time. It must be a
	// *net.TCPListener, which keeps the fast paths (idle connections
	// parked without a goroutine, the HTTP fast lane). Port is the
	// socket's (Port, if set, must match it, and so must Host); EndPort
	// must be zero. From the call to Instance.Add or Apply on, the
	// listener owns the socket, whether the call succeeds or not: it
	// serves on it from its first Start and closes it when it stops (a
	// later Start binds the same address anew), when it is removed
	// before starting, or when the call refuses it. If nil, the listener
	// binds Host:Port when it starts.
	Listener net.Listener
	// PacketConn, for UDP, is Listener's counterpart: a *net.UDPConn to
	// serve on instead of binding Host:Port, with the same rules. An
	// HTTPS listener with HTTP.HTTP3 takes one beside its Listener, bound
	// to the same address, for HTTP/3 (a process handing its sockets to
	// a successor hands both).
	PacketConn net.PacketConn
	// Stopped creates the listener stopped; by default it starts at once.
	Stopped bool
	// Logger receives the listener's structured logs. If nil, the
	// instance's logger is used.
	Logger *slog.Logger

	proxyIn *proxyin.Policy // AcceptProxy's, built (so checked) by effective, run by TCP listeners (HTTP ones hand AcceptProxy to httpproxy); nil when off
}

// effective returns cfg with defaults filled, or the first refused field.
func (c Config) effective() (Config, error) {
	switch c.Protocol {
	case TCP, UDP, HTTP, HTTPS:
	default:
		return c, configErr("Protocol", string(c.Protocol), "want tcp, udp, http or https")
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, configErr("Port", c.Port, "out of range 0–65535")
	}
	if err := c.protocolFields(); err != nil {
		return c, err
	}
	if _, at, ok, err := c.handed(); err != nil {
		return c, err
	} else if ok {
		field := "Listener"
		if c.Protocol == UDP {
			field = "PacketConn"
		}
		if err := c.fitHanded(field, at); err != nil {
			return c, err
		}
	}
	switch {
	case c.EndPort != 0 && c.Port == 0:
		// An ephemeral port has no range after it.
		return c, configErr("EndPort", c.EndPort, "needs a Port other than 0")
	case c.EndPort != 0 && (c.EndPort < c.Port || c.EndPort > 65535):
		return c, configErr("EndPort", c.EndPort, fmt.Sprintf("out of range %d–65535", c.Port))
	}
	if c.EndPort != 0 && c.ServiceAddr.Port() != 0 {
		return c, configErr("ServiceAddr", c.ServiceAddr, "port must be 0 with EndPort (each port hashes as itself)")
	}
	if c.Name == "" {
		c.Name = string(c.Protocol) + "_" + strconv.Itoa(c.Port)
	} else if err := validateName(c.Name); err != nil {
		return c, err
	}
	if c.Host != "" {
		if _, err := netip.ParseAddr(c.Host); err != nil && c.Host != "localhost" {
			return c, configErr("Host", c.Host, "not an IP address")
		}
	}
	if c.Group == nil {
		return c, configErr("Group", "nil", "required")
	}
	if err := schedulerFits(c.Protocol, c.Group.Scheduler().Name()); err != nil {
		return c, err
	}
	if c.ACL != nil {
		if got, want := int(c.ACL.Group().Family()), c.family(); got != want {
			return c, configErr("ACL", c.ACL.Group().Name(), fmt.Sprintf("an IPv%d group cannot bind to an IPv%d listener", got, want))
		}
	}
	if c.PersistenceTimeout < 0 {
		return c, configErr("PersistenceTimeout", c.PersistenceTimeout, "negative (0 = off)")
	}
	if err := timeouts(
		timeout{"EstablishedTimeout", &c.EstablishedTimeout, DefaultEstablishedTimeout},
		timeout{"IdleTimeout", &c.IdleTimeout, DefaultUDPIdleTimeout},
		timeout{"ConnectTimeout", &c.ConnectTimeout, DefaultConnectTimeout},
		timeout{"ConnectionDrainTimeout", &c.ConnectionDrainTimeout, DefaultConnectionDrainTimeout},
	); err != nil {
		return c, err
	}
	switch {
	case c.ProxyProtocol < 0 || c.ProxyProtocol > 2:
		return c, configErr("ProxyProtocol", c.ProxyProtocol, "want 0 (off), 1 or 2")
	case c.ProxyProtocol == 1 && c.Protocol == UDP:
		return c, configErr("ProxyProtocol", c.ProxyProtocol, "udp carries only version 2")
	}
	if err := checkBandwidth(c.Bandwidth); err != nil {
		return c, err
	}
	var err error
	a := c.AcceptProxy
	if c.proxyIn, err = proxyin.New("listener", a.From, a.Required, a.Timeout, DefaultProxyHeaderTimeout, a.Now); err != nil {
		return c, err
	}
	if c.Protocol == HTTP || c.Protocol == HTTPS {
		if err := c.HTTP.effective(&c); err != nil {
			return c, err
		}
	}
	if c.HealthCheck != nil {
		if c.HealthCheck.Setter != nil {
			return c, configErr("HealthCheck.Setter", "set", "must be nil: the listener tells each group")
		}
		// Validate now, so a bad check refuses the listener.
		hc, err := health.New(*c.HealthCheck)
		if err != nil {
			return c, err
		}
		hc.Stop()
	}
	if c.MaxFlows < 0 {
		return c, configErr("MaxFlows", c.MaxFlows, "negative")
	}
	if c.MaxFlows == 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	switch {
	case c.QUICConnIDLength < 0 || c.QUICConnIDLength > maxQUICConnIDLength:
		return c, configErr("QUICConnIDLength", c.QUICConnIDLength, "out of range 1–20 (0 = 8)")
	case c.QUICConnIDLength == 0:
		c.QUICConnIDLength = DefaultQUICConnIDLength
	}
	return c, nil
}

// protocolFields refuses a field set on a listener whose protocol does
// not use it, rather than ignoring it: whoever sets a field expects it to
// act.
func (c Config) protocolFields() error {
	tcp, udp, tcpUDP := []Protocol{TCP}, []Protocol{UDP}, []Protocol{TCP, UDP}
	streams := []Protocol{TCP, HTTP, HTTPS}
	for _, f := range []struct {
		field string
		value any
		set   bool
		only  []Protocol // the protocols that use it
		hint  string
	}{
		{"EndPort", c.EndPort, c.EndPort != 0, tcpUDP, ""},
		{"PersistenceTimeout", c.PersistenceTimeout, c.PersistenceTimeout != 0, tcpUDP, "; use cookies for http"},
		// An HTTP listener ends the client's connection and opens its
		// own to the backend: it writes no PROXY header.
		{"ProxyProtocol", c.ProxyProtocol, c.ProxyProtocol != 0, tcpUDP, "; http and https send X-Forwarded-For"},
		{"EstablishedTimeout", c.EstablishedTimeout, c.EstablishedTimeout != 0, tcp, "; http and https use HTTP.IdleTimeout"},
		{"ConnectionDrain", c.ConnectionDrain, c.ConnectionDrain, tcp, ""},
		{"ConnectionDrainTimeout", c.ConnectionDrainTimeout, c.ConnectionDrainTimeout != 0, tcp, ""},
		{"IdleTimeout", c.IdleTimeout, c.IdleTimeout != 0, udp, "; http and https use HTTP.IdleTimeout"},
		{"MaxFlows", c.MaxFlows, c.MaxFlows != 0, udp, ""},
		// A PROXY header starts a stream; a UDP balancer in front sends
		// one per datagram, which listeners do not read.
		{"AcceptProxy", c.AcceptProxy.From, len(c.AcceptProxy.From) != 0, streams, ""},
		{"QUICRouter", fmt.Sprintf("%T", c.QUICRouter), c.QUICRouter != nil, udp, ""},
		{"QUICConnIDLength", c.QUICConnIDLength, c.QUICConnIDLength != 0, udp, ""},
		{"Listener", fmt.Sprintf("%T", c.Listener), c.Listener != nil, []Protocol{TCP, HTTP, HTTPS}, "; udp takes a PacketConn"},
		{"PacketConn", fmt.Sprintf("%T", c.PacketConn), c.PacketConn != nil && !c.servesUDP(), udp, "; tcp, http and https take a Listener (https with HTTP.HTTP3 also a PacketConn, for HTTP/3)"},
	} {
		if f.set && !slices.Contains(f.only, c.Protocol) {
			names := make([]string, len(f.only))
			for i, p := range f.only {
				names[i] = string(p)
			}
			list := strings.Join(names, " and ")
			if n := len(names); n > 2 {
				list = strings.Join(names[:n-1], ", ") + " and " + names[n-1]
			}
			return configErr(f.field, f.value, fmt.Sprintf("only for %s listeners%s", list, f.hint))
		}
	}
	return nil
}

// QUICRouter maps a QUIC destination connection ID to the ID of the
// backend that issued it. Route must be safe for concurrent use and
// should not allocate: it runs for the first packet of every flow.
type QUICRouter interface {
	Route(dcid []byte) (backendID string, ok bool)
}

// schedulerFits refuses built-in schedulers a protocol does not offer.
func schedulerFits(p Protocol, name string) error {
	bad := false
	switch name {
	case balancer.NameQCH:
		bad = p != UDP
	case balancer.NameSCH, balancer.NameTCH:
		bad = p == HTTP || p == HTTPS
	}
	if bad {
		return configErr("Scheduler", name, fmt.Sprintf("not offered on %s listeners", p))
	}
	return nil
}

// timeout is a duration field to fill or refuse: its name, where it
// is, and the default of zero.
type timeout struct {
	field string
	v     *time.Duration
	def   time.Duration
}

// timeouts fills each zero duration with its default and refuses the
// first negative one: any positive timeout is the embedder's to choose.
func timeouts(ts ...timeout) error {
	for _, t := range ts {
		switch {
		case *t.v == 0:
			*t.v = t.def
		case *t.v < 0:
			return configErr(t.field, *t.v, "negative")
		}
	}
	return nil
}

// checkBandwidth refuses a negative cap; 0 is uncapped.
func checkBandwidth(mbps int) error {
	if mbps < 0 {
		return configErr("Bandwidth", mbps, "negative (0 = uncapped)")
	}
	return nil
}

func validateName(name string) error {
	n := utf8.RuneCountInString(name)
	if n < 1 || n > 256 || !utf8.ValidString(name) {
		return configErr("Name", name, "want 1–256 characters")
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' && r != '/' && r != '.' && r != '_' {
			return configErr("Name", name, fmt.Sprintf("character %q not allowed (letters, digits, - / . _)", r))
		}
	}
	return nil
}

// ports returns the listening ports.
func (c Config) ports() []int {
	last := max(c.Port, c.EndPort)
	ps := make([]int, 0, last-c.Port+1)
	for p := c.Port; p <= last; p++ {
		ps = append(ps, p)
	}
	return ps
}

// family returns the listener's address family for ACL binding: IPv6 for
// an IPv6 Host, else IPv4.
func (c Config) family() int {
	if a, err := netip.ParseAddr(c.Host); err == nil && a.Is6() && !a.Is4In6() {
		return 6
	}
	return 4
}

// servesUDP reports whether c's listener binds UDP sockets: a UDP
// listener, or an HTTPS one with HTTP/3.
func (c Config) servesUDP() bool {
	return c.Protocol == UDP || c.Protocol == HTTPS && c.HTTP.HTTP3
}
