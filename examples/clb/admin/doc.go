// Package admin serves the status page, status document and Prometheus
// metrics of a listener.Instance: the operator's view of the demo load
// balancer in examples/clb (docs/model.md §13, "Operating listeners").
//
// New returns an http.Handler with three routes. / is an HTML page
// listing the instance's listeners (protocol, port, state, bandwidth cap,
// counters, requests by status class for HTTP and HTTPS) and each
// listener's backends (weight, health, connections, bytes, connect
// failures, status classes); a small inline script redraws it from
// /status.json every two seconds, without reloading. /status.json is the
// same data as a Status document. /metrics exposes lbkit_listener_* and
// lbkit_backend_* series in the Prometheus text format from a private
// registry (see NewCollector). Options.Process adds which process serves
// and the version of the configuration it runs (ProcessStatus), so an
// operator can tell which replica runs what.
//
// Everything is read from the listeners' Stats and server groups when a
// route is requested, so serving the admin handler adds nothing to the
// proxy's hot path. The page needs no external assets and works offline;
// its Content-Security-Policy allows only its own inline script and style
// and fetches to its own origin.
//
// Reads are open on loopback; everything else needs a credential: a
// bearer token (Tokens), a client certificate verified by the TLS of
// Server.Serve (LoadTLS), or the session cookie of a login with its CSRF
// token — the page's buttons (drain, maintenance, ready, weight per
// backend; stop and start per listener) appear once logged in and call
// the runtime API. See Server for the routes and the refusals. Bind it to
// loopback (the clb binary does by default) or another private address.
//
// See the package Example for fetching /status.json.
package admin
