package engine

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"unsafe"
)

// Lists of an entry, for listOf.
func ipsOf(en *entry) block     { return en.ips }
func clientsOf(en *entry) block { return en.clients }
func nsOf(en *entry) block      { return en.ns }
func nsIPsOf(en *entry) block   { return en.nsIPs }

// listOf returns a copy of the list of name's entry in st that which picks.
func listOf(t *testing.T, st *store, name string, which func(*entry) block) []seen {
	t.Helper()
	sh, k := st.locate(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	en := sh.lookup(k)
	if en == nil {
		t.Fatalf("%s is not tracked", name)
	}
	return append([]seen(nil), sh.seen.view(which(en))...)
}

func TestSlab(t *testing.T) {
	s := newSlab[uint32](newArena(), 10)
	var b block
	for i := range 100 {
		b = s.push(b, uint32(i))
	}
	if b.len != 100 || b.cap != 128 {
		t.Fatalf("100 pushes: len %d cap %d, want 100 128", b.len, b.cap)
	}
	for i, v := range s.view(b) {
		if v != uint32(i) {
			t.Fatalf("value %d is %d after the moves", i, v)
		}
	}
	// The blocks left behind by the moves (1, 2, ..., 64) are reused.
	for _, n := range []int{1, 2, 3, 5, 16, 32, 64} {
		if c := s.alloc(n); int(c.cap) < n || c.len != 0 || c.off >= b.off {
			t.Errorf("alloc(%d) = %+v, want a block freed before %d", n, c, b.off)
		}
	}
	s.release(b)
	if c := s.alloc(100); c.off != b.off {
		t.Errorf("a released block is not reused: %d, want %d", c.off, b.off)
	}
	if got := s.make(nil); got != (block{}) {
		t.Errorf("make(nil) = %+v, want no block", got)
	}
	if got := s.view(s.make([]uint32{7, 8, 9})); fmt.Sprint(got) != "[7 8 9]" {
		t.Errorf("make = %v", got)
	}
}

func TestSlabChunks(t *testing.T) {
	s := newSlab[uint32](newArena(), 10)
	// Fill several chunks with blocks of every size; each keeps its values.
	var blocks []block
	for i := range 3000 {
		n := 1 + i%1024
		b := s.alloc(n)
		b.len = uint16(n)
		v := s.view(b)
		for j := range v {
			v[j] = uint32(i)
		}
		blocks = append(blocks, b)
	}
	for i, b := range blocks {
		for _, v := range s.view(b) {
			if v != uint32(i) {
				t.Fatalf("block %d (%+v) was overwritten with %d", i, b, v)
			}
		}
	}
	for _, c := range s.chunks {
		if cap(c) > 1<<10 {
			t.Errorf("a chunk holds %d elements, more than 1<<10", cap(c))
		}
	}
}

func TestStoreReuse(t *testing.T) {
	st := newStore(1 << 20)
	rank := func(*entry) uint64 { return 0 }
	sh, _ := st.locate("x")
	// Insert and remove many names in one shard: its memory stays that of
	// the names held at once.
	for round := range 10 {
		var held []uint32
		for i := range 100 {
			name := fmt.Sprintf("n%d-%d.example", round, i)
			_, k := st.locate(name) // whatever its shard: all go to sh
			en := st.insert(sh, k, name, rank)
			en.ips = sh.seen.alloc(4)
			held = append(held, sh.index.get(k).ref-1)
		}
		for _, i := range held {
			st.remove(sh, i)
		}
	}
	if n := len(sh.entries.chunks[0]); n != 100 || sh.index.n != 0 || st.len() != 0 {
		t.Errorf("entries %d index %d count %d, want 100 0 0", n, sh.index.n, st.len())
	}
	if len(sh.seen.chunks[0]) != 400 || len(sh.names.chunks[0]) > 100*16 {
		t.Errorf("slabs grew to %d seen and %d name bytes for 100 names at a time", len(sh.seen.chunks[0]), len(sh.names.chunks[0]))
	}
}

// TestStoreSweep checks which entries a sweep removes: those last seen at
// or before since and not held at now, the last answer their slots hold
// (see recent) counting as seen.
func TestStoreSweep(t *testing.T) {
	const since, now = 1000, 4600
	tests := []struct {
		name      string
		last      uint32
		recent    uint32 // when the slot's last answer came, with repeats; 0 for none
		heldUntil uint32
		removed   bool
	}{
		{"seen after since", since + 1, 0, 0, false},
		{"seen last at since", since, 0, 0, true},
		{"seen long before", 1, 0, 0, true},
		{"answered after since", since - 100, since + 1, 0, false},
		{"answered at since", since - 100, since, 0, true},
		{"held", since - 100, 0, now + 1, false},
		{"held until now", since, 0, now, true},
		{"answered, held until now", since - 100, since, now, true},
	}
	st := newStore(100)
	rank := func(*entry) uint64 { return 0 }
	// All in one shard: removing some moves the index slots of others.
	sh, _ := st.locate("x")
	keys := make([]key, len(tests))
	removed := 0
	for i, tt := range tests {
		_, keys[i] = st.locate(tt.name)
		en := st.insert(sh, keys[i], tt.name, rank)
		en.last, en.heldUntil = tt.last, tt.heldUntil
		if tt.recent != 0 {
			sh.index.get(keys[i]).recent = recent{repeats: 3, at: tt.recent}
		}
		if tt.removed {
			removed++
		}
	}
	if n := st.sweep(since, now); n != removed || st.len() != len(tests)-removed {
		t.Fatalf("sweep removed %d, %d left; want %d removed", n, st.len(), removed)
	}
	for i, tt := range tests {
		s := sh.index.get(keys[i])
		if gone := s == nil; gone != tt.removed {
			t.Errorf("%s: removed %v, want %v", tt.name, gone, tt.removed)
			continue
		}
		if s == nil {
			continue
		}
		// What is kept is left as it was: the repeats stay in the slot.
		if name := sh.name(sh.at(s.ref - 1)); name != tt.name || (s.recent.repeats != 0) != (tt.recent != 0) {
			t.Errorf("%s: the slot after the sweep names %q and holds %d repeats", tt.name, name, s.recent.repeats)
		}
	}
}

func TestStoreHashCollision(t *testing.T) {
	st := newStore(10)
	rank := func(*entry) uint64 { return 0 }
	sh, _ := st.locate("x")
	// b.example stands for a name of a.example's hash and another check.
	_, ka := st.locate("a.example")
	kb := key{hash: ka.hash, check: ka.check + 1}
	a := st.insert(sh, ka, "a.example", rank)
	a.last = 7
	if en := sh.lookup(kb); en != nil {
		t.Fatal("another name under the same hash was found")
	}
	// An insert under a taken hash replaces the other name: evidence is
	// never shared between two names.
	b := st.insert(sh, kb, "b.example", rank)
	if b.last != 0 || sh.lookup(ka) != nil || sh.name(sh.lookup(kb)) != "b.example" {
		t.Errorf("b.example did not replace a.example")
	}
	if st.len() != 1 || st.evicted.Load() != 1 {
		t.Errorf("count %d evicted %d, want 1 1", st.len(), st.evicted.Load())
	}
}

// TestStoreCap keeps the store within its cap whatever it is: below the
// number of shards, when an insert's shard has nothing to evict, and
// after the cap is lowered, when each insert evicts one more than it adds.
func TestStoreCap(t *testing.T) {
	tests := []struct {
		name         string
		max, lowered int
		names        int
	}{
		{"one", 1, 1, 500},
		{"below the shards", 5, 5, 500},
		{"above the shards", 300, 300, 2000},
		{"lowered", 1000, 100, 1000},
		{"lowered below the shards", 1000, 30, 1000},
		{"lowered to one", 1000, 1, 1000},
	}
	rank := func(en *entry) uint64 { return uint64(en.last) }
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(tc.max)
			insert := func(name string) {
				sh, k := st.locate(name)
				sh.mu.Lock()
				st.insert(sh, k, name, rank)
				sh.mu.Unlock()
			}
			for i := range tc.names {
				if insert(fmt.Sprintf("n%d.example", i)); st.len() > tc.max {
					t.Fatalf("%d names held after %d inserts, above the cap %d", st.len(), i+1, tc.max)
				}
			}
			st.max.Store(int64(tc.lowered))
			inserted := tc.names
			for ; st.len() > tc.lowered; inserted++ {
				before := st.len()
				if insert(fmt.Sprintf("m%d.example", inserted)); st.len() > before {
					t.Fatalf("%d names held after an insert into %d, over the cap %d", st.len(), before, tc.lowered)
				}
				if inserted > 20*tc.names {
					t.Fatalf("%d names held after %d inserts over the cap %d", st.len(), inserted-tc.names, tc.lowered)
				}
			}
			kept := 0
			st.each(func(*shard, *entry) bool {
				kept++
				return true
			})
			if kept != st.len() || st.evicted.Load() != uint64(inserted-kept) {
				t.Errorf("%d entries found, %d evictions counted; the count says %d held", kept, st.evicted.Load(), st.len())
			}
		})
	}
}

// TestNamesAtTheLimits tracks the root's empty name, names of 255 bytes
// (the most the DNS allows) and escaped names of up to 1,024 characters,
// and ignores longer ones.
func TestNamesAtTheLimits(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 62)+".", 5)[:255]
	escaped := strings.Repeat(`\000`, 256)
	for _, name := range []string{"", "a", long, long[:254] + "b", escaped} {
		e, err := New(DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		// Five addresses, five queries: a candidate, reported.
		for i := range 5 {
			e.Observe(&Observation{Name: name, Addrs: []netip.Addr{netip.AddrFrom4([4]byte{45, 0, 0, byte(i + 1)})}})
		}
		if got := len(listOf(t, e.st, name, ipsOf)); got != 5 {
			t.Errorf("%q: %d addresses tracked, want 5", name, got)
		}
		if rows := e.Report(); len(rows) != 1 || rows[0].DomainName != name {
			t.Errorf("%q reported as %+v", name, rows)
		}
	}
	e, _ := New(DefaultConfig())
	if v := e.Observe(&Observation{Name: escaped + "a", Addrs: []netip.Addr{netip.MustParseAddr("45.0.0.1")}}); v.Skip == SkipNone || e.Len() != 0 {
		t.Errorf("a name of 1,025 characters was tracked: %+v", v)
	}
}

// TestEntrySize keeps an entry at 160 bytes: memory per name, and its
// first fields' cache lines (see entry), depend on it.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n != 160 {
		t.Errorf("an entry is %d bytes, want 160", n)
	}
}
