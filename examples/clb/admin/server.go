package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lbkit/lbkit/listener"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultRefresh is how often the status page reloads its data unless
// Options.Refresh says otherwise.
const DefaultRefresh = 2 * time.Second

// Options configures a Server. The zero value serves the page refreshing
// every 2 s and only lbkit's own metrics.
type Options struct {
	// Refresh is how often the page fetches /status.json and redraws
	// itself. If zero or negative, 2 s is used.
	Refresh time.Duration
	// RuntimeMetrics adds the Go runtime and process collectors of
	// client_golang (go_*, process_*) to /metrics.
	RuntimeMetrics bool
	// Now stamps Status.Time and times the logins (SessionTTL, the
	// failed-login limit). If nil, time.Now.
	Now func() time.Time
	// Config reports where the configuration comes from (an etcd
	// replica's source), for Status.Config and the clb_config_*
	// metrics. If nil, neither is served.
	Config func() ConfigStatus
	// Discovery reports the DNS sources feeding server groups, for
	// Status.Discovery and the clb_discovery_* metrics. If nil, neither
	// is served.
	Discovery func() []DiscoveryStatus
	// Runtime, if set, serves the runtime API under /api/ (see Server).
	Runtime Runtime
	// Tokens are the bearer tokens writes need, and reads on an address
	// other than loopback. If nil, every write is refused (403) but
	// those of a verified client certificate.
	Tokens *Tokens
	// TLS, if set, makes Serve speak HTTPS with it (LoadTLS builds it
	// from PEM files). A client certificate its ClientCAs verify is a
	// credential, as a token is.
	TLS *tls.Config
	// Audit logs one line for every change and every refusal. If nil,
	// they are not logged (refusals are still counted).
	Audit *slog.Logger
	// Process reports which process serves and the version of the
	// configuration it runs, for Status.Process and the clb_config_info,
	// clb_process_start_time_seconds and clb_upgrade_generation metrics.
	// If nil, neither is served.
	Process func() ProcessStatus
}

// Server is the admin HTTP handler of one instance:
//
//	GET /             the status page (HTML, redraws itself from /status.json)
//	GET /status.json  the Status document
//	GET /metrics      Prometheus metrics (see NewCollector)
//
// and, with Options.Runtime, the runtime API (JSON bodies; each answers
// the Change made, as JSON, or a one-line error):
//
//	POST /api/listeners/{listener}/backends/{backend}/weight  {"weight": N}
//	POST /api/listeners/{listener}/backends/{backend}/state   {"state": "ready"|"drain"|"maint"}
//	POST /api/listeners/{listener}/stop
//	POST /api/listeners/{listener}/start
//	GET  /api/config  the configuration running (YAML)
//	PUT  /api/config  replace it (YAML or JSON): 400 with every problem, or applied whole
//
// and the login of the status page's buttons:
//
//	GET  /login   the login form
//	POST /login   token=… (or empty, with a verified client certificate): a session cookie, 303 to the page
//	POST /logout  csrf=…: ends the session, 303 to the page
//
// Writes need a credential: "Authorization: Bearer <token>" with one of
// Options.Tokens, or a client certificate verified by Options.TLS (who
// is then "cert:" and its subject's common name), or the session cookie
// of a login (HttpOnly, SameSite=Strict, Secure over TLS; it lasts
// SessionTTL, in this process's memory) together with the session's
// CSRF token in the X-CSRF-Token header, which the page sends. With no
// tokens configured, token writes are refused (403). Reads are open to
// requests that reached the server on a loopback address and need a
// credential elsewhere. A refusal is 401 (no or a bad token, an unknown
// session; with WWW-Authenticate), 403 (no tokens, no CSRF token) or
// 429 (a login from an address after 5 failures, then one allowed every
// 10 s), with a one-line body, counted in
// clb_admin_refused_total{reason}. No GET changes anything.
//
// Paths are matched exactly; the page refers to status.json relatively, so
// the Server also works under a prefix ending in a slash:
//
//	mux.Handle("/admin/", http.StripPrefix("/admin", admin.New(inst, admin.Options{})))
//
// Every response is computed from the instance when requested; the
// Server counts only its refusals. Serve it on a loopback or otherwise
// private address: its reads reveal backend addresses.
//
// Create one with New. A Server is safe for concurrent use.
type Server struct {
	inst    *listener.Instance
	refresh time.Duration
	now     func() time.Time
	config  func() ConfigStatus
	disc    func() []DiscoveryStatus
	rt      Runtime
	tokens  *Tokens
	audit   *slog.Logger
	refused *prometheus.CounterVec
	proc    func() ProcessStatus
	mux     *http.ServeMux
	sess    sessions
	hs      *http.Server // for Serve
}

// New returns the admin handler of inst, which must not be nil.
func New(inst *listener.Instance, opts Options) *Server {
	s := &Server{inst: inst, refresh: opts.Refresh, now: opts.Now, config: opts.Config, disc: opts.Discovery, rt: opts.Runtime, tokens: opts.Tokens, audit: opts.Audit, proc: opts.Process, mux: http.NewServeMux()}
	if s.audit == nil {
		s.audit = slog.New(slog.DiscardHandler)
	}
	// ErrorLog: a failed TLS handshake (a client certificate of another
	// CA) is a refusal, so it goes to the audit log.
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, TLSConfig: opts.TLS,
		ErrorLog: slog.NewLogLogger(s.audit.Handler(), slog.LevelWarn)}
	s.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clb_admin_refused_total", Help: "Admin requests refused, by reason: missing_token, bad_token, bad_session (401), no_tokens, csrf (403), rate_limited (429)."}, []string{"reason"})
	for _, r := range refusalReasons {
		s.refused.WithLabelValues(r)
	}
	if s.refresh <= 0 {
		s.refresh = DefaultRefresh
	}
	if s.now == nil {
		s.now = time.Now
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(inst), s.refused)
	if s.config != nil {
		reg.MustRegister(newConfigCollector(s.config))
	}
	if s.disc != nil {
		reg.MustRegister(newDiscoveryCollector(s.disc))
	}
	if s.proc != nil {
		reg.MustRegister(newProcessCollector(s.proc))
	}
	if opts.RuntimeMetrics {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.mux.HandleFunc("GET /{$}", s.read(s.page))
	s.mux.HandleFunc("GET /status.json", s.read(s.json))
	s.mux.HandleFunc("GET /metrics", s.read(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP))
	if s.rt != nil {
		s.routeAPI()
		s.routeLogin()
	}
	return s
}

// Serve serves s on ln, over TLS with Options.TLS, until Close or
// Shutdown; it always returns a non-nil error, http.ErrServerClosed after
// those. ln may be inherited from another process: the TLS is s's, not
// the socket's. Serve may be called once.
func (s *Server) Serve(ln net.Listener) error {
	if s.hs.TLSConfig != nil {
		return s.hs.ServeTLS(ln, "", "")
	}
	return s.hs.Serve(ln)
}

// Close closes the listener of Serve and every connection at once.
func (s *Server) Close() error { return s.hs.Close() }

// Shutdown stops Serve's listener and waits, until ctx ends, for the
// requests in flight (see http.Server.Shutdown).
func (s *Server) Shutdown(ctx context.Context) error { return s.hs.Shutdown(ctx) }

// Handler returns the admin handler of inst with the default Options; it
// is shorthand for New(inst, Options{}).
func Handler(inst *listener.Instance) http.Handler { return New(inst, Options{}) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Status returns a snapshot of the instance, as /status.json serves it.
func (s *Server) Status() Status {
	st := snapshot(s.inst, s.now())
	if s.config != nil {
		c := s.config()
		st.Config = &c
	}
	if s.disc != nil {
		st.Discovery = s.disc()
	}
	if s.proc != nil {
		p := s.proc()
		st.Process = &p
	}
	return st
}

func (s *Server) json(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(s.Status())
	if err != nil { // cannot happen: Status holds only plain values
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(append(b, '\n'))
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	data := pageData{Status: s.Status(), RefreshMS: s.refresh.Milliseconds(), Script: pageScript, Style: pageStyle, Login: s.rt != nil}
	if sess := s.session(r); sess != nil {
		data.Who, data.CSRF = sess.who, sess.csrf
	}
	if err := pageTmpl.Execute(&buf, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", pageCSP)
	w.Write(buf.Bytes())
}
