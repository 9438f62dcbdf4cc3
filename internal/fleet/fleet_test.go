package fleet

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/testenv"
)

func newEngine(t *testing.T, allow ...string) *engine.Engine {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.Share = true
	for _, a := range allow {
		cfg.Allow = append(cfg.Allow, engine.Rule{Name: a})
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newLink(t *testing.T, addr string, eng *engine.Engine) *Link {
	t.Helper()
	l := New(Options{Client: redis.UniversalOptions{Addrs: []string{addr}}, Prefix: "test", Flush: 100 * time.Millisecond,
		Logf: t.Logf}, eng)
	t.Cleanup(func() { l.Close() })
	return l
}

// flag feeds eng a flux name's answers until it flags it.
func flag(t *testing.T, eng *engine.Engine, name string) {
	t.Helper()
	for i := range 50 {
		v := eng.Observe(&engine.Observation{Name: name, Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 9)}), MinTTL: 60,
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{byte(11 + i*17%200), byte(i * 7), 3, 1}), netip.AddrFrom4([4]byte{byte(31 + i*13%200), byte(i * 3), 5, 1})}})
		if v.Level == engine.LevelFlagged {
			return
		}
	}
	t.Fatalf("%s never flagged", name)
}

func waitHeld(t *testing.T, eng *engine.Engine, name string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if _, held := eng.Held(name); held {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not held within %v", name, within)
	return 0
}

// TestLinkSharesHolds runs replicas on a real redis-server: a hold reaches
// the others, a replica that starts gets the holds before it serves, and
// an outage ends in a catch-up.
func TestLinkSharesHolds(t *testing.T) {
	srv := testenv.StartRedis(t)
	a, b := newEngine(t), newEngine(t)
	la, lb := newLink(t, srv.Addr, a), newLink(t, srv.Addr, b)
	for _, l := range []*Link{la, lb} {
		if err := l.SyncHolds(2 * time.Second); err != nil {
			t.Fatal(err)
		}
		l.Start()
	}

	flag(t, a, "cdn-update.xyz")
	t.Logf("held on the other replica after %v", waitHeld(t, b, "cdn-update.xyz", 2*time.Second))

	c := newEngine(t)
	if err := newLink(t, srv.Addr, c).SyncHolds(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if v, held := c.Held("cdn-update.xyz"); !held || v.Reasons&engine.ReasonFleet == 0 {
		t.Errorf("a replica that starts does not hold the fleet's name: %+v", v)
	}

	srv.Stop()
	flag(t, a, "login-verify.top")
	waitUp(la, false)
	if st := la.Stats(); st.Up || st.Errors == 0 {
		t.Errorf("with Redis stopped: %+v", st)
	}
	if _, held := b.Held("login-verify.top"); held {
		t.Fatal("held without Redis")
	}
	srv.Start()
	t.Logf("held after Redis came back in %v", waitHeld(t, b, "login-verify.top", 10*time.Second))
	// b may merge the batch before a has read Redis's reply to it, which
	// is when a's link is up again.
	waitUp(la, true)
	if st := la.Stats(); !st.Up {
		t.Errorf("after Redis came back: %+v", st)
	}
}

// waitUp waits up to 5 seconds for l to be up, or down.
func waitUp(l *Link, up bool) {
	for deadline := time.Now().Add(5 * time.Second); l.Stats().Up != up && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLinkSince writes a batch of two minutes ago, as another replica
// would have, and starts two links: one catching up on the last Retain
// merges it, one whose engine holds the evidence until a minute ago (a
// restored state) does not.
func TestLinkSince(t *testing.T) {
	srv := testenv.StartRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	now := time.Now()
	line := fmt.Sprintf("old.tk %d 1 30 45.0.0.1 -\n", now.Add(time.Hour).Unix())
	if err := rc.XAdd(context.Background(), &redis.XAddArgs{Stream: "test:stream", ID: fmt.Sprintf("%d-0", now.Add(-2*time.Minute).UnixMilli()),
		Values: []string{"r", "other", "b", line}}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		since time.Time
		want  bool
	}{
		{"catching up", time.Time{}, true},
		{"state restored a minute ago", now.Add(-time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := newEngine(t)
			l := New(Options{Client: redis.UniversalOptions{Addrs: []string{srv.Addr}}, Prefix: "test", Flush: 100 * time.Millisecond,
				Since: tc.since, Logf: t.Logf}, eng)
			defer l.Close()
			l.Start()
			for deadline := time.Now().Add(2 * time.Second); l.Stats().BatchesRead == 0 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			if tc.want {
				waitHeld(t, eng, "old.tk", 2*time.Second)
				return
			}
			if _, held := eng.Held("old.tk"); held || l.Stats().BatchesRead != 0 {
				t.Errorf("merged a batch older than Since: %+v", l.Stats())
			}
		})
	}
}

// TestLinkKeepsUnshareableNames flags a name with a byte that DNS text
// escapes, which the other replicas would refuse as tampered with: it is
// not sent, and the name flagged after it is.
func TestLinkKeepsUnshareableNames(t *testing.T) {
	srv := testenv.StartRedis(t)
	a, b := newEngine(t), newEngine(t)
	la, lb := newLink(t, srv.Addr, a), newLink(t, srv.Addr, b)
	for _, l := range []*Link{la, lb} {
		l.Start()
	}
	flag(t, a, `odd\@name.xyz`)
	flag(t, a, "plain.xyz")
	waitHeld(t, b, "plain.xyz", 2*time.Second)
	if _, held := b.Held(`odd\@name.xyz`); held {
		t.Error("the escaped name was shared")
	}
	if st := lb.Stats(); st.Invalid != 0 {
		t.Errorf("the other replica refused %d values", st.Invalid)
	}
}

// TestLinkRefusesBadData writes what a hostile client of the same Redis
// could, and checks that it is counted, that the good data still counts,
// and that an allowed name is never held.
func TestLinkRefusesBadData(t *testing.T) {
	srv := testenv.StartRedis(t)
	eng := newEngine(t, "trusted.example.com")
	l := newLink(t, srv.Addr, eng)
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	until := float64(time.Now().Add(time.Hour).Unix())
	rc.ZAdd(ctx, "test:holds",
		redis.Z{Score: until, Member: "trusted.example.com"},
		redis.Z{Score: until, Member: "www.trusted.example.com"},
		redis.Z{Score: until, Member: "BAD NAME"},
		redis.Z{Score: 1e15, Member: "far.future.tk"},
		redis.Z{Score: 1e19, Member: "huge.future.tk"},
		redis.Z{Score: math.Inf(1), Member: "inf.future.tk"},
		redis.Z{Score: until, Member: "held.tk"})
	if err := l.SyncHolds(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	l.Start()
	entries := []any{
		[]string{"r", "x", "b", "ok.tk 0 3 30 45.0.0.1,46.0.0.1,47.0.0.1,48.0.0.1,49.0.0.1 -\ngarbage\n"},
		[]string{"r", "x"},
		[]string{"r", "x", "b", fmt.Sprintf("trusted.example.com %d 5 30 45.0.0.1 -\n", time.Now().Add(time.Hour).Unix())},
		[]string{"r", "x", "b", "\x00\xff\xfe"},
	}
	for _, v := range entries {
		if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: "test:stream", Values: v}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().BatchesRead < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := l.Stats()
	// BAD NAME, far, huge and inf.future.tk; garbage, the entry without a
	// batch, the binary line.
	if st.Invalid != 7 || st.BatchesRead != 3 {
		t.Errorf("stats %+v, want 7 invalid and 3 batches read", st)
	}
	for name, want := range map[string]bool{"held.tk": true, "trusted.example.com": false, "www.trusted.example.com": false,
		"far.future.tk": false, "huge.future.tk": false, "inf.future.tk": false} {
		if _, held := eng.Held(name); held != want {
			t.Errorf("Held(%s) = %v, want %v", name, held, want)
		}
	}
	// Its 5 addresses and 3 queries make ok.tk a candidate, with a detail.
	if d, ok := eng.Detail("ok.tk"); !ok || d.Verdict.UniqueIPs != 5 {
		t.Errorf("the good evidence (ok.tk) was not merged: %+v, %v", d.Verdict, ok)
	}
}

// TestRetriedBatchMergedOnce checks that a batch sent again after a
// failure that came after its XADD (here the holds' key is of another
// type, so the pipeline's ZADD fails each time) counts once on the other
// replicas.
func TestRetriedBatchMergedOnce(t *testing.T) {
	srv := testenv.StartRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Set(ctx, "test:holds", "not a sorted set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	a, b := newEngine(t), newEngine(t)
	la, lb := newLink(t, srv.Addr, a), newLink(t, srv.Addr, b)
	la.Start()
	lb.Start()
	flag(t, a, "cdn-update.xyz")
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := rc.XLen(ctx, "test:stream").Result(); n < 3; n, _ = rc.XLen(ctx, "test:stream").Result() {
		if time.Now().After(deadline) {
			t.Fatalf("the batch was appended %d times in 10 s, want it sent again at least twice", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // b reads every second
	da, _ := a.Detail("cdn-update.xyz")
	db, _ := b.Detail("cdn-update.xyz")
	if db.Verdict.Queries != da.Verdict.Queries {
		t.Errorf("replica b counts %d queries of a name replica a, the only one asked, answered %d times", db.Verdict.Queries, da.Verdict.Queries)
	}
}

// TestStreamBounded checks that the stream is trimmed whatever its IDs:
// after an entry a day ahead of the clocks, every ID Redis gives shares
// its milliseconds, and only maxStreamEntries bounds it.
func TestStreamBounded(t *testing.T) {
	defer func(n int64) { maxStreamEntries = n }(maxStreamEntries)
	maxStreamEntries = 10
	for _, skew := range []time.Duration{0, 24 * time.Hour} {
		t.Run(fmt.Sprint("skew ", skew), func(t *testing.T) {
			srv := testenv.StartRedis(t, "--stream-node-max-entries", "1") // exact approximate trimming
			rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
			defer rc.Close()
			ctx := context.Background()
			if skew > 0 {
				if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: "test:stream", ID: fmt.Sprintf("%d-0", time.Now().Add(skew).UnixMilli()),
					Values: []string{"r", "clock", "b", "x.tk 0 1 30 - -\n"}}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			l := New(Options{Client: redis.UniversalOptions{Addrs: []string{srv.Addr}}, Prefix: "test", Flush: time.Hour,
				Retain: time.Minute, Logf: t.Logf}, newEngine(t))
			defer l.Close()
			l.Start()
			for i := range 40 {
				l.enqueue([]engine.Shared{{Name: fmt.Sprintf("n%d.tk", i), Queries: 1, Addrs: []netip.Addr{netip.MustParseAddr("45.0.0.1")}}})
			}
			deadline := time.Now().Add(10 * time.Second)
			for l.Stats().BatchesSent < 40 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if n, err := rc.XLen(ctx, "test:stream").Result(); err != nil || n > maxStreamEntries {
				t.Errorf("the stream holds %d entries (%v), want at most %d", n, err, maxStreamEntries)
			}
		})
	}
}
