package engine

import "net/netip"

// Intel is threat intelligence the operator loads: names flagged at once,
// as a deny rule flags them but with their own reason (ReasonIntel), and
// addresses known bad, which count as evidence against the names whose
// answers bring them (ReasonKnownBadAddr). An allow wins over both.
//
// One listed address never flags a name: an address on a list may be a
// shared host's, or reassigned since. A name is flagged when its answers
// brought at least two listed addresses in two networks, the bar of
// addresses shared with flagged names (see poolIndex); with fewer, the
// reason shows on its verdict and adds nothing to its score. Addresses
// that many unrelated names share (Config.FrontDoor) are never counted:
// a list that holds a CDN's edge would flag the CDN's customers.
type Intel struct {
	names ruleSet
	bad   *addrSet // nil for none
}

// NewIntel compiles names, each of which covers its children, and
// addresses, an address being a /32 (IPv6 /128) prefix. Compiled once, it
// serves every Policy that a policy file's reload makes.
func NewIntel(names []string, addrs []netip.Prefix) *Intel {
	in := &Intel{names: make(ruleSet, len(names)), bad: newAddrSet(addrs)}
	for _, n := range names {
		if n = Normalize(n); n != "" {
			in.names[n] = 0
		}
	}
	return in
}

// WithIntel returns a copy of p with in as its threat intelligence.
func (p *Policy) WithIntel(in *Intel) *Policy {
	q := *p
	q.intel, q.bad = in.names, in.bad
	return &q
}

// listed is the verdict for a name on the intel list.
var listed = Verdict{Level: LevelFlagged, Prev: LevelFlagged, Reasons: ReasonIntel}

// addrSet is a set of prefixes, looked up by address: a map of the
// prefixes, keyed by masked address and length, probed once for each
// length present. IPv4 prefixes are kept IPv4-mapped, 96 bits longer.
type addrSet struct {
	lens     []uint8
	prefixes map[addrPrefix]struct{}
}

type addrPrefix struct {
	addr [16]byte
	bits uint8
}

// newAddrSet returns the set of ps, nil for none.
func newAddrSet(ps []netip.Prefix) *addrSet {
	if len(ps) == 0 {
		return nil
	}
	s := &addrSet{prefixes: make(map[addrPrefix]struct{}, len(ps))}
	var present [129]bool
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96
		}
		s.prefixes[addrPrefix{mask16(p.Addr().As16(), bits), uint8(bits)}] = struct{}{}
		present[bits] = true
	}
	for bits := 128; bits >= 0; bits-- {
		if present[bits] {
			s.lens = append(s.lens, uint8(bits))
		}
	}
	return s
}

// has reports whether a prefix of the set holds a, an IPv4-mapped or
// IPv6 address.
func (s *addrSet) has(a [16]byte) bool {
	for _, bits := range s.lens {
		if _, ok := s.prefixes[addrPrefix{mask16(a, int(bits)), bits}]; ok {
			return true
		}
	}
	return false
}

// mask16 keeps the first bits bits of a.
func mask16(a [16]byte, bits int) [16]byte {
	for i := range a {
		switch {
		case bits >= 8:
			bits -= 8
		case bits <= 0:
			a[i] = 0
		default:
			a[i] &= 0xff << (8 - bits)
			bits = 0
		}
	}
	return a
}

// knownBad reports whether bad lists a and it is not a front door.
func (e *Engine) knownBad(bad *addrSet, a [16]byte) bool {
	return bad != nil && bad.has(a) && (e.cfg.FrontDoor == nil || !e.cfg.FrontDoor(netip.AddrFrom16(a).Unmap()))
}

// remarkBad counts again, against bad, the addresses of en, an exact
// name, seen after since: the intel address list has changed, or its
// addresses have left the window (see remark).
func (e *Engine) remarkBad(sh *shard, en *entry, bad *addrSet, since uint32) {
	en.badNet, en.bad = 0, 0
	if bad == nil {
		return
	}
	sh.eachAddrSince(en, since, func(addr [16]byte, asn uint32) bool {
		if e.knownBad(bad, addr) {
			markAddr(&en.badNet, &en.bad, netHash8(networkKey(addr, asn)))
		}
		return marksSpread(en.bad)
	})
}
