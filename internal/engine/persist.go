package engine

import (
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// SnapshotVersion is the version of the state format Save writes; Load
// refuses any other.
const SnapshotVersion = 2

// snapshot is the saved form of the engine's state.
type snapshot struct {
	Version int
	Window  uint32 // seconds; bucket counts are kept only if it matches
	Entries []savedEntry
}

type savedEntry struct {
	Name           string
	IPs, Clients   []savedSeen
	Counts         []uint32
	First          uint32
	Head, Last     uint32
	HeldUntil, TTL uint32
	MeanTTL        uint32
	Level          uint8
	MaxAnswer      uint8
	Subnames       uint16
	NS             []savedSeen
	NSIPs          []savedSeen
}

type savedSeen struct {
	Addr [16]byte
	Last uint32
}

// Save writes the tracked state to w. Shards are locked one at a time, so
// the query path is never stopped for long.
func (e *Engine) Save(w io.Writer) error {
	s := snapshot{Version: SnapshotVersion, Window: e.window}
	e.each(func(sc scope, sh *shard, en *entry) bool {
		s.Entries = append(s.Entries, savedEntry{
			Name: sc.prefix + sh.name(en), IPs: saveSeen(sh.seen.view(en.ips)), Clients: saveSeen(sh.seen.view(en.clients)),
			Counts: append([]uint32(nil), en.counts[:]...), First: en.first,
			Head: en.head, Last: en.last, HeldUntil: en.heldUntil, TTL: en.minTTL, Level: uint8(en.level),
			MeanTTL: en.meanTTL, MaxAnswer: en.maxAnswer, Subnames: en.subnames, NS: saveSeen(sh.seen.view(en.ns)), NSIPs: saveSeen(sh.seen.view(en.nsIPs)),
		})
		return true
	})
	return gob.NewEncoder(w).Encode(&s)
}

// ErrSnapshotVersion is returned by Load for state saved in another format.
var ErrSnapshotVersion = errors.New("unsupported state version")

// Load reads state written by Save into e, which should be new, and
// returns how many names it restored. Names past the caps are dropped;
// state whose evidence has expired is dropped at the next Sweep.
func (e *Engine) Load(r io.Reader) (int, error) {
	var s snapshot
	if err := gob.NewDecoder(r).Decode(&s); err != nil {
		return 0, fmt.Errorf("decoding state: %w", err)
	}
	if s.Version != SnapshotVersion {
		return 0, fmt.Errorf("%w %d, want %d", ErrSnapshotVersion, s.Version, SnapshotVersion)
	}
	n, now := 0, e.clock()
	for _, se := range s.Entries {
		sc, name := e.nameScope(), se.Name
		if domain, ok := strings.CutPrefix(name, "*."); ok {
			if e.domains == nil {
				continue
			}
			sc, name = e.domainScope(), domain
		}
		st := sc.st
		name = Normalize(name)
		if name == "" || len(name) > maxNameLen || e.Skipped(name, nil) != SkipNone || len(se.Counts) != buckets+1 {
			continue
		}
		sh, k := st.locate(name)
		sh.mu.Lock()
		if sh.lookup(k) == nil && st.count.Load() < st.max.Load() {
			en := st.insert(sh, k, name, func(v *entry) uint64 { return e.rank(v, now) })
			*en = entry{
				name:    en.name,
				ips:     sh.seen.make(loadSeen(se.IPs, e.cfg.MaxIPsPerName)),
				clients: sh.seen.make(loadSeen(se.Clients, e.cfg.MaxClientsPerName)),
				ns:      sh.seen.make(loadSeen(se.NS, maxNSPerDomain)),
				nsIPs:   sh.seen.make(loadSeen(se.NSIPs, maxNSPerDomain)),
				head:    se.Head, last: se.Last, heldUntil: se.HeldUntil, minTTL: se.TTL,
				meanTTL: se.MeanTTL, maxAnswer: se.MaxAnswer, subnames: se.Subnames,
				level: Level(min(se.Level, uint8(LevelFlagged))), nameBits: e.nameReasons(name), domOff: e.domainOffset(sc, name),
			}
			if e.cfg.ASN != nil { // owners are not saved: they are the configuration's
				for _, a := range sh.seen.view(en.ips) {
					en.asns = sh.asns.push(en.asns, e.cfg.ASN(netip.AddrFrom16(a.addr).Unmap()))
				}
			}
			en.networksStale = true
			st.holding(en.heldUntil)
			if s.Window == e.window {
				copy(en.counts[:], se.Counts)
				en.first = se.First
			}
			n++
		}
		sh.mu.Unlock()
	}
	return n, nil
}

func saveSeen(list []seen) []savedSeen {
	out := make([]savedSeen, len(list))
	for i, s := range list {
		out[i] = savedSeen{Addr: s.addr, Last: s.last}
	}
	return out
}

func loadSeen(list []savedSeen, max int) []seen {
	out := make([]seen, 0, min(len(list), max))
	for _, s := range list[:min(len(list), max)] {
		out = append(out, seen{addr: s.Addr, last: s.Last})
	}
	return out
}
