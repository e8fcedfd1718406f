package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/lbkit/lbkit/balancer"
)

// Runtime is what the runtime API changes: the application behind the
// admin server implements it. Each method makes one change, serialized
// with the application's other changes (reloads), and returns what it
// changed for the audit line. Errors wrap ErrNotFound, ErrInvalid or
// ErrConflict to choose the response's status (404, 400, 409; any other
// error is a 500).
type Runtime interface {
	// SetWeight sets a backend's CLB weight in every group of the
	// listener it belongs to (0 drains, as in a configuration file).
	// persist (?persist=1) asks that the change outlast the next reload.
	SetWeight(listener, backend string, weight int, persist bool) (Change, error)
	// SetState sets a backend's administrative state in every group of
	// the listener it belongs to; persist as for SetWeight.
	SetState(listener, backend string, state balancer.State, persist bool) (Change, error)
	// StopListener stops a listener gracefully, until ctx ends.
	StopListener(ctx context.Context, listener string) (Change, error)
	// StartListener starts a stopped listener.
	StartListener(listener string) (Change, error)
	// Config returns the configuration running, as YAML.
	Config() ([]byte, error)
	// ReplaceConfig validates and applies a whole configuration, all or
	// nothing; persist as for SetWeight.
	ReplaceConfig(data []byte, persist bool) (Change, error)
}

// Upgrader is what POST /api/upgrade calls: a Runtime that also
// implements it can replace its own process by a new one (a binary
// upgrade). Upgrade returns once the new process serves, after which
// this one retires; an error means this one keeps serving.
type Upgrader interface {
	Upgrade(ctx context.Context) (Change, error)
}

// Change is what a runtime API call changed, as the audit line tells it.
type Change struct {
	What   string `json:"what"`
	Before string `json:"before"`
	After  string `json:"after"`
}

// Errors a Runtime wraps to choose the response's status.
var (
	ErrNotFound = errors.New("admin: not found")       // 404: no such listener or backend
	ErrInvalid  = errors.New("admin: invalid request") // 400: a bad value or configuration
	ErrConflict = errors.New("admin: conflict")        // 409: the state forbids it (a port taken)
)

// maxConfigBytes bounds a PUT /api/config body.
const maxConfigBytes = 4 << 20

// routeAPI adds the runtime API's routes to the mux.
func (s *Server) routeAPI() {
	s.mux.HandleFunc("POST /api/listeners/{listener}/backends/{backend}/weight", s.write(func(r *http.Request) (Change, error) {
		var body struct{ Weight *int }
		if err := decodeBody(r, &body); err != nil {
			return Change{}, err
		}
		if body.Weight == nil {
			return Change{}, fmt.Errorf("%w: want {\"weight\": N}", ErrInvalid)
		}
		persist, err := persistParam(r)
		if err != nil {
			return Change{}, err
		}
		return s.rt.SetWeight(r.PathValue("listener"), r.PathValue("backend"), *body.Weight, persist)
	}))
	s.mux.HandleFunc("POST /api/listeners/{listener}/backends/{backend}/state", s.write(func(r *http.Request) (Change, error) {
		var body struct{ State string }
		if err := decodeBody(r, &body); err != nil {
			return Change{}, err
		}
		st, ok := parseState(body.State)
		if !ok {
			return Change{}, fmt.Errorf("%w: state %q: want ready, drain or maint", ErrInvalid, body.State)
		}
		persist, err := persistParam(r)
		if err != nil {
			return Change{}, err
		}
		return s.rt.SetState(r.PathValue("listener"), r.PathValue("backend"), st, persist)
	}))
	s.mux.HandleFunc("POST /api/listeners/{listener}/stop", s.write(func(r *http.Request) (Change, error) {
		return s.rt.StopListener(r.Context(), r.PathValue("listener"))
	}))
	s.mux.HandleFunc("POST /api/listeners/{listener}/start", s.write(func(r *http.Request) (Change, error) {
		return s.rt.StartListener(r.PathValue("listener"))
	}))
	s.mux.HandleFunc("PUT /api/config", s.write(func(r *http.Request) (Change, error) {
		data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxConfigBytes))
		if err != nil {
			return Change{}, fmt.Errorf("%w: body: %w", ErrInvalid, err)
		}
		persist, err := persistParam(r)
		if err != nil {
			return Change{}, err
		}
		return s.rt.ReplaceConfig(data, persist)
	}))
	if u, ok := s.rt.(Upgrader); ok {
		s.mux.HandleFunc("POST /api/upgrade", s.write(func(r *http.Request) (Change, error) {
			return u.Upgrade(r.Context())
		}))
	}
	s.mux.HandleFunc("GET /api/config", s.read(func(w http.ResponseWriter, r *http.Request) {
		b, err := s.rt.Config()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/yaml")
		h.Set("Cache-Control", "no-store")
		w.Write(b)
	}))
}

// persistParam reads the persist query parameter: 1 or true asks that
// a change outlast the next reload; absent, 0 or false, not.
func persistParam(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("persist")
	if v == "" {
		return false, nil
	}
	p, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: persist %q: want 1 or 0", ErrInvalid, v)
	}
	return p, nil
}

// parseState reads a state by the name balancer.State.String gives it.
func parseState(name string) (balancer.State, bool) {
	for _, st := range []balancer.State{balancer.Ready, balancer.Drain, balancer.Maint} {
		if st.String() == name {
			return st, true
		}
	}
	return 0, false
}

// decodeBody decodes r's JSON body into v, refusing unknown fields.
func decodeBody(r *http.Request, v any) error {
	d := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %w", ErrInvalid, err)
	}
	return nil
}

// read wraps a read handler with authentication.
func (s *Server) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.authorize(w, r, false); ok {
			h(w, r)
		}
	}
}

// write wraps a change with authentication, the audit line and the
// response: the Change as JSON, or the error with its status.
func (s *Server) write(change func(r *http.Request) (Change, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, ok := s.authorize(w, r, true)
		if !ok {
			return
		}
		c, err := change(r)
		if err != nil {
			code := http.StatusInternalServerError
			switch {
			case errors.Is(err, ErrNotFound):
				code = http.StatusNotFound
			case errors.Is(err, ErrInvalid):
				code = http.StatusBadRequest
			case errors.Is(err, ErrConflict):
				code = http.StatusConflict
			}
			s.audit.Warn("admin change refused", "who", who, "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "err", err.Error())
			http.Error(w, strings.TrimRight(err.Error(), "\n"), code)
			return
		}
		s.audit.Info("admin change", "who", who, "remote", r.RemoteAddr, "what", c.What, "before", c.Before, "after", c.After)
		b, _ := json.Marshal(c) // cannot fail: three strings
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(b, '\n'))
	}
}
