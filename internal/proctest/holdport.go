package proctest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// holdPortEnv marks the test binary HoldPort runs as the port holder.
const holdPortEnv = "LBKIT_PROCTEST_HOLD_PORT"

// HoldPortChild is for a test binary's TestMain, before anything else:
// in the process HoldPort starts it holds a TCP port on 127.0.0.1,
// prints it, and exits when its stdin closes; elsewhere it returns at
// once.
func HoldPortChild() {
	if os.Getenv(holdPortEnv) == "" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Printf("holding %d\n", ln.Addr().(*net.TCPAddr).Port)
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// HoldPort starts another process — the test binary, whose TestMain
// calls HoldPortChild — holding a TCP port on 127.0.0.1, and returns the
// port and a function that ends the process, freeing the port; it runs
// at cleanup too. Tests use it for a port taken by someone else, which a
// listener of their own process would not be (it could be taken over).
func HoldPort(t testing.TB) (port int, release func()) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), holdPortEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	release = sync.OnceFunc(func() {
		stdin.Close()
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	})
	t.Cleanup(release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "holding ")
	port, perr := strconv.Atoi(v)
	if err != nil || !ok || perr != nil {
		release()
		t.Fatalf("the port holder said %q (%v): does TestMain call proctest.HoldPortChild?", line, err)
	}
	return port, release
}
