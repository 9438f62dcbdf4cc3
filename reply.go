package fluxguard

import (
	"math"
	"math/bits"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// maxBlockedText bounds the EDE 15 extra text of fluxguard's replies, in
// bytes: a reply to a 512-byte client keeps room for the question, the
// negative SOA and the OPT.
const maxBlockedText = 200

// blockedReasons orders the reasons in the EDE text, those that flag a
// name alone or weigh most first; it holds every reason.
var blockedReasons = [...]engine.Reasons{
	engine.ReasonDenied, engine.ReasonIntel, engine.ReasonFleet, engine.ReasonKnownBadAddr, engine.ReasonSharedPool, engine.ReasonSeedRule,
	engine.ReasonRegisteredDomain, engine.ReasonPrefixDiversity, engine.ReasonChurn, engine.ReasonRotating,
	engine.ReasonNSChurn, engine.ReasonNSDiversity, engine.ReasonShortTTL, engine.ReasonSuspiciousTLD,
	engine.ReasonManyIPs, engine.ReasonManyClients, engine.ReasonShortSLD,
}

// blockedText returns the EDE 15 extra text of a reply for a name flagged
// with verdict v, so that whoever reads the answer (dig shows it) learns
// why, e.g.
//
//	fluxguard: flagged fast-flux (T1568.001), score 13: 12 IPs in 12 networks, TTL 30s; prefix_diversity,rotating,short_ttl,suspicious_tld
//
// for evidence, or "fluxguard: flagged; denied" for a deny rule. It is
// ASCII, at most maxBlockedText bytes: reasons that do not fit are
// counted ("(+2 more)"), never cut. Built on the stack, it costs the
// string's one allocation; textCache spares even that.
func blockedText(v engine.Verdict) string {
	var buf [maxBlockedText]byte
	b := append(buf[:0], "fluxguard: "...)
	b = append(b, v.Level.String()...)
	if v.Reasons&(engine.ReasonDenied|engine.ReasonIntel) == 0 {
		b = append(b, " fast-flux (T1568.001)"...)
	}
	if v.Score > 0 {
		b = append(b, ", score "...)
		b = strconv.AppendFloat(b, min(v.Score, 1e6), 'f', -1, 64)
	}
	if v.UniqueIPs > 0 {
		b = append(b, ": "...)
		b = strconv.AppendInt(b, int64(v.UniqueIPs), 10)
		b = append(b, " IPs"...)
		if v.Networks > 0 {
			b = append(b, " in "...)
			b = strconv.AppendInt(b, int64(math.Round(v.Networks)), 10)
			b = append(b, " networks"...)
		}
		b = append(b, ", TTL "...)
		b = strconv.AppendUint(b, uint64(v.TTL), 10)
		b = append(b, 's')
	}
	// What is left for the reasons, keeping room to count those left out.
	room := maxBlockedText - len(" (+15 more)")
	sep, left := "; ", bits.OnesCount32(uint32(v.Reasons))
	for _, r := range blockedReasons {
		if v.Reasons&r == 0 {
			continue
		}
		name := r.Name()
		if len(b)+len(sep)+len(name) > room {
			b = append(b, " (+"...)
			b = strconv.AppendInt(b, int64(left), 10)
			b = append(b, " more)"...)
			break
		}
		b = append(append(b, sep...), name...)
		sep = ","
		left--
	}
	return string(b)
}

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
// size and DO bit, with v's level, figures and reasons as its text (see
// blockedText).
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
		ede := &blockedEDE{ede: dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: f.texts.text(v)}}
		ede.options[0] = &ede.ede
		m.IsEdns0().Option = ede.options[:]
	}
	return m
}

// blockedEDE is the EDE option of a reply and the OPT's list of options,
// allocated together: the option list costs no allocation of its own.
type blockedEDE struct {
	ede     dns.EDNS0_EDE
	options [1]dns.EDNS0
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

// textCache keeps the EDE texts of recent verdicts, in slots chosen by a
// hash of what the text says. A held name is answered from memory at high
// rates with the same verdict, whose text is then neither built nor
// allocated again; two verdicts of the same slot take turns.
type textCache [64]atomic.Pointer[cachedText]

// cachedText is the text of the verdicts of key.
type cachedText struct {
	key  textKey
	text string
}

// textKey is what blockedText reads of a verdict.
type textKey struct {
	level    engine.Level
	reasons  engine.Reasons
	ttl      uint32
	ips      int
	score    float64
	networks float64
}

// text returns blockedText(v), from the cache when it has it.
func (c *textCache) text(v engine.Verdict) string {
	k := textKey{v.Level, v.Reasons, v.TTL, v.UniqueIPs, v.Score, v.Networks}
	h := (math.Float64bits(k.score) ^ math.Float64bits(k.networks)<<1 ^ uint64(k.reasons)<<32 ^ uint64(k.ttl)<<16 ^ uint64(k.ips)) * 0x9e3779b97f4a7c15
	slot := &c[h>>58]
	if e := slot.Load(); e != nil && e.key == k {
		return e.text
	}
	e := &cachedText{key: k, text: blockedText(v)}
	slot.Store(e)
	return e.text
}
