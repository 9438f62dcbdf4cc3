package fluxguard

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// reportServer serves the report on one address: the JSON report, the
// indicators and the report page. It is shared by the instances that name
// the same address, so that a Corefile reload, which starts the new
// instance before it stops the old, keeps the listener.
type reportServer struct {
	addr string
	refs int
	src  atomic.Pointer[reportSource]
	srv  *http.Server
	busy chan struct{} // the requests being served, at most its capacity
}

// maxReportRequests bounds the requests served at once: each walks the
// whole state, so a burst of them must not multiply the memory it takes.
// maxReportConns bounds the connections open at once, each a goroutine
// and a file descriptor of the resolver's process.
const (
	maxReportRequests = 2
	maxReportConns    = 64
)

// reportTimeouts bound how long a client that sends slowly, reads slowly
// or idles holds a connection and, while its report is written, one of
// the maxReportRequests places.
var reportTimeouts = struct{ header, read, write, idle time.Duration }{5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute}

var (
	reportsMu sync.Mutex
	reports   = map[string]*reportServer{}
)

// acquireReport starts serving src's report on addr, or points the running
// server there.
func acquireReport(addr string, src *reportSource) (*reportServer, error) {
	reportsMu.Lock()
	defer reportsMu.Unlock()
	if rs, ok := reports[addr]; ok {
		rs.refs++
		rs.src.Store(src)
		return rs, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	rs := newReportServer(addr)
	rs.src.Store(src)
	rs.srv = &http.Server{Handler: rs.routes(), ReadHeaderTimeout: reportTimeouts.header, ReadTimeout: reportTimeouts.read,
		WriteTimeout: reportTimeouts.write, IdleTimeout: reportTimeouts.idle}
	go func() {
		if err := rs.srv.Serve(netutil.LimitListener(ln, maxReportConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Errorf("report server on %s: %v", addr, err)
		}
	}()
	reports[addr] = rs
	return rs, nil
}

// newReportServer returns the report server of addr, not listening yet.
func newReportServer(addr string) *reportServer {
	return &reportServer{addr: addr, refs: 1, busy: make(chan struct{}, maxReportRequests)}
}

// routes maps the report server's paths to their handlers.
func (rs *reportServer) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /report", rs.limited(rs.serve))
	mux.HandleFunc("GET /indicators", rs.limited(rs.serveIndicators))
	mux.HandleFunc("GET /{$}", rs.limited(rs.servePage))
	mux.HandleFunc("GET /name/{name}", rs.limited(rs.serveName))
	return mux
}

// limited serves with h while fewer than maxReportRequests are being
// served, and answers 503 Service Unavailable, to be retried, otherwise.
func (rs *reportServer) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case rs.busy <- struct{}{}:
			defer func() { <-rs.busy }()
			h(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "fluxguard: busy with other report requests; retry", http.StatusServiceUnavailable)
		}
	}
}

// releaseReport stops the server when its last instance is gone.
func releaseReport(rs *reportServer) {
	reportsMu.Lock()
	defer reportsMu.Unlock()
	if rs.refs--; rs.refs > 0 {
		return
	}
	delete(reports, rs.addr)
	rs.srv.Close()
}

// serve writes the report rows as a JSON array, a row at a time (see
// engine.EachDetail): the report of every name tracked is never built
// whole.
func (rs *reportServer) serve(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriter(w)
	sep := "[\n  "
	rs.src.Load().eng.EachDetail(func(d engine.Detail) bool {
		row, err := json.MarshalIndent(d.Row, "  ", "  ")
		if err != nil {
			return false
		}
		bw.WriteString(sep)
		_, err = bw.Write(row)
		sep = ",\n  "
		return err == nil
	})
	if sep == "[\n  " {
		bw.WriteString("[]\n")
	} else {
		bw.WriteString("\n]\n")
	}
	bw.Flush()
}

// indicator is one line of the indicators feed: a held name, for a SIEM
// or a threat-intelligence platform such as MISP to load.
type indicator struct {
	Name       string    `json:"name"`
	Subdomains bool      `json:"subdomains,omitempty"` // a registered domain: every name under it is held
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	HoldUntil  time.Time `json:"hold_until"`
	Score      float64   `json:"score"`
	Reasons    []string  `json:"reasons"`
	Addresses  []string  `json:"addresses"`
	ASNs       []uint32  `json:"asns,omitempty"`
	Technique  string    `json:"technique"` // MITRE ATT&CK
}

// serveIndicators writes the held names as newline-delimited JSON, most
// recently seen first.
func (rs *reportServer) serveIndicators(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, in := range rs.src.Load().eng.Indicators() {
		name, sub := strings.CutPrefix(in.Name, "*.")
		reasons := []string{}
		if s := in.Reasons.String(); s != "" {
			reasons = strings.Split(s, ",")
		}
		if in.Addresses == nil {
			in.Addresses = []string{}
		}
		enc.Encode(indicator{Name: name, Subdomains: sub, FirstSeen: in.FirstSeen, LastSeen: in.LastSeen,
			HoldUntil: in.HoldUntil, Score: in.Score, Reasons: reasons, Addresses: in.Addresses, ASNs: in.ASNs,
			Technique: "T1568.001"})
	}
}
