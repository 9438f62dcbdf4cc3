package fluxguard

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// TestObserveQueue serves TestMonitor's queries in monitor mode without
// labels, so that their answers are observed in batches, and expects the
// same verdicts, once the batch has been observed, and every answer
// passed through as it came.
func TestObserveQueue(t *testing.T) {
	f, up := newTestFluxguard(t, "fluxguard . {\n action log\n}")
	f.queue = newObserveQueue()
	f.queue.clock = func() time.Duration { return 0 } // never quiet: every answer is queued
	done := make(chan struct{})
	f.inBackground(func() { f.queue.run(f, done) })
	server := serverLabel(t)
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, &dnsserver.Server{Addr: server})
	for i, name := range []string{"c2.evil.tk.", "C2.Evil.TK.", "c2.evil.tk.", "c2.EVIL.tk.", "c2.evil.tk.", "c2.evil.tk."} {
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		if _, err := f.ServeDNS(ctx, rec, newQueryEDNS(name, dns.TypeA, 1232, true)); err != nil {
			t.Fatalf("Query %d: expected no error, got %v", i, err)
		}
		checkPassedThrough(t, rec, up)
	}
	deadline := time.Now().Add(10 * time.Second)
	for toFloat64(responsesInspected.WithLabelValues(server)) < 6 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(done)
	f.background.Wait()
	for level, want := range map[string]float64{"none": 2, "flagged": 4} {
		if got := toFloat64(verdicts.WithLabelValues(server, level)); got != want {
			t.Errorf("Expected %v %s verdicts, got %v", want, level, got)
		}
	}
	if got := toFloat64(flaggedDomain.WithLabelValues(server, "c2.evil.tk")); got != 1 {
		t.Errorf("Expected flagged{domain=c2.evil.tk} 1, got %v", got)
	}
}

// TestObserveQueueQuiet checks which answers are observed on their
// queries' paths: those that find the queue empty, quietGap or more after
// the last answer queued or the last batch; the others are queued, in
// order.
func TestObserveQueueQuiet(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n action log\n}")
	f.queue = newObserveQueue()
	var now time.Duration
	f.queue.clock = func() time.Duration { return now }
	server := serverLabel(t)
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, &dnsserver.Server{Addr: server})
	for i, tc := range []struct {
		batchAfter time.Duration // when positive, a batch takes the queue this long after the last answer
		batchTakes time.Duration // how long that batch runs
		after      time.Duration // since the last answer, or the batch's end
		inline     bool          // observed on its query's path
		wantQueued int
	}{
		{after: time.Second, inline: true},                             // the first answer
		{after: quietGap - 1, wantQueued: 1},                           // too soon after
		{after: 2 * quietGap, wantQueued: 2},                           // the queue holds one
		{batchAfter: 1, after: quietGap, inline: true},                 // the queue taken first
		{after: quietGap - 1, wantQueued: 1},                           // too soon again
		{batchAfter: time.Second, after: quietGap - 1, wantQueued: 1},  // too soon after the batch
		{batchAfter: 1, batchTakes: quietGap, after: 1, wantQueued: 1}, // too soon after a long batch
	} {
		if tc.batchAfter > 0 {
			now += tc.batchAfter
			readings := 0
			f.queue.clock = func() time.Duration { // read as the batch takes the queue, then as it ends
				if readings++; readings == 2 {
					now += tc.batchTakes
				}
				return now
			}
			f.queue.observe(f)
			f.queue.clock = func() time.Duration { return now }
		}
		now += tc.after
		before := toFloat64(responsesInspected.WithLabelValues(server))
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		if _, err := f.ServeDNS(ctx, rec, newQueryEDNS("c2.evil.tk.", dns.TypeA, 1232, true)); err != nil {
			t.Fatalf("Query %d: expected no error, got %v", i, err)
		}
		f.queue.mu.Lock()
		queued := len(f.queue.pending)
		f.queue.mu.Unlock()
		inline := toFloat64(responsesInspected.WithLabelValues(server)) - before
		if queued != tc.wantQueued || (inline == 1) != tc.inline {
			t.Errorf("Query %d: expected %d queued and observed on its path %v, got %d and %v answers observed",
				i, tc.wantQueued, tc.inline, queued, inline)
		}
	}
}

// TestObserveQueueBounds fills the queue without a goroutine observing it:
// what it has no room for, and what comes once it is closed, is refused,
// for the caller to observe at once, and closing it observes what it held.
func TestObserveQueueBounds(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n action log\n}")
	q := newObserveQueue()
	q.clock = func() time.Duration { return 0 } // never quiet
	server := serverLabel(t)
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, &dnsserver.Server{Addr: server})
	query := &query{name: "c2.evil.tk"}
	client := &net.UDPAddr{IP: net.ParseIP("192.0.2.53"), Port: 53}
	answer := new(dns.Msg).SetReply(newQuery("c2.evil.tk.", dns.TypeA))
	for n := range 4 { // enough addresses for a detail to report
		answer.Answer = append(answer.Answer, flux("c2.evil.tk.", dns.TypeA, n)...)
	}
	held := &captureWriter{ResponseWriter: &addrWriter{addr: client}, held: answer}
	for i := range maxQueued {
		if !q.push(ctx, query, held, answerPrint(answer)) {
			t.Fatalf("Push %d: expected room for %d answers", i, maxQueued)
		}
	}
	if q.push(ctx, query, held, answerPrint(answer)) {
		t.Errorf("Expected a full queue to refuse an answer")
	}
	q.close(f)
	if got := toFloat64(responsesInspected.WithLabelValues(server)); got != maxQueued {
		t.Errorf("Expected closing to observe the %d queued answers, got %v", maxQueued, got)
	}
	if d, ok := f.eng.Detail("c2.evil.tk"); !ok || d.QueryCount != maxQueued || d.UniqueClients != 1 {
		t.Errorf("Expected c2.evil.tk's %d queries from its one client, got %+v", maxQueued, d.Row)
	}
	if q.push(ctx, query, held, answerPrint(answer)) {
		t.Errorf("Expected a closed queue to refuse an answer")
	}
	if f.eng.Len() != 1 {
		t.Errorf("Expected 1 tracked name, got %d", f.eng.Len())
	}
}
