//go:build unix

package engine

import "golang.org/x/sys/unix"

// mapMemory maps size bytes of zeroed memory, private to the process.
func mapMemory(size int) []byte {
	p, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		mapFailed("mapping", size, err)
	}
	return p
}

// unmapMemory unmaps p, from mapMemory.
func unmapMemory(p []byte) {
	if err := unix.Munmap(p); err != nil {
		mapFailed("unmapping", len(p), err)
	}
}

// discardMemory gives p's pages back to the system; they read as zeros
// when next touched.
func discardMemory(p []byte) {
	if err := unix.Madvise(p, unix.MADV_DONTNEED); err != nil {
		clear(p)
	}
}
