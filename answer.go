package fluxguard

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
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
	if !addressAnswer(m) {
		return nil, 0, nil, false
	}
	qtype := m.Question[0].Qtype
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

// addressAnswer reports whether m may be evidence: a whole NOERROR
// response to one A or AAAA question.
func addressAnswer(m *dns.Msg) bool {
	if m == nil || m.Rcode != dns.RcodeSuccess || m.Truncated || !m.Response || len(m.Question) != 1 {
		return false
	}
	qtype := m.Question[0].Qtype
	return qtype == dns.TypeA || qtype == dns.TypeAAAA
}

// answerPrint hashes the records of m that readAnswer reads, in order,
// TTLs left out (a cache counts them down): two answers of the same print
// make the same observation, and an answer can be told to repeat the
// name's last before it is read (engine.Observation.Print). It returns 0,
// no print, for an answer that is not evidence or that holds name
// servers, which the engine reads in every answer. Its keys are the
// process's own: an upstream cannot aim two answers at one print.
func answerPrint(m *dns.Msg) uint32 {
	if !addressAnswer(m) {
		return 0
	}
	for _, rr := range m.Ns {
		if _, ok := rr.(*dns.NS); ok {
			return 0
		}
	}
	qname := m.Question[0].Name
	h, owner := printKey, ""
	for _, rr := range m.Answer {
		// The type switch first: each case reads its header in place,
		// without a call through the interface.
		switch rr := rr.(type) {
		case *dns.A:
			h = printOwner(h, &owner, rr.Hdr.Name, qname)
			h = printIP(h, rr.Hdr.Rrtype, rr.A.To4())
		case *dns.AAAA:
			h = printOwner(h, &owner, rr.Hdr.Name, qname)
			h = printIP(h, rr.Hdr.Rrtype, rr.AAAA.To16())
		case *dns.CNAME:
			h = printOwner(h, &owner, rr.Hdr.Name, qname)
			h = printMix(h, maphash.String(printSeed, rr.Target)^uint64(rr.Hdr.Rrtype))
		case *dns.NS:
			return 0
		default:
			h = printOwner(h, &owner, rr.Header().Name, qname)
		}
	}
	return max(uint32(h^h>>32), 1)
}

// printSeed and printKey key answerPrint.
var (
	printSeed = maphash.MakeSeed()
	printKey  = rand.Uint64() | 1
)

// printOwner mixes name into h, an answer's print so far, when it is not
// the owner of the record before, which owner holds. Owners change seldom,
// and are mostly the question's name, qname, whose hash is not needed: 1
// stands for it.
func printOwner(h uint64, owner *string, name, qname string) uint64 {
	if name == *owner {
		return h
	}
	*owner = name
	x := uint64(1)
	if name != qname {
		x = maphash.String(printSeed, name)
	}
	return printMix(h, x)
}

// printMix mixes x into h, an answer's print so far.
func printMix(h, x uint64) uint64 {
	hi, lo := bits.Mul64(h^x, printKey)
	return hi ^ lo
}

// printIP mixes an address record's type and address, as rrAddr reads
// it (4 bytes, 16, or none), into h: a word of the type and a 4-byte
// address, or a word of the type then the 16 bytes' two.
func printIP(h uint64, rrtype uint16, ip net.IP) uint64 {
	tag := uint64(len(ip))<<48 | uint64(rrtype)<<32
	if len(ip) != net.IPv6len {
		if len(ip) == net.IPv4len {
			tag |= uint64(binary.BigEndian.Uint32(ip))
		}
		return printMix(h, tag)
	}
	h = printMix(h, tag)
	h = printMix(h, binary.BigEndian.Uint64(ip[:8]))
	return printMix(h, binary.BigEndian.Uint64(ip[8:]))
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
