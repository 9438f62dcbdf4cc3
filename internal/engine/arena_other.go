//go:build !unix

package engine

// Without mmap, the arena's memory is on the Go heap: the collector does
// not scan it (it holds no pointers), but counts it towards its goal.

func mapMemory(size int) []byte { return make([]byte, size) }

func unmapMemory([]byte) {}

func discardMemory(p []byte) { clear(p) }
