package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Certificate IDs served from the certificates generated at start-up; a
// configuration file may use them too (the shipped lb.yaml does).
const (
	demoCertID     = "demo"      // localhost, 127.0.0.1, ::1
	demoShopCertID = "demo-shop" // shop.localhost, for the extension domain
	demoShopDomain = "shop.localhost"
)

// Offsets from -port-base (default 8000) of the demo's fixed ports.
const (
	offHTTP        = 80   // 8080
	offRedirect    = 81   // 8081
	offAdmin       = 90   // 8090
	offHTTPS       = 443  // 8443
	offTCP         = 1000 // 9000
	offUDP         = 1001 // 9001
	offBackendHTTP = 101  // 8101–8103: demo backends' HTTP
	offBackendEcho = 111  // 8111–8113: demo backends' TCP and UDP echo
)

var demoBackendNames = []string{"backend-a", "backend-b", "backend-c"}

// selfSigned returns a self-signed ECDSA P-256 certificate for the given
// DNS names and IP addresses, valid for a year.
func selfSigned(cn string, dns []string, ips []net.IP) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"lbkit clb demo"}},
		DNSNames: dns, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// newEnv generates the demo certificates, the session-cookie key and a
// session-ticket key; a process started by an upgrade takes the keys
// from its predecessor's handoff (see env).
func newEnv(from *handoff) (*env, error) {
	e := &env{stickyKey: make([]byte, 32)}
	if _, err := rand.Read(e.stickyKey); err != nil {
		return nil, err
	}
	var inherited [][]byte
	if from != nil {
		if len(from.StickyKey) > 0 {
			e.stickyKey = from.StickyKey
		}
		inherited = from.TicketKeys
	}
	tickets, err := newTicketKeyring(inherited)
	if err != nil {
		return nil, err
	}
	e.tickets = tickets
	if e.demoCert, err = selfSigned("localhost", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}); err != nil {
		return nil, err
	}
	if e.demoShopCert, err = selfSigned(demoShopDomain, []string{demoShopDomain}, nil); err != nil {
		return nil, err
	}
	return e, nil
}

// demoBackends are the in-process backends: per name an HTTP server
// answering with its name on the first line, a TCP echo and a UDP echo.
type demoBackends struct {
	http []*http.Server
	lns  []net.Listener
	pcs  []net.PacketConn
	wg   sync.WaitGroup
}

// startDemoBackends starts the three demo backends on host at their
// fixed ports, on sockets from u (handed on by a binary upgrade).
func startDemoBackends(host string, base int, u *upgrader) (*demoBackends, error) {
	d := &demoBackends{}
	for i, name := range demoBackendNames {
		httpAddr := net.JoinHostPort(host, strconv.Itoa(base+offBackendHTTP+i))
		echoAddr := net.JoinHostPort(host, strconv.Itoa(base+offBackendEcho+i))
		ln, err := u.listen(processKey("demo", "tcp", httpAddr), httpAddr)
		if err != nil {
			d.close()
			return nil, fmt.Errorf("demo backend %s (http port %d): %w", name, base+offBackendHTTP+i, err)
		}
		srv := &http.Server{Handler: nameHandler(name), ReadHeaderTimeout: 10 * time.Second}
		d.http = append(d.http, srv)
		d.wg.Go(func() { srv.Serve(ln) })

		eln, err := u.listen(processKey("demo", "tcp", echoAddr), echoAddr)
		if err != nil {
			d.close()
			return nil, fmt.Errorf("demo backend %s (tcp echo port %d): %w", name, base+offBackendEcho+i, err)
		}
		d.lns = append(d.lns, eln)
		d.wg.Go(func() { tcpEcho(eln) })

		pc, err := u.listenPacket(processKey("demo", "udp", echoAddr), echoAddr)
		if err != nil {
			d.close()
			return nil, fmt.Errorf("demo backend %s (udp echo port %d): %w", name, base+offBackendEcho+i, err)
		}
		d.pcs = append(d.pcs, pc)
		d.wg.Go(func() { udpEcho(pc) })
	}
	return d, nil
}

func (d *demoBackends) close() {
	for _, s := range d.http {
		s.Close()
	}
	for _, l := range d.lns {
		l.Close()
	}
	for _, p := range d.pcs {
		p.Close()
	}
	d.wg.Wait()
}

// nameHandler answers every request with the backend's name on the first
// line, then what the balancer told it.
func nameHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s\n%s %s %s\nX-Forwarded-For: %s\n", name, r.Method, r.URL.RequestURI(), r.Proto, r.Header.Get("X-Forwarded-For"))
		if v := r.Header.Get("X-Forwarded-Proto"); v != "" {
			fmt.Fprintf(w, "X-Forwarded-Proto: %s\n", v)
		}
	})
}

func tcpEcho(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		wg.Go(func() {
			io.Copy(c, c)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		})
	}
}

func udpEcho(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pc.WriteTo(buf[:n], addr)
	}
}

func intp(n int) *int { return &n }

// demoFile is the configuration of the no-argument demo, in the same
// types a configuration file decodes into.
func demoFile(host string, base int) *File {
	f := &File{LoadBalancerId: "lb-demo", Address: host, Bandwidth: -1, ListenAddress: host, name: "<demo>"}
	// Every demo backend listens on 127.0.0.1, so the listeners use
	// virtual server groups, whose members each have their own port; the
	// default group (BackendServers) shares one port per listener, for
	// backends on different hosts.
	web := VServerGroup{VServerGroupId: "rsp-web", VServerGroupName: "web"}
	echo := VServerGroup{VServerGroupId: "rsp-echo", VServerGroupName: "echo"}
	for i, name := range demoBackendNames {
		web.BackendServers = append(web.BackendServers, Server{ServerId: name, ServerIp: host, Port: base + offBackendHTTP + i, Weight: intp(100)})
		echo.BackendServers = append(echo.BackendServers, Server{ServerId: name, ServerIp: host, Port: base + offBackendEcho + i, Weight: intp(100)})
	}
	f.VServerGroups = []VServerGroup{web, echo, {VServerGroupId: "rsp-api", VServerGroupName: "api",
		BackendServers: []Server{{ServerId: "backend-c", ServerIp: host, Port: base + offBackendHTTP + 2, Weight: intp(100)}}}}
	f.AccessControlLists = []ACL{{AclId: "acl-demo", AclName: "demo-blacklist", AddressIPVersion: "ipv4",
		AclEntrys: []ACLEntry{{AclEntryIP: "192.0.2.0/24", AclEntryComment: "TEST-NET-1, never a real client"}}}}
	httpL := Listener{
		ListenerProtocol: "http", ListenerPort: base + offHTTP, VServerGroupId: "rsp-web",
		Scheduler: "wrr", StickySession: on, StickySessionType: "insert", CookieTimeout: 3600,
		AclStatus: on, AclType: "black", AclId: "acl-demo",
		XForwardedFor_proto: on, HealthCheck: on, HealthCheckType: "http", HealthCheckURI: "/health",
		HealthCheckInterval: 2, HealthCheckHttpCode: "http_2xx",
		Rules: []Rule{{RuleName: "api", Url: "/api", VServerGroupId: "rsp-api"}},
	}
	redirectL := Listener{ListenerProtocol: "http", ListenerPort: base + offRedirect, ListenerForward: on, ForwardPort: base + offHTTPS}
	httpsL := Listener{
		ListenerProtocol: "https", ListenerPort: base + offHTTPS, VServerGroupId: "rsp-web",
		Scheduler: "wrr", StickySession: on, StickySessionType: "insert", CookieTimeout: 3600,
		XForwardedFor_proto: on, EnableHttp2: on, EnableHttp3: on, TLSCipherPolicy: "tls_cipher_policy_1_2_strict_with_1_3",
		ServerCertificateId: demoCertID,
		DomainExtensions:    []DomainExtension{{Domain: demoShopDomain, ServerCertificateId: demoShopCertID}},
		HealthCheck:         on, HealthCheckType: "http", HealthCheckURI: "/health",
	}
	tcpL := Listener{ListenerProtocol: "tcp", ListenerPort: base + offTCP, VServerGroupId: "rsp-echo",
		Scheduler: "wrr", EstablishedTimeout: 900, HealthCheck: on, HealthCheckType: "tcp"}
	udpL := Listener{ListenerProtocol: "udp", ListenerPort: base + offUDP, VServerGroupId: "rsp-echo",
		Scheduler: "sch", HealthCheck: on, HealthCheckType: "udp", HealthCheckReq: "ping", HealthCheckExp: "ping"}
	f.Listeners = []Listener{httpL, redirectL, httpsL, tcpL, udpL}
	return f
}

// addrOf formats host:port.
func addrOf(host string, port int) string {
	return netip.AddrPortFrom(netip.MustParseAddr(host), uint16(port)).String()
}
