// Package fleet shares an engine's evidence and holds with the other
// replicas of a fleet through Redis or Valkey, with go-redis's universal
// client (single server, Sentinel or Cluster).
//
// Each replica appends a batch of what its engine queued (see
// engine.Engine.Outgoing) to one stream every second, and at once when a
// name is flagged; it reads the others' batches from the stream and
// merges them (engine.Engine.Merge). Holds are also kept in a sorted set
// by their end, which a replica reads when it starts and after an outage.
// The stream keeps a few minutes of batches, so a replica that restarts
// or loses Redis for that long catches up on the evidence too.
//
// Nothing waits on Redis but the link's own goroutines: batches queue in
// a bounded channel, dropped (and counted) when it is full, and while
// Redis is away each replica goes on with its own state.
package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// Options configure a link.
type Options struct {
	// Client is go-redis's: one address, Sentinel (MasterName) or
	// Cluster, with credentials and TLS.
	Client redis.UniversalOptions
	// Prefix of the keys: one Redis can serve several fleets.
	Prefix string
	// Flush is how often evidence is sent; default 1s.
	Flush time.Duration
	// Retain is how long the stream keeps batches, for the replicas
	// that start or come back; default 5m.
	Retain time.Duration
	// Since is when the evidence the engine holds already ends: a replica
	// that restored its state, or replaces a link to the same stream,
	// merges the batches from then on, not those of the last Retain.
	Since time.Time
	// Queue is how many batches wait while Redis is slow or away;
	// default 64.
	Queue int
	// Logf reports outages once, and their end.
	Logf func(format string, args ...any)
}

// Engine is what a link needs of the engine.
type Engine interface {
	Outgoing(limit int) []engine.Shared
	Merge(s *engine.Shared) (engine.Verdict, error)
	Holds() <-chan struct{}
	HeldNames(addrs bool) []engine.HeldName
}

// Stats are a link's counters, for metrics.
type Stats struct {
	Up          bool
	Errors      uint64 // failed Redis calls
	BatchesSent uint64
	BatchesRead uint64 // other replicas' batches merged
	NamesSent   uint64
	NamesMerged uint64
	Dropped     uint64        // names dropped because the queue was full
	Invalid     uint64        // lines and members from Redis refused
	Lag         time.Duration // age of the last batch merged when it was read
}

// Add counts o in s, for links exported as one: up only if both are, with
// the older lag.
func (s *Stats) Add(o Stats) {
	s.Up = s.Up && o.Up
	s.Errors += o.Errors
	s.BatchesSent += o.BatchesSent
	s.BatchesRead += o.BatchesRead
	s.NamesSent += o.NamesSent
	s.NamesMerged += o.NamesMerged
	s.Dropped += o.Dropped
	s.Invalid += o.Invalid
	s.Lag = max(s.Lag, o.Lag)
}

// Link is one replica's connection to its fleet.
type Link struct {
	opts      Options
	client    redis.UniversalClient
	replica   string
	stream    string
	holds     string
	eng       atomic.Pointer[engineRef]
	queue     chan batch
	cancel    context.CancelFunc
	done      sync.WaitGroup
	lastID    string // of the stream, read by the reader only
	seq       uint64 // the last batch's number, by the publisher only
	lastAdded int64  // the milliseconds of its stream ID, by the publisher only
	// The last batch number merged from each replica, by the reader only:
	// a batch sent again after a failure that Redis had applied is merged
	// once (see merge).
	lastSeq map[string]uint64

	up                      atomic.Bool
	outage                  atomic.Bool // logged, until Redis answers again
	resync                  atomic.Bool // merge the fleet's holds and send ours again
	errs, sent, read, names atomic.Uint64
	merged, dropped, bad    atomic.Uint64
	lag                     atomic.Int64
}

type engineRef struct{ Engine }

// batch is an encoded batch and the holds in it.
type batch struct {
	text  []byte
	names int
	holds []redis.Z
	seq   uint64 // this replica's number for it, the same when it is sent again
}

// quiet drops go-redis's own log lines: a link logs an outage once (see
// result), where go-redis would log every failed dial.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// New returns a link for eng; it does no I/O until SyncHolds or Start.
func New(opts Options, eng Engine) *Link {
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	if opts.Flush <= 0 {
		opts.Flush = time.Second
	}
	if opts.Retain <= 0 {
		opts.Retain = 5 * time.Minute
	}
	if opts.Queue <= 0 {
		opts.Queue = 64
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	l := &Link{
		opts:    opts,
		client:  redis.NewUniversalClient(&opts.Client),
		replica: replicaID(),
		stream:  opts.Prefix + ":stream",
		holds:   opts.Prefix + ":holds",
		queue:   make(chan batch, opts.Queue),
		lastSeq: map[string]uint64{},
	}
	l.SetEngine(eng)
	// Evidence of the last Retain: a replica that starts catches up.
	from := time.Now().Add(-opts.Retain)
	if opts.Since.After(from) {
		from = opts.Since
	}
	l.lastID = fmt.Sprintf("%d-0", from.UnixMilli())
	return l
}

// replicaID names this process in the stream, to skip its own batches.
func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// SetEngine points the link at eng, after a configuration reload.
func (l *Link) SetEngine(eng Engine) { l.eng.Store(&engineRef{eng}) }

func (l *Link) engine() Engine { return l.eng.Load().Engine }

// SyncHolds merges the holds in force in Redis into the engine, waiting
// at most timeout: a replica that starts blocks what the fleet holds
// before it answers.
func (l *Link) SyncHolds(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := l.syncHolds(ctx)
	l.result(err)
	return err
}

// maxHolds bounds the holds read from Redis at once.
const maxHolds = 100000

func (l *Link) syncHolds(ctx context.Context) error {
	now := time.Now()
	zs, err := l.client.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
		Key: l.holds, Start: now.Unix() + 1, Stop: "+inf", ByScore: true, Count: maxHolds,
	}).Result()
	if err != nil {
		return err
	}
	eng := l.engine()
	for _, z := range zs {
		name, ok := z.Member.(string)
		// Compared before the conversion, which +Inf or 1e19 would wrap.
		if !ok || !(z.Score <= float64(now.Add(maxHoldAhead).Unix())) {
			l.bad.Add(1)
			continue
		}
		if _, err := decodeName(name); err != nil {
			l.bad.Add(1)
			continue
		}
		if _, err := eng.Merge(&engine.Shared{Name: name, HeldUntil: time.Unix(int64(z.Score), 0)}); err != nil {
			l.bad.Add(1)
		}
	}
	return nil
}

// Start runs the link until Close.
func (l *Link) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.enqueue(l.localHolds()) // restored from a state file, say
	l.done.Add(3)
	go l.collect(ctx)
	go l.publish(ctx)
	go l.subscribe(ctx)
}

// Close stops the link and closes its client.
func (l *Link) Close() error {
	if l.cancel != nil {
		l.cancel()
		l.done.Wait()
	}
	return l.client.Close()
}

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	return Stats{
		Up: l.up.Load(), Errors: l.errs.Load(),
		BatchesSent: l.sent.Load(), BatchesRead: l.read.Load(),
		NamesSent: l.names.Load(), NamesMerged: l.merged.Load(),
		Dropped: l.dropped.Load(), Invalid: l.bad.Load(),
		Lag: time.Duration(l.lag.Load()),
	}
}

// result records the outcome of a Redis call, and logs an outage once,
// and its end. It reports whether Redis came back.
func (l *Link) result(err error) (back bool) {
	if err == nil || errors.Is(err, redis.Nil) {
		l.up.Store(true)
		if l.outage.CompareAndSwap(true, false) {
			l.opts.Logf("shared: %s reachable again, resynchronising", l.addr())
			return true
		}
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	l.errs.Add(1)
	l.up.Store(false)
	if l.outage.CompareAndSwap(false, true) {
		l.opts.Logf("shared: %s unreachable, going on with this replica's own state: %v", l.addr(), err)
	}
	return false
}

func (l *Link) addr() string {
	if l.opts.Client.MasterName != "" {
		return "sentinel master " + l.opts.Client.MasterName
	}
	return fmt.Sprint(l.opts.Client.Addrs)
}

// backoff waits before retrying after the failures so far in a row, up
// to maxBackoff, and reports false when ctx ends first.
func backoff(ctx context.Context, failures int) bool {
	d := min(100*time.Millisecond<<min(failures, 6), maxBackoff)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

const maxBackoff = 5 * time.Second
