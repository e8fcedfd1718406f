package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ConfigError reports a refused configuration value: the field, the value
// and the reason, with the bound where there is one. Every package of lbkit
// uses this same type, so one errors.As serves them all.
type ConfigError = cfgerr.Error

func configErr(field string, value any, reason string) error {
	return cfgerr.New("health", field, value, reason)
}

// ErrStopped is returned by Start once the Checker has been stopped: a
// stopped Checker stays stopped.
var ErrStopped = errors.New("health: checker stopped")

// StatusError is the failure of an HTTP probe whose response status is not
// in the expected classes.
type StatusError struct {
	Code int           // the status code received
	Want StatusClasses // the classes that would have passed
}

// Error formats as "health: status 500, want http_2xx".
func (e *StatusError) Error() string {
	return fmt.Sprintf("health: status %d, want %s", e.Code, e.Want)
}

// ResponseError is the failure of a UDP probe whose reply does not contain
// the expected response.
type ResponseError struct {
	Got  string // the reply received, cut to 64 bytes
	Want string // the expected response
}

// Error formats as `health: wrong response "xyz", want "pong"`.
func (e *ResponseError) Error() string {
	return fmt.Sprintf("health: wrong response %q, want %q", e.Got, e.Want)
}

// reason names a probe failure briefly for events and logs: "timeout",
// "connection refused", "status 500", `wrong response "xyz"`, or the
// error's own text.
func reason(err error) string {
	var se *StatusError
	var re *ResponseError
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &se):
		return "status " + strconv.Itoa(se.Code)
	case errors.As(err, &re):
		return "wrong response " + strconv.Quote(re.Got)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}
