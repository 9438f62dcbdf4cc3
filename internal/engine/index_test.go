package engine

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestIndex puts, finds and deletes keys against a Go map, with hashes
// picked to collide on their home slot and to wrap round the end of the
// slots, where deletion must move the slots after a hole back.
func TestIndex(t *testing.T) {
	// home(h) is h>>shardBits masked: hashes n<<shardBits all start at
	// slot n, and same<<shardBits | i all start at slot same.
	const same = 15
	for _, tc := range []struct {
		name   string
		hashes func(i int) uint64
		n      int
	}{
		{"spread", func(i int) uint64 { return rand.Uint64() }, 5000},
		{"one home", func(i int) uint64 { return uint64(i)<<32 | same<<shardBits }, 11},
		// Homes in the last three of minIndexSlots: the runs wrap round to slot 0.
		{"wrapping", func(i int) uint64 { return uint64(i)<<32 | uint64(minIndexSlots-3+i%3)<<shardBits }, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := index{mem: newArena()}
			want := map[uint64]uint32{}
			keys := make([]key, tc.n)
			for i := range keys {
				keys[i] = key{hash: tc.hashes(i), check: uint32(i)}
				x.put(keys[i], uint32(i))
				want[keys[i].hash] = uint32(i)
			}
			check := func(when string) {
				t.Helper()
				if x.n != len(want) {
					t.Fatalf("%s: %d keys, want %d", when, x.n, len(want))
				}
				for _, k := range keys {
					s := x.get(k)
					w, in := want[k.hash]
					if (s != nil) != in || s != nil && s.ref-1 != w {
						t.Fatalf("%s: get(%x) = %+v, want offset %d (found: %v)", when, k.hash, s, w, in)
					}
				}
			}
			check("after the puts")
			if x.get(key{hash: keys[0].hash, check: keys[0].check + 1}) != nil {
				t.Fatal("a key of another check was found")
			}
			// Delete every other key, in an order that opens holes
			// before, inside and after runs of colliding slots.
			for i := 0; i < len(keys); i += 2 {
				x.delete(keys[i].hash)
				delete(want, keys[i].hash)
			}
			x.delete(12345) // absent: nothing happens
			check("after the deletions")
			seen := 0
			x.scan(uint64(rand.Uint32()), func(uint32) bool { seen++; return true })
			if seen != len(want) {
				t.Errorf("scan met %d entries, want %d", seen, len(want))
			}
		})
	}
}

// TestSlotAddr checks the address Preload prefetches: none before the
// index has slots, then each key's home slot, through the grows that
// move the slots.
func TestSlotAddr(t *testing.T) {
	x := index{mem: newArena()}
	if got := x.slotAddr(rand.Uint64()); got != 0 {
		t.Fatalf("Expected no address before the first key, got %#x", got)
	}
	for i := range 5000 {
		h := rand.Uint64()
		x.put(key{hash: h, check: uint32(i)}, uint32(i))
		if got, want := x.slotAddr(h), uintptr(unsafe.Pointer(&x.slots[x.home(h)])); got != want {
			t.Fatalf("Key %d of %d slots: address %#x, want its home slot's %#x", i, len(x.slots), got, want)
		}
	}
}
