package httpproxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"
)

// accessEntry is what the access log says of a request.
type accessEntry struct {
	client                    netip.AddrPort
	method, host, path, proto string
}

// accessLog writes one access-log record, if the access log is on.
func (s *server) accessLog(r *http.Request, status int, n int64, backend string, up time.Duration, start time.Time) {
	if s.c.o.AccessLog == nil {
		return
	}
	client, _ := s.clientOf(r, connOf(r))
	s.logRequest(r.Context(), accessEntry{
		client: client, method: r.Method, host: r.Host, path: r.URL.Path, proto: r.Proto,
	}, status, n, backend, up, start)
}

// logRequest writes one access-log record; the access log is on.
func (s *server) logRequest(ctx context.Context, e accessEntry, status int, n int64, backend string, up time.Duration, start time.Time) {
	client := e.client.String()
	if e.client.Port() == 0 { // from X-Forwarded-For, which has no port
		client = e.client.Addr().String()
	}
	attrs := []slog.Attr{
		slog.String("client", client),
		slog.String("method", e.method),
		slog.String("host", e.host),
		slog.String("path", e.path),
		slog.String("proto", e.proto),
		slog.Int("status", status),
		slog.Int64("bytes", n),
	}
	if backend != "" {
		attrs = append(attrs, slog.String("backend", backend), slog.Duration("upstream", up), slog.Duration("duration", time.Since(start)))
	}
	s.c.o.AccessLog.LogAttrs(ctx, slog.LevelInfo, "http request", attrs...)
}
