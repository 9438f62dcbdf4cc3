package fluxguard

import (
	"net"

	"github.com/miekg/dns"
)

// blockedText is the EDE 15 extra text of fluxguard's replies.
const blockedText = "fluxguard: fast-flux domain (T1568.001)"

// reply builds the answer for a flagged name: REFUSED or NXDOMAIN for block,
// the sinkhole addresses for sinkhole. It carries EDE 15 (Blocked) when the
// query had EDNS0, keeping the client's buffer size and DO bit.
func (f *Fluxguard) reply(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	if f.cfg.action == actionSinkhole {
		m.SetReply(r)
		q := r.Question[0]
		for _, ip := range f.cfg.sinkhole {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: f.cfg.sinkholeTTL}
			switch {
			case ip.Is4() && q.Qtype == dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IP(ip.AsSlice())})
			case ip.Is6() && q.Qtype == dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IP(ip.AsSlice())})
			}
		}
	} else {
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
