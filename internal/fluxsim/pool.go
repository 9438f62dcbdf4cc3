package fluxsim

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/fluxguard/fluxguard/internal/owner"
)

// reserved holds the non-public ranges that netip's predicates don't cover.
var reserved = func() (ps []netip.Prefix) {
	for _, s := range strings.Fields(`0.0.0.0/8 100.64.0.0/10 192.0.0.0/24 192.0.2.0/24 198.18.0.0/15
		198.51.100.0/24 203.0.113.0/24 240.0.0.0/4 2001:db8::/32 2001::/23 2002::/16 64:ff9b::/96`) {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// firstOctets are the first octets pool4 cycles over: 23..223 minus those with reserved blocks.
var firstOctets = func() []byte {
	var o []byte
	for b := 23; b <= 223; b++ {
		switch b {
		case 100, 127, 169, 172, 192, 198, 203:
			continue
		}
		o = append(o, byte(b))
	}
	return o
}()

// isPublic reports whether ip is a globally routable unicast address.
func isPublic(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// rng returns a generator seeded from a hash of seed, so pools are deterministic per name.
func rng(seed string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(seed))
	s := h.Sum64()
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// pool4 returns n distinct public IPv4 addresses spread over many /16s.
func pool4(seed string, n int) []net.IP {
	r := rng(seed)
	start := r.IntN(len(firstOctets))
	return fill(n, func(i int) net.IP {
		return net.IPv4(firstOctets[(start+i)%len(firstOctets)], byte(r.IntN(256)), byte(r.IntN(256)), byte(1+r.IntN(254))).To4()
	})
}

// pool6 returns n distinct public IPv6 addresses from 2a00::/12.
func pool6(seed string, n int) []net.IP {
	r := rng("v6:" + seed)
	return fill(n, func(int) net.IP {
		ip := make(net.IP, net.IPv6len)
		ip[0], ip[1] = 0x2a, byte(r.IntN(16))
		for j := 2; j < 8; j++ {
			ip[j] = byte(r.IntN(256))
		}
		ip[15] = byte(1 + r.IntN(254))
		return ip
	})
}

// fill draws addresses from gen until it has n distinct public ones.
func fill(n int, gen func(i int) net.IP) []net.IP {
	out := make([]net.IP, 0, n)
	seen := make(map[string]bool, n)
	for len(out) < n {
		ip := gen(len(out))
		if k := ip.String(); isPublic(ip) && !seen[k] {
			seen[k] = true
			out = append(out, ip)
		}
	}
	return out
}

// prefixes16 returns the first k distinct public /16s (as their first two
// octets) of provider's deterministic sequence, so that a provider's names
// with fewer prefixes use a subset of those with more.
func prefixes16(provider string, k int) [][2]byte {
	r := rng("prefixes:" + provider)
	out := make([][2]byte, 0, k)
	for len(out) < k {
		p := [2]byte{firstOctets[r.IntN(len(firstOctets))], byte(r.IntN(256))}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// prefixPool4 returns n distinct public IPv4 addresses spread evenly over
// the k /16s of provider, with host parts seeded by seed. Every /16 that
// prefixes16 returns is public as a whole (firstOctets skips the reserved
// ones), and n must be at most k*hostsPer16.
func prefixPool4(seed, provider string, n, k int) []net.IP {
	nets, r := prefixes16(provider, k), rng(seed)
	return fill(n, func(i int) net.IP {
		p := nets[i%k]
		return net.IPv4(p[0], p[1], byte(r.IntN(256)), byte(1+r.IntN(254))).To4()
	})
}

// prefixPool6 returns n distinct public IPv6 addresses spread evenly over
// k /48s of 2a00::/12 chosen for provider, with host parts seeded by seed.
func prefixPool6(seed, provider string, n, k int) []net.IP {
	pr, r := rng("prefixes6:"+provider), rng("v6:"+seed)
	nets := make([][6]byte, 0, k)
	for len(nets) < k {
		p := [6]byte{0x2a, byte(pr.IntN(16))}
		for j := 2; j < 6; j++ {
			p[j] = byte(pr.IntN(256))
		}
		if !slices.Contains(nets, p) {
			nets = append(nets, p)
		}
	}
	return fill(n, func(i int) net.IP {
		ip := make(net.IP, net.IPv6len)
		copy(ip, nets[i%k][:])
		for j := 6; j < 15; j++ {
			ip[j] = byte(r.IntN(256))
		}
		ip[15] = byte(1 + r.IntN(254))
		return ip
	})
}

// rotate returns ips starting at index start, wrapping around.
func rotate(ips []net.IP, start int) []net.IP {
	return append(ips[start:len(ips):len(ips)], ips[:start]...)
}

// operatorRanges4 returns the IPv4 ranges of operator id, inclusive.
func operatorRanges4(id string) [][2]netip.Addr {
	var out [][2]netip.Addr
	for _, r := range owner.Ranges(id) {
		if r[0].Is4() {
			out = append(out, r)
		}
	}
	return out
}

// operatorPool4 returns n distinct public IPv4 addresses from the real
// ranges of the operators ops, spread evenly over them; within an
// operator, each address comes from a range drawn at random (of k of its
// ranges large enough to hold the pool, in a seeded order, or of all of
// them when k is 0), so that the pool spreads over as many of its /16s as
// the operator has.
func operatorPool4(seed string, ops []string, n, k int) []net.IP {
	r := rng("operators:" + seed)
	ranges := make([][][2]netip.Addr, len(ops))
	for i, op := range ops {
		rs := slices.Clone(operatorRanges4(op))
		if k > 0 {
			large := slices.DeleteFunc(slices.Clone(rs), func(rg [2]netip.Addr) bool { return size4(rg) < uint32(4*n) })
			if len(large) >= k {
				rs = large
			}
		}
		rng("ranges:"+seed+op).Shuffle(len(rs), func(a, b int) { rs[a], rs[b] = rs[b], rs[a] })
		if k > 0 && k < len(rs) {
			rs = rs[:k]
		}
		ranges[i] = rs
	}
	return fill(n, func(i int) net.IP {
		rs := ranges[i%len(ops)]
		rg := rs[r.IntN(len(rs))]
		return binary.BigEndian.AppendUint32(nil, binary.BigEndian.Uint32(rg[0].AsSlice())+r.Uint32N(size4(rg)))
	})
}

// size4 is the number of addresses in the IPv4 range rg.
func size4(rg [2]netip.Addr) uint32 {
	return binary.BigEndian.Uint32(rg[1].AsSlice()) - binary.BigEndian.Uint32(rg[0].AsSlice()) + 1
}
