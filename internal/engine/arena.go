package engine

import (
	"fmt"
	"os"
	"sync"
	"unsafe"
)

// arena is memory outside the Go heap for a store's slabs and indexes.
// Their chunks hold no pointers, so the collector has nothing to find in
// them; on the Go heap they would still count towards its goal, which
// GOGC sets at twice the live heap, so that each byte of state cost about
// two of resident memory. Mapped memory costs what is touched.
//
// An arena maps regions of regionSize and hands out page-aligned pieces
// of them; a released piece is given back to the system (its pages read
// as zeros again) and kept for the next request of its size. A piece of
// ownMapping or more has a mapping of its own, unmapped when released.
// Everything is unmapped when the arena is freed, once its store is
// unreachable (see newStore). The race detector does not watch this
// memory; the shards' locks guard it.
type arena struct {
	mu      sync.Mutex
	regions [][]byte
	left    []byte             // the unused end of the last region
	free    map[int][][]byte   // released pieces of regions, by size
	own     map[uintptr][]byte // pieces with a mapping of their own, by address
}

// regionSize is how much an arena maps at a time; pieces of ownMapping or
// more are mapped on their own.
const (
	regionSize = 4 << 20
	ownMapping = regionSize / 4
)

var pageSize = os.Getpagesize()

func newArena() *arena {
	return &arena{free: map[int][][]byte{}, own: map[uintptr][]byte{}}
}

// roundToPages rounds size up to whole pages.
func roundToPages(size int) int { return (size + pageSize - 1) &^ (pageSize - 1) }

// alloc returns size bytes of zeroed, page-aligned memory.
func (a *arena) alloc(size int) []byte {
	size = roundToPages(size)
	a.mu.Lock()
	defer a.mu.Unlock()
	if size >= ownMapping {
		p := mapMemory(size)
		a.own[uintptr(unsafe.Pointer(unsafe.SliceData(p)))] = p
		return p
	}
	if f := a.free[size]; len(f) > 0 {
		a.free[size] = f[:len(f)-1]
		return f[len(f)-1]
	}
	if len(a.left) < size {
		r := mapMemory(regionSize)
		a.regions = append(a.regions, r)
		a.left = r
	}
	p := a.left[:size:size]
	a.left = a.left[size:]
	return p
}

// release gives p, from alloc, back: its start and its capacity, which
// may be less than alloc rounded it up to.
func (a *arena) release(p []byte) {
	p = unsafe.Slice(unsafe.SliceData(p), roundToPages(cap(p)))
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	a.mu.Lock()
	defer a.mu.Unlock()
	if m, ok := a.own[addr]; ok {
		delete(a.own, addr)
		unmapMemory(m)
		return
	}
	discardMemory(p)
	a.free[len(p)] = append(a.free[len(p)], p)
}

// freeAll unmaps all the arena's memory. Nothing it handed out may be
// used afterwards.
func (a *arena) freeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.regions {
		unmapMemory(r)
	}
	for _, m := range a.own {
		unmapMemory(m)
	}
	a.regions, a.left, a.free, a.own = nil, nil, map[int][][]byte{}, map[uintptr][]byte{}
}

// allocOf returns n zeroed values of T, which must hold no pointers, from a.
func allocOf[T any](a *arena, n int) []T {
	p := a.alloc(n * int(unsafe.Sizeof(*new(T))))
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(p))), n)
}

// releaseOf gives s, from allocOf, back to a.
func releaseOf[T any](a *arena, s []T) {
	if cap(s) == 0 {
		return
	}
	a.release(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), cap(s)*int(unsafe.Sizeof(s[0]))))
}

// mapFailed reports a mapping of size bytes for the engine's state that
// the system refused to make or undo (what): the process cannot go on
// without memory, as with the Go heap.
func mapFailed(what string, size int, err error) {
	panic(fmt.Sprintf("fluxguard: %s %d bytes for the engine's state: %v", what, size, err))
}
