package main

import (
	"fmt"
	"strconv"
	"strings"
)

// h3Rows are the h3 suite's rows in table order: run.sh's key, the
// contender and the protocol it measured.
var h3Rows = []struct{ key, name, proto string }{
	{"lbkit.h3", "**lbkit** (examples/clb)", "HTTP/3"},
	{"caddy.h3", "Caddy", "HTTP/3"},
	{"h3proxy.h3", "httputil.ReverseProxy on quic-go's http3.Server", "HTTP/3"},
	{"lbkit.h2", "**lbkit** (examples/clb)", "HTTP/2 (h2load)"},
	{"h3proxy.h2", "httputil.ReverseProxy on net/http", "HTTP/2 (h2load)"},
}

// h3Names are the contenders of the h3 chart panels (key suffix ".h3").
var h3Names = []string{"lbkit", "caddy", "h3proxy"}

// parseH3load reads bench/h3load's output: one "name: value" a line.
func parseH3load(text string) (Sample, error) {
	v := map[string]float64{}
	for _, l := range strings.Split(text, "\n") {
		k, x, ok := strings.Cut(l, ": ")
		if !ok || k == "url" {
			continue
		}
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return Sample{}, fmt.Errorf("%s: %v", k, err)
		}
		v[k] = f
	}
	if _, ok := v["req_per_s"]; !ok {
		return Sample{}, fmt.Errorf("no req_per_s line")
	}
	return Sample{Rate: v["req_per_s"], P50: v["latency_p50_ms"], P99: v["latency_p99_ms"], Failed: int(v["errors"])}, nil
}

// renderH3 writes the h3 suite's section.
func renderH3(w func(string, ...any), r *Results) {
	m, ok := r.Meta["h3"]
	if !ok {
		return
	}
	w("## HTTP/3\n\n")
	w("[`bench/bin/h3load -c 16 -m 16 -d %ss`](bench/h3load) (quic-go's `http3.Transport`, quic-go %s, the library's) after a 1 s warm-up: 16 QUIC connections, 16 requests in flight each, GET /1k, the same backends as the other suites; then HTTP/2 on the same listener with `h2load -c16 -m16` as in the HTTP/2 suite. [h3proxy](bench/h3load/h3proxy) is httputil.ReverseProxy served by quic-go's http3.Server (and net/http for HTTP/2) at the library's quic-go: what HTTP/3 costs with quic-go alone. Caddy is %s, built from bench/go.mod: v2.11.9 does not build with the library's quic-go. p50/p99 are h3load's, per request.\n\n", m["seconds"], m["h3load_quic_go"], m["caddy_h3"])
	cd, _ := r.stat("h3", "caddy.h3")
	w("| proxy | protocol | req/s | spread | ÷ Caddy HTTP/3 | proxy cores | proxy CPU µs/req | p50 ms | p99 ms | failed |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range h3Rows {
		s, ok := r.stat("h3", row.key)
		if !ok {
			continue
		}
		p50, p99 := "—", "—"
		if s.P50 > 0 {
			p50, p99 = f2(s.P50), f2(s.P99)
		}
		w("| %s | %s | %s | %.1f%% | %s | %s | %.1f [%.1f–%.1f] | %s | %s | %d |\n", row.name, row.proto, f0(s.Rate), s.Spread(), ratio(s.Rate, cd.Rate), f2(s.Cores), s.PerOp, s.PerOpMin, s.PerOpMx, p50, p99, s.Failed)
	}
	if _, ok := r.stat("h3", "lbkit.h3"); !ok {
		w("\nclb was not measured: it refused `EnableHttp3` (run.sh says so in its log).\n")
	}
	w("\n")
}

// targetH3 writes the h3 suite's row of the targets table.
func targetH3(w func(string, ...any), r *Results) {
	if _, ok := r.Meta["h3"]; !ok {
		return
	}
	cd, okc := r.stat("h3", "caddy.h3")
	lb, okl := r.stat("h3", "lbkit.h3")
	if !okc || !okl {
		w("| HTTP/3 req/s ≥ 1.0× Caddy's at ≤ its CPU per request | not measured | |\n")
		return
	}
	w("| HTTP/3 req/s ≥ 1.0× Caddy's at ≤ its CPU per request | %s ÷ %s = %s; %.1f µs vs %.1f µs | %s |\n", f0(lb.Rate), f0(cd.Rate), ratio(lb.Rate, cd.Rate), lb.PerOp, cd.PerOp, yes(lb.Rate >= cd.Rate && lb.PerOp <= cd.PerOp))
}
