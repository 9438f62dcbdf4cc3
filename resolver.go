package fluxguard

import (
	"context"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/time/rate"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// nsResolver actively resolves the NS records, and their addresses, of the
// registered domains of names that become suspicious (option resolve_ns),
// through the rest of the chain (cache, then the configured upstream),
// rate-limited, and feeds them to the engine: double flux shows as NS churn
// and NS network diversity even when the upstream's answers carry no
// authority section.
type nsResolver struct {
	f     *Fluxguard
	queue chan nsJob
	limit *rate.Limiter

	// How soon a domain is resolved again, its NS records' TTL within
	// these bounds: double flux shows as a set of name servers that changes
	// from one resolution to the next.
	minRecheck, maxRecheck time.Duration

	mu      sync.Mutex
	pending map[string][]string  // the domains queued, with the names that asked
	again   map[string]time.Time // when domains resolved may be again, for at most maxResolved of them
}

// nsJob is one registered domain to resolve, with the context of the
// query that made it suspicious (for the server's metrics labels).
type nsJob struct {
	ctx    context.Context
	domain string
}

// nsQueueLen bounds the domains waiting for resolution; more are dropped.
// A domain waits once, however many of its names ask (at most
// maxNamesPerDomain of them are recorded): a spray under one domain takes
// one place. A domain resolved is resolved again, when a name under it is
// still suspicious, once its NS records' TTL has passed (the cache would
// answer the same set before), within nsRecheckMin and nsRecheckMax.
const (
	nsQueueLen        = 64
	maxNamesPerDomain = 8
	nsRecheckMin      = 5 * time.Second
	nsRecheckMax      = 10 * time.Minute
	maxResolved       = 4096
)

func newNSResolver(f *Fluxguard, perSecond float64) *nsResolver {
	return &nsResolver{f: f, queue: make(chan nsJob, nsQueueLen), limit: rate.NewLimiter(rate.Limit(perSecond), 1),
		minRecheck: nsRecheckMin, maxRecheck: nsRecheckMax, pending: map[string][]string{}, again: map[string]time.Time{}}
}

// enqueue asks for the registered domain of name, a suspicious name, to be
// resolved, unless it is too soon to resolve it again or the queue is
// full; a domain queued already notes name among those that asked.
func (r *nsResolver) enqueue(ctx context.Context, name string) {
	domain := engine.RegisteredDomain(name)
	if domain == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if names, queued := r.pending[domain]; queued {
		if len(names) < maxNamesPerDomain && !slices.Contains(names, name) {
			r.pending[domain] = append(names, name)
		}
		return
	}
	if at, ok := r.again[domain]; ok && time.Now().Before(at) {
		return
	}
	select {
	case r.queue <- nsJob{ctx: context.WithoutCancel(ctx), domain: domain}:
		r.pending[domain] = []string{name}
	default:
	}
}

// resolved notes that domain, just resolved, may be resolved again once
// ttl has passed (within the bounds), unless maxResolved domains are
// noted already, those whose time has come forgotten first: a flood of
// suspicious domains is then bounded by the queue and the rate alone.
func (r *nsResolver) resolved(domain string, ttl time.Duration) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.again) >= maxResolved {
		for d, at := range r.again {
			if !now.Before(at) {
				delete(r.again, d)
			}
		}
		if len(r.again) >= maxResolved {
			return
		}
	}
	r.again[domain] = now.Add(min(max(ttl, r.minRecheck), r.maxRecheck))
}

// asked returns the names that asked for domain, which is no longer queued.
func (r *nsResolver) asked(domain string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := r.pending[domain]
	delete(r.pending, domain)
	return names
}

// run resolves queued domains until done is closed.
func (r *nsResolver) run(done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-done; cancel() }()
	for {
		select {
		case <-done:
			return
		case job := <-r.queue:
			if r.limit.Wait(ctx) != nil {
				return
			}
			r.resolve(ctx, job)
		}
	}
}

// maxGlue bounds the name servers whose addresses are resolved per domain.
const maxGlue = 4

// resolve sends an NS query for job's domain down the chain, then A
// queries for up to maxGlue of its name servers without glue in the
// answer, each within the rate limit, and records the name servers and
// their addresses for the domain and the names that asked.
func (r *nsResolver) resolve(ctx context.Context, job nsJob) {
	names := r.asked(job.domain)
	m := r.ask(job.ctx, job.domain, dns.TypeNS)
	if m == nil {
		r.resolved(job.domain, 0)
		return
	}
	var ns []string
	ttl := uint32(math.MaxUint32)
	for _, rr := range m.Answer {
		if rec, ok := rr.(*dns.NS); ok && dns.IsSubDomain(rec.Hdr.Name, dns.Fqdn(job.domain)) {
			ns = append(ns, engine.Normalize(rec.Ns))
			ttl = min(ttl, rec.Hdr.Ttl)
		}
	}
	r.resolved(job.domain, time.Duration(ttl)*time.Second)
	var addrs []netip.Addr
	for _, rr := range m.Extra {
		if a := rrAddr(rr); a.IsValid() {
			addrs = append(addrs, a)
		}
	}
	for _, name := range ns[:min(len(ns), maxGlue)] {
		if len(addrs) > 0 || r.limit.Wait(ctx) != nil {
			break // the glue came with the answer, or fluxguard is stopping
		}
		if g := r.ask(job.ctx, name, dns.TypeA); g != nil {
			for _, rr := range g.Answer {
				if a := rrAddr(rr); a.IsValid() {
					addrs = append(addrs, a)
				}
			}
		}
	}
	r.f.eng.ObserveNS(job.domain, names, ns, addrs)
}

// ask sends one query down the chain and returns the answer, if any.
func (r *nsResolver) ask(ctx context.Context, name string, qtype uint16) *dns.Msg {
	w := &nsWriter{}
	if _, err := r.f.Next.ServeDNS(ctx, w, new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)); err != nil {
		return nil
	}
	return w.msg
}

// nsWriter is the ResponseWriter of fluxguard's own NS queries: it keeps
// the answer and presents itself as a local client.
type nsWriter struct {
	dns.ResponseWriter
	msg *dns.Msg
}

var loopback = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}

func (w *nsWriter) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }
func (w *nsWriter) LocalAddr() net.Addr       { return loopback }
func (w *nsWriter) RemoteAddr() net.Addr      { return loopback }
func (w *nsWriter) Network() string           { return "udp" }
func (w *nsWriter) Close() error              { return nil }
func (w *nsWriter) TsigStatus() error         { return nil }
func (w *nsWriter) TsigTimersOnly(bool)       {}
func (w *nsWriter) Hijack()                   {}
func (w *nsWriter) Write([]byte) (int, error) { return 0, nil }
