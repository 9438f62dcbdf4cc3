//go:build amd64 || arm64

package engine

// prefetch asks the CPU to load the cache line at addr, without waiting
// for it. A prefetch never faults: addr may be stale.
func prefetch(addr uintptr)
