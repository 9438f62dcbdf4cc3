//go:build unix

package engine

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of the huge pages mapMemory asks for.
const hugePage = 2 << 20

// mapMemory maps size bytes of zeroed memory, private to the process.
// A mapping of a huge page or more starts at a huge page's boundary and
// asks for huge pages (a kernel whose transparent huge pages are set to
// madvise gives them only when asked): a name's lookup lands anywhere in
// the state, and with 4 KiB pages each misses the TLB as well as the
// caches, a walk of the page tables that a virtual machine makes twice.
func mapMemory(size int) []byte {
	align := 0
	if size >= hugePage {
		align = hugePage // mapped more, to cut an aligned mapping out of it
	}
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size+align), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		mapFailed("mapping", size, err)
	}
	if align == 0 {
		return unsafe.Slice((*byte)(p), size)
	}
	head := -int(uintptr(p)) & (hugePage - 1)
	start := unsafe.Add(p, head)
	unmap(p, head)
	unmap(unsafe.Add(start, size), align-head)
	m := unsafe.Slice((*byte)(start), size)
	_ = unix.Madvise(m, unix.MADV_HUGEPAGE) // a hint: without it, 4 KiB pages
	return m
}

// unmapMemory unmaps p, from mapMemory.
func unmapMemory(p []byte) { unmap(unsafe.Pointer(unsafe.SliceData(p)), len(p)) }

// unmap unmaps the n bytes from p, if any.
func unmap(p unsafe.Pointer, n int) {
	if n == 0 {
		return
	}
	if err := unix.MunmapPtr(p, uintptr(n)); err != nil {
		mapFailed("unmapping", n, err)
	}
}

// discardMemory gives p's pages back to the system; they read as zeros
// when next touched.
func discardMemory(p []byte) {
	if err := unix.Madvise(p, unix.MADV_DONTNEED); err != nil {
		clear(p)
	}
}
