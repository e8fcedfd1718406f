package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/internal/leakcheck"
)

// Session-ticket keys rotate: a session from before one rotation
// resumes, one from before two does not; a Fleet's keys are left alone.
func TestTicketKeyRotation(t *testing.T) {
	leakcheck.Check(t)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer b.Close()
	_, bport, _ := strings.Cut(b.URL, "127.0.0.1:")
	certFile, keyFile := tlsCertFiles(t)
	port := configPort(t)
	data := "ServerCertificates: [{ServerCertificateId: c, CertificateFile: " + certFile + ", PrivateKeyFile: " + keyFile + "}]\n" +
		"BackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n" +
		"Listeners: [{ListenerProtocol: https, ListenerPort: " + strconv.Itoa(port) + ", BackendServerPort: " + bport + ", HealthCheck: \"off\", ServerCertificateId: c}]\n"
	f, err := Parse("tickets.yaml", ".", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	e := testEnv(t)
	p, err := planFile(f, e)
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(p, e)
	if err != nil {
		t.Fatal(err)
	}
	defer a.stop(context.Background())
	ctl := &control{a: a}
	cache := tls.NewLRUClientSessionCache(4)
	resumed := func() bool {
		t.Helper()
		c, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{InsecureSkipVerify: true, ClientSessionCache: cache, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().DidResume
	}
	resumed()
	if !resumed() {
		t.Fatal("no resumption before any rotation")
	}
	if err := ctl.rotateTicketKeys(); err != nil {
		t.Fatal(err)
	}
	if !resumed() {
		t.Error("a session from before one rotation did not resume")
	}
	// That resumption's session was issued under the new key; make one
	// from the old key only, then rotate twice.
	cache = tls.NewLRUClientSessionCache(4)
	resumed()
	for range 2 {
		if err := ctl.rotateTicketKeys(); err != nil {
			t.Fatal(err)
		}
	}
	if resumed() {
		t.Error("a session from before two rotations resumed")
	}
}
