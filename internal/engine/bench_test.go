package engine

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkObserveTracked is the hot path: one 4-IP answer for a name that
// is already tracked, observed and scored.
func BenchmarkObserveTracked(b *testing.B) {
	e, _ := New(DefaultConfig())
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("host%d.example.com", i)
	}
	obs := Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4"), MinTTL: 60}
	for _, n := range names {
		obs.Name = n
		e.Observe(&obs)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		obs.Name = names[i&1023]
		e.Observe(&obs)
	}
}

// BenchmarkObserveTrackedCold is BenchmarkObserveTracked over 1,048,576
// names taken in a pseudo-random order: their state is out of the CPU's
// caches, as it is between the queries of a busy server, so it measures
// the memory the hot path touches.
func BenchmarkObserveTrackedCold(b *testing.B) {
	const n = 1 << 20
	cfg := DefaultConfig()
	cfg.MaxNames = n
	e, _ := New(cfg)
	obs := Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4"), MinTTL: 60}
	names := track(e, &obs, n)
	b.ReportAllocs()
	b.ResetTimer()
	for x := uint64(1); b.Loop(); {
		x = xorshift(x)
		obs.Name = names[x&(n-1)]
		e.Observe(&obs)
	}
}

// track has e observe obs for n names, host0.example.com and on, and
// returns the names.
func track(e *Engine, obs *Observation, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "host" + strconv.Itoa(i) + ".example.com"
		obs.Name = names[i]
		e.Observe(obs)
	}
	return names
}

// BenchmarkObserveCacheHits is the engine's share of cache hits over many
// names, as CoreDNS's cache serves them: a full store at the default
// max_names, 200,000 names of 4 addresses, in a pseudo-random order, each
// answer the same as the name's last one from the same client, observed
// for a brief verdict (Observation.LevelOnly), the clock moving on a
// second every 10,000 answers, so that a name's answers are seconds apart
// and its state out of the CPU's caches.
func BenchmarkObserveCacheHits(b *testing.B) {
	const n = DefaultMaxNames
	e, clk, obs, names := cachedNames(b, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i, x := 0, uint64(1); b.Loop(); i++ {
		if i%10_000 == 0 {
			clk.add(time.Second)
		}
		x = xorshift(x)
		obs.Name = names[x%n]
		e.Observe(obs)
	}
}

// cachedNames returns an engine on a fake clock tracking n names,
// host0.example.com and on, and the observation of their answers as a
// cache serves them: 4 addresses, the same from one client each time, for
// a brief verdict (Observation.LevelOnly).
func cachedNames(b *testing.B, n int) (*Engine, *fakeClock, *Observation, []string) {
	clk := &fakeClock{t: at("00:00:00")}
	cfg := DefaultConfig()
	cfg.MaxNames, cfg.Now = n, clk.now
	e, _ := New(cfg)
	b.Cleanup(func() { freeEngine(e) })
	obs := &Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4"), MinTTL: 60, LevelOnly: true}
	return e, clk, obs, track(e, obs, n)
}

// xorshift returns the number after x in a pseudo-random sequence: names
// taken in its order are out of the CPU's caches.
func xorshift(x uint64) uint64 {
	x ^= x << 13
	x ^= x >> 7
	return x ^ x<<17
}

// BenchmarkPrecheckBatch is the engine's share of a monitor-mode batch
// (see fluxguard's observeQueue) over many names: 64 cache hits' names,
// preloaded (Preload) or not, then each looked up as a repeat (Precheck),
// over a full store at the default max_names, 200,000 names, in a
// pseudo-random order; ns/op is per name. The names are built as they
// come, in the CPU's caches as a query's are.
func BenchmarkPrecheckBatch(b *testing.B) {
	b.Run("preloaded", func(b *testing.B) { benchmarkPrecheckBatch(b, true) })
	b.Run("not preloaded", func(b *testing.B) { benchmarkPrecheckBatch(b, false) })
}

func benchmarkPrecheckBatch(b *testing.B, preload bool) {
	const n, batch = DefaultMaxNames, 64
	e, clk, _, _ := cachedNames(b, n)
	client := netip.MustParseAddr("10.0.0.1")
	names := make([]string, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i, x := 0, uint64(1); b.Loop(); i++ {
		if i%10_000 == 0 {
			clk.add(time.Second)
		}
		j := i % batch
		if j == 0 {
			for k := range names {
				x = xorshift(x)
				names[k] = "host" + strconv.Itoa(int(x%n)) + ".example.com"
			}
			if preload {
				e.Preload(names)
			}
		}
		e.Precheck(names[j], false, client, 0)
	}
}

// BenchmarkSweep is the housekeeping's sweep over 262,144 names served
// from a cache, none of them stale: before each sweep every name's answer
// was judged and then repeated (see recent), in a pseudo-random order, so
// that the sweep finds the names' state out of the CPU's caches.
func BenchmarkSweep(b *testing.B) {
	const n = 1 << 18
	e, clk, obs, names := cachedNames(b, n)
	b.ReportAllocs()
	b.ResetTimer()
	x := uint64(1)
	for b.Loop() {
		b.StopTimer()
		clk.add(time.Second)
		for range n {
			x = xorshift(x)
			obs.Name = names[x&(n-1)]
			e.Observe(obs)
		}
		b.StartTimer()
		if dropped := e.Sweep(); dropped != 0 {
			b.Fatalf("the sweep dropped %d names", dropped)
		}
	}
}

// BenchmarkObserveNew is the path of a name seen for the first time: one
// 4-IP answer for a new subdomain of a tracked registered domain, the
// entry created, its registered domain found, both scored.
func BenchmarkObserveNew(b *testing.B) {
	const n = 1 << 17
	names := make([]string, n)
	for i := range names {
		names[i] = "d" + strconv.Itoa(i) + ".example.com"
	}
	obs := Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4"), MinTTL: 60}
	var e *Engine
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%n == 0 { // every name seen: start again with a new engine
			b.StopTimer()
			e, _ = New(DefaultConfig())
			b.StartTimer()
		}
		obs.Name = names[i%n]
		e.Observe(&obs)
	}
}

// BenchmarkObserveStorm is a wildcard-flux spray: 1,000 names under one
// registered domain, each answer 2 addresses scattered over many networks,
// every name seen once a second (the clock moves on after each 1,000
// answers), in monitor mode. cached: each name's answer is always the
// same, as a cache serves it; the registered domain's aggregate still
// gets new addresses at every answer. rotating: every answer brings new
// addresses, as when each query goes upstream; the names are flagged too.
// rotating-10/s: the same, each name answered ten times a second.
func BenchmarkObserveStorm(b *testing.B) {
	const names = 1000
	for _, tc := range []struct {
		name      string
		rotating  bool
		perSecond int // answers a name a second
	}{
		{"cached", false, 1},
		{"rotating", true, 1},
		{"rotating-10/s", true, 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			clk := &fakeClock{t: at("00:00:00")}
			cfg := DefaultConfig()
			cfg.Now = clk.now
			e, _ := New(cfg)
			obs := Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: make([]netip.Addr, 2), MinTTL: 300}
			answer := func(i int) {
				if i%(names*tc.perSecond) == 0 {
					clk.add(time.Second)
				}
				id := (i % names) * 7919
				if tc.rotating {
					id = i * 7919
				}
				obs.Name = "s" + strconv.Itoa(i%names) + ".storm.top"
				o, p := byte(128+id%96), byte(id/96)
				obs.Addrs[0] = netip.AddrFrom4([4]byte{o, 1, p, 1})
				obs.Addrs[1] = netip.AddrFrom4([4]byte{o, 2, p, 2})
				e.Observe(&obs)
			}
			for i := range 10 * names * tc.perSecond { // ten seconds of the storm first
				answer(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				answer(i)
			}
		})
	}
}

// BenchmarkObserveParallel measures contention across shards: run it with
// -cpu 1,2 to see the scaling. The names spread over 256 registered
// domains, 4 names each.
func BenchmarkObserveParallel(b *testing.B) {
	e, _ := New(DefaultConfig())
	obs := Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4")}
	names := make([]string, 1<<16)
	for i := range names {
		names[i] = fmt.Sprintf("host%d.domain%d.com", i&3, i>>2)
		obs.Name = names[i]
		e.Observe(&obs)
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		o := obs
		// Each goroutine walks the names in its own pseudo-random order, as
		// clients do: in lockstep they would queue on the same shard.
		x := seed.Add(0x9e3779b97f4a7c15)
		for pb.Next() {
			x = xorshift(x)
			o.Name = names[x&(1<<16-1)]
			e.Observe(&o)
		}
	})
}

// BenchmarkMemoryPerName fills an engine with 200,000 and 1,000,000 names
// of 4 IPs each, allocating beside each answer the garbage a DNS server
// makes for a query (queryGarbage), so that the collector runs as it does
// in a server, and reports the resident memory (VmRSS) the engine adds
// per name, the collector's headroom over the live heap included, and the
// live heap per name.
func BenchmarkMemoryPerName(b *testing.B) {
	for _, names := range []int{200_000, 1_000_000} {
		b.Run(strconv.Itoa(names), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.MaxNames = names
			client := netip.MustParseAddr("10.0.0.1")
			for b.Loop() {
				runtime.GC()
				debug.FreeOSMemory()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				rssBefore := residentBytes()
				e, _ := New(cfg)
				obs := Observation{Client: client, Addrs: make([]netip.Addr, 4)}
				buf := make([]byte, 0, 32)
				for i := range names {
					buf = strconv.AppendInt(append(buf[:0], 'h'), int64(i), 10)
					obs.Name = string(append(buf, ".example.com"...))
					for j := range obs.Addrs {
						obs.Addrs[j] = netip.AddrFrom4([4]byte{45, byte(i >> 16), byte(i >> 8), byte(i)<<2 | byte(j)})
					}
					e.Observe(&obs)
					garbage = make([]byte, queryGarbage)
				}
				rss := residentBytes() - rssBefore
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				if e.Len() < names { // and the registered domain's aggregate
					b.Fatalf("%d names tracked", e.Len())
				}
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(names), "heap-B/name")
				b.ReportMetric(float64(rss)/float64(names), "rss-B/name")
				freeEngine(e) // before the next run's measure
			}
		})
	}
}

// queryGarbage is about what CoreDNS allocates per cache hit (bench/run.sh
// prints it in its Go runtime table): the garbage that sets the pace of
// the collector.
const queryGarbage = 2048

// garbage keeps the compiler from optimizing the garbage away.
var garbage []byte

// residentBytes reads the process's resident set size (VmRSS).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// BenchmarkSave saves 200,000 tracked names (each with 4 addresses and a
// client) to io.Discard: B/op is what a save allocates, which streaming
// keeps to one shard's worth of records rather than the whole state.
func BenchmarkSave(b *testing.B) {
	const n = 200_000
	e, _ := New(DefaultConfig())
	obs := Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4"), MinTTL: 60}
	for i := range n {
		obs.Name = "host" + strconv.Itoa(i) + ".example.com"
		e.Observe(&obs)
	}
	var size countingWriter
	if err := e.Save(&size); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := e.Save(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "file-bytes")
}

// countingWriter counts what is written to it.
type countingWriter int

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}

// BenchmarkShare measures what a fleet adds: a sharing engine observing
// names seen for the first time (as BenchmarkObserveNew), with what it
// queues taken every 4,096 answers, as the link takes it every second;
// and merging another replica's first answer for a name.
func BenchmarkShare(b *testing.B) {
	const n = 1 << 17
	names := make([]string, n)
	for i := range names {
		names[i] = "d" + strconv.Itoa(i) + ".example.com"
	}
	four := addrs("45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4")
	cfg := DefaultConfig()
	cfg.Share = true
	// each calls f with a sharing engine and the i-th name, the engine
	// renewed once every name was seen.
	each := func(b *testing.B, f func(e *Engine, name string, i int)) {
		var e *Engine
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%n == 0 {
				b.StopTimer()
				e, _ = New(cfg)
				b.StartTimer()
			}
			f(e, names[i%n], i)
		}
	}
	b.Run("observe-new", func(b *testing.B) {
		obs := Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: four, MinTTL: 60}
		each(b, func(e *Engine, name string, i int) {
			obs.Name = name
			e.Observe(&obs)
			if i%4096 == 4095 {
				e.Outgoing(1 << 20)
			}
		})
	})
	b.Run("merge-new", func(b *testing.B) {
		s := Shared{Addrs: four, Clients: addrs("10.0.0.1"), Queries: 1, MinTTL: 60}
		each(b, func(e *Engine, name string, _ int) {
			s.Name = name
			e.Merge(&s)
		})
	})
}
