package sni_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/lbkit/lbkit/sni"
)

// An HTTPS listener with extension domains: the SNI name picks the
// certificate, the default serves everything else. (mustCert makes a
// throw-away self-signed certificate for the names given.)
func ExampleSelector() {
	s, err := sni.NewSelector(sni.SelectorConfig{Default: mustCert("default.test")})
	if err != nil {
		panic(err)
	}
	for _, domain := range []string{"www.example.com", "*.example.com", "*.market.example.com"} {
		if err := s.Set(domain, mustCert(domain)); err != nil {
			panic(err)
		}
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: s.GetCertificate})
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()

	for _, name := range []string{"www.example.com", "info.market.example.com", "a.b.example.com", "example.org", ""} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%q → %s\n", name, c.ConnectionState().PeerCertificates[0].Subject.CommonName)
		c.Close()
	}
	// Output:
	// "www.example.com" → www.example.com
	// "info.market.example.com" → *.market.example.com
	// "a.b.example.com" → *.example.com
	// "example.org" → default.test
	// "" → default.test
}

// A certificate must cover the domain it is bound to.
func ExampleSelector_Set() {
	var s sni.Selector
	wild := mustCert("*.example.com")
	fmt.Println(s.Set("shop.example.com", wild)) // a one-label wildcard SAN covers it
	fmt.Println(s.Set("*.example.com", wild))    // the same wildcard SAN
	err := s.Set("example.com", wild)            // the apex is not covered
	var ce *sni.ConfigError
	fmt.Println(errors.As(err, &ce), ce.Value)
	// Output:
	// <nil>
	// <nil>
	// true "example.com"
}

// Editing a domain binds a new certificate; deleting it falls back to the
// next best match.
func ExampleSelector_Delete() {
	s, _ := sni.NewSelector(sni.SelectorConfig{Default: mustCert("default.test")})
	_ = s.Set("www.example.com", mustCert("www.example.com"))
	_ = s.Set("www.example.com", mustCert("www.example.com", "renewed.example.com")) // edit
	fmt.Println(s.Get("www.example.com").Leaf.DNSNames)
	_ = s.Delete("www.example.com")
	fmt.Println(s.Certificate("www.example.com").Leaf.Subject.CommonName, s.Len())
	// Output:
	// [www.example.com renewed.example.com]
	// default.test 0
}

// Without a default certificate, an unmatched name fails the handshake.
func ExampleSelector_GetCertificate() {
	var s sni.Selector
	_ = s.Set("*.example.com", mustCert("*.example.com"))
	c, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "API.Example.com"})
	fmt.Println(c.Leaf.Subject.CommonName)
	_, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "example.org"})
	fmt.Println(errors.Is(err, sni.ErrNoCertificate))
	// Output:
	// *.example.com
	// true
}

// The default certificate can be replaced live.
func ExampleSelector_SetDefault() {
	var s sni.Selector
	fmt.Println(s.Certificate("any.test") == nil)
	_ = s.SetDefault(mustCert("new-default.test"))
	fmt.Println(s.Default().Leaf.Subject.CommonName, s.Certificate("any.test").Leaf.Subject.CommonName)
	// Output:
	// true
	// new-default.test new-default.test
}

// Several bindings change together or not at all.
func ExampleSelector_Update() {
	var s sni.Selector
	a, b := mustCert("a.example.com"), mustCert("b.example.com")
	err := s.Update(func(bt *sni.Batch[*tls.Certificate]) error {
		_ = bt.Set("a.example.com", a)
		return bt.Set("c.example.com", b) // b does not cover c
	})
	fmt.Println(err != nil, s.Len())
	_ = s.Update(func(bt *sni.Batch[*tls.Certificate]) error {
		_ = bt.Set("a.example.com", a)
		return bt.Set("b.example.com", b)
	})
	for domain, c := range s.All() {
		fmt.Println(domain, c.Leaf.Subject.CommonName)
	}
	// Output:
	// true 0
	// a.example.com a.example.com
	// b.example.com b.example.com
}

// Host-based forwarding: an HTTP listener maps Host headers to server
// groups, stripping the port first.
func ExampleTable() {
	var rules sni.Table[string] // pattern → server group
	_ = rules.Set("api.example.com", "api-servers")
	_ = rules.Set("*.example.com", "web-servers")
	_ = rules.Set("*.market.example.com", "market-servers")

	for _, host := range []string{"api.example.com:8080", "www.example.com", "info.market.example.com", "example.com"} {
		group, ok := rules.Match(sni.StripPort(host))
		fmt.Println(host, group, ok)
	}
	// Output:
	// api.example.com:8080 api-servers true
	// www.example.com web-servers true
	// info.market.example.com market-servers true
	// example.com  false
}

func ExampleTable_MatchPattern() {
	var t sni.Table[int]
	_ = t.Set("*.Example.COM", 1)
	fmt.Println(t.MatchPattern("A.B.example.com."))
	// Output: *.example.com 1 true
}

// Replace a whole configuration atomically: lookups see the old rules or
// the new ones, never a mix.
func ExampleTable_Update() {
	var t sni.Table[string]
	_ = t.Set("old.example.com", "old")
	err := t.Update(func(b *sni.Batch[string]) error {
		b.Clear()
		_ = b.Set("new.example.com", "new")
		return b.Set("*.example.com", "wild")
	})
	fmt.Println(err, t.Len())
	fmt.Println(t.Match("old.example.com"))
	// Output:
	// <nil> 2
	// wild true
}

func ExampleTable_Delete() {
	var t sni.Table[string]
	_ = t.Set("www.example.com", "exact")
	_ = t.Set("*.example.com", "wild")
	_ = t.Delete("WWW.example.com.")
	fmt.Println(t.Match("www.example.com"))
	fmt.Println(t.Delete("www..example.com"))
	// Output:
	// wild true
	// sni: Domain "www..example.com": empty label
}

// Get reads a binding by its pattern, not by host name.
func ExampleTable_Get() {
	var t sni.Table[int]
	_ = t.Set("*.example.com", 7)
	fmt.Println(t.Get("*.example.com"))
	fmt.Println(t.Get("www.example.com"))
	// Output:
	// 7 true
	// 0 false
}

func ExampleTable_All() {
	var t sni.Table[int]
	_ = t.Set("b.example.com", 2)
	_ = t.Set("*.example.com", 1)
	_ = t.Set("A.example.com", 3)
	for pattern, v := range t.All() {
		fmt.Println(pattern, v)
	}
	// Output:
	// *.example.com 1
	// a.example.com 3
	// b.example.com 2
}

func ExampleParseDomain() {
	for _, s := range []string{"WWW.Example.com.", "*.market.example.com", "*", "a_b.example.com", "www.*.com"} {
		d, err := sni.ParseDomain(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(d, d.IsWildcard())
	}
	// Output:
	// www.example.com false
	// *.market.example.com true
	// sni: Domain "*": a bare "*" matches nothing: unmatched names get the default
	// sni: Domain "a_b.example.com": character '_' not allowed: letters, digits, '-' and '.' only
	// sni: Domain "www.*.com": '*' is only allowed as a leading "*."
}

func ExampleDomain_Matches() {
	d, _ := sni.ParseDomain("*.example.com")
	for _, name := range []string{"a.example.com", "A.B.EXAMPLE.COM.", "example.com", "a.example.com:443"} {
		fmt.Println(name, d.Matches(name))
	}
	// Output:
	// a.example.com true
	// A.B.EXAMPLE.COM. true
	// example.com false
	// a.example.com:443 false
}

func ExampleStripPort() {
	r, _ := http.NewRequest("GET", "http://www.example.com:8080/", nil)
	fmt.Println(sni.StripPort(r.Host))
	fmt.Println(sni.StripPort("[::1]:443"))
	fmt.Println(sni.StripPort("example.com"))
	_, _, err := net.SplitHostPort("example.com") // the standard library needs a port
	fmt.Println(err != nil)
	// Output:
	// www.example.com
	// ::1
	// example.com
	// true
}
