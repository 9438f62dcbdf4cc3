package fleet

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// maxReplicas bounds the replicas whose last batch merge remembers.
const maxReplicas = 1024

// maxStreamEntries bounds the stream whatever its IDs (see send): Retain
// (5 minutes) of one batch a second from each of 160 replicas. A
// variable for the tests.
var maxStreamEntries int64 = 50000

// maxNamesPerFlush bounds the names taken from the engine at each flush;
// the rest wait for the next.
const maxNamesPerFlush = 20000

// collect takes what the engine queued every Flush, and at once when a
// name is flagged, and queues it for publish.
func (l *Link) collect(ctx context.Context) {
	defer l.done.Done()
	t := time.NewTicker(l.opts.Flush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.engine().Holds():
		}
		l.enqueue(l.engine().Outgoing(maxNamesPerFlush))
	}
}

// enqueue encodes names into batches and queues them without waiting: a
// batch that finds the queue full is dropped, and counted. Names that the
// other replicas would refuse (see decodeName) stay local.
func (l *Link) enqueue(names []engine.Shared) {
	names = slices.DeleteFunc(names, func(s engine.Shared) bool {
		_, err := decodeName(s.Name)
		return err != nil
	})
	for len(names) > 0 {
		text, n := encode(nil, names)
		if n == 0 {
			n = 1 // a line longer than a batch: never sent
			l.bad.Add(1)
		}
		b := batch{text: text, names: n}
		for i := range names[:n] {
			if s := &names[i]; !s.HeldUntil.IsZero() {
				b.holds = append(b.holds, redis.Z{Score: float64(s.HeldUntil.Unix()), Member: s.Name})
			}
		}
		names = names[n:]
		if len(b.text) == 0 {
			continue
		}
		select {
		case l.queue <- b:
		default:
			l.dropped.Add(uint64(b.names))
		}
	}
}

// publish sends the queued batches, each until it goes through or the
// link closes.
func (l *Link) publish(ctx context.Context) {
	defer l.done.Done()
	for {
		var b batch
		select {
		case <-ctx.Done():
			return
		case b = <-l.queue:
		}
		l.seq++
		b.seq = l.seq // numbered as sent, in order
		for failures := 0; ; failures++ {
			err := l.send(ctx, b)
			if l.result(err) {
				l.resync.Store(true)
			}
			if err == nil {
				l.sent.Add(1)
				l.names.Add(uint64(b.names))
				break
			}
			if !backoff(ctx, failures) {
				return
			}
		}
	}
}

// send appends b to the stream, trimming what is older than Retain, and
// its holds to the sorted set, dropping the holds over, in one round trip.
// The stream's IDs are Redis's clock: what is older than Retain is told
// by the ID of the batch appended before (none is trimmed with the
// first), not by this replica's clock, which may run ahead of Redis's and
// trim every batch as it comes. IDs never go back, and after one ahead of
// Redis's clock (its clock stepped back, or an entry written with an ID
// of its own) they share its milliseconds: maxStreamEntries bounds the
// stream then.
func (l *Link) send(ctx context.Context, b batch) error {
	p := l.client.Pipeline()
	args := &redis.XAddArgs{Stream: l.stream, Approx: true,
		Values: []string{"r", l.replica, "s", strconv.FormatUint(b.seq, 10), "b", string(b.text)}}
	if l.lastAdded > 0 {
		args.MinID = strconv.FormatInt(l.lastAdded-l.opts.Retain.Milliseconds(), 10)
	}
	added := p.XAdd(ctx, args)
	p.XTrimMaxLenApprox(ctx, l.stream, maxStreamEntries, 0)
	p.PExpire(ctx, l.stream, 2*l.opts.Retain)
	if len(b.holds) > 0 {
		p.ZAddGT(ctx, l.holds, b.holds...)
		p.ZRemRangeByScore(ctx, l.holds, "-inf", strconv.FormatInt(time.Now().Unix(), 10))
		p.PExpire(ctx, l.holds, maxHoldAhead)
	}
	_, err := p.Exec(ctx)
	if ms, ok := streamMillis(added.Val()); ok {
		l.lastAdded = ms
	}
	return err
}

// streamMillis returns the milliseconds part of a stream entry's ID.
func streamMillis(id string) (int64, bool) {
	ms, err := strconv.ParseInt(id[:max(strings.IndexByte(id, '-'), 0)], 10, 64)
	return ms, err == nil
}

// subscribe reads the other replicas' batches from the stream and merges
// them, and after an outage merges the fleet's holds and sends this
// replica's again.
func (l *Link) subscribe(ctx context.Context) {
	defer l.done.Done()
	for failures := 0; ctx.Err() == nil; {
		err := l.readOnce(ctx)
		if l.result(err) {
			l.resync.Store(true)
		}
		if err == nil && l.resync.Swap(false) {
			if err = l.syncHolds(ctx); err == nil {
				l.enqueue(l.localHolds())
			} else {
				l.resync.Store(true)
			}
		}
		if err == nil || errors.Is(err, redis.Nil) {
			failures = 0
			continue
		}
		if !backoff(ctx, failures) {
			return
		}
		failures++
	}
}

// readOnce waits up to a second for batches after the last one read.
func (l *Link) readOnce(ctx context.Context) error {
	streams, err := l.client.XRead(ctx, &redis.XReadArgs{
		Streams: []string{l.stream, l.lastID}, Count: 64, Block: time.Second,
	}).Result()
	if err != nil {
		return err
	}
	for _, s := range streams {
		for _, m := range s.Messages {
			l.lastID = m.ID
			l.merge(m)
		}
	}
	return nil
}

// merge merges one stream entry unless this replica wrote it, or it is
// a batch merged already: publish sends a batch again until Redis says it
// took it, and the pipeline is no transaction, so a failure after its
// XADD, or a lost reply, leaves it in the stream twice. A replica numbers
// its batches from 1 (its name is new at each start) and sends them in
// order, so a number not above the last merged is a copy.
func (l *Link) merge(m redis.XMessage) {
	r, _ := m.Values["r"].(string)
	if r == l.replica {
		return
	}
	text, ok := m.Values["b"].(string)
	if !ok {
		l.bad.Add(1)
		return
	}
	if s, ok := m.Values["s"].(string); ok {
		seq, err := strconv.ParseUint(s, 10, 64)
		switch {
		case err != nil:
			l.bad.Add(1)
			return
		case seq <= l.lastSeq[r]:
			return
		}
		if len(l.lastSeq) >= maxReplicas {
			clear(l.lastSeq) // names made up by a hostile writer: bounded
		}
		l.lastSeq[r] = seq
	}
	now := time.Now()
	eng := l.engine()
	invalid := decode(text, now, func(s *engine.Shared) {
		if _, err := eng.Merge(s); err != nil {
			l.bad.Add(1)
			return
		}
		l.merged.Add(1)
	})
	l.bad.Add(uint64(invalid))
	l.read.Add(1)
	if ms, ok := streamMillis(m.ID); ok {
		l.lag.Store(int64(now.Sub(time.UnixMilli(ms))))
	}
}

// localHolds returns the holds of this replica's engine, to send again
// after an outage: names and registered domains it flagged, not its
// deny rules.
func (l *Link) localHolds() []engine.Shared {
	var out []engine.Shared
	for _, h := range l.engine().HeldNames(false) {
		if h.Allowed || h.Last.IsZero() {
			continue
		}
		name := h.Name
		if h.Subdomains {
			name = "*." + name
		}
		out = append(out, engine.Shared{Name: name, HeldUntil: h.Until})
	}
	return out
}
