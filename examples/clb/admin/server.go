package admin

import (
	"bytes"
	"encoding/json"
	"log/slog"
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
	// Now stamps Status.Time. If nil, time.Now.
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
	// other than loopback. If nil, every write is refused (403).
	Tokens *Tokens
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
// Writes need "Authorization: Bearer <token>" with one of
// Options.Tokens; with none configured they are refused (403). Reads are
// open to requests that reached the server on a loopback address and
// need a token elsewhere. A refusal is 401 (no or a bad token, with
// WWW-Authenticate) or 403, with a one-line body, counted in
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
}

// New returns the admin handler of inst, which must not be nil.
func New(inst *listener.Instance, opts Options) *Server {
	s := &Server{inst: inst, refresh: opts.Refresh, now: opts.Now, config: opts.Config, disc: opts.Discovery, rt: opts.Runtime, tokens: opts.Tokens, audit: opts.Audit, proc: opts.Process, mux: http.NewServeMux()}
	if s.audit == nil {
		s.audit = slog.New(slog.DiscardHandler)
	}
	s.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clb_admin_refused_total", Help: "Admin requests refused, by reason: missing_token, bad_token (401), no_tokens (403)."}, []string{"reason"})
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
	}
	return s
}

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
	if err := pageTmpl.Execute(&buf, pageData{Status: s.Status(), RefreshMS: s.refresh.Milliseconds(), Script: pageScript, Style: pageStyle}); err != nil {
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
