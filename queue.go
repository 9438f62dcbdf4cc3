package fluxguard

import (
	"context"
	"slices"
	"sync"
	"time"
)

// observeQueue holds the answers monitor mode has written, for a
// goroutine of its own to observe in batches. Over many names, each name's
// state is a miss to memory; looked up on its query's path the misses are
// waited for one by one, while a batch preloads its names' slots together
// (engine.Preload) and waits on them at once. A batch then counts the
// answers that repeat their name's last one (see precheck), and reads and
// observes the rest. An answer is observed within about batchDelay; one
// the queue has no room for, or that comes once it is closed, is observed
// on its query's path. So is an answer that finds the queue empty
// quietGap or more after the last answer: answers that far apart have no
// misses to overlap, and one observed on its query's path, once written,
// is done before the next comes, where a batch would wake a millisecond
// later and hold up whichever query is being answered then.
type observeQueue struct {
	clock   func() time.Duration // monotonic, for push
	mu      sync.Mutex
	last    time.Duration // when the last answer found pending empty, or a batch took it or ended, on clock
	pending []queued
	spare   []queued      // pending's last backing array, for reuse
	closed  bool          // stop flushed it: the queue takes no more
	wake    chan struct{} // a batch has started to gather
}

// queued is an answer to observe: the one cw holds, which also gives its
// client, for the query of ctx for name, an AAAA query if v6 (see
// readQueued). It holds few pointers, each a write barrier as it is
// queued and cleared while the GC runs.
type queued struct {
	ctx   context.Context
	cw    *captureWriter
	name  string
	v6    bool
	print uint32 // the answer's (see answerPrint)
}

const (
	// batchDelay is how long a batch gathers before it is observed.
	batchDelay = time.Millisecond
	// quietGap is the time between answers from which they are observed
	// on their queries' paths (see push): 10,000 answers a second.
	quietGap = 100 * time.Microsecond
	// maxQueued bounds the answers waiting: a tenth of a second of a
	// busy core's queries.
	maxQueued = 4096
	// preloadBatch is how many names are preloaded at once: enough for
	// their misses to overlap, few enough for their lines to stay cached
	// until observed.
	preloadBatch = 64
)

func newObserveQueue() *observeQueue {
	start := time.Now()
	return &observeQueue{wake: make(chan struct{}, 1), clock: func() time.Duration { return time.Since(start) }}
}

// push queues the answer cw holds, of print pr, for q, the query of ctx. It
// reports false, and keeps nothing, when the answer is to be observed on
// its query's path: the queue is closed or full, or the answer is quiet,
// finding the queue empty quietGap or more after the last answer queued
// or the last batch. The clock is read only for an answer that finds the
// queue empty, and as a batch takes the queue and ends: under load, three
// times a batchDelay.
func (q *observeQueue) push(ctx context.Context, query *query, cw *captureWriter, pr uint32) bool {
	q.mu.Lock()
	first := len(q.pending) == 0
	ok := !q.closed && len(q.pending) < maxQueued
	if ok && first {
		now := q.clock()
		ok = now-q.last < quietGap
		q.last = now
	}
	if ok {
		// Field by field, as capture fills in a query.
		q.pending = slices.Grow(q.pending, 1)[:len(q.pending)+1]
		a := &q.pending[len(q.pending)-1]
		a.ctx, a.cw, a.name, a.v6, a.print = ctx, cw, query.name, query.v6, pr
	}
	q.mu.Unlock()
	if ok && first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return ok
}

// run observes the queued answers for f in batches until done is closed.
func (q *observeQueue) run(f *Fluxguard, done <-chan struct{}) {
	gather := time.NewTimer(batchDelay)
	gather.Stop()
	for {
		select {
		case <-q.wake:
		case <-done:
			return
		}
		gather.Reset(batchDelay)
		select {
		case <-gather.C:
		case <-done:
			gather.Stop()
			return
		}
		q.observe(f)
	}
}

// observe has f observe every answer queued so far, preloadBatch at a time.
func (q *observeQueue) observe(f *Fluxguard) {
	q.mu.Lock()
	batch := q.pending
	q.pending, q.spare = q.spare[:0], nil
	q.last = q.clock()
	q.mu.Unlock()
	var names [preloadBatch]string
	for i := 0; i < len(batch); i += preloadBatch {
		part := batch[i:min(i+preloadBatch, len(batch))]
		for j, a := range part {
			names[j] = a.name
		}
		f.eng.Preload(names[:len(part)])
		for j := range part {
			a := &part[j]
			asked := query{name: a.name, v6: a.v6}
			if b := f.readQueued(a.ctx, &asked, a.cw.RemoteAddr(), a.cw.held, a.print); b != nil {
				f.observeLater(a.ctx, asked.metrics, b)
			}
		}
	}
	clear(batch)
	q.mu.Lock()
	q.last = q.clock() // a long batch held up the answers that come next
	if q.spare == nil {
		q.spare = batch[:0]
	}
	q.mu.Unlock()
}

// close observes what is queued and has later answers observed on their
// queries' paths: run has returned, or f is stopping.
func (q *observeQueue) close(f *Fluxguard) {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.observe(f)
}
