// Package health checks backend servers, actively by probing them and
// passively from the failures a listener reports, and tells a server group
// which of them may take new traffic (docs/model.md §11).
//
// A Checker probes every target (a backend's ID and address) of one group
// every Config.Interval (default 2s), each target at its own random offset
// within the interval so that probes of many backends do not align, with at
// most Config.Concurrency (default 64) probes in flight. A probe is a TCP
// connect (KindTCP, for TCP listeners), an HTTP request (KindHTTP, for
// TCP, HTTP and HTTPS listeners: HEAD or GET, a Host header, a URI and the
// expected status classes, on a fresh connection, redirects not followed),
// a UDP request with an expected response (KindUDP, for UDP listeners: an
// ICMP port unreachable or silence fails), or any Probe of your own.
//
// Like [HAProxy], a target changes state only after HealthyThreshold
// consecutive passes or UnhealthyThreshold consecutive failures (default 3
// each), so one lost packet does not flap it. Like [Envoy], a new target is
// pending until its first probe, which decides its state on its own: a
// backend added to a followed group gets no traffic before it has passed
// once, yet does not wait for three passes. Config.TrustNew chooses
// HAProxy's assumption instead: new targets start healthy and need three
// failures to go down.
//
// Passive checking follows Envoy's [outlier detection]: a listener reports
// each real connection's outcome (ReportFailure, ReportSuccess), and
// Config.Passive.Failures failures in a row eject the target for a while,
// longer each time it is ejected again.
//
// Every change of health reaches a StatusSetter — the one method
// SetHealthy(id, healthy) of *balancer.Group, which this package does not
// import — and the optional OnChange hook, with the reason ("timeout",
// "connection refused", "status 500", …) and the count of results behind
// it.
//
// # When every backend is unhealthy
//
// A Checker only reports; the group decides. By default a balancer.Group
// fails closed, as HAProxy does: with no healthy member, picks return
// balancer.ErrNoBackend and the listener has nowhere to send new
// connections or requests. With balancer.Config{FailOpen: true} it does what nginx does and
// spreads new traffic over every member of weight > 0, on the reasoning
// that a check failing everywhere is more often wrong than every backend.
// Which to use is the operator's choice; the Checker behaves the same
// either way and keeps probing, so the group recovers as soon as any
// backend passes again.
//
// # Following a group
//
// Follow(g, cfg) makes a Checker for a server group (a *balancer.Group, or
// anything with the small Group interface): it probes the group's members,
// reports their health to the group, and keeps its targets in step with
// the group's membership on its own until Stop. Members in maintenance
// (balancer.Maint) are not probed; draining ones are. While it follows,
// the group gives a member it has no report on — at start, when added, on
// leaving maintenance — no traffic until it passes a probe; Probed tells
// when the first round is done, for a service that reports itself ready.
// Start it, report each backend connection's outcome with ReportFailure or
// ReportSuccess, and Stop it when the listener stops. See the package
// example. New and SetTargets serve checkers that report elsewhere.
//
// [HAProxy]: https://docs.haproxy.org/3.0/configuration.html#5.2-check
// [Envoy]: https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/health_checking
// [outlier detection]: https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier
package health
