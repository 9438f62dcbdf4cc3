package fluxguard

import (
	"context"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/plugin/engine"
)

// captureWriter sees the answer the rest of the chain writes, has the engine
// observe it, and writes either it, untouched, or the action's reply.
type captureWriter struct {
	dns.ResponseWriter
	f       *Fluxguard
	ctx     context.Context
	server  string
	req     *dns.Msg
	name    string
	written bool
}

// WriteMsg implements dns.ResponseWriter.
func (c *captureWriter) WriteMsg(m *dns.Msg) error {
	if c.written { // only the first answer is evidence
		return c.ResponseWriter.WriteMsg(m)
	}
	c.written = true
	v, ok := c.f.inspect(c.ctx, c.server, c.name, clientAddr(c.ResponseWriter), m)
	if ok && v.Level == engine.LevelFlagged && c.f.cfg.action != actionLog {
		return c.f.act(c.server, c.ResponseWriter, c.req, v)
	}
	return c.ResponseWriter.WriteMsg(m)
}

// maxAnswerAddrs bounds the addresses taken from one answer, and maxChain
// the CNAME hops followed: hostile answers cannot make fluxguard work more.
const (
	maxAnswerAddrs = 64
	maxChain       = 8
)

// observe fills obs from a NOERROR answer: the A and AAAA addresses of the
// question name, following its CNAME chain from the question only, and
// their lowest TTL. Records whose owner is not on the chain are ignored, so
// an answer cannot put evidence on a name it was not asked about. It reports
// false when m is not evidence: nil, not NOERROR, truncated, or no address.
func observe(m *dns.Msg, obs *engine.Observation, buf []netip.Addr) bool {
	if m == nil || m.Rcode != dns.RcodeSuccess || m.Truncated || !m.Response || len(m.Question) != 1 {
		return false
	}
	qtype := m.Question[0].Qtype
	if qtype != dns.TypeA && qtype != dns.TypeAAAA {
		return false
	}
	target := m.Question[0].Name
	for range maxChain + 1 {
		next := ""
		for _, rr := range m.Answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, target) || len(buf) == cap(buf) {
				continue
			}
			var ip netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				ip, _ = netip.AddrFromSlice(rr.A.To4())
			case *dns.AAAA:
				ip, _ = netip.AddrFromSlice(rr.AAAA.To16())
			case *dns.CNAME:
				if next == "" {
					next = rr.Target
				}
				continue
			}
			if !ip.IsValid() || h.Rrtype != qtype {
				continue
			}
			buf = append(buf, ip)
			if obs.MinTTL == 0 || h.Ttl < obs.MinTTL {
				obs.MinTTL = h.Ttl
			}
		}
		if next == "" || len(buf) > 0 {
			break
		}
		target = next
	}
	obs.Addrs = buf
	return len(buf) > 0
}
