package main

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is a clb configuration file. Field names follow the CLB API; see
// README.md for the reference. An omitted field means its default; the
// ranges are in profile.go.
type File struct {
	LoadBalancerId string // instance ID (SLB-ID header); default "lb-clb"
	Address        string // service address (SLB-IP header); default 127.0.0.1
	Bandwidth      int    // instance cap in Mbps; omitted or -1 = unlimited
	ListenAddress  string // address the listeners bind; default 127.0.0.1
	// AdminAddress is where the admin status server listens (a clb
	// extension): an IP and port, or "off". Omitted, there is none; the
	// -admin flag overrides it.
	AdminAddress string
	// Fleet holds the keys replicas share (a clb extension; fleet.go).
	Fleet *Fleet

	BackendServers          []Server
	VServerGroups           []VServerGroup
	MasterSlaveServerGroups []MasterSlaveServerGroup
	AccessControlLists      []ACL
	ServerCertificates      []ServerCertificate
	CACertificates          []CACertificate
	Listeners               []Listener

	pos
	dir  string    // directory of the file, for relative PEM paths
	name string    // file name for messages
	keys *etcdKeys // where PEM paths point when read from etcd; nil: files
	// digest hashes what the File was read from, for its version; nil
	// for a File built in code.
	digest *configDigest
	// src is the document the File was decoded from, which the runtime
	// API edits to write a change through (persist.go); nil for a File
	// built in code.
	src []byte
}

// Server is a backend server. In BackendServers (the default group) the
// port comes from each listener's BackendServerPort.
type Server struct {
	ServerId   string
	ServerIp   string
	Port       int
	Weight     *int   // default 100; 0 drains
	ServerType string // master or slave, in a master/slave group only
	pos
}

// VServerGroup is a virtual server group.
type VServerGroup struct {
	VServerGroupId   string
	VServerGroupName string
	BackendServers   []Server
	Discovery        *Discovery // members from DNS instead (discovery.go)
	pos
}

// MasterSlaveServerGroup is a primary/standby group.
type MasterSlaveServerGroup struct {
	MasterSlaveServerGroupId   string
	MasterSlaveServerGroupName string
	MasterSlaveBackendServers  []Server
	Discovery                  *Discovery // members from DNS instead (discovery.go)
	pos
}

// ACL is an access control list.
type ACL struct {
	AclId            string
	AclName          string
	AddressIPVersion string // ipv4 (default) or ipv6
	AclEntrys        []ACLEntry
	pos
}

// ACLEntry is one ACL entry.
type ACLEntry struct {
	AclEntryIP      string
	AclEntryComment string
	pos
}

// ServerCertificate is a server certificate and its key, as PEM files.
type ServerCertificate struct {
	ServerCertificateId string
	CertificateFile     string // PEM, leaf first, chain after; relative to the config file
	PrivateKeyFile      string // PEM, unencrypted
	pos
}

// CACertificate is a CA bundle for mutual TLS.
type CACertificate struct {
	CACertificateId   string
	CACertificateFile string
	pos
}

// Listener is one listener.
type Listener struct {
	ListenerProtocol  string
	ListenerPort      int
	BackendServerPort int
	Description       string

	Scheduler string
	// HashBy and HashKey (clb extensions) choose what the hash
	// scheduler hashes on http and https listeners: HashBy header,
	// cookie or url_param with the field, cookie or parameter named by
	// HashKey, or uri (the path).
	HashBy  string
	HashKey string

	StickySession     string
	StickySessionType string
	CookieTimeout     int
	Cookie            string

	PersistenceTimeout     int
	EstablishedTimeout     int
	ConnectionDrain        string
	ConnectionDrainTimeout int

	AclStatus string
	AclType   string
	AclId     string

	Bandwidth      int
	IdleTimeout    int
	RequestTimeout int

	Gzip                        string
	XForwardedFor               string
	XForwardedFor_SLBID         string
	XForwardedFor_SLBIP         string
	XForwardedFor_proto         string
	XForwardedFor_SLBPORT       string
	XForwardedFor_ClientSrcPort string

	ListenerForward string
	ForwardPort     int

	EnableHttp2 string
	// EnableHttp3 (an extension) also serves HTTP/3 on the port, UDP
	// (http3.go).
	EnableHttp3 string
	// Http3MaxHandshakes (an extension) bounds the QUIC handshakes in
	// progress with EnableHttp3 (http3_limits.go).
	Http3MaxHandshakes  int
	TLSCipherPolicy     string
	ServerCertificateId string
	CACertificateId     string

	ProxyProtocol string
	// Behind another balancer (proxyin.go).
	ProxyProtocolFrom     []string
	ProxyProtocolRequired string
	TrustedProxies        []string

	// Http2MaxRequestsPerConnection is how many requests an HTTP/2 client
	// connection carries before GOAWAY (a clb extension; omitted, the
	// library's default).
	Http2MaxRequestsPerConnection int

	HealthCheck               string
	HealthCheckType           string
	HealthCheckDomain         string
	HealthCheckURI            string
	HealthCheckMethod         string
	HealthCheckConnectPort    int
	HealthyThreshold          int
	UnhealthyThreshold        int
	HealthCheckInterval       int
	HealthCheckConnectTimeout int
	HealthCheckHttpCode       string
	HealthCheckReq            string
	HealthCheckExp            string

	VServerGroupId           string
	MasterSlaveServerGroupId string

	DomainExtensions []DomainExtension
	Rules            []Rule
	pos
}

// DomainExtension binds a domain to a certificate on an HTTPS listener.
type DomainExtension struct {
	Domain              string
	ServerCertificateId string
	pos
}

// Rule is a forwarding rule of an HTTP or HTTPS listener.
type Rule struct {
	RuleName       string
	Domain         string
	Url            string
	VServerGroupId string
	pos
}

// pos records where a mapping and each of its keys sit in the file.
type pos struct {
	line int
	keys map[string]int
}

// given reports whether the file has key in this mapping.
func (p pos) given(key string) bool {
	_, ok := p.keys[key]
	return ok
}

// at returns the line of key, or of the mapping if the key is absent.
func (p pos) at(key string) int {
	if l, ok := p.keys[key]; ok {
		return l
	}
	return p.line
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	File  string
	Line  int
	Field string // path of the field, e.g. Listeners[1].CookieTimeout
	Msg   string
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Field == "" {
		return loc + ": " + p.Msg
	}
	return loc + ": " + p.Field + ": " + p.Msg
}

// Problems is every problem found in a configuration, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// problems collects Problems for one file.
type problems struct {
	file string
	list Problems
}

func (c *problems) add(line int, field, format string, args ...any) {
	c.list = append(c.list, Problem{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (c *problems) err() error {
	if len(c.list) == 0 {
		return nil
	}
	sort.SliceStable(c.list, func(i, j int) bool { return c.list[i].Line < c.list[j].Line })
	return c.list
}

// LoadFile reads and decodes a configuration file (YAML or JSON), and
// checks its structure: unknown fields, wrong types, values out of range
// and IDs that name nothing. Listener-level checks that need the library
// (ranges it owns, bandwidth sums) are made by plan.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(filepath.Base(path), filepath.Dir(path), data)
}

// Parse decodes data, naming it name in messages; dir resolves relative
// PEM paths.
func Parse(name, dir string, data []byte) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	f := &File{name: name, dir: dir, digest: newDigest(), src: data}
	f.digest.add(data)
	ps := &problems{file: name}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		ps.add(0, "", "empty configuration")
		return nil, ps.err()
	}
	left := nodes(doc.Content[0]) + maxAliasValues
	decode(doc.Content[0], reflect.ValueOf(f).Elem(), "", ps, &left)
	if err := ps.err(); err != nil {
		return nil, err
	}
	f.validate(ps)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return f, nil
}

var posType = reflect.TypeFor[pos]()

// maxAliasValues bounds how many values aliases may add to a document
// when decode expands them: a few kilobytes of aliases to lists of
// aliases would otherwise expand to millions of rules.
const maxAliasValues = 100_000

// nodes counts the nodes of a document without expanding aliases.
func nodes(n *yaml.Node) int {
	c := 1
	for _, e := range n.Content {
		c += nodes(e)
	}
	return c
}

// decode fills v from n, strictly: unknown keys, duplicate keys and
// values of the wrong type are problems. Each value decoded takes one
// from *left; at zero, decoding stops with a problem.
func decode(n *yaml.Node, v reflect.Value, path string, ps *problems, left *int) {
	*left--
	if *left < 0 {
		if *left == -1 {
			ps.add(n.Line, path, "aliases expand the document by over %d values", maxAliasValues)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		decode(n, p.Elem(), path, ps, left)
		v.Set(p)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			ps.add(n.Line, path, "want a mapping, got %s", describe(n))
			return
		}
		t := v.Type()
		p := pos{line: n.Line, keys: map[string]int{}}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			field := join(path, k.Value)
			sf, ok := t.FieldByName(k.Value)
			if !ok || !sf.IsExported() || sf.Type == posType {
				ps.add(k.Line, field, "unknown field%s", suggest(t, k.Value))
				continue
			}
			if _, dup := p.keys[k.Value]; dup {
				ps.add(k.Line, field, "given twice")
				continue
			}
			p.keys[k.Value] = k.Line
			decode(val, v.FieldByIndex(sf.Index), field, ps, left)
		}
		if f := v.FieldByName("pos"); f.IsValid() {
			reflect.NewAt(posType, f.Addr().UnsafePointer()).Elem().Set(reflect.ValueOf(p))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ps.add(n.Line, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i), ps, left)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			ps.add(n.Line, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			ps.add(n.Line, path, "want an integer, got %s", describe(n))
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil || i != int64(int32(i)) {
			ps.add(n.Line, path, "integer %s out of range", n.Value)
			return
		}
		v.SetInt(i)
	default:
		panic("clb: cannot decode into " + v.Type().String())
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// suggest names the field closest to a mistyped key: one that differs
// only in case, or by at most two edits.
func suggest(t reflect.Type, key string) string {
	best, bestD := "", 3
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		d := editDistance(strings.ToLower(sf.Name), strings.ToLower(key))
		if d < bestD {
			best, bestD = sf.Name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Switch values, as the CLB writes them.
const (
	on  = "on"
	off = "off"
)

// switchOn reads an on/off field: empty means def.
func switchOn(s string, def bool) bool {
	if s == "" {
		return def
	}
	return s == on
}

// checker validates one mapping's fields.
type checker struct {
	ps   *problems
	path string
	p    pos
}

func (c checker) bad(key, format string, args ...any) {
	c.ps.add(c.p.at(key), join(c.path, key), format, args...)
}

func (c checker) oneOf(key, val string, allowed ...string) {
	if val != "" && !contains(allowed, val) {
		c.notIn(key, val, allowed, "")
	}
}

// notIn reports val at key as not one of allowed; where narrows the
// list to some protocols (" on udp listeners").
func (c checker) notIn(key, val string, allowed []string, where string) {
	c.bad(key, "%q: want %s%s", val, orList(allowed, "or"), where)
}

func (c checker) required(key, val string) bool {
	if val == "" {
		c.bad(key, "required")
		return false
	}
	return true
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// validate checks the file against the CLB profile (profile.go) and the
// references between sections, reporting every problem; makePlan and
// check then ask the library only what it alone knows.
func (f *File) validate(ps *problems) {
	c := checker{ps: ps, p: f.pos}
	if f.Address != "" {
		if _, err := netip.ParseAddr(f.Address); err != nil {
			c.bad("Address", "%q: not an IP address", f.Address)
		}
	}
	listenAddr, listenFamily := f.listenHost(), "ipv4"
	if a, err := netip.ParseAddr(listenAddr); err != nil {
		c.bad("ListenAddress", "%q: not an IP address", f.ListenAddress)
	} else if a.Is6() {
		listenFamily = "ipv6"
	}
	if f.pos.given("Bandwidth") || f.Bandwidth != 0 {
		c.inRange("Bandwidth", f.Bandwidth, instanceBandwidth)
	}
	if f.AdminAddress != "" && f.AdminAddress != off {
		if _, err := netip.ParseAddrPort(f.AdminAddress); err != nil {
			c.bad("AdminAddress", "%q: want an IP address and port, e.g. 127.0.0.1:8090, or off", f.AdminAddress)
		}
	}

	f.validateFleet(ps)

	ids := map[string]string{} // group ID → section, for duplicates
	dup := func(c checker, key, id, kind string) {
		if prev, ok := ids[kind+"\x00"+id]; ok {
			c.bad(key, "%q already defined at %s", id, prev)
		}
		ids[kind+"\x00"+id] = fmt.Sprintf("line %d", c.p.at(key))
	}
	checkServers(ps, "BackendServers", f.BackendServers, false, false)
	vgroups := map[string]bool{}
	for i, g := range f.VServerGroups {
		gc := checker{ps: ps, path: fmt.Sprintf("VServerGroups[%d]", i), p: g.pos}
		if gc.required("VServerGroupId", g.VServerGroupId) {
			dup(gc, "VServerGroupId", g.VServerGroupId, "group")
			vgroups[g.VServerGroupId] = true
		}
		checkServers(ps, gc.path+".BackendServers", g.BackendServers, true, false)
		if g.Discovery != nil {
			checkDiscovery(ps, gc.path+".Discovery", g.Discovery, len(g.BackendServers))
		}
	}
	msgroups := map[string]bool{}
	for i, g := range f.MasterSlaveServerGroups {
		gc := checker{ps: ps, path: fmt.Sprintf("MasterSlaveServerGroups[%d]", i), p: g.pos}
		if gc.required("MasterSlaveServerGroupId", g.MasterSlaveServerGroupId) {
			dup(gc, "MasterSlaveServerGroupId", g.MasterSlaveServerGroupId, "group")
			msgroups[g.MasterSlaveServerGroupId] = true
		}
		checkServers(ps, gc.path+".MasterSlaveBackendServers", g.MasterSlaveBackendServers, true, true)
		if g.Discovery != nil {
			checkDiscovery(ps, gc.path+".Discovery", g.Discovery, len(g.MasterSlaveBackendServers))
		}
	}
	acls := map[string]string{} // ACL ID → address family
	for i, a := range f.AccessControlLists {
		ac := checker{ps: ps, path: fmt.Sprintf("AccessControlLists[%d]", i), p: a.pos}
		if ac.required("AclId", a.AclId) {
			dup(ac, "AclId", a.AclId, "acl")
			acls[a.AclId] = cmp.Or(a.AddressIPVersion, "ipv4")
		}
		ac.oneOf("AddressIPVersion", a.AddressIPVersion, "ipv4", "ipv6")
		for j, e := range a.AclEntrys {
			ec := checker{ps: ps, path: fmt.Sprintf("%s.AclEntrys[%d]", ac.path, j), p: e.pos}
			ec.required("AclEntryIP", e.AclEntryIP)
		}
	}
	certs := map[string]bool{demoCertID: true, demoShopCertID: true}
	for i, sc := range f.ServerCertificates {
		cc := checker{ps: ps, path: fmt.Sprintf("ServerCertificates[%d]", i), p: sc.pos}
		if cc.required("ServerCertificateId", sc.ServerCertificateId) {
			if sc.ServerCertificateId == demoCertID || sc.ServerCertificateId == demoShopCertID {
				cc.bad("ServerCertificateId", "%q is reserved for the generated demo certificate", sc.ServerCertificateId)
			}
			dup(cc, "ServerCertificateId", sc.ServerCertificateId, "cert")
			certs[sc.ServerCertificateId] = true
		}
		cc.required("CertificateFile", sc.CertificateFile)
		cc.required("PrivateKeyFile", sc.PrivateKeyFile)
	}
	cas := map[string]bool{}
	for i, ca := range f.CACertificates {
		cc := checker{ps: ps, path: fmt.Sprintf("CACertificates[%d]", i), p: ca.pos}
		if cc.required("CACertificateId", ca.CACertificateId) {
			dup(cc, "CACertificateId", ca.CACertificateId, "ca")
			cas[ca.CACertificateId] = true
		}
		cc.required("CACertificateFile", ca.CACertificateFile)
	}

	if len(f.Listeners) == 0 {
		c.bad("Listeners", "no listeners")
	}
	type portKey struct {
		port int
		udp  bool
	}
	ports := map[portKey]int{} // first listener on each port
	for i := range f.Listeners {
		l := &f.Listeners[i]
		lc := checker{ps: ps, path: fmt.Sprintf("Listeners[%d]", i), p: l.pos}
		if lc.required("ListenerProtocol", l.ListenerProtocol) && protoOf(l.ListenerProtocol) == 0 {
			lc.bad("ListenerProtocol", "%q: want tcp, udp, http or https", l.ListenerProtocol)
		}
		checkProfile(lc, l, switchOn(l.HealthCheck, true) && !switchOn(l.ListenerForward, false))
		checkProxyIn(lc, l)
		checkHTTP3(lc, l)
		checkHTTP3Limits(lc, l)
		if switchOn(l.ListenerForward, false) && l.ListenerProtocol == "http" {
			if l.ForwardPort == 0 {
				lc.bad("ForwardPort", "required with ListenerForward on")
			} else if !hasListener(f, "https", l.ForwardPort) {
				lc.bad("ForwardPort", "%d: no https listener on that port", l.ForwardPort)
			}
		}
		if switchOn(l.AclStatus, false) {
			if lc.required("AclId", l.AclId) {
				switch fam, ok := acls[l.AclId]; {
				case !ok:
					lc.bad("AclId", "%q: no such ACL in AccessControlLists", l.AclId)
				case fam != listenFamily:
					lc.bad("AclId", "%q: an %s ACL cannot bind to a listener on %s (ListenAddress)", l.AclId, fam, listenAddr)
				}
			}
			lc.required("AclType", l.AclType)
		} else if _, ok := acls[l.AclId]; l.AclId != "" && !ok {
			lc.bad("AclId", "%q: no such ACL in AccessControlLists", l.AclId)
		}
		if l.ServerCertificateId != "" && !certs[l.ServerCertificateId] {
			lc.bad("ServerCertificateId", "%q: no such certificate in ServerCertificates", l.ServerCertificateId)
		}
		if l.CACertificateId != "" && !cas[l.CACertificateId] {
			lc.bad("CACertificateId", "%q: no such CA certificate in CACertificates", l.CACertificateId)
		}
		switch {
		case l.VServerGroupId != "" && l.MasterSlaveServerGroupId != "":
			lc.bad("MasterSlaveServerGroupId", "set either VServerGroupId or MasterSlaveServerGroupId")
		case l.VServerGroupId != "":
			if !vgroups[l.VServerGroupId] {
				lc.bad("VServerGroupId", "%q: no such group in VServerGroups", l.VServerGroupId)
			}
		case l.MasterSlaveServerGroupId != "":
			if !msgroups[l.MasterSlaveServerGroupId] {
				lc.bad("MasterSlaveServerGroupId", "%q: no such group in MasterSlaveServerGroups", l.MasterSlaveServerGroupId)
			}
		default:
			if l.BackendServerPort == 0 && !switchOn(l.ListenerForward, false) {
				lc.bad("BackendServerPort", "required when the listener uses the default group (BackendServers)")
			}
		}
		for j, d := range l.DomainExtensions {
			dc := checker{ps: ps, path: fmt.Sprintf("%s.DomainExtensions[%d]", lc.path, j), p: d.pos}
			dc.required("Domain", d.Domain)
			if dc.required("ServerCertificateId", d.ServerCertificateId) && !certs[d.ServerCertificateId] {
				dc.bad("ServerCertificateId", "%q: no such certificate in ServerCertificates", d.ServerCertificateId)
			}
		}
		for j, r := range l.Rules {
			rc := checker{ps: ps, path: fmt.Sprintf("%s.Rules[%d]", lc.path, j), p: r.pos}
			if r.Domain == "" && r.Url == "" {
				rc.bad("Url", "a rule needs a Domain, a Url or both")
			}
			if rc.required("VServerGroupId", r.VServerGroupId) && !vgroups[r.VServerGroupId] {
				rc.bad("VServerGroupId", "%q: no such group in VServerGroups", r.VServerGroupId)
			}
		}
		// Against the first listener on the port only: n listeners on
		// one port make n-1 problems, not n²/2. An https listener with
		// HTTP/3 holds the udp port too.
		k := portKey{l.ListenerPort, l.ListenerProtocol == "udp"}
		if j, ok := ports[k]; ok && l.ListenerPort != 0 {
			lc.bad("ListenerPort", "%d already used by Listeners[%d] (line %d)%s", l.ListenerPort, j, f.Listeners[j].line, http3Note(&f.Listeners[j], k.udp))
		} else {
			ports[k] = i
		}
		if uk := (portKey{l.ListenerPort, true}); http3On(l) && l.ListenerPort != 0 {
			if j, ok := ports[uk]; ok {
				lc.bad("EnableHttp3", "HTTP/3 needs udp port %d, already used by Listeners[%d] (line %d)", l.ListenerPort, j, f.Listeners[j].line)
			} else {
				ports[uk] = i
			}
		}
	}
}

// listenHost is the address the listeners bind.
func (f *File) listenHost() string { return cmp.Or(f.ListenAddress, "127.0.0.1") }

func hasListener(f *File, proto string, port int) bool {
	for _, l := range f.Listeners {
		if l.ListenerProtocol == proto && l.ListenerPort == port {
			return true
		}
	}
	return false
}

func checkServers(ps *problems, path string, servers []Server, needPort, masterSlave bool) {
	seen := map[string]int{}
	masters := 0
	for i, s := range servers {
		sc := checker{ps: ps, path: fmt.Sprintf("%s[%d]", path, i), p: s.pos}
		if sc.required("ServerId", s.ServerId) {
			if prev, ok := seen[s.ServerId]; ok {
				sc.bad("ServerId", "%q already used at line %d", s.ServerId, prev)
			}
			seen[s.ServerId] = s.at("ServerId")
		}
		if sc.required("ServerIp", s.ServerIp) {
			if _, err := netip.ParseAddr(s.ServerIp); err != nil {
				sc.bad("ServerIp", "%q: not an IP address", s.ServerIp)
			}
		}
		switch {
		case !needPort && (s.Port != 0 || s.given("Port")):
			sc.bad("Port", "default-group servers take the listener's BackendServerPort")
		case needPort && s.Port == 0 && !s.given("Port"):
			sc.bad("Port", "required")
		case needPort:
			sc.inRange("Port", s.Port, portRange)
		}
		if s.Weight != nil {
			sc.inRange("Weight", *s.Weight, weightRange)
		}
		if masterSlave {
			sc.oneOf("ServerType", s.ServerType, "master", "slave")
			if s.ServerType != "slave" {
				masters++
			}
		} else if s.ServerType != "" {
			sc.bad("ServerType", "only in MasterSlaveServerGroups")
		}
	}
	if masterSlave && len(servers) > 0 && masters == 0 {
		ps.add(0, path, "no master server")
	}
}

// errNoConfig is returned when SIGHUP arrives in demo mode.
var errNoConfig = errors.New("no configuration file to reload (demo mode)")
