package fluxguard

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// TestServeOnWorker checks that a query served on a stack worker ends for
// the server as it would where it came: with the chain's answer and
// return values, its panic, or its goroutine's end; and that with every
// worker busy the query is served where it came.
func TestServeOnWorker(t *testing.T) {
	errChain := errors.New("chain failed")
	for _, tc := range []struct {
		name  string
		chain func() (int, error)
		want  string
	}{
		{"returns", func() (int, error) { return dns.RcodeRefused, errChain }, "returned 5, chain failed"},
		{"panics", func() (int, error) { panic("chain panicked") }, "panicked: chain panicked"},
		{"ends its goroutine", func() (int, error) { runtime.Goexit(); return 0, nil }, "ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newTestFluxguard(t, "fluxguard .")
			f.onWorkers = true
			caller := make(chan uint64, 1)
			var ranOn uint64
			f.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
				ranOn = goroutineID()
				return tc.chain()
			})
			before := workers.Load()
			got := make(chan string, 1)
			go func() {
				caller <- goroutineID()
				ended := true
				defer func() {
					if v := recover(); v != nil {
						got <- fmt.Sprintf("panicked: %v", v)
					} else if ended {
						got <- "ended"
					}
				}()
				rc, err := f.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), newQuery("www.example.org.", dns.TypeA))
				ended = false
				got <- fmt.Sprintf("returned %d, %v", rc, err)
			}()
			if g := <-got; g != tc.want {
				t.Errorf("Expected the query to have %q, got %q", tc.want, g)
			}
			if id := <-caller; ranOn == id || ranOn == 0 {
				t.Errorf("Expected the chain to run on a worker, not on the query's goroutine %d (ran on %d)", id, ranOn)
			}
			if n := workers.Load(); n > before+1 || n > maxWorkers() {
				t.Errorf("Expected at most %d workers, got %d", min(before+1, maxWorkers()), n)
			}
		})
	}

	t.Run("every worker busy", func(t *testing.T) {
		f, _ := newTestFluxguard(t, "fluxguard .")
		f.onWorkers = true
		release := make(chan struct{})
		entered := make(chan uint64) // the goroutine a waiting query's chain runs on
		var ranOn atomic.Uint64
		f.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
			if r.Question[0].Name == "wait.example.org." {
				entered <- goroutineID()
				<-release
			} else {
				ranOn.Store(goroutineID())
			}
			return dns.RcodeSuccess, nil
		})
		// Queries that wait until every worker serves one: each worker
		// serves one at a time, and one that finds none free waits on its
		// own goroutine.
		var queries sync.WaitGroup
		defer queries.Wait()
		defer close(release)
		for onWorkers := int32(0); onWorkers < maxWorkers(); {
			query := make(chan uint64, 1)
			queries.Add(1)
			go func() {
				defer queries.Done()
				query <- goroutineID()
				f.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), newQuery("wait.example.org.", dns.TypeA))
			}()
			if <-entered != <-query {
				onWorkers++
			}
		}
		if rc, err := f.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), newQuery("www.example.org.", dns.TypeA)); rc != dns.RcodeSuccess || err != nil {
			t.Errorf("Expected the query answered, got %d, %v", rc, err)
		}
		if id := goroutineID(); ranOn.Load() != id {
			t.Errorf("Expected the chain to run on the query's goroutine %d with every worker busy, ran on %d", id, ranOn.Load())
		}
	})
}

// goroutineID returns the calling goroutine's number, from its stack's
// first line.
func goroutineID() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	fields := strings.Fields(string(buf))
	id, _ := strconv.ParseUint(fields[1], 10, 64)
	return id
}
