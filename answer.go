package fluxguard

import (
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// answerBuffers hold what readAnswer reads from an answer. They are pooled
// rather than put on the stack, which would make every query's goroutine
// grow its stack.
type answerBuffers struct {
	obs   engine.Observation
	addrs [maxAnswerAddrs]netip.Addr
	chain [maxChain]string
	ns    [maxNS]string
}

var buffers = sync.Pool{New: func() any { return new(answerBuffers) }}

// readAnswer reads the evidence in m, an answer for name to client, into
// pooled buffers, or returns nil when m has no address for name. An answer
// of private addresses only is read, without them, for the engine to
// tell (engine.SkipNoAddrs).
func readAnswer(m *dns.Msg, name string, client netip.Addr) *answerBuffers {
	b := buffers.Get().(*answerBuffers)
	b.obs = engine.Observation{Name: name, Client: client}
	var found bool
	if b.obs.Addrs, b.obs.MinTTL, b.obs.Chain, found = answerAddrs(m, &b.addrs, &b.chain); !found {
		buffers.Put(b)
		return nil
	}
	b.obs.NS = nameServers(m, &b.ns)
	return b
}

// maxAnswerAddrs bounds the addresses taken from one answer, maxChain the
// CNAME hops followed, and maxNS the name servers taken: hostile answers
// cannot make fluxguard work more.
const (
	maxAnswerAddrs = 64
	maxChain       = 8
	maxNS          = 8
)

// rrAddr returns the address of an A or AAAA record, invalid for others.
// An address that NAT64 synthesized (DNS64, RFC 6147) in the well-known
// prefix 64:ff9b::/96 (RFC 6052) is the IPv4 address it carries: the host
// the client reaches.
func rrAddr(rr dns.RR) netip.Addr {
	var ip netip.Addr
	switch rr := rr.(type) {
	case *dns.A:
		ip, _ = netip.AddrFromSlice(rr.A.To4())
	case *dns.AAAA:
		ip, _ = netip.AddrFromSlice(rr.AAAA.To16())
		if b := ip.As16(); ip.IsValid() && [12]byte(b[:12]) == nat64Prefix {
			ip = netip.AddrFrom4([4]byte(b[12:]))
		}
	}
	return ip
}

// nat64Prefix is the NAT64 well-known prefix, 64:ff9b::/96.
var nat64Prefix = [12]byte{0, 0x64, 0xff, 0x9b}

// nameServers reads into buf the targets of m's NS records (answer or
// authority section) owned by the question name or one of its parents
// below the root: the name servers of the name's zone, whose rotation is
// double flux.
func nameServers(m *dns.Msg, buf *[maxNS]string) []string {
	if m == nil || len(m.Question) != 1 {
		return nil
	}
	qname, n := m.Question[0].Name, 0
	for _, section := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range section {
			ns, ok := rr.(*dns.NS)
			if !ok || n == len(buf) || ns.Hdr.Name == "." || !dns.IsSubDomain(ns.Hdr.Name, qname) {
				continue
			}
			buf[n] = engine.Normalize(ns.Ns)
			n++
		}
	}
	return buf[:n]
}

// answerAddrs reads a NOERROR answer into buf: the A or AAAA addresses of the
// question name, following its CNAME chain from the question only, and
// returns them with their lowest TTL and the chain's targets (in chain),
// and whether it found addresses for the question. Only public addresses
// are kept (see engine.IsPublic). Records whose owner is not on the chain
// are ignored, so an answer cannot put evidence on a name it was not
// asked about. It finds no address when m is not evidence: nil, not
// NOERROR, truncated, or without an address for the question.
func answerAddrs(m *dns.Msg, buf *[maxAnswerAddrs]netip.Addr, chain *[maxChain]string) (addrs []netip.Addr, minTTL uint32, targets []string, found bool) {
	if m == nil || m.Rcode != dns.RcodeSuccess || m.Truncated || !m.Response || len(m.Question) != 1 {
		return nil, 0, nil, false
	}
	qtype := m.Question[0].Qtype
	if qtype != dns.TypeA && qtype != dns.TypeAAAA {
		return nil, 0, nil, false
	}
	target, n, hops := m.Question[0].Name, 0, 0
	for {
		next := ""
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Name != target && !strings.EqualFold(h.Name, target) || n == len(buf) {
				continue
			}
			if cname, ok := rr.(*dns.CNAME); ok {
				if next == "" {
					next = cname.Target
				}
				continue
			}
			ip := rrAddr(rr)
			if !ip.IsValid() || h.Rrtype != qtype {
				continue
			}
			// Only public addresses take a place in buf: others,
			// which are no evidence, must not crowd them out.
			if found = true; !engine.IsPublic(ip) {
				continue
			}
			buf[n] = ip
			if n++; n == 1 || h.Ttl < minTTL {
				minTTL = h.Ttl
			}
		}
		if next == "" || found || hops == len(chain) {
			break
		}
		target = next
		chain[hops] = engine.Normalize(next)
		hops++
	}
	return buf[:n], minTTL, chain[:hops], found
}

// clientAddr returns the client's address, invalid when there is none
// (for example a request made by a plugin rather than a client).
func clientAddr(remote net.Addr) netip.Addr {
	switch a := remote.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
