package fluxguard

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// reportServer serves the JSON report on one address. It is shared by the
// instances that name the same address, so that a Corefile reload, which
// starts the new instance before it stops the old, keeps the listener.
type reportServer struct {
	addr string
	refs int
	eng  atomic.Pointer[engine.Engine]
	srv  *http.Server
}

var (
	reportsMu sync.Mutex
	reports   = map[string]*reportServer{}
)

// acquireReport starts serving eng's report on addr, or points the running
// server there.
func acquireReport(addr string, eng *engine.Engine) (*reportServer, error) {
	reportsMu.Lock()
	defer reportsMu.Unlock()
	if rs, ok := reports[addr]; ok {
		rs.refs++
		rs.eng.Store(eng)
		return rs, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	rs := &reportServer{addr: addr, refs: 1}
	rs.eng.Store(eng)
	mux := http.NewServeMux()
	mux.HandleFunc("/report", rs.serve)
	rs.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := rs.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Errorf("report server on %s: %v", addr, err)
		}
	}()
	reports[addr] = rs
	return rs, nil
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

// serve writes the report rows as a JSON array.
func (rs *reportServer) serve(w http.ResponseWriter, _ *http.Request) {
	rows := rs.eng.Load().Report()
	if rows == nil {
		rows = []engine.Row{}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rows)
}
