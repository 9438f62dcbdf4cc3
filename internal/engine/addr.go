package engine

import (
	"encoding/binary"
	"net/netip"
)

// IsPublic reports whether a is a public unicast address: not in any of
// the special-purpose ranges (RFC 6890 and successors) listed in nonPublic
// in addr_test.go, which checks this function against them. IPv4-mapped
// IPv6 addresses are judged as the IPv4 address they carry.
func IsPublic(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case a.Is4():
		return isPublic4(a.As4())
	case a.Is6():
		b := a.As16()
		if b[0]&0xe0 != 0x20 { // outside 2000::/3
			return false
		}
		return !(b[0] == 0x20 && b[1] == 0x01 && (b[2] == 0x0d && b[3] == 0xb8 || b[2] == 0 && b[3] == 2 && b[4] == 0 && b[5] == 0) ||
			b[0] == 0x3f && b[1] == 0xff && b[2]&0xf0 == 0)
	}
	return false
}

// isPublic4 is IsPublic for IPv4, without the prefix scan: the first octet
// decides for all but a few special ranges.
func isPublic4(b [4]byte) bool {
	switch b[0] {
	case 0, 10, 127:
		return false
	case 100:
		return b[1]&0xc0 != 64 // 100.64.0.0/10
	case 169:
		return b[1] != 254
	case 172:
		return b[1]&0xf0 != 16
	case 192:
		return !(b[1] == 168 || b[1] == 0 && (b[2] == 0 || b[2] == 2))
	case 198:
		return b[1]&0xfe != 18 && !(b[1] == 51 && b[2] == 100)
	case 203:
		return !(b[1] == 0 && b[2] == 113)
	}
	return b[0] < 224
}

// addrWords returns the 16-byte form of an address (netip.Addr.As16) as
// two little-endian words, for hashing. An IPv4 address's are made from
// its 4 bytes: the copy of the array As16 returns is written as two words
// and read back as one 16-byte load, which the CPU cannot forward from
// the stores, and most answers are IPv4.
func addrWords(a netip.Addr) (uint64, uint64) {
	if a.Is4() {
		b := a.As4()
		return 0, 0xffff<<16 | uint64(binary.LittleEndian.Uint32(b[:]))<<32
	}
	b := a.As16()
	return binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])
}
