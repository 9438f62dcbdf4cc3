package fluxguard

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// With plugins before it in the chain, fluxguard is reached with a stack
// that the rest of the chain outgrows on every query: a cache hit's stack
// grows a second time, deep under those plugins, where every frame above
// is copied. fluxguard then serves the query on one of a few goroutines
// of its own, whose stacks have grown already, while the query's own
// goroutine waits; with none free (their queries wait on upstream, say),
// it serves it where it is, as without them (docs/performance.md).

// A call is a query handed to a stack worker, and what came of it.
type call struct {
	f    *Fluxguard
	ctx  context.Context
	w    dns.ResponseWriter
	r    *dns.Msg
	rc   int
	err  error
	end  callEnd
	fail any // what the chain panicked with
	done chan struct{}
}

// How a call ended on its worker.
type callEnd uint8

const (
	callReturned callEnd = iota // the zero value: a call's end until it is known otherwise
	callPanicked
	callExited // the chain ended the worker's goroutine (runtime.Goexit)
)

var (
	// idleWorkers is received from by the stack workers that wait for a
	// call: a send succeeds only when one waits.
	idleWorkers = make(chan *call)
	workers     atomic.Int32 // stack workers running
	calls       = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}
)

// maxWorkers is the number of stack workers there may be: a few per CPU,
// enough for cache hits, which do not wait. It is read once: reading
// GOMAXPROCS takes the scheduler's lock, and it is read as every worker
// is busy, on the way to serving the query inline.
var maxWorkers = sync.OnceValue(func() int32 { return int32(4 * runtime.GOMAXPROCS(0)) })

// handOff hands r to a stack worker, and returns the call to wait for, or
// nil when none is free and none may be started.
func (f *Fluxguard) handOff(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) *call {
	c := calls.Get().(*call)
	c.f, c.ctx, c.w, c.r = f, ctx, w, r
	select {
	case idleWorkers <- c:
	default:
		if !startWorker(c) {
			c.release()
			return nil
		}
	}
	return c
}

// wait waits for c's worker to serve it, and ends as the worker's run of
// the query did: it returns what that returned, panics with its panic,
// or ends the goroutine, so that the server handles each as it would
// without workers.
func (c *call) wait() (int, error) {
	<-c.done
	rc, err, end, fail := c.rc, c.err, c.end, c.fail
	c.release()
	switch end {
	case callPanicked:
		panic(fail)
	case callExited:
		runtime.Goexit()
	}
	return rc, err
}

// release returns c to the pool, holding nothing of its query.
func (c *call) release() {
	done := c.done
	*c = call{done: done}
	calls.Put(c)
}

// startWorker starts a stack worker with c as its first call, unless
// there are as many as there may be.
func startWorker(c *call) bool {
	for {
		n := workers.Load()
		if n >= maxWorkers() {
			return false
		}
		if workers.CompareAndSwap(n, n+1) {
			go work(c)
			return true
		}
	}
}

// work serves c, then the calls that come, until one does not return.
func work(c *call) {
	for c.serve() {
		c = <-idleWorkers
	}
}

// serve serves c and reports whether it returned; when it did not, its
// worker ends.
func (c *call) serve() (returned bool) {
	defer func() {
		if !returned {
			c.end = callExited
			if c.fail = recover(); c.fail != nil {
				c.end = callPanicked
			}
			workers.Add(-1)
		}
		c.done <- struct{}{}
	}()
	c.rc, c.err = c.f.serveQuery(c.ctx, c.w, c.r)
	return true
}
