package engine

import (
	"fmt"
	"net/netip"
	"testing"
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

// BenchmarkObserveParallel measures contention across shards.
func BenchmarkObserveParallel(b *testing.B) {
	e, _ := New(DefaultConfig())
	obs := Observation{Client: netip.MustParseAddr("10.0.0.1"), Addrs: addrs("45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4")}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		o := obs
		i := 0
		for pb.Next() {
			o.Name = fmt.Sprint("host", i&1023, ".example.com")
			e.Observe(&o)
			i++
		}
	})
}
