package engine

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/netip"
	"strings"
)

// The state format: stateMagic, the version and the window (uvarints),
// then one record per entry (its length as a uvarint, then the entry),
// a zero length, the number of records (a uvarint), and the CRC-32C of
// everything before it (4 bytes, big endian). Save streams it one shard at
// a time; Load checks the whole file before it restores anything, so a
// truncated or damaged file is refused whole.
const (
	stateMagic = "fluxguard state\n"
	// SnapshotVersion is the version of the state format Save writes;
	// Load reads it and versions 3 and 4, and refuses any other. Version 3
	// keeps IPv4's largest answers only (version 4 adds IPv6's); both keep
	// name servers under a hash of the process that saved them, which Load
	// drops (version 5's is the same in every process, see nsKey).
	SnapshotVersion = 5
	oldestVersion   = 3
	stableNSVersion = 5
	// maxRecordLen bounds an entry's record: a name and its capped lists
	// fit, whatever the file claims.
	maxRecordLen = 64 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrSnapshotVersion is returned by Load for state saved in another format.
var ErrSnapshotVersion = errors.New("unsupported state version")

// ErrCorruptState is returned by Load for a file that is truncated,
// damaged, or not a state file.
var ErrCorruptState = errors.New("corrupt state file")

// Save writes the tracked state to w. Shards are locked one at a time,
// and each is encoded before it is written, so that neither the query path
// nor memory waits on w.
func (e *Engine) Save(w io.Writer) error {
	crc := crc32.New(crcTable)
	out := io.MultiWriter(w, crc)
	buf := binary.AppendUvarint([]byte(stateMagic), SnapshotVersion)
	buf = binary.AppendUvarint(buf, uint64(e.window))
	var rec []byte
	records := uint64(0)
	for _, sc := range e.scopes() {
		for i := range sc.st.shards {
			sc.st.eachIn(&sc.st.shards[i], true, func(sh *shard, en *entry) bool {
				rec = appendEntry(rec[:0], sc.prefix+sh.name(en), sh, en)
				buf = append(binary.AppendUvarint(buf, uint64(len(rec))), rec...)
				records++
				return true
			})
			if _, err := out.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	buf = binary.AppendUvarint(binary.AppendUvarint(buf, 0), records)
	if _, err := out.Write(buf); err != nil {
		return err
	}
	_, err := w.Write(crc.Sum(nil))
	return err
}

// appendEntry appends the record of en, named name, of the locked shard sh.
func appendEntry(b []byte, name string, sh *shard, en *entry) []byte {
	b = append(binary.AppendUvarint(b, uint64(len(name))), name...)
	for _, list := range []block{en.ips, en.clients, en.ns, en.nsIPs} {
		seen := sh.seen.view(list)
		b = binary.AppendUvarint(b, uint64(len(seen)))
		for _, s := range seen {
			b = binary.AppendUvarint(append(b, s.addr[:]...), uint64(s.last))
		}
	}
	for _, c := range en.counts {
		b = binary.AppendUvarint(b, uint64(c))
	}
	for _, v := range []uint32{en.first, en.head, en.last, en.heldUntil, en.minTTL, en.meanTTL,
		uint32(en.level), uint32(en.maxAnswer) | uint32(en.maxAnswer6)<<8, uint32(en.subnames)} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	return b
}

// savedEntry is an entry as a record holds it.
type savedEntry struct {
	name                       string
	ips, clients, ns, nsIPs    []seen
	counts                     [buckets + 1]uint32
	first, head, last, heldTil uint32
	minTTL, meanTTL            uint32
	level, maxAnswer           uint8
	maxAnswer6                 uint8
	subnames                   uint16
}

// Load reads state written by Save into e, which should be new, and
// returns how many names it restored. It reads r first to check the
// whole file, then to restore it; a file that fails the check restores
// nothing. The held names are restored first, in a pass of their own, so
// that a store smaller than the file's keeps them: the names past the
// caps are dropped, and so are the addresses and clients past the
// per-name caps; state whose evidence has expired is dropped at the next
// Sweep.
func (e *Engine) Load(r io.ReadSeeker) (int, error) {
	window, err := e.readState(r, nil)
	if err != nil {
		return 0, err
	}
	n, now := 0, e.clock()
	for _, held := range []bool{true, false} {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return n, err
		}
		_, err = e.readState(r, func(se *savedEntry) {
			if (se.heldTil > now) == held && e.restore(se, window) {
				n++
			}
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// readState reads a state file, calling restore, when not nil, for each
// entry, and returns its window. Without restore it only checks the file.
func (e *Engine) readState(r io.Reader, restore func(*savedEntry)) (window uint32, err error) {
	crc := crc32.New(crcTable)
	sr := &stateReader{r: bufio.NewReader(r), crc: crc}
	magic := sr.bytes(len(stateMagic))
	if sr.err != nil || string(magic) != stateMagic {
		return 0, fmt.Errorf("%w: not a fluxguard state file, or one older than version %d", ErrCorruptState, SnapshotVersion)
	}
	version := sr.uvarint(1 << 16)
	if sr.err == nil && (version < oldestVersion || version > SnapshotVersion) {
		return 0, fmt.Errorf("%w %d, want %d to %d", ErrSnapshotVersion, version, oldestVersion, SnapshotVersion)
	}
	window = uint32(sr.uvarint(1 << 32))
	var se savedEntry
	records := uint64(0)
	for sr.err == nil {
		n := sr.uvarint(maxRecordLen)
		if n == 0 || sr.err != nil {
			break
		}
		rec := sr.bytes(int(n))
		if sr.err == nil {
			sr.err = decodeEntry(rec, &se)
		}
		if version < stableNSVersion {
			se.ns = se.ns[:0]
		}
		if sr.err == nil && restore != nil {
			restore(&se)
		}
		records++
	}
	if count := sr.uvarint(1 << 40); sr.err == nil && count != records {
		sr.err = fmt.Errorf("%d records, the trailer says %d", records, count)
	}
	sum := crc.Sum32()
	var want [4]byte
	if sr.err == nil {
		_, sr.err = io.ReadFull(sr.r, want[:])
	}
	if sr.err == nil && binary.BigEndian.Uint32(want[:]) != sum {
		sr.err = errors.New("checksum mismatch")
	}
	if sr.err == nil {
		if _, err := sr.r.ReadByte(); err != io.EOF {
			sr.err = errors.New("data after the checksum")
		}
	}
	if sr.err != nil {
		if errors.Is(sr.err, io.EOF) {
			sr.err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("%w: %v", ErrCorruptState, sr.err)
	}
	return window, nil
}

// stateReader reads a state file's fields, hashing what it reads; its
// first error sticks.
type stateReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	buf []byte
	err error
}

func (sr *stateReader) uvarint(max uint64) uint64 {
	if sr.err != nil {
		return 0
	}
	var b [binary.MaxVarintLen64]byte
	for i := range b {
		c, err := sr.r.ReadByte()
		if err != nil {
			sr.err = err
			return 0
		}
		b[i] = c
		if c < 0x80 {
			sr.crc.Write(b[:i+1])
			v, _ := binary.Uvarint(b[:i+1])
			if v > max {
				sr.err = fmt.Errorf("value %d above %d", v, max)
				return 0
			}
			return v
		}
	}
	sr.err = errors.New("bad varint")
	return 0
}

// bytes reads n bytes into a buffer reused by the next call.
func (sr *stateReader) bytes(n int) []byte {
	if sr.err != nil {
		return nil
	}
	if cap(sr.buf) < n {
		sr.buf = make([]byte, n)
	}
	b := sr.buf[:n]
	if _, sr.err = io.ReadFull(sr.r, b); sr.err != nil {
		return nil
	}
	sr.crc.Write(b)
	return b
}

// decodeEntry decodes a record into se, whose lists it reuses.
func decodeEntry(b []byte, se *savedEntry) error {
	d := recordDecoder{b: b}
	se.name = string(d.bytes(int(d.uvarint(maxNameLen))))
	for _, list := range []*[]seen{&se.ips, &se.clients, &se.ns, &se.nsIPs} {
		n := int(d.uvarint(maxPerName))
		*list = (*list)[:0]
		for range n {
			var s seen
			copy(s.addr[:], d.bytes(16))
			s.last = uint32(d.uvarint(1<<32 - 1))
			if d.err != nil {
				break
			}
			*list = append(*list, s)
		}
	}
	for i := range se.counts {
		se.counts[i] = uint32(d.uvarint(1<<32 - 1))
	}
	for _, v := range []*uint32{&se.first, &se.head, &se.last, &se.heldTil, &se.minTTL, &se.meanTTL} {
		*v = uint32(d.uvarint(1<<32 - 1))
	}
	se.level = uint8(min(d.uvarint(uint64(LevelFlagged)), uint64(LevelFlagged)))
	// Both families' largest answers, IPv6's in the second byte (files
	// written before hold IPv4's only).
	largest := d.uvarint(1<<16 - 1)
	se.maxAnswer, se.maxAnswer6 = uint8(largest), uint8(largest>>8)
	se.subnames = uint16(d.uvarint(1<<16 - 1))
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("record longer than its entry")
	}
	return d.err
}

// recordDecoder reads a record's fields; its first error sticks.
type recordDecoder struct {
	b   []byte
	err error
}

func (d *recordDecoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n <= 0:
		d.err = errors.New("bad varint in a record")
	case v > max:
		d.err = fmt.Errorf("value %d above %d in a record", v, max)
	default:
		d.b = d.b[n:]
		return v
	}
	return 0
}

func (d *recordDecoder) bytes(n int) []byte {
	if d.err != nil || n > len(d.b) {
		if d.err == nil {
			d.err = errors.New("record shorter than its entry")
		}
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

// restore inserts a saved entry, unless it is not to be tracked or its
// store is full, and reports whether it did.
func (e *Engine) restore(se *savedEntry, window uint32) bool {
	sc, name := e.nameScope(), se.name
	if domain, ok := strings.CutPrefix(name, "*."); ok {
		if e.domains == nil {
			return false
		}
		sc, name = e.domainScope(), domain
	}
	name = Normalize(name)
	if name == "" || len(name) > maxNameLen || e.Skipped(name, nil) != SkipNone {
		return false
	}
	st, now := sc.st, e.clock()
	sh, k := st.locate(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.lookup(k) != nil || st.count.Load() >= st.max.Load() {
		return false
	}
	// A file saved by a clock running ahead, or made up, holds no time
	// beyond now, nor a hold longer than this engine's.
	for _, list := range [][]seen{se.ips, se.clients, se.ns, se.nsIPs} {
		for i := range list {
			list[i].last = min(list[i].last, now)
		}
	}
	se.last, se.first, se.heldTil = min(se.last, now), min(se.first, now), min(se.heldTil, now+e.hold)
	if sc.names() {
		se.subnames = 0
	}
	en := st.insert(sh, k, name, func(v *entry) uint64 { return e.rank(v, now) })
	*en = entry{
		name:    en.name,
		ips:     sh.seen.make(se.ips[:min(len(se.ips), e.cfg.MaxIPsPerName)]),
		clients: sh.seen.make(se.clients[:min(len(se.clients), e.cfg.MaxClientsPerName)]),
		ns:      sh.seen.make(se.ns[:min(len(se.ns), maxNSPerDomain)]),
		nsIPs:   sh.seen.make(se.nsIPs[:min(len(se.nsIPs), maxNSPerDomain)]),
		last:    se.last, heldUntil: se.heldTil, minTTL: se.minTTL,
		meanTTL: se.meanTTL, maxAnswer: se.maxAnswer, maxAnswer6: se.maxAnswer6, subnames: se.subnames,
		level: Level(se.level), nameBits: e.nameReasons(name), domOff: e.domainOffset(sc, name),
	}
	if e.cfg.ASN != nil { // owners are not saved: they are the configuration's
		for _, a := range sh.seen.view(en.ips) {
			en.asns = sh.asns.push(en.asns, e.cfg.ASN(netip.AddrFrom16(a.addr).Unmap()))
		}
	}
	en.networksOf = networksUnknown
	st.holding(en.heldUntil)
	if sc.names() && e.pools != nil && en.level == LevelFlagged {
		// Its addresses corroborate other names, as before the restart.
		e.indexWindow(sh, en, k.owner(), now)
	}
	if window == e.window && se.head <= now/e.width { // else the buckets are numbered in other units
		en.counts, en.head, en.first = se.counts, se.head, se.first
	}
	return true
}
