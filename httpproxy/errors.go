package httpproxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/netx"
)

// fail answers with the listener's own small plain-text error.
func (s *server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(msg))}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(code)
	io.WriteString(w, msg)
	s.m.CountStatus(code)
	markCounted(w)
	s.accessLog(r, code, int64(len(msg)), "", 0, time.Time{})
}

func isDialErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// requestFailure classifies a failed attempt to get a response head, for
// both HTTP lanes: a backend that could not be dialed is unreachable; one
// that was silent for the request timeout would only be repeated by
// another; a request that may have reached the backend goes elsewhere
// only if replay says it may.
func requestFailure(err error, replay bool) attempt.Failure {
	switch {
	case isDialErr(err):
		return attempt.Unreachable
	case netx.IsTimeout(err) || !replay:
		return attempt.Final
	}
	return attempt.Retry
}

const msgBadBody = "400 Bad Request: the request body is malformed or cut short\n"

// failure is the answer to a request no backend served, err being the
// attempt loop's: 503 if no backend was available, 504 if one was silent
// for the request timeout, 502 otherwise.
func (s *server) failure(err error) (code int, msg string) {
	switch {
	case err == nil || errors.Is(err, balancer.ErrNoBackend):
		return http.StatusServiceUnavailable, "503 Service Unavailable: no backend available\n"
	case netx.IsTimeout(err):
		return http.StatusGatewayTimeout, "504 Gateway Timeout: the backend did not answer in time\n"
	default:
		return http.StatusBadGateway, "502 Bad Gateway: the backend refused or reset the connection\n"
	}
}

// failWith answers a request no backend served, err being why (nil: no
// backend was available): through Options.ErrorHandler if set, else with
// the proxy's own error.
func (s *server) failWith(w http.ResponseWriter, r *http.Request, err error) {
	if err == nil {
		err = balancer.ErrNoBackend
	}
	eh := s.c.o.ErrorHandler
	if eh == nil {
		code, msg := s.failure(err)
		s.fail(w, r, code, msg)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	eh(sw, r, err)
	code := sw.status
	if code == 0 {
		code = http.StatusOK
	}
	s.m.CountStatus(code)
	markCounted(w)
	s.accessLog(r, code, 0, "", 0, time.Time{})
}
