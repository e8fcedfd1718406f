package admin_test

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
)

// Options.Process is served in /status.json, on the page (first load) and
// as the clb_config_info, clb_process_start_time_seconds and
// clb_upgrade_generation metrics, read when requested.
func TestProcessStatus(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	ps := admin.ProcessStatus{
		PID:           4242,
		Started:       time.Date(2025, 1, 2, 3, 4, 5, 500_000_000, time.UTC),
		Generation:    2,
		ConfigVersion: "0123456789ab",
		ConfigApplied: time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC),
	}
	var cur atomic.Pointer[admin.ProcessStatus]
	cur.Store(&ps)
	srv := serve(t, admin.New(f.inst, admin.Options{Process: func() admin.ProcessStatus { return *cur.Load() }}))

	_, body := fetch(t, srv.URL+"/status.json")
	var doc struct {
		Process map[string]any `json:"process"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"pid": 4242.0, "started": "2025-01-02T03:04:05.5Z", "generation": 2.0,
		"config_version": "0123456789ab", "config_applied": "2025-01-02T03:04:06Z"}
	for k, v := range want {
		if doc.Process[k] != v {
			t.Errorf("status.json process.%s = %v, want %v (%s)", k, doc.Process[k], v, body)
		}
	}

	_, page := fetch(t, srv.URL+"/")
	if line := `<p id="process">Process 4242 · generation 2 · started 2025-01-02 03:04:05 UTC · config version 0123456789ab applied 2025-01-02 03:04:06 UTC</p>`; !strings.Contains(page, line) {
		t.Errorf("page lacks %s", line)
	}

	_, metrics := fetch(t, srv.URL+"/metrics")
	for _, want := range []string{
		`clb_config_info{version="0123456789ab"} 1`,
		`clb_process_start_time_seconds 1.7357870455e+09`,
		`clb_upgrade_generation 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A reload changes the version the next scrape reports.
	next := ps
	next.ConfigVersion = "ba9876543210"
	cur.Store(&next)
	if _, metrics := fetch(t, srv.URL+"/metrics"); !strings.Contains(metrics, `clb_config_info{version="ba9876543210"} 1`) || strings.Contains(metrics, "0123456789ab") {
		t.Errorf("after the version changed, /metrics has\n%s", metrics)
	}
}

// Without Options.Process there is no process object, line or metric.
func TestProcessStatusOff(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	srv := serve(t, admin.New(f.inst, admin.Options{}))
	if _, body := fetch(t, srv.URL+"/status.json"); strings.Contains(body, `"process"`) {
		t.Errorf("status.json has a process object without Options.Process: %s", body)
	}
	if _, page := fetch(t, srv.URL+"/"); !strings.Contains(page, `<p id="process" hidden></p>`) {
		t.Errorf("page shows a process line without Options.Process")
	}
	_, metrics := fetch(t, srv.URL+"/metrics")
	for _, name := range []string{"clb_config_info", "clb_process_start_time_seconds", "clb_upgrade_generation"} {
		if strings.Contains(metrics, name) {
			t.Errorf("/metrics has %s without Options.Process: %s", name, metrics)
		}
	}
}
