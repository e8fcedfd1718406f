// Package proctest runs a program under test as a child process: built
// once per test binary, started in a process group of its own so that
// the processes it starts (a binary upgrade's successors, which inherit
// its stdout and stderr) end with the test, its output read line by
// line.
package proctest

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var builds sync.Map // package → *build

type build struct {
	once sync.Once
	path string
	err  error
}

// Build builds the main package pkg (an import path) once per test
// binary and returns the binary's path. The binary lives in the user's
// cache directory, one per package and checkout, not in a temporary
// one: nothing would remove that, and go build leaves an up-to-date
// binary untouched, so a second run costs no link.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &build{})
	b := v.(*build)
	b.once.Do(func() {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		wd, _ := os.Getwd()
		dir = filepath.Join(dir, "lbkit-proctest", fmt.Sprintf("%x", sha256.Sum256([]byte(wd+"\x00"+pkg)))[:12])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, path.Base(pkg))
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Proc is a running program and the lines it and its children write to
// stdout and stderr.
type Proc struct {
	Cmd *exec.Cmd
	// Done receives the first process's exit (its successors are not
	// waited for).
	Done chan error

	lines chan string
	mu    sync.Mutex
	all   strings.Builder
}

// Start runs binary with args. The test's cleanup kills the process
// group — the program and every process it started — and waits until
// all have closed the output.
func Start(t testing.TB, binary string, args ...string) *Proc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: exec.Command(binary, args...), Done: make(chan error, 1), lines: make(chan string, 100000)}
	p.Cmd.Stdout, p.Cmd.Stderr = w, w
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		w.Close()
		r.Close()
		t.Fatal(err)
	}
	w.Close()
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.all.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for so many lines; Output keeps them
			}
		}
		io.Copy(io.Discard, r)
	}()
	go func() { p.Done <- p.Cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-eof
		r.Close()
	})
	return p
}

// WaitLine waits up to 30 s for a line containing s that was not waited
// for before, and returns it.
func (p *Proc) WaitLine(t testing.TB, s string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line %q after 30s; output:\n%s", s, p.Output())
			return ""
		}
	}
}

// Output returns every line written so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all.String()
}

// Signal sends sig to the first process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// WaitExit waits up to limit for the first process to exit and returns
// how it did.
func (p *Proc) WaitExit(t testing.TB, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-p.Done:
		return err
	case <-time.After(limit):
		t.Fatalf("process %d still running after %s", p.Cmd.Process.Pid, limit)
		return nil
	}
}
