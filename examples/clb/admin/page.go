package admin

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"strconv"
	"time"
)

// The page is rendered twice from the same Status: here by html/template
// for the first load (and for clients without JavaScript), then by
// page.js from /status.json on every refresh. The two must lay out the
// same elements: section.listener[data-listener], dl.counters,
// table.backends with tr.backend[data-backend] rows whose td.health cell
// reads healthy, unhealthy or "not in group". The buttons of a logged-in
// page (td.actions, button.act) are drawn by page.js alone: without
// script they could not send the CSRF header.

var (
	//go:embed page.html
	pageHTML string
	//go:embed page.css
	pageCSS string
	//go:embed page.js
	pageJS string

	pageStyle  = template.CSS(pageCSS)
	pageScript = template.JS(pageJS)

	// pageCSP allows the page's own inline script and style (by hash),
	// fetches to its own origin and its logout form, nothing else.
	pageCSP = "default-src 'none'; connect-src 'self'; img-src data:; " +
		"style-src " + cspHash(pageCSS) + "; script-src " + cspHash(pageJS) + "; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

	pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
		"clock":       clock,
		"counters":    counters,
		"columns":     columns,
		"cells":       cells,
		"configLine":  configLine,
		"processLine": processLine,
	}).Parse(pageHTML))
)

func cspHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
}

type pageData struct {
	Status    Status
	RefreshMS int64
	Style     template.CSS
	Script    template.JS
	// Login is whether there is a runtime API to log in to; Who and
	// CSRF are the session's when logged in.
	Login     bool
	Who, CSRF string
}

func clock(t time.Time) string { return t.Format("15:04:05") }

// configLine is configLine() in page.js.
func configLine(c ConfigStatus) string {
	s := fmt.Sprintf("Config %s · revision %d · ", c.Source, c.Revision)
	if c.Connected {
		s += "connected"
	} else {
		s += "disconnected since " + clock(c.Since)
	}
	if c.Seen > c.Revision {
		s += fmt.Sprintf(" · revision %d refused", c.Seen)
	}
	if c.Error != "" {
		s += " · last error " + clock(c.ErrorTime) + ": " + c.Error
	}
	return s
}

// stamp is stamp() in page.js: a date and time in UTC, for times that
// may be days old.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" }

// processLine is processLine() in page.js.
func processLine(p ProcessStatus) string {
	s := fmt.Sprintf("Process %d · generation %d · started %s · config version ", p.PID, p.Generation, stamp(p.Started))
	if p.ConfigVersion == "" {
		return s + "none"
	}
	s += p.ConfigVersion
	if !p.ConfigApplied.IsZero() {
		s += " applied " + stamp(p.ConfigApplied)
	}
	return s
}

var byteUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}

// humanBytes is bytes() in page.js.
func humanBytes(n uint64) string {
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	f, i := float64(n), 0
	for f >= 1024 && i < len(byteUnits)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", f, byteUnits[i])
}

// latency is latency() in page.js.
func latency(ms float64) string {
	if ms == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", ms)
}

type counter struct{ Name, Value string }

// counters is counters() in page.js.
func counters(l ListenerStatus) []counter {
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	bw := "uncapped"
	if l.Bandwidth > 0 {
		bw = strconv.Itoa(l.Bandwidth) + " Mbps"
	}
	cs := []counter{
		{"Active", strconv.FormatInt(l.Active, 10)},
		{"Total", u(l.New)},
		{"Bytes in", humanBytes(l.BytesIn)},
		{"Bytes out", humanBytes(l.BytesOut)},
		{"Bandwidth", bw},
		{"Refused by ACL", u(l.RefusedACL)},
		{"Connect failures", u(l.ConnectFailures)},
		{"No backend", u(l.NoBackend)},
		{"Dropped", u(l.Dropped)},
		{"Drained", u(l.Drained)},
		{"Idle resets", u(l.IdleResets)},
	}
	if r := l.Requests; r != nil {
		cs = append(cs,
			counter{"1xx", u(r.Info)}, counter{"2xx", u(r.Success)}, counter{"3xx", u(r.Redirect)},
			counter{"4xx", u(r.ClientError)}, counter{"5xx", u(r.ServerError)},
			counter{"Upstream latency", latency(l.UpstreamLatencyMS)})
	}
	return cs
}

// columns is columns() in page.js.
func columns(l ListenerStatus) []string {
	cols := []string{"Backend", "Address", "Weight", "Health", "Active", "Total", "Bytes in", "Bytes out", "Connect failures"}
	if l.Requests != nil {
		cols = append(cols, "1xx", "2xx", "3xx", "4xx", "5xx", "Upstream")
	}
	return cols
}

type cell struct{ Text, Class string }

// cells is cells() in page.js: one backend row under columns.
func cells(b BackendStatus, web *Classes) []cell {
	u := func(n uint64) cell { return cell{Text: strconv.FormatUint(n, 10), Class: "num"} }
	weight, health := cell{"–", "weight"}, cell{"not in group", "health gone"}
	if b.Member {
		weight.Text = strconv.Itoa(b.Weight)
		if b.State != "" && b.State != "ready" {
			weight.Text += " " + b.State
		}
		if b.Standby {
			weight.Text += " standby"
		}
		health = cell{"unhealthy", "health bad"}
		if b.Healthy {
			health = cell{"healthy", "health ok"}
		}
	}
	cs := []cell{
		{b.ID, "id"}, {b.Addr, "addr"}, weight, health,
		{strconv.FormatInt(b.Active, 10), "num"}, u(b.New),
		{humanBytes(b.BytesIn), "num"}, {humanBytes(b.BytesOut), "num"}, u(b.ConnectFailures),
	}
	if web != nil {
		r := b.Requests
		if r == nil {
			r = &Classes{}
		}
		cs = append(cs, u(r.Info), u(r.Success), u(r.Redirect), u(r.ClientError), u(r.ServerError),
			cell{latency(b.UpstreamLatencyMS), "num"})
	}
	return cs
}
