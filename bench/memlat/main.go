//go:build linux

// Command memlat measures what a random access to memory costs on this
// machine: a pointer chase through a random permutation of 64-byte lines
// (each load waits for the last) and random loads that do not wait on each
// other, over mappings of several sizes, with 4 KiB pages and with
// transparent huge pages. fluxguard's state is such an access on every
// query over many names (docs/performance.md). Run it pinned, alone:
//
//	taskset -c 0 go run ./bench/memlat
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	line     = 64
	hugePage = 2 << 20
)

// sink keeps the loads' results, so that the compiler keeps the loads.
var sink uint64

func main() {
	steps := flag.Int("steps", 2_000_000, "loads per measure")
	flag.Parse()
	for _, mb := range []int{1, 8, 16, 64, 256} {
		for _, huge := range []bool{false, true} {
			dependent, independent, hugeKB := measure(mb<<20, huge, *steps)
			fmt.Printf("%4d MB huge pages asked %-5v dependent %6.1f ns  independent %5.1f ns  AnonHugePages %s\n",
				mb, huge, dependent, independent, hugeKB)
		}
	}
}

// measure maps size bytes at a huge page's boundary, asks for huge pages
// if huge, and returns the ns a load of each kind took, and the process's
// AnonHugePages while mapped.
func measure(size int, huge bool, steps int) (dependent, independent float64, hugeKB string) {
	raw, err := unix.Mmap(-1, 0, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memlat:", err)
		os.Exit(1)
	}
	defer unix.Munmap(raw)
	off := -int(uintptr(unsafe.Pointer(&raw[0]))) & (hugePage - 1)
	m := raw[off : off+size]
	if huge {
		_ = unix.Madvise(m, unix.MADV_HUGEPAGE)
	}
	n := size / line
	at := func(i int) *uint64 { return (*uint64)(unsafe.Pointer(&m[i*line])) }
	perm := rand.Perm(n)
	for i, p := range perm {
		*at(p) = uint64(perm[(i+1)%n])
	}
	next := 0
	start := time.Now()
	for range steps {
		next = int(*at(next))
	}
	dependent = float64(time.Since(start).Nanoseconds()) / float64(steps)
	r := rand.New(rand.NewPCG(1, 2))
	var sum uint64
	start = time.Now()
	for range steps {
		sum += *at(r.IntN(n))
	}
	independent = float64(time.Since(start).Nanoseconds()) / float64(steps)
	sink = sum + uint64(next)
	hugeKB = "unknown"
	if kb, ok := anonHugeKB(); ok {
		hugeKB = fmt.Sprintf("%d kB", kb)
	}
	return dependent, independent, hugeKB
}

// anonHugeKB returns the process's AnonHugePages, in kB, and whether
// /proc/self/smaps_rollup had them.
func anonHugeKB() (int, bool) {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb int
		if _, err := fmt.Sscanf(l, "AnonHugePages: %d kB", &kb); err == nil {
			return kb, true
		}
	}
	return 0, false
}
