package health_test

import (
	"strings"
	"testing"

	"github.com/lbkit/lbkit/health"
)

func FuzzParseStatusClasses(f *testing.F) {
	for _, s := range []string{"http_2xx", "http_2xx,http_3xx", " HTTP_5XX ,http_4xx", "", ",", "http_1xx", "http_2xx,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := health.ParseStatusClasses(s)
		if err != nil {
			if c != 0 {
				t.Errorf("ParseStatusClasses(%q) = %v with error %v, want 0", s, c, err)
			}
			if !strings.Contains(err.Error(), "Codes") {
				t.Errorf("error %q does not name the field", err)
			}
			return
		}
		if c == 0 {
			t.Fatalf("ParseStatusClasses(%q) = empty set without error", s)
		}
		again, err := health.ParseStatusClasses(c.String())
		if err != nil || again != c {
			t.Errorf("round trip %q → %v → %v, %v", s, c, again, err)
		}
	})
}

func FuzzParseMethod(f *testing.F) {
	for _, s := range []string{"head", "GET", "Get", "post", "", "HEAD "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := health.ParseMethod(s)
		if err != nil {
			return
		}
		if m != "HEAD" && m != "GET" {
			t.Errorf("ParseMethod(%q) = %q", s, m)
		}
		if !strings.EqualFold(m, s) {
			t.Errorf("ParseMethod(%q) = %q, not the same method", s, m)
		}
	})
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"/", "/healthz", "/a?b=c&d=%20", "", "x", "//host/p", "/a b", "/#x", "/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := health.ParseURI(s)
		if err != nil {
			return
		}
		if u != s || u[0] != '/' || strings.ContainsAny(u, " #\r\n") {
			t.Errorf("ParseURI(%q) = %q accepted", s, u)
		}
		// An accepted URI must make a valid probe configuration.
		c, err := health.New(health.Config{Kind: health.KindHTTP, URI: u})
		if err != nil {
			t.Fatalf("New with URI %q: %v", u, err)
		}
		c.Stop()
	})
}
