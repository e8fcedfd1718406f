package admin_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/examples/clb/admin"
)

// chromiumPath is where Debian's chromium package installs the browser;
// .ci/run installs it.
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium for t and returns its context, which
// ends when the test does or after a minute. Without Chromium it skips t,
// or fails it under CI=true.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but no browser at %s (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("skipping the browser test: no Chromium at %s (apt-get install chromium, or run with CI=true to make this a failure)", chromiumPath)
	}
	// The whole browser lives under this deadline; each step below has its
	// own, shorter one.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
	)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		chromedp.Cancel(cctx) // closes the browser gracefully and waits
		bcancel()
	})
	// The first Run starts the browser.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return bctx
}

// step runs a with a 15 s timeout.
func step[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// rowsJS reads the backend rows the page shows: listener/backend to the
// text of the health cell.
const rowsJS = `(() => {
  const rows = {};
  for (const tr of document.querySelectorAll("section.listener tr.backend")) {
    rows[tr.closest("section").dataset.listener + "/" + tr.dataset.backend] = tr.querySelector("td.health").textContent;
  }
  return rows;
})()`

func TestPageInBrowser(t *testing.T) {
	leaks(t)
	ctx := browser(t)
	f := newFixture(t)
	f.traffic(t, 2)
	proc := admin.ProcessStatus{PID: 7, Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Generation: 1, ConfigVersion: "0123456789ab"}
	srv := serve(t, admin.New(f.inst, admin.Options{Refresh: 200 * time.Millisecond, Process: func() admin.ProcessStatus { return proc }}))

	step(t, ctx, "loading the page", chromedp.Navigate(srv.URL+"/"))
	// renders counts the script's redraws from status.json; the first
	// comes at once.
	step(t, ctx, "waiting for the script's first redraw", chromedp.Poll[chromedp.Void](`Number(document.body.dataset.renders) >= 1`, chromedp.WithPollingTimeout(10*time.Second)))

	rows := step(t, ctx, "reading backend rows", chromedp.Evaluate[map[string]string](rowsJS))
	want := map[string]string{"tcp-echo/a": "healthy", "tcp-echo/b": "healthy", "web/w1": "healthy", "web/w2": "healthy"}
	if len(rows) != len(want) {
		t.Errorf("backend rows = %v, want %v", rows, want)
	}
	for k, v := range want {
		if rows[k] != v {
			t.Errorf("row %s health = %q, want %q (rows %v)", k, rows[k], v, rows)
		}
	}
	if up := step(t, ctx, "reading #updated", chromedp.Text(chromedp.ID("updated"))); up == "" || up[:5] != "as of" {
		t.Errorf("#updated = %q, want \"as of …\"", up)
	}

	// page.js draws the process line as page.go does.
	if line, want := step(t, ctx, "reading #process", chromedp.Text(chromedp.ID("process"))), "Process 7 · generation 1 · started 2025-01-02 03:04:05 UTC · config version 0123456789ab"; line != want {
		t.Errorf("#process = %q, want %q", line, want)
	}

	if err := f.tcp.Group().SetHealthy("b", false); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "waiting for b to show unhealthy", chromedp.Poll[chromedp.Void](
		`(() => { const td = document.querySelector('section[data-listener="tcp-echo"] tr[data-backend="b"] td.health');
		  return td && td.textContent === "unhealthy" && td.classList.contains("bad"); })()`,
		chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	rows = step(t, ctx, "reading backend rows", chromedp.Evaluate[map[string]string](rowsJS))
	if rows["tcp-echo/a"] != "healthy" || rows["tcp-echo/b"] != "unhealthy" {
		t.Errorf("after SetHealthy(b, false): rows = %v, want a healthy, b unhealthy", rows)
	}

	// The script ran, so the CSP admits it; the style must be admitted too.
	color := step(t, ctx, "reading the style of an unhealthy cell", chromedp.Evaluate[string](
		`getComputedStyle(document.querySelector('tr[data-backend="b"] td.health')).color`))
	if color != "rgb(176, 28, 28)" {
		t.Errorf("unhealthy cell color = %q, want rgb(176, 28, 28) from the inline style", color)
	}
}

// An operator logs in on the page, clicks drain on a backend and stop on
// a listener, and sees both on the page; the changes happened.
func TestButtonsInBrowser(t *testing.T) {
	leaks(t)
	ctx := browser(t)
	f := newFixture(t)
	srv := serve(t, admin.New(f.inst, admin.Options{Refresh: 200 * time.Millisecond, Runtime: groupRuntime{f.inst}, Tokens: opsTokens(t)}))

	step(t, ctx, "loading the page", chromedp.Navigate(srv.URL+"/"))
	step(t, ctx, "waiting for the script's first redraw", chromedp.Poll[chromedp.Void](`Number(document.body.dataset.renders) >= 1`, chromedp.WithPollingTimeout(10*time.Second)))
	if s := step(t, ctx, "reading #session", chromedp.Text(chromedp.ID("session"))); s != "log in to change" {
		t.Errorf("#session before the login = %q, want \"log in to change\"", s)
	}
	if n := step(t, ctx, "counting buttons", chromedp.Evaluate[int](`document.querySelectorAll("button.act").length`)); n != 0 {
		t.Errorf("%d buttons before the login, want none", n)
	}

	step(t, ctx, "following the login link", chromedp.Click(chromedp.CSS(`#session a`)))
	step(t, ctx, "typing the token", chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), opsToken))
	step(t, ctx, "submitting the login", chromedp.Submit(chromedp.CSS(`form#login`)))
	// A query waits through the navigation, where a poll would be cut.
	step(t, ctx, "waiting for the page of the session", chromedp.WaitVisible(chromedp.ID("who")))
	step(t, ctx, "waiting for the page with buttons", chromedp.Poll[chromedp.Void](
		`!!document.querySelector('section[data-listener="tcp-echo"] tr[data-backend="a"] button[data-act="drain"]')`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if who := step(t, ctx, "reading #who", chromedp.Text(chromedp.ID("who"))); who != "ops" {
		t.Errorf("#who = %q, want ops", who)
	}
	if js := step(t, ctx, "reading document.cookie", chromedp.Evaluate[string](`document.cookie`)); js != "" {
		t.Errorf("document.cookie = %q, want the session cookie hidden from script (HttpOnly)", js)
	}

	step(t, ctx, "clicking drain on tcp-echo/a", chromedp.Click(chromedp.CSS(`section[data-listener="tcp-echo"] tr[data-backend="a"] button[data-act="drain"]`)))
	step(t, ctx, "waiting for a to show drain", chromedp.Poll[chromedp.Void](
		`(() => { const td = document.querySelector('section[data-listener="tcp-echo"] tr[data-backend="a"] td.weight');
		  return td && td.textContent === "0 drain"; })()`,
		chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	if note := step(t, ctx, "reading #note", chromedp.Text(chromedp.ID("note"))); note != "tcp-echo a state: → drain" {
		t.Errorf("#note = %q, want the change", note)
	}
	if m, _ := f.tcp.Group().Member("a"); m.State() != balancer.Drain {
		t.Errorf("a is %v after the click, want drain", m.State())
	}

	step(t, ctx, "clicking stop on tcp-echo", chromedp.Click(chromedp.CSS(`section[data-listener="tcp-echo"] h2 button[data-act="stop"]`)))
	step(t, ctx, "waiting for tcp-echo to show stopped", chromedp.Poll[chromedp.Void](
		`(() => { const s = document.querySelector('section[data-listener="tcp-echo"] h2 span.state');
		  return s && s.textContent === "stopped" && !!document.querySelector('section[data-listener="tcp-echo"] h2 button[data-act="start"]'); })()`,
		chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	if st := f.tcp.State(); st.String() != "stopped" {
		t.Errorf("tcp-echo is %v after the click, want stopped", st)
	}
}
