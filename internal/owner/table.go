package owner

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"math/bits"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Table maps addresses to autonomous system numbers: sorted, non-overlapping
// inclusive ranges in parallel slices, one set for IPv4 and one for IPv6.
// IPv6 ranges are kept by their /64 bounds (the first 64 bits of the start
// and end addresses), which is as fine as routing goes and halves the
// memory. A Table is read-only once built and safe for concurrent use.
type Table struct {
	bounds
	asn4, asn6 []uint32
}

// bounds are sorted, non-overlapping inclusive ranges in parallel slices:
// IPv4 addresses, and the first 64 bits of IPv6 ones.
type bounds struct {
	lo4, hi4 []uint32
	lo6, hi6 []uint64
}

// index returns the index of the range that holds a, in the IPv4 or (v6)
// the IPv6 slices, or -1. An IPv4-mapped IPv6 address is looked up as IPv4.
func (b *bounds) index(a netip.Addr) (i int, v6 bool) {
	if a.Is4In6() {
		a = a.Unmap()
	}
	switch {
	case a.Is4():
		b4 := a.As4()
		x := binary.BigEndian.Uint32(b4[:])
		if i := find(b.lo4, x); i >= 0 && x <= b.hi4[i] {
			return i, false
		}
	case a.Is6():
		x := hi64(a)
		if i := find(b.lo6, x); i >= 0 && x <= b.hi6[i] {
			return i, true
		}
	}
	return -1, false
}

// Lookup returns the ASN of a, 0 when the table does not know it. An
// IPv4-mapped IPv6 address is looked up as IPv4.
func (t *Table) Lookup(a netip.Addr) uint32 {
	switch i, v6 := t.index(a); {
	case i < 0:
		return 0
	case v6:
		return t.asn6[i]
	default:
		return t.asn4[i]
	}
}

// Len returns the number of IPv4 and IPv6 ranges in the table.
func (t *Table) Len() (v4, v6 int) { return len(t.lo4), len(t.lo6) }

// All yields the table's ranges in address order, IPv4 first, each as its
// inclusive start and end and its ASN; an IPv6 range is yielded by its /64
// bounds (start ::, end :ffff:ffff:ffff:ffff).
func (t *Table) All() iter.Seq2[[2]netip.Addr, uint32] {
	return func(yield func([2]netip.Addr, uint32) bool) {
		for i := range t.lo4 {
			if !yield([2]netip.Addr{addr4(t.lo4[i]), addr4(t.hi4[i])}, t.asn4[i]) {
				return
			}
		}
		for i := range t.lo6 {
			if !yield([2]netip.Addr{addr6(t.lo6[i], 0), addr6(t.hi6[i], math.MaxUint64)}, t.asn6[i]) {
				return
			}
		}
	}
}

// find returns the index of the last element of lo that is <= x, -1 when
// there is none. lo is sorted.
func find[T uint32 | uint64](lo []T, x T) int {
	i, j := 0, len(lo)
	for i < j {
		h := int(uint(i+j) >> 1)
		if lo[h] <= x {
			i = h + 1
		} else {
			j = h
		}
	}
	return i - 1
}

func hi64(a netip.Addr) uint64 {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8])
}

func addr4(x uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], x)
	return netip.AddrFrom4(b)
}

func addr6(hi, lo uint64) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// ReadCSV reads an ip-location-db ASN table: rows of start,end,asn[,org],
// inclusive ranges, with addresses either written out (1.0.0.0,
// 2001:200::) or as decimal integers (the -num files). IPv4 and IPv6 rows
// may share one file; an integer row whose end fits in 32 bits is IPv4.
// Rows need not be sorted; where ranges overlap, the one that starts later
// wins (of two that start together, the narrower), as a more specific
// route would. Rows of ASN 0 are dropped.
func ReadCSV(r io.Reader) (*Table, error) {
	var b builder
	if err := b.read(r, ""); err != nil {
		return nil, err
	}
	return b.table(), nil
}

// Open reads an ip-location-db ASN table from path: a .csv file, a
// gzip-compressed .csv.gz, or a directory laid out as the npm package
// @ip-location-db/asn is, whose asn-ipv4.csv and asn-ipv6.csv (or their
// .csv.gz) are both loaded.
func Open(path string) (*Table, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("owner: %w", err)
	}
	var b builder
	if !fi.IsDir() {
		if err := b.readFile(path); err != nil {
			return nil, err
		}
		return b.table(), nil
	}
	for _, name := range []string{"asn-ipv4", "asn-ipv6"} {
		p := filepath.Join(path, name+".csv")
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(p + ".gz"); err == nil {
				p += ".gz"
			} else {
				return nil, fmt.Errorf("owner: %s has no %s.csv", path, name)
			}
		}
		if err := b.readFile(p); err != nil {
			return nil, err
		}
	}
	return b.table(), nil
}

// span is a range being built: IPv4 ranges and IPv6 /64 bounds both fit in
// uint64.
type span struct {
	lo, hi uint64
	asn    uint32
}

type builder struct {
	v4, v6 []span
}

func (b *builder) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("owner: %s: %w", path, err)
		}
		defer z.Close()
		r = z
	}
	return b.read(r, filepath.Base(path))
}

// read adds the rows of one CSV; name, when not empty, is put in errors.
func (b *builder) read(r io.Reader, name string) error {
	where := func(line int) string {
		if name == "" {
			return fmt.Sprintf("owner: line %d", line)
		}
		return fmt.Sprintf("owner: %s line %d", name, line)
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return fmt.Errorf("%s: %v", where(pe.Line), pe.Err)
			}
			return fmt.Errorf("%s: %w", where(row+1), err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < 3 {
			return fmt.Errorf("%s: %d fields, want start,end,asn[,org]", where(line), len(rec))
		}
		if row == 0 && isHeader(rec) {
			continue
		}
		asn, err := strconv.ParseUint(strings.TrimSpace(rec[2]), 10, 32)
		if err != nil {
			return fmt.Errorf("%s: ASN %q is not a number", where(line), rec[2])
		}
		lo, v6lo, err := parseBound(rec[0])
		if err != nil {
			return fmt.Errorf("%s: start %q: %v", where(line), rec[0], err)
		}
		hi, v6hi, err := parseBound(rec[1])
		if err != nil {
			return fmt.Errorf("%s: end %q: %v", where(line), rec[1], err)
		}
		if lo.num && hi.num {
			// Integer rows: IPv4 when the end fits in 32 bits.
			v6lo = hi.hi != 0 || hi.lo > math.MaxUint32
			v6hi = v6lo
		}
		if v6lo != v6hi {
			return fmt.Errorf("%s: start and end are not of one address family", where(line))
		}
		if lo.hi > hi.hi || lo.hi == hi.hi && lo.lo > hi.lo {
			return fmt.Errorf("%s: start is after end", where(line))
		}
		if asn == 0 {
			continue
		}
		if v6lo {
			b.v6 = append(b.v6, span{lo.hi, hi.hi, uint32(asn)})
		} else {
			b.v4 = append(b.v4, span{lo.lo, hi.lo, uint32(asn)})
		}
	}
}

// isHeader tells a header row (start,end,asn,...) from data: its ASN
// column is not a number and its start is not an address.
func isHeader(rec []string) bool {
	if _, err := strconv.ParseUint(strings.TrimSpace(rec[2]), 10, 32); err == nil {
		return false
	}
	_, _, err := parseBound(rec[0])
	return err != nil
}

// u128 is an address as a 128-bit number; num says it was written as an
// integer rather than as an address.
type u128 struct {
	hi, lo uint64
	num    bool
}

// parseBound parses a range bound, an address or a decimal integer, and
// says whether it is IPv6 (for an integer, whether it needs more than 32
// bits; read decides).
func parseBound(s string) (u128, bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return u128{}, false, errors.New("empty")
	}
	if strings.ContainsAny(s, ".:") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return u128{}, false, errors.New("not an address")
		}
		if a.Is4() {
			b := a.As4()
			return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}, false, nil
		}
		b := a.As16()
		return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}, true, nil
	}
	var v u128
	v.num = true
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return u128{}, false, errors.New("not an address or a number")
		}
		// v = v*10 + c, failing past 128 bits.
		h1, l := bits.Mul64(v.lo, 10)
		h2, h := bits.Mul64(v.hi, 10)
		h, carry := bits.Add64(h, h1, 0)
		if h2 != 0 || carry != 0 {
			return u128{}, false, errors.New("number out of range")
		}
		l, carry = bits.Add64(l, uint64(c-'0'), 0)
		h, carry = bits.Add64(h, 0, carry)
		if carry != 0 {
			return u128{}, false, errors.New("number out of range")
		}
		v.hi, v.lo = h, l
	}
	return v, v.hi != 0 || v.lo > math.MaxUint32, nil
}

func (b *builder) table() *Table {
	t := &Table{}
	for _, s := range normalize(b.v4) {
		t.lo4 = append(t.lo4, uint32(s.lo))
		t.hi4 = append(t.hi4, uint32(s.hi))
		t.asn4 = append(t.asn4, s.asn)
	}
	for _, s := range normalize(b.v6) {
		t.lo6 = append(t.lo6, s.lo)
		t.hi6 = append(t.hi6, s.hi)
		t.asn6 = append(t.asn6, s.asn)
	}
	t.lo4, t.hi4, t.asn4 = slices.Clip(t.lo4), slices.Clip(t.hi4), slices.Clip(t.asn4)
	t.lo6, t.hi6, t.asn6 = slices.Clip(t.lo6), slices.Clip(t.hi6), slices.Clip(t.asn6)
	b.v4, b.v6 = nil, nil
	return t
}

// normalize sorts spans, resolves overlaps (the later start wins; of two
// that start together, the narrower) and merges adjacent spans of one ASN.
func normalize(s []span) []span {
	slices.SortFunc(s, func(a, b span) int {
		if a.lo != b.lo {
			if a.lo < b.lo {
				return -1
			}
			return 1
		}
		if a.hi != b.hi {
			if a.hi > b.hi {
				return -1
			}
			return 1
		}
		return 0
	})
	var out []span
	emit := func(lo, hi uint64, asn uint32) {
		if n := len(out); n > 0 && out[n-1].asn == asn && out[n-1].hi != math.MaxUint64 && out[n-1].hi+1 == lo {
			out[n-1].hi = hi
			return
		}
		out = append(out, span{lo, hi, asn})
	}
	overlap := false
	for i := 1; i < len(s); i++ {
		if s[i].lo <= s[i-1].hi {
			overlap = true
			break
		}
	}
	if !overlap {
		for _, r := range s {
			emit(r.lo, r.hi, r.asn)
		}
		return out
	}
	// Sweep: the ranges covering the point cur are on the stack in order
	// of start, so the winner is the topmost that has not ended.
	var stack []span
	var cur uint64
	done := false // cur has passed the top of the address space
	flush := func(limit uint64, all bool) {
		for len(stack) > 0 && !done && (all || cur < limit) {
			top := stack[len(stack)-1]
			if top.hi < cur {
				stack = stack[:len(stack)-1]
				continue
			}
			end := top.hi
			if !all && limit-1 < end {
				end = limit - 1
			}
			emit(cur, end, top.asn)
			if end == math.MaxUint64 {
				done = true
				return
			}
			cur = end + 1
		}
	}
	for _, r := range s {
		flush(r.lo, false)
		if done {
			break
		}
		stack = append(stack, r)
		cur = r.lo
	}
	flush(0, true)
	return out
}
