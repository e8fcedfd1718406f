package health

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Kind is the built-in probe a Checker runs: a TCP connect, an HTTP
// request or a UDP request/response exchange. The zero value is KindTCP.
type Kind int

// The built-in probe kinds, by their CLB names (ParseKind).
const (
	KindTCP  Kind = iota // "tcp": the backend accepts a TCP connection
	KindHTTP             // "http": the backend answers an HTTP request with an expected status class
	KindUDP              // "udp": the backend answers a UDP request with the expected response
)

// String returns the CLB name of k: "tcp", "http" or "udp".
func (k Kind) String() string {
	switch k {
	case KindTCP:
		return "tcp"
	case KindHTTP:
		return "http"
	case KindUDP:
		return "udp"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind parses a CLB health-check type: tcp, http or udp, in any case.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return KindTCP, nil
	case "http":
		return KindHTTP, nil
	case "udp":
		return KindUDP, nil
	}
	return 0, configErr("Kind", s, "unknown; want tcp, http or udp")
}

// ParseMethod parses a CLB HTTP health-check method, head or get in any
// case, and returns it as http.MethodHead or http.MethodGet.
func ParseMethod(s string) (string, error) {
	switch strings.ToUpper(s) {
	case http.MethodHead:
		return http.MethodHead, nil
	case http.MethodGet:
		return http.MethodGet, nil
	}
	return "", configErr("Method", s, "unknown; want head or get")
}

// maxURILen bounds an HTTP health-check URI.
const maxURILen = 1024

// ParseURI checks an HTTP health-check URI and returns it unchanged: it
// must start with "/", be at most 1024 bytes of printable ASCII without
// spaces, and parse as a request URI (path, optionally a query). A
// fragment ("#…") is refused, as no server would see it.
func ParseURI(s string) (string, error) {
	switch {
	case s == "":
		return "", configErr("URI", s, "empty; want a path starting with /")
	case s[0] != '/':
		return "", configErr("URI", s, "does not start with /")
	case len(s) > maxURILen:
		return "", configErr("URI", s, "longer than 1024 bytes")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return "", configErr("URI", s, "contains a space, control or non-ASCII byte")
		}
		if s[i] == '#' {
			return "", configErr("URI", s, "contains a fragment (#)")
		}
	}
	if strings.HasPrefix(s, "//") {
		// url.ParseRequestURI would read "//host/path" as an authority.
		return "", configErr("URI", s, "starts with //")
	}
	if _, err := url.ParseRequestURI(s); err != nil {
		return "", configErr("URI", s, "not a request URI")
	}
	return s, nil
}

// StatusClasses is a set of HTTP status classes (2xx, 3xx, 4xx, 5xx) that
// an HTTP probe accepts. The zero value is the empty set, which a Config
// reads as the default, Status2xx.
type StatusClasses uint8

// The status classes, by their CLB names (ParseStatusClasses).
const (
	Status2xx StatusClasses = 1 << iota // "http_2xx"
	Status3xx                           // "http_3xx"
	Status4xx                           // "http_4xx"
	Status5xx                           // "http_5xx"
)

var classNames = [...]string{"http_2xx", "http_3xx", "http_4xx", "http_5xx"}

// ParseStatusClasses parses a CLB expected-codes value: a comma-separated
// list of http_2xx, http_3xx, http_4xx and http_5xx, in any case, with
// optional spaces around each item. Repeats are allowed; an empty list or
// item is refused.
func ParseStatusClasses(s string) (StatusClasses, error) {
	var set StatusClasses
	for item := range strings.SplitSeq(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		i := 0
		for i < len(classNames) && classNames[i] != item {
			i++
		}
		if i == len(classNames) {
			return 0, configErr("Codes", s, "want a comma list of http_2xx, http_3xx, http_4xx, http_5xx")
		}
		set |= 1 << i
	}
	return set, nil
}

// String returns the set in the form ParseStatusClasses reads, such as
// "http_2xx,http_3xx"; the empty set is "".
func (c StatusClasses) String() string {
	var names []string
	for i, n := range classNames {
		if c&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

// Match reports whether the HTTP status code belongs to one of the classes.
func (c StatusClasses) Match(code int) bool {
	if code < 200 || code > 599 {
		return false
	}
	return c&(1<<(code/100-2)) != 0
}

// Defaults of Config are the CLB's (docs/model.md §11); its bounds are
// only what a checker needs to work. The CLB's narrower ranges are the
// clb example's.
const (
	defaultInterval    = 2 * time.Second
	minInterval        = time.Millisecond // a tighter loop only burns CPU
	defaultTimeout     = 5 * time.Second
	defaultThreshold   = 3
	defaultConcurrency = 64
	maxUDPPayload      = 1024
	maxDomainLen       = 253
)

// Config configures a Checker. The zero value checks with a TCP connect
// every 2s, a 5s timeout, and 3 consecutive results to change a state; new
// targets are pending until their first probe, which decides their state.
type Config struct {
	// Kind selects the built-in probe: KindTCP (the zero value), KindHTTP
	// or KindUDP. Ignored if Probe is set.
	Kind Kind
	// Probe, if set, replaces the built-in probe with your own check;
	// Kind and the HTTP and UDP fields are then ignored.
	Probe Probe

	// Port is the port probes connect to. If zero, each target's own port
	// is used. Range 1–65535.
	Port int
	// Interval is the time between two probes of one target. If zero, 2s
	// is used. At least 1ms. Each target's schedule is offset by a random
	// fraction of Interval so that probes of many targets do not align.
	// The clb example enforces the CLB's 1–50 s.
	Interval time.Duration
	// Timeout bounds one probe. If zero, 5s is used; negative is refused.
	// For KindUDP a Timeout shorter than Interval is raised to Interval,
	// as the CLB does, because silence is the only sign of a dead UDP
	// service. The clb example enforces the CLB's 1–300 s.
	Timeout time.Duration
	// HealthyThreshold is the number of consecutive passed probes that
	// make an unhealthy target healthy. If zero, 3 is used; negative is
	// refused. The clb example enforces the CLB's 2–10.
	HealthyThreshold int
	// UnhealthyThreshold is the number of consecutive failed probes that
	// make a healthy target unhealthy. If zero, 3 is used; negative is
	// refused. The clb example enforces the CLB's 2–10.
	UnhealthyThreshold int
	// TrustNew trusts new targets, as HAProxy does: they start healthy,
	// the StatusSetter is told so at once, and they need
	// UnhealthyThreshold failures to go down. If false (the default, as
	// Envoy does), a new target is pending: the first probe decides its
	// state on its own (one pass ⇒ healthy, one failure ⇒ unhealthy), and
	// with Follow the group gives it no traffic before it has passed once.
	TrustNew bool

	// Method is the HTTP method, HEAD or GET in any case (CLB's head and
	// get). If empty, HEAD is used.
	Method string
	// Domain is the HTTP Host header. If empty, the host part of the
	// target's address (the backend's IP) is used. At most 253 bytes of
	// letters, digits, '-' and '.', optionally with ":port".
	Domain string
	// URI is the HTTP request URI. If empty, "/" is used. See ParseURI.
	URI string
	// Codes are the HTTP status classes that pass. If zero, Status2xx is
	// used. Redirects are not followed: a 302 passes only with Status3xx.
	Codes StatusClasses

	// Request is the UDP payload a KindUDP probe sends. Required for
	// KindUDP, at most 1024 bytes.
	Request string
	// Response is what a KindUDP probe expects: the reply must contain
	// it (HAProxy's "expect string"). Required for KindUDP, at most 1024
	// bytes.
	Response string

	// Concurrency bounds the probes in flight at once, over all targets.
	// If zero, 64 is used: enough to probe hundreds of backends every 2s
	// while holding at most 64 sockets. Negative is refused.
	Concurrency int

	// Setter, if set, is told every change of a target's health:
	// SetHealthy(id, false) when it goes down or is ejected,
	// SetHealthy(id, true) when it is healthy again. A *balancer.Group
	// satisfies it. Follow sets it to the group it follows, and refuses
	// another.
	Setter StatusSetter
	// OnChange, if set, is called with every Event, after Setter. Events
	// are delivered one at a time, in order. OnChange may call the
	// Checker's methods except Stop.
	OnChange func(Event)

	// Passive configures ejection on failures a listener reports with
	// ReportFailure. The zero value turns ejection off.
	Passive Passive

	// Rand draws each new target's schedule offset. If nil, a randomly
	// seeded source is used. Set it to make schedules reproducible.
	Rand *rand.Rand
	// Now returns the current time for events and ejections. If nil,
	// time.Now is used. The scheduled loop still sleeps in real time;
	// a fake Now is for driving ejections with CheckNow and the Report
	// methods.
	Now func() time.Time
}

// Passive configures passive health checking: outlier ejection on the
// consecutive connection failures a listener reports, modelled on Envoy's
// outlier detection. The zero value turns it off.
type Passive struct {
	// Failures is the number of consecutive ReportFailure calls, with no
	// ReportSuccess between, that eject a target. If zero, nothing is
	// ejected; negative is refused.
	Failures int
	// EjectTime is how long the first ejection lasts; the n-th ejection in
	// a row (with no ReportSuccess between) lasts n times as long, up to
	// MaxEjectTime. If zero, 30s is used (Envoy's default); negative is
	// refused.
	EjectTime time.Duration
	// MaxEjectTime caps one ejection. If zero, the larger of 300s and
	// EjectTime is used. At least EjectTime.
	MaxEjectTime time.Duration
	// MaxEjectedPercent caps the share of targets ejected at once; one
	// target may always be ejected. If zero, 10 is used (Envoy's
	// default). Range 1–100.
	MaxEjectedPercent int
}

// normalize fills defaults and validates cfg.
func (cfg Config) normalize() (Config, error) {
	if cfg.Probe == nil && (cfg.Kind < KindTCP || cfg.Kind > KindUDP) {
		return cfg, configErr("Kind", int(cfg.Kind), "unknown; want KindTCP, KindHTTP or KindUDP")
	}
	if cfg.Port != 0 && (cfg.Port < 1 || cfg.Port > 65535) {
		return cfg, configErr("Port", cfg.Port, "out of range 1–65535")
	}
	if err := durationField("Interval", &cfg.Interval, defaultInterval, minInterval); err != nil {
		return cfg, err
	}
	if err := durationField("Timeout", &cfg.Timeout, defaultTimeout, 1); err != nil {
		return cfg, err
	}
	if cfg.Probe == nil && cfg.Kind == KindUDP && cfg.Timeout < cfg.Interval {
		cfg.Timeout = cfg.Interval
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"HealthyThreshold", &cfg.HealthyThreshold, defaultThreshold},
		{"UnhealthyThreshold", &cfg.UnhealthyThreshold, defaultThreshold},
		{"Concurrency", &cfg.Concurrency, defaultConcurrency},
	} {
		if err := intField(f.name, f.v, f.def, 1, math.MaxInt); err != nil {
			return cfg, err
		}
	}
	if cfg.Probe == nil && cfg.Kind == KindHTTP {
		if err := cfg.normalizeHTTP(); err != nil {
			return cfg, err
		}
	}
	if cfg.Probe == nil && cfg.Kind == KindUDP {
		for _, f := range []struct{ name, v string }{{"Request", cfg.Request}, {"Response", cfg.Response}} {
			if f.v == "" {
				return cfg, configErr(f.name, f.v, "required for KindUDP")
			}
			if len(f.v) > maxUDPPayload {
				return cfg, configErr(f.name, f.v, "longer than 1024 bytes")
			}
		}
	}
	if err := cfg.Passive.normalize(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func (cfg *Config) normalizeHTTP() error {
	if cfg.Method == "" {
		cfg.Method = http.MethodHead
	}
	m, err := ParseMethod(cfg.Method)
	if err != nil {
		return err
	}
	cfg.Method = m
	if cfg.URI == "" {
		cfg.URI = "/"
	}
	if _, err := ParseURI(cfg.URI); err != nil {
		return err
	}
	if cfg.Codes == 0 {
		cfg.Codes = Status2xx
	}
	if cfg.Codes > Status2xx|Status3xx|Status4xx|Status5xx {
		return configErr("Codes", int(cfg.Codes), "unknown status class bits")
	}
	return checkDomain(cfg.Domain)
}

func checkDomain(d string) error {
	if len(d) > maxDomainLen {
		return configErr("Domain", d, "longer than 253 bytes")
	}
	host, port, hasPort := strings.Cut(d, ":")
	if hasPort {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || port[0] == '+' {
			return configErr("Domain", d, "port out of range 1–65535")
		}
		if host == "" {
			return configErr("Domain", d, "empty host")
		}
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return configErr("Domain", d, "want letters, digits, '-' and '.'")
		}
	}
	return nil
}

func (p *Passive) normalize() error {
	if p.Failures == 0 {
		return nil
	}
	if p.Failures < 0 {
		return configErr("Passive.Failures", p.Failures, "negative (0 = off)")
	}
	if err := durationField("Passive.EjectTime", &p.EjectTime, 30*time.Second, 1); err != nil {
		return err
	}
	if err := durationField("Passive.MaxEjectTime", &p.MaxEjectTime, max(300*time.Second, p.EjectTime), p.EjectTime); err != nil {
		return err
	}
	return intField("Passive.MaxEjectedPercent", &p.MaxEjectedPercent, 10, 1, 100)
}

// durationField fills a zero *v with def and refuses a value below lo.
func durationField(name string, v *time.Duration, def, lo time.Duration) error {
	if *v == 0 {
		*v = def
	}
	if *v < lo {
		reason := "below " + lo.String()
		if lo <= 1 {
			reason = "negative"
		}
		return configErr(name, durValue(*v), reason)
	}
	return nil
}

// intField fills a zero *v with def and refuses a value outside lo–hi;
// hi math.MaxInt means no upper bound.
func intField(name string, v *int, def, lo, hi int) error {
	if *v == 0 {
		*v = def
	}
	switch {
	case hi == math.MaxInt && *v < lo:
		return configErr(name, *v, "negative")
	case *v < lo || *v > hi:
		return configErr(name, *v, "out of range "+strconv.Itoa(lo)+"–"+strconv.Itoa(hi))
	}
	return nil
}

// durValue formats a refused duration unquoted in a ConfigError
// ("Interval 500ms"), where a fmt.Stringer would be quoted.
type durValue time.Duration

func (d durValue) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, time.Duration(d).String()) }
