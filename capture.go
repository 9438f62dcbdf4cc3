package fluxguard

import (
	"context"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// captureWriter sees the answer the rest of the chain writes, has the engine
// observe it, and writes either it, untouched, or the action's reply. With
// after set, it reads the evidence as the answer is written and leaves the
// engine's work to finish, once the answer has gone out.
type captureWriter struct {
	dns.ResponseWriter
	f       *Fluxguard
	ctx     context.Context
	metrics *serverMetrics
	req     *dns.Msg
	name    string
	client  netip.Addr // the querying client's address, invalid when unknown
	after   bool
	state   atomic.Uint32  // answerNone, then answerTaken, answerPending, answerDone
	pending *answerBuffers // the evidence read, with answerPending
}

// The states of a captureWriter. Only the first answer is evidence; the
// handler's finish moves to answerDone, judging a pending answer, and an
// answer read as it does so is judged by its writer.
const (
	answerNone    uint32 = iota // nothing written yet
	answerTaken                 // the first answer is being inspected
	answerPending               // its evidence waits for finish
	answerDone                  // finish ran: whatever comes next is not evidence
)

// WriteMsg implements dns.ResponseWriter. Its frame stays on the stack
// while the answer is written, so the inspection runs in frames of its
// own, gone by then.
func (c *captureWriter) WriteMsg(m *dns.Msg) error {
	if c.state.CompareAndSwap(answerNone, answerTaken) {
		if c.after {
			c.read(m)
		} else if v, flagged := c.flagged(m); flagged && c.f.cfg.action != actionLog {
			return c.f.act(c.metrics, c.ResponseWriter, c.req, v)
		}
	}
	return c.ResponseWriter.WriteMsg(m)
}

// flagged inspects m and reports whether it flags the name, with the
// verdict. A brief verdict that repeats the last one knows no hold (see
// engine.Verdict.HoldLeft): the hold is looked up then, for the reply's TTL.
//
//go:noinline
func (c *captureWriter) flagged(m *dns.Msg) (engine.Verdict, bool) {
	v, ok := c.f.inspect(c.ctx, c.metrics, c.name, c.client, m)
	if !ok || v.Level != engine.LevelFlagged {
		return v, false
	}
	if v.HoldLeft == 0 && v.Reasons&engine.ReasonDenied == 0 {
		if hv, held := c.f.eng.Held(c.name); held {
			v.HoldLeft = hv.HoldLeft
		}
	}
	return v, true
}

// read keeps m's evidence for finish, or judges it itself when finish has
// run meanwhile.
//
//go:noinline
func (c *captureWriter) read(m *dns.Msg) {
	b := readAnswer(m, c.name, c.client)
	if b == nil {
		return
	}
	c.pending = b
	if !c.state.CompareAndSwap(answerTaken, answerPending) {
		c.judge(b)
	}
}

// finish judges the evidence read from the answer, after the rest of the
// chain has returned; an answer written later is no evidence.
func (c *captureWriter) finish() {
	if c.state.Swap(answerDone) == answerPending {
		c.judge(c.pending)
	}
}

// judge has the engine judge b's evidence and returns b to the pool.
//
//go:noinline
func (c *captureWriter) judge(b *answerBuffers) {
	c.f.judge(c.ctx, c.metrics, &b.obs)
	c.pending = nil
	buffers.Put(b)
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
func rrAddr(rr dns.RR) netip.Addr {
	var ip netip.Addr
	switch rr := rr.(type) {
	case *dns.A:
		ip, _ = netip.AddrFromSlice(rr.A.To4())
	case *dns.AAAA:
		ip, _ = netip.AddrFromSlice(rr.AAAA.To16())
	}
	return ip
}

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

// observe reads a NOERROR answer into buf: the A or AAAA addresses of the
// question name, following its CNAME chain from the question only, and
// returns them with their lowest TTL and the chain's targets (in chain). Records whose owner is not on the
// chain are ignored, so an answer cannot put evidence on a name it was not
// asked about. It returns no address when m is not evidence: nil, not
// NOERROR, truncated, or without an address for the question.
func observe(m *dns.Msg, buf *[maxAnswerAddrs]netip.Addr, chain *[maxChain]string) (addrs []netip.Addr, minTTL uint32, targets []string) {
	if m == nil || m.Rcode != dns.RcodeSuccess || m.Truncated || !m.Response || len(m.Question) != 1 {
		return nil, 0, nil
	}
	qtype := m.Question[0].Qtype
	if qtype != dns.TypeA && qtype != dns.TypeAAAA {
		return nil, 0, nil
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
			buf[n] = ip
			if n++; n == 1 || h.Ttl < minTTL {
				minTTL = h.Ttl
			}
		}
		if next == "" || n > 0 || hops == len(chain) {
			break
		}
		target = next
		chain[hops] = engine.Normalize(next)
		hops++
	}
	return buf[:n], minTTL, chain[:hops]
}
