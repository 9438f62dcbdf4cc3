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
func (l *Link) send(ctx context.Context, b batch) error {
	now := time.Now()
	p := l.client.Pipeline()
	p.XAdd(ctx, &redis.XAddArgs{
		Stream: l.stream, Approx: true,
		MinID:  strconv.FormatInt(now.Add(-l.opts.Retain).UnixMilli(), 10),
		Values: []string{"r", l.replica, "b", string(b.text)},
	})
	p.PExpire(ctx, l.stream, 2*l.opts.Retain)
	if len(b.holds) > 0 {
		p.ZAddGT(ctx, l.holds, b.holds...)
		p.ZRemRangeByScore(ctx, l.holds, "-inf", strconv.FormatInt(now.Unix(), 10))
		p.PExpire(ctx, l.holds, maxHoldAhead)
	}
	_, err := p.Exec(ctx)
	return err
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

// merge merges one stream entry unless this replica wrote it.
func (l *Link) merge(m redis.XMessage) {
	if r, _ := m.Values["r"].(string); r == l.replica {
		return
	}
	text, ok := m.Values["b"].(string)
	if !ok {
		l.bad.Add(1)
		return
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
	if ms, err := strconv.ParseInt(m.ID[:max(strings.IndexByte(m.ID, '-'), 0)], 10, 64); err == nil {
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
