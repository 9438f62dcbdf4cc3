package e2e

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/fluxsim"
)

// TestReloadUnderLoad reloads the Corefile ten times (SIGUSR1) while
// clients query at a steady rate, each time with a changed allow list and
// threshold. Every UDP query must get exactly one answer, the held name
// must stay held across every reload, and the new allow list must apply
// from the next answer.
func TestReloadUnderLoad(t *testing.T) {
	sim := startSim(t, fluxsim.Name{Name: "mail.quux.top.", Kind: fluxsim.Flux, Pool: 60, PerAnswer: 4, TTL: 5, IPv6: true})
	dir := t.TempDir()
	addr, conf := freeAddr(t), filepath.Join(dir, "Corefile")
	writeCorefile := func(allowQuux bool, threshold string) {
		t.Helper()
		allow := "allow partner.example"
		if allowQuux {
			allow += " mail.quux.top"
		}
		if err := os.WriteFile(conf, fmt.Appendf(nil, `%s {
    bind 127.0.0.1
    fluxguard {
        action block
        block_rcode REFUSED
        threshold %s
        %s
    }
    cache 30
    forward . %s
}
`, zoneAt(addr), threshold, allow, sim.Addr()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCorefile(false, "8")
	core := startCoreDNSBin(t, buildBinary(t), conf)
	flagFlux(t, addr)
	flag(t, addr, "mail.quux.top.")

	// The load: UDP clients accounting for every reply, and one asking for
	// the held name over TCP, whose every answer must be REFUSED.
	var stop atomic.Bool
	stats := make([]*soakStats, 4)
	var load sync.WaitGroup
	for i := range stats {
		stats[i] = &soakStats{netw: "udp"}
		load.Go(func() {
			for !stop.Load() {
				soakClient("udp", addr, uint64(i), time.Now().Add(2*time.Second), stats[i])
			}
		})
	}
	// A TCP connection that the server being replaced closes or resets
	// before it reads the query is retried on a new one, as RFC 7766 has
	// clients do.
	var heldAsked, heldNotBlocked, heldRetried atomic.Int64
	var heldProblem atomic.Value
	load.Go(func() {
		c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
		for !stop.Load() {
			m := new(dns.Msg).SetQuestion("login.fluxy.top.", dns.TypeA)
			r, _, err := c.Exchange(m, addr)
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				heldRetried.Add(1)
				r, _, err = c.Exchange(m, addr)
			}
			heldAsked.Add(1)
			if err != nil || r.Rcode != dns.RcodeRefused {
				heldNotBlocked.Add(1)
				heldProblem.Store(fmt.Sprintf("%v %v", r, err))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	for i := range 10 {
		allowQuux, threshold := i%2 == 0, []string{"7.5", "9"}[i%2]
		writeCorefile(allowQuux, threshold)
		before := strings.Count(core.String(), "Reloading complete")
		core.cmd.Process.Signal(syscall.SIGUSR1)
		waitFor(t, 15*time.Second, fmt.Sprintf("reload %d", i), func() bool {
			return strings.Count(core.String(), "Reloading complete") > before
		})
		if allowQuux {
			if r := query(t, "udp", addr, "mail.quux.top.", dns.TypeA, true); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				t.Fatalf("reload %d: mail.quux.top allowed, yet its next answer is\n%s", i, r)
			}
		} else {
			flag(t, addr, "mail.quux.top.") // no longer allowed: blocked again
		}
		time.Sleep(500 * time.Millisecond)
	}
	stop.Store(true)
	load.Wait()

	var all soakStats
	for _, s := range stats {
		all.add(s)
	}
	t.Logf("10 reloads: %d UDP queries, %d answered, %d lost, %d late, %d duplicates; the held name asked %d times over TCP, %d retried on a new connection",
		all.sent, all.answered, all.lost, all.late, all.dups, heldAsked.Load(), heldRetried.Load())
	if all.sent == 0 || all.answered != all.sent || all.dups+all.late+all.stray+all.mismatch+all.malformed+all.errs != 0 {
		t.Errorf("not exactly one answer per query: %+v\n%s", all, strings.Join(all.examples, "\n"))
	}
	if n := heldNotBlocked.Load(); n > 0 {
		t.Errorf("the held name was not blocked %d of %d times, e.g. %v", n, heldAsked.Load(), heldProblem.Load())
	}
}
