package fluxguard

import (
	"context"
	"runtime/debug"
	"testing"
	"unsafe"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// TestStackUnderFluxguard measures how much deeper the rest of the chain
// runs for fluxguard: its frames only, not the upstreamStackReserve bytes
// it has growStack make sure of for a new name, which are given back
// before the chain runs. A reserve still held while the chain runs would
// make its deepest calls grow the stack again.
func TestStackUnderFluxguard(t *testing.T) {
	// A GC may shrink, so move, the stack.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	// A is inspected (the chain writes to a captureWriter), TXT passed on.
	for _, qtype := range []uint16{dns.TypeA, dns.TypeTXT} {
		t.Run(dns.TypeToString[qtype], func(t *testing.T) {
			f, up := newTestFluxguard(t, "fluxguard .")
			var under uintptr
			f.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
				under = stackPointer()
				return up.ServeDNS(ctx, w, r)
			})
			depth := make(chan uintptr)
			go func() {
				growStackBy64KiB() // so that it does not grow, and move, between the two readings
				above := stackPointer()
				f.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), newQuery("www.example.org.", qtype))
				depth <- above - under
			}()
			d := <-depth
			t.Logf("%d bytes", d)
			if d >= 512 {
				t.Errorf("Expected the chain under fluxguard to run less than 512 bytes deeper, got %d", d)
			}
		})
	}
}

// TestUpstreamReserve checks which queries get growStack's reserve: those
// for names fluxguard has not seen, whose answers most likely come from
// upstream, and not those for names it tracks or skips, nor, with the
// metadata plugin, any.
func TestUpstreamReserve(t *testing.T) {
	for _, tc := range []struct {
		name     string
		query    string
		qtype    uint16
		metadata bool
		want     bool
	}{
		{"a name not seen", "new.example.org.", dns.TypeA, false, true},
		{"a tracked name", "www.example.org.", dns.TypeA, false, false},
		{"an excluded name", "printer.corp.", dns.TypeA, false, false},
		{"not inspected", "new.example.org.", dns.TypeTXT, false, false},
		{"with the metadata plugin", "new.example.org.", dns.TypeA, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newTestFluxguard(t, "fluxguard .")
			f.labelsWanted.Store(tc.metadata)
			ctx := newContext(serverLabel(t))
			f.ServeDNS(ctx, dnstest.NewRecorder(&test.ResponseWriter{}), newQuery("www.example.org.", dns.TypeA))
			r := newQuery(tc.query, tc.qtype)
			upstream := false
			if name, inspected, ok := f.zoneName(r); ok && inspected {
				_, upstream = f.precheck(&query{metrics: f.metricsFor(ctx), name: name, v6: tc.qtype == dns.TypeAAAA}, 0)
			}
			if upstream != tc.want {
				t.Errorf("Expected upstream %t, got %t", tc.want, upstream)
			}
		})
	}
}

// stackPointer returns an address on the caller's stack, just below its frame.
//
//go:noinline
func stackPointer() uintptr {
	var b byte
	return uintptr(unsafe.Pointer(&b))
}

//go:noinline
func growStackBy64KiB() {
	var b [64 << 10]byte
	sinkBytes(b[:])
}

//go:noinline
func sinkBytes([]byte) {}

// TestParkDeep checks that parkDeep runs its loop below the reserve: a
// goroutine waiting there counts as that deep in the average the runtime
// sizes new goroutines' stacks by.
func TestParkDeep(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a GC may move the stack
	depth := make(chan uintptr)
	go func() {
		growStackBy64KiB()
		above := stackPointer()
		parkDeep(func() { depth <- above - stackPointer() })
	}()
	if d := <-depth; d < upstreamStackReserve {
		t.Errorf("Expected the loop to run at least %d bytes deeper, got %d", upstreamStackReserve, d)
	}
}
