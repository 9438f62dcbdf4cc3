package engine

import (
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"unsafe"
)

func TestArena(t *testing.T) {
	a := newArena()
	defer a.freeAll()
	addr := func(p []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(p))) }
	for _, tc := range []struct {
		name string
		size int
		own  bool // a mapping of its own
	}{
		{"a byte", 1, false},
		{"a page", pageSize, false},
		{"a page and a byte", pageSize + 1, false},
		{"a page below a mapping of its own", ownMapping - pageSize, false},
		{"a byte more than that", ownMapping - pageSize + 1, true},
		{"a mapping of its own", ownMapping, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := a.alloc(tc.size)
			if len(p) != roundToPages(tc.size) || addr(p)%uintptr(pageSize) != 0 {
				t.Fatalf("alloc(%d): %d bytes at %#x, want %d page-aligned", tc.size, len(p), addr(p), roundToPages(tc.size))
			}
			if _, own := a.own[addr(p)]; own != tc.own {
				t.Errorf("a mapping of its own: %v, want %v", own, tc.own)
			}
			for i := range p {
				if p[i] != 0 {
					t.Fatalf("byte %d of a new piece is %d", i, p[i])
				}
				p[i] = 0xa5
			}
			a.release(p[:tc.size:tc.size]) // what allocOf's callers give back
			q := a.alloc(tc.size)
			if !tc.own && addr(q) != addr(p) {
				t.Errorf("a released piece of %d bytes is not reused", tc.size)
			}
			for i := range q {
				if q[i] != 0 {
					t.Fatalf("byte %d of a reused piece is %#x, want 0", i, q[i])
				}
			}
		})
	}
	a.freeAll()
	if len(a.regions)+len(a.own) != 0 {
		t.Errorf("after freeAll: %d regions, %d own mappings", len(a.regions), len(a.own))
	}
	a.freeAll() // again: nothing to do
}

// TestMapMemory maps pieces of every kind: a mapping of a huge page or
// more starts at a huge page's boundary (see mapMemory), and each is
// written whole and unmapped.
func TestMapMemory(t *testing.T) {
	for _, size := range []int{pageSize, ownMapping, 2 << 20, regionSize, regionSize + pageSize} {
		p := mapMemory(size)
		start := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
		if len(p) != size || start%uintptr(pageSize) != 0 {
			t.Errorf("mapMemory(%d): %d bytes at %#x", size, len(p), start)
		}
		if runtime.GOOS == "linux" && size >= 2<<20 && start%(2<<20) != 0 {
			t.Errorf("mapMemory(%d) at %#x: not at a huge page's boundary", size, start)
		}
		for i := range p {
			p[i] = 0xa5
		}
		unmapMemory(p)
	}
}

// TestStateOffHeap checks that the names' state is outside the Go heap,
// where the collector's goal would double it in resident memory.
func TestStateOffHeap(t *testing.T) {
	const names = 20_000
	cfg := DefaultConfig()
	cfg.MaxNames = names
	e, _ := New(cfg)
	defer freeEngine(e)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	obs := Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4")}
	for i := range names {
		obs.Name = "h" + strconv.Itoa(i) + ".example.com"
		e.Observe(&obs)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The names tracked live in the arena; what stays on the heap is the
	// slabs' lists of chunks and free blocks.
	if perName := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / names; perName > 16 {
		t.Errorf("the Go heap grew by %d bytes per name tracked", perName)
	}
	if e.Len() < names {
		t.Errorf("%d names tracked, want %d", e.Len(), names)
	}
}

// freeEngine unmaps e's state at once, rather than once e is collected.
func freeEngine(e *Engine) {
	for _, sc := range e.scopes() {
		sc.st.mem.freeAll()
	}
}
