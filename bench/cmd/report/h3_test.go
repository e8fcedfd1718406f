package main

import "testing"

func TestParseH3load(t *testing.T) {
	out := `url: https://127.0.0.1:19643/1k
connections: 16
streams: 16
seconds: 5.000
requests: 100
req_per_s: 20.0
bytes: 102400
errors: 3
errors_status: 1
errors_timeout: 0
errors_stream: 2
errors_conn: 0
errors_other: 0
latency_p50_ms: 1.500
latency_p90_ms: 2.000
latency_p99_ms: 4.250
latency_max_ms: 9.000
`
	s, err := parseH3load(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Sample{Rate: 20, P50: 1.5, P99: 4.25, Failed: 3}); s != want {
		t.Errorf("parseH3load = %+v, want %+v", s, want)
	}
	if _, err := parseH3load("h3load: no request succeeded\n"); err == nil {
		t.Errorf("parseH3load(no figures) = nil error, want one")
	}
}
