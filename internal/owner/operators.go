package owner

import (
	_ "embed"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
)

//go:generate go run ./gen -o operators.bin

// operatorsBin is the operator table written by ./gen: the networks of
// large cloud, CDN, hosting and service operators from the ip-location-db
// ASN dataset (see ATTRIBUTION.md).
//
//go:embed operators.bin
var operatorsBin []byte

// Operator is a cloud, CDN or hosting operator: a short lower-case ID
// ("amazon"), a display name, and the primary ASN that stands for all of
// its networks.
type Operator struct {
	ID, Name string
	ASN      uint32
}

// operatorSet is the decoded table. Ranges name their operator by index;
// net maps an operator to the one whose network it is (itself, but for an
// operator that is a brand of another).
type operatorSet struct {
	ops   []Operator
	net   []uint8
	asns  []uint32
	asnOp []uint8
	bounds
	op4, op6 []uint8
}

var operatorTable = sync.OnceValue(func() *operatorSet {
	s, err := decodeOperators(operatorsBin)
	if err != nil {
		panic(err) // the embedded file is generated and tested
	}
	return s
})

// Operators returns the operators of the embedded table, in the
// generator's order.
func Operators() []Operator { return slices.Clone(operatorTable().ops) }

// OperatorOf returns the operator whose network holds a, if any. An
// IPv4-mapped IPv6 address is looked up as IPv4.
func OperatorOf(a netip.Addr) (Operator, bool) {
	s := operatorTable()
	switch i, v6 := s.index(a); {
	case i < 0:
		return Operator{}, false
	case v6:
		return s.ops[s.net[s.op6[i]]], true
	default:
		return s.ops[s.net[s.op4[i]]], true
	}
}

// frontDoors are the operators whose addresses many unrelated names share,
// or every network asks for: CDN edges, the large clouds' load balancers
// and anycast front ends, and the large services' own networks.
var frontDoors = []string{"amazon", "google", "microsoft", "oracle", "alibaba", "tencent", "ibm", "apple",
	"akamai", "cloudflare", "fastly", "datacamp", "bunny", "gcore", "stackpath", "edgio", "imperva",
	"meta", "netflix", "yahoo", "yandex", "twitter", "bytedance", "zoom", "salesforce", "wikimedia",
	"github", "dropbox", "linkedin", "valve"}

// FrontDoor reports whether a is an address of such an operator: one that
// an attacker can put in its own answers to tie itself to popular names.
func FrontDoor(a netip.Addr) bool {
	op, ok := OperatorOf(a)
	return ok && slices.Contains(frontDoors, op.ID)
}

// OperatorOfASN returns the operator that owns asn (AS14618 is Amazon's as
// much as AS16509 is), if any.
func OperatorOfASN(asn uint32) (Operator, bool) {
	s := operatorTable()
	if i, ok := slices.BinarySearch(s.asns, asn); ok {
		return s.ops[s.net[s.asnOp[i]]], true
	}
	return Operator{}, false
}

// Ranges returns the inclusive start and end of each of the operator's
// IPv4 and IPv6 ranges, nil for an unknown id; an IPv6 range spans whole
// /64s. For simulators and tests.
func Ranges(id string) [][2]netip.Addr {
	s := operatorTable()
	i := slices.IndexFunc(s.ops, func(o Operator) bool { return o.ID == id })
	if i < 0 {
		return nil
	}
	n := s.net[i]
	var out [][2]netip.Addr
	for j, op := range s.op4 {
		if op == n {
			out = append(out, [2]netip.Addr{addr4(s.lo4[j]), addr4(s.hi4[j])})
		}
	}
	for j, op := range s.op6 {
		if op == n {
			out = append(out, [2]netip.Addr{addr6(s.lo6[j], 0), addr6(s.hi6[j], math.MaxUint64)})
		}
	}
	return out
}

// decodeOperators reads the format that ./gen's encode writes.
func decodeOperators(b []byte) (*operatorSet, error) {
	fail := func(what string) (*operatorSet, error) {
		return nil, fmt.Errorf("owner: operators.bin: %s", what)
	}
	if len(b) < 5 || string(b[:5]) != "FGOP\x01" {
		return fail("not a version 1 operator table")
	}
	b = b[5:]
	var bad bool
	u := func() uint64 {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return x
	}
	str := func() string {
		n := u()
		if bad || n > uint64(len(b)) {
			bad = true
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	s := &operatorSet{}
	n := u()
	if n > math.MaxUint8 {
		return fail("too many operators")
	}
	for range n {
		o := Operator{ID: str(), Name: str(), ASN: uint32(u())}
		net := u()
		if net >= n {
			bad = true
		}
		s.ops = append(s.ops, o)
		s.net = append(s.net, uint8(net))
	}
	var asn uint64
	for range u() {
		asn += u()
		op := u()
		if bad || op >= n || asn > math.MaxUint32 || len(s.asns) > 0 && uint32(asn) <= s.asns[len(s.asns)-1] {
			return fail("bad ASN list")
		}
		s.asns = append(s.asns, uint32(asn))
		s.asnOp = append(s.asnOp, uint8(op))
	}
	for v := 4; v <= 6; v += 2 {
		var next uint64
		first := true
		for range u() {
			gap, length, op := u(), u(), u()
			if bad || op >= n || !first && next == 0 {
				return fail("bad range")
			}
			lo := next + gap
			hi := lo + length
			if lo < next || hi < lo || v == 4 && hi > math.MaxUint32 {
				return fail("bad range")
			}
			if v == 4 {
				s.lo4, s.hi4, s.op4 = append(s.lo4, uint32(lo)), append(s.hi4, uint32(hi)), append(s.op4, uint8(op))
			} else {
				s.lo6, s.hi6, s.op6 = append(s.lo6, lo), append(s.hi6, hi), append(s.op6, uint8(op))
			}
			next, first = hi+1, false
		}
	}
	if bad {
		return fail("truncated")
	}
	if len(b) != 0 {
		return fail("trailing bytes")
	}
	return s, nil
}
