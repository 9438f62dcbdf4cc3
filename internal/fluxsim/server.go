// Package fluxsim is a small simulated authoritative DNS server that imitates
// fast-flux (including double-flux) domains next to benign static, round-robin
// and CNAME names. It drives fluxguard's demo, end-to-end tests, benchmarks and
// scenario suite. Addresses in its answers are data only and never contacted.
package fluxsim

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

const maxChain = 8 // CNAME hops followed inside the server

// Server is a simulated authoritative DNS server for a fixed set of names.
type Server struct {
	names map[string]*entry // configured names
	hosts map[string]nsHost // double-flux name servers ns<k>.<parent>
	zones map[string]*entry // registered parents of double-flux names
	ents  map[string]bool   // existing names without own data: ancestors of served names and NS hosts

	count atomic.Uint64

	mu       sync.Mutex
	udp, tcp *dns.Server
	addr     string
}

// nsHost is one double-flux name server: index k in e.ns.
type nsHost struct {
	e *entry
	k uint64
}

// New validates names and returns a server for them.
func New(names []Name) (*Server, error) {
	s := &Server{
		names: make(map[string]*entry, len(names)),
		hosts: make(map[string]nsHost),
		zones: make(map[string]*entry),
		ents:  make(map[string]bool),
	}
	for _, n := range names {
		e, err := newEntry(n)
		if err != nil {
			return nil, err
		}
		if _, dup := s.names[e.Name.Name]; dup {
			return nil, fmt.Errorf("fluxsim: duplicate name %s", e.Name.Name)
		}
		s.names[e.Name.Name] = e
	}
	for name, e := range s.names {
		for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
			s.ents[name[off:]] = true
		}
		for k, h := range e.ns {
			s.hosts[h], s.ents[h] = nsHost{e, uint64(k)}, true
		}
		if len(e.ns) > 0 && s.zones[e.parent] == nil {
			s.zones[e.parent] = e
		}
		if hops := 0; e.Kind == CNAME {
			for t := e; t != nil && t.Kind == CNAME; t = s.names[t.Target] {
				if hops++; hops > maxChain {
					return nil, fmt.Errorf("fluxsim: %s: CNAME loop or chain too long", name)
				}
			}
		}
	}
	return s, nil
}

// Start listens on UDP and TCP on the same host:port. Port 0 picks a port free for both.
// It returns once both listeners are serving.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp != nil {
		return errors.New("fluxsim: already started")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("fluxsim: %w", err)
	}
	var (
		pc net.PacketConn
		l  net.Listener
	)
	for try := 0; ; try++ {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return fmt.Errorf("fluxsim: listen udp %s: %w", addr, err)
		}
		taddr := net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		if l, err = net.Listen("tcp", taddr); err == nil {
			break
		}
		pc.Close()
		if (port != "0" && port != "") || try >= 10 {
			return fmt.Errorf("fluxsim: listen tcp %s: %w", taddr, err)
		}
	}

	ready, errc := make(chan struct{}, 2), make(chan error, 2)
	notify := func() { ready <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: s, UDPSize: 4096, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: l, Handler: s, NotifyStartedFunc: notify}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	for range 2 {
		select {
		case <-ready:
		case err := <-errc:
			pc.Close()
			l.Close()
			s.udp, s.tcp = nil, nil
			return fmt.Errorf("fluxsim: serve: %w", err)
		}
	}
	s.addr = l.Addr().String()
	return nil
}

// Addr returns the host:port the server listens on, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops both listeners.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return nil
	}
	err := errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
	s.udp, s.tcp = nil, nil
	if err != nil {
		return fmt.Errorf("fluxsim: close: %w", err)
	}
	return nil
}

// Queries returns the number of queries answered so far.
func (s *Server) Queries() uint64 { return s.count.Load() }

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	switch {
	case r.Opcode != dns.OpcodeQuery:
		m.SetRcode(r, dns.RcodeNotImplemented)
	case len(r.Question) != 1:
		m.SetRcode(r, dns.RcodeFormatError)
	default:
		m.SetReply(r)
		m.Authoritative = true
		s.answer(m, r.Question[0])
	}
	size := dns.MinMsgSize
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), o.Do())
		size = int(o.UDPSize())
	}
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		size = dns.MaxMsgSize
	}
	m.Truncate(size)
	s.count.Add(1)
	w.WriteMsg(m)
}

// answer fills m for q: CNAME chain, data, NXDOMAIN/NODATA with SOA.
func (s *Server) answer(m *dns.Msg, q dns.Question) {
	owner, name := q.Name, strings.ToLower(q.Name)
	for hops := 0; hops < maxChain && q.Qtype != dns.TypeCNAME; hops++ {
		e := s.find(name)
		if e == nil || e.Kind != CNAME {
			break
		}
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME, e.TTL), Target: e.Target})
		owner, name = e.Target, e.Target
	}
	rrs, exists := s.data(m, owner, name, q.Qtype)
	switch {
	case len(rrs) > 0:
		m.Answer = append(m.Answer, rrs...)
	case !exists && len(m.Answer) == 0:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa(name)}
	case exists:
		m.Ns = []dns.RR{soa(name)}
	}
}

// find returns the entry serving name: exact match, else a wildcard closest encloser.
func (s *Server) find(name string) *entry {
	if e := s.names[name]; e != nil {
		return e
	}
	for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
		anc := name[off:]
		if e := s.names[anc]; e != nil {
			if e.Wildcard {
				return e
			}
			return nil
		}
		if s.ents[anc] {
			return nil
		}
	}
	return nil
}

// data returns the answer records for name and whether the name exists.
func (s *Server) data(m *dns.Msg, owner, name string, qtype uint16) ([]dns.RR, bool) {
	if e := s.find(name); e != nil {
		return s.entryData(m, e, owner, qtype), true
	}
	if h, ok := s.hosts[name]; ok {
		if qtype == dns.TypeA || qtype == dns.TypeANY {
			return addrs(owner, h.e.TTL, []net.IP{h.e.glueFor(h.k, h.e.nsCtr.Load())}), true
		}
		return nil, true
	}
	if z := s.zones[name]; z != nil && qtype == dns.TypeNS {
		return s.delegation(m, z, owner), true
	}
	return nil, s.ents[name]
}

// entryData returns e's records of type qtype owned by owner, adding double-flux NS to m.
func (s *Server) entryData(m *dns.Msg, e *entry, owner string, qtype uint16) []dns.RR {
	var rrs []dns.RR
	if qtype == dns.TypeA || qtype == dns.TypeANY {
		rrs = append(rrs, addrs(owner, e.TTL, e.pick(e.v4))...)
	}
	if qtype == dns.TypeAAAA || qtype == dns.TypeANY {
		rrs = append(rrs, addrs(owner, e.TTL, e.pick(e.v6))...)
	}
	if qtype == dns.TypeCNAME && e.Kind == CNAME {
		rrs = append(rrs, &dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME, e.TTL), Target: e.Target})
	}
	if len(e.ns) == 0 {
		return rrs
	}
	if qtype == dns.TypeNS {
		return s.delegation(m, e, owner)
	}
	if len(rrs) > 0 {
		m.Ns = append(m.Ns, s.delegation(m, e, e.parent)...)
	}
	return rrs
}

// delegation returns the current double-flux NS set owned by owner and adds glue to m.
func (s *Server) delegation(m *dns.Msg, e *entry, owner string) []dns.RR {
	names, glue := e.nameServers()
	rrs := make([]dns.RR, len(names))
	for i, n := range names {
		rrs[i] = &dns.NS{Hdr: hdr(owner, dns.TypeNS, e.TTL), Ns: n}
		m.Extra = append(m.Extra, addrs(n, e.TTL, glue[i:i+1])...)
	}
	return rrs
}

// addrs builds A or AAAA records for ips.
func addrs(owner string, ttl uint32, ips []net.IP) []dns.RR {
	rrs := make([]dns.RR, 0, len(ips))
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			rrs = append(rrs, &dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: v4})
		} else {
			rrs = append(rrs, &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: ip})
		}
	}
	return rrs
}

func hdr(owner string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// soa is the SOA for the simulated zone holding name.
func soa(name string) dns.RR {
	zone := registeredParent(name)
	sub := func(l string) string { return dns.Fqdn(l + "." + strings.TrimSuffix(zone, ".")) }
	return &dns.SOA{Hdr: hdr(zone, dns.TypeSOA, 60), Ns: sub("ns1"), Mbox: sub("hostmaster"),
		Serial: 2024010101, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60}
}
