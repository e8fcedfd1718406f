package listener

import (
	"bufio"
	"bytes"
	"context"
	"go/build"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestH2Spec runs h2spec, the HTTP/2 conformance suite, against an HTTPS
// listener and against Go's own net/http server: the listener must pass
// every case Go's server passes, twice in a row (a request limit of 100
// once made 5.1.2, which opens 251 streams, fail now and then). The
// cases Go's server fails are logged; with Go 1.26 and h2spec 2.2.1 they
// are four: 4.2/3 (a HEADERS frame over SETTINGS_MAX_FRAME_SIZE), 6.5.3/1
// (multiple SETTINGS_INITIAL_WINDOW_SIZE values), 8.1.2.2/1 and /2
// (connection-specific header fields, TE other than "trailers").
//
// Each case runs as its own h2spec process, several at once: the
// suite's cases mostly wait (for a close, or for h2spec's 2 s timeout),
// so this takes seconds instead of half a minute. It needs the h2spec
// binary (on PATH or in $GOPATH/bin; .ci/run installs it) and skips
// without it, unless CI=true.
func TestH2Spec(t *testing.T) {
	bin := h2specBinary(t)
	cases := h2specCases(t, bin)
	leaks(t)
	echo := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}
	ref := httptest.NewUnstartedServer(http.HandlerFunc(echo))
	ref.EnableHTTP2 = true
	ref.Config.ErrorLog = log.New(io.Discard, "", 0) // h2spec's protocol errors, on purpose
	ref.StartTLS()
	defer ref.Close()
	ca := newCA(t, "ca")
	l := addHTTPS(t, ca, HTTPOptions{}, startHTTPBackend(t, "b", echo))

	var goServer, first map[string]string
	var wg sync.WaitGroup
	wg.Go(func() { goServer = runH2Spec(bin, ref.Listener.Addr().(*net.TCPAddr).Port, cases) })
	wg.Go(func() { first = runH2Spec(bin, l.cfg.Port, cases) })
	wg.Wait()
	var goFails []string
	for _, c := range cases {
		if _, failed := goServer[c.id]; failed {
			goFails = append(goFails, c.id+" ("+c.desc+")")
		}
	}
	t.Logf("Go's net/http server fails %d of %d h2spec cases: %s", len(goFails), len(cases), strings.Join(goFails, "; "))
	// The cases to compare run once more, 5.1.2/1 twenty times: with
	// 251 streams on one connection it failed about once in thirty runs
	// when HTTP/2 connections were closed after 100 requests.
	var again []h2specCase
	for _, c := range cases {
		if _, failed := goServer[c.id]; !failed {
			again = append(again, c)
		}
		if c.id == "http2/5.1.2/1" {
			again = append(again, slices.Repeat([]h2specCase{c}, 19)...)
		}
	}
	for run, got := range []map[string]string{first, runH2Spec(bin, l.cfg.Port, again)} {
		for _, c := range cases {
			_, goFailed := goServer[c.id]
			out, failed := got[c.id]
			if failed && !goFailed && (strings.Contains(out, "Timeout") || strings.Contains(out, lateSettingsAck)) {
				// Sixteen h2spec processes at once can starve a
				// listener under -race past h2spec's 2 s wait, or
				// past its handshake, whose SETTINGS ACK then comes
				// where the case wants its answer: such a failure
				// counts only if the case also fails run alone with
				// 10 s.
				if again := runH2SpecCase(bin, l.cfg.Port, c, 10); again == "" {
					t.Logf("run %d: h2spec %s timed out under load and passed alone", run+1, c.id)
					continue
				} else {
					out = again
				}
			}
			if failed && !goFailed {
				t.Errorf("run %d: the listener fails h2spec %s (%s), which Go's server passes:\n%s", run+1, c.id, c.desc, out)
			}
		}
	}
}

// lateSettingsAck is how h2spec shows a SETTINGS ACK that came after its
// handshake gave up waiting for it, in place of the frame a case expects.
const lateSettingsAck = "Actual: SETTINGS Frame (length:0, flags:0x01, stream_id:0)"

// h2specBinary finds h2spec on PATH or in $GOPATH/bin; without it the
// test skips, or fails under CI=true.
func h2specBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "h2spec")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	const msg = "h2spec is neither on PATH nor in $GOPATH/bin; install it with go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// An h2specCase is one case of the suite: its ID, as h2spec takes it on
// the command line ("http2/5.1.2/1"), and what it does.
type h2specCase struct{ id, desc string }

var (
	h2specSection = regexp.MustCompile(`^\s+([0-9.]+)\. `)
	h2specCaseRe  = regexp.MustCompile(`^\s+([0-9]+): (.*)$`)
)

// h2specCases lists the suite's cases (strict ones excluded, as in a
// plain run) from h2spec --dryrun: root titles, numbered sections, then
// numbered cases.
func h2specCases(t *testing.T, bin string) []h2specCase {
	t.Helper()
	out, err := exec.Command(bin, "--dryrun").Output()
	if err != nil {
		t.Fatalf("h2spec --dryrun: %v", err)
	}
	roots := map[string]string{"Generic tests": "generic", "Hypertext Transfer Protocol": "http2", "HPACK": "hpack"}
	var cases []h2specCase
	root, section := "", ""
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		line := sc.Text()
		if m := h2specCaseRe.FindStringSubmatch(line); m != nil {
			if root == "" || section == "" {
				t.Fatalf("h2spec --dryrun: case %q outside a section", line)
			}
			cases = append(cases, h2specCase{root + "/" + section + "/" + m[1], m[2]})
			continue
		}
		if m := h2specSection.FindStringSubmatch(line); m != nil {
			section = m[1]
			continue
		}
		if line != "" && line[0] != ' ' {
			root, section = "", ""
			for title, key := range roots {
				if strings.HasPrefix(line, title) {
					root = key
				}
			}
			if root == "" {
				t.Fatalf("h2spec --dryrun: unknown suite %q", line)
			}
		}
	}
	if len(cases) < 100 {
		t.Fatalf("h2spec --dryrun lists %d cases, want the suite's 145 or so:\n%s", len(cases), out)
	}
	return cases
}

// h2specOK is the summary of a run of one case that passed or was
// skipped (h2spec skips what the server's answers give it no way to
// test, such as 6.9.2/2 with a small response).
var h2specOK = regexp.MustCompile(`\b1 tests, [01] passed, [01] skipped, 0 failed`)

// runH2Spec runs each case against 127.0.0.1:port over TLS, 8 at a
// time, and returns the failed ones' IDs with h2spec's output (of one
// failed run, for a case listed more than once).
func runH2Spec(bin string, port int, cases []h2specCase) map[string]string {
	var (
		mu     sync.Mutex
		failed = map[string]string{}
		wg     sync.WaitGroup
		slots  = make(chan struct{}, 8)
	)
	for _, c := range cases {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if out := runH2SpecCase(bin, port, c, 2); out != "" {
				mu.Lock()
				failed[c.id] = out
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// runH2SpecCase runs one case with h2spec waiting at most wait seconds
// for each answer, and returns h2spec's output if the case failed, ""
// if it passed or was skipped.
func runH2SpecCase(bin string, port int, c h2specCase, wait int) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-t", "-k", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-o", strconv.Itoa(wait), c.id).CombinedOutput()
	if err != nil || !h2specOK.Match(out) {
		return string(out)
	}
	return ""
}
