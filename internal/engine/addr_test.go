package engine

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// nonPublic lists the special-purpose ranges (RFC 6890 and successors) that are
// never evidence of flux: an answer pointing there is internal, a sinkhole or junk.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network", 0.0.0.0
	netip.MustParsePrefix("10.0.0.0/8"),      // private
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local
	netip.MustParsePrefix("172.16.0.0/12"),   // private
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("192.168.0.0/16"),  // private
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("2001:2::/48"),     // benchmarking
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("3fff::/20"),       // documentation (RFC 9637)
}

// globalUnicast6 is the only IPv6 space that holds public unicast addresses;
// loopback, unspecified, ULA, link-local and multicast all lie outside it.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// isPublicSlow is IsPublic written as a plain scan of the special ranges.
func isPublicSlow(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.Is6() && !globalUnicast6.Contains(a) {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// TestIsPublicMatchesRanges checks the fast IsPublic against the range
// table on every /16 of IPv4 (at three hosts each) and IPv6 edge cases.
func TestIsPublicMatchesRanges(t *testing.T) {
	for hi := range 1 << 16 {
		for _, lo := range []uint16{0, 0x6400, 0xffff} {
			a := netip.AddrFrom4([4]byte{byte(hi >> 8), byte(hi), byte(lo >> 8), byte(lo)})
			if IsPublic(a) != isPublicSlow(a) {
				t.Fatalf("IsPublic(%s) = %v, table says %v", a, IsPublic(a), isPublicSlow(a))
			}
		}
	}
	for _, p := range nonPublic {
		for _, a := range []netip.Addr{p.Addr(), lastAddr(p)} {
			if IsPublic(a) {
				t.Errorf("IsPublic(%s) = true, in %s", a, p)
			}
		}
	}
	for _, s := range []string{"1fff:ffff::1", "2000::1", "2001:db7:ffff::1", "2001:db9::", "2001:3::1", "3ffe:ffff::1", "3fff:1000::", "4000::1", "2001:2:0:1::1"} {
		a := netip.MustParseAddr(s)
		if IsPublic(a) != isPublicSlow(a) {
			t.Errorf("IsPublic(%s) = %v, table says %v", s, IsPublic(a), isPublicSlow(a))
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestAddrWords checks addrWords against the 16-byte form of addresses of
// both families.
func TestAddrWords(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "45.1.2.3", "255.255.255.255", "::ffff:45.1.2.3", "::", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		a := netip.MustParseAddr(s)
		b := a.As16()
		w0, w1 := addrWords(a)
		if want0, want1 := binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:]); w0 != want0 || w1 != want1 {
			t.Errorf("addrWords(%s) = %#x %#x, want %#x %#x", s, w0, w1, want0, want1)
		}
	}
}
