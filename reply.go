package fluxguard

import (
	"net"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// blockedText is the EDE 15 extra text of fluxguard's replies.
const blockedText = "fluxguard: fast-flux domain (T1568.001)"

// The synthetic SOA of negative replies. Its owner is the question name's
// parent (see soaOwner); its MNAME and RNAME are under .invalid (RFC
// 6761), which never resolves.
const (
	soaMname = "fluxguard.invalid."
	soaRname = "blocked.fluxguard.invalid."
)

// reply builds the answer to r for a name flagged with verdict v: REFUSED
// or NXDOMAIN for block, the sinkhole addresses for sinkhole. It carries
// EDE 15 (Blocked) when the query had EDNS0, keeping the client's buffer
// size and DO bit.
//
// The answers a downstream resolver caches (NXDOMAIN, the sinkhole
// addresses, and NODATA for a family the sinkhole has no address of)
// have the TTL of replyTTL, which ends with the hold. The negative ones
// carry an SOA in the authority section whose TTL and MINIMUM are that
// TTL: without one, RFC 2308 leaves a resolver to cache them for a time
// of its own choosing, or not at all. REFUSED is not a negative answer
// and carries none.
func (f *Fluxguard) reply(r *dns.Msg, v engine.Verdict) *dns.Msg {
	m := new(dns.Msg)
	q := r.Question[0]
	ttl := replyTTL(f.cfg.sinkholeTTL, v.HoldLeft)
	switch {
	case f.cfg.action == actionSinkhole:
		m.SetReply(r)
		for _, ip := range f.cfg.sinkhole {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: ttl}
			switch {
			case ip.Is4() && q.Qtype == dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IP(ip.AsSlice())})
			case ip.Is6() && q.Qtype == dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IP(ip.AsSlice())})
			}
		}
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{negativeSOA(q.Name, ttl)}
		}
	case f.cfg.blockRcode == dns.RcodeNameError:
		m.SetRcode(r, dns.RcodeNameError)
		m.Ns = []dns.RR{negativeSOA(q.Name, ttl)}
	default:
		m.SetRcode(r, f.cfg.blockRcode)
	}
	m.RecursionAvailable = true
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), o.Do())
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: blockedText})
	}
	return m
}

// replyTTL returns the TTL of a cacheable reply: the configured one
// (sinkhole_ttl), cut to the whole seconds left of the hold, holdLeft,
// which the engine rounds up; 0 then in the hold's last second. A name
// flagged without a hold (denied, or on the intel list) gets the
// configured TTL.
func replyTTL(configured uint32, holdLeft time.Duration) uint32 {
	if holdLeft <= 0 {
		return configured
	}
	left := uint32(holdLeft/time.Second) - 1
	return min(configured, left)
}

// negativeSOA returns the SOA of a negative reply for name (see soaMname),
// with ttl as its TTL and MINIMUM, and the time as its serial.
func negativeSOA(name string, ttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: soaOwner(name), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      soaMname,
		Mbox:    soaRname,
		Serial:  uint32(time.Now().Unix()),
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  ttl,
	}
}

// soaOwner returns the owner of the negative SOA for name: its parent, as
// the apex of a zone holding name would be, or the root for a top-level
// name. It is not name itself: a zone apex exists, which an NXDOMAIN for
// it would contradict, and resolvers that notice (dnsmasq) do not cache
// such an NXDOMAIN as one. Nor is it a higher ancestor: whatever a
// downstream keeps of the SOA stays as close to the flagged name as it can.
func soaOwner(name string) string {
	if off, end := dns.NextLabel(name, 0); !end {
		return name[off:]
	}
	return "."
}
