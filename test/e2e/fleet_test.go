package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/testenv"
)

// fleetPace is the time between two queries of the fleet tests: twice a
// replica's flush (1s), so that the evidence of a query reaches the other
// replicas before the next one, with a second to spare for a slow machine
// (detection is measured in queries). A flux name's clients ask again when its TTL ends, tens of
// seconds later; at a faster pace a query's evidence may not have reached
// the replica asked next, which would then need more queries than one
// replica seeing every query does.
const fleetPace = 2 * time.Second

// replica is one CoreDNS of a fleet test.
type replica struct {
	addr, metrics, report, conf string
	core                        *coreDNS
}

// startReplica runs the real binary with fluxguard blocking, with the
// shared option's line (none for "").
func startReplica(t *testing.T, simAddr, shared string) *replica {
	t.Helper()
	r := &replica{}
	r.core = startCoreDNSOnFreePorts(t, func() string {
		r.addr, r.metrics, r.report = freeAddr(t), freeAddr(t), freeAddr(t)
		return fmt.Sprintf(`
%s {
    bind 127.0.0.1
    prometheus %s
    fluxguard {
        action block
        report %s
        %s
    }
    forward . %s
}
`, zoneAt(r.addr), r.metrics, r.report, shared, simAddr)
	})
	r.conf = r.core.cmd.Args[len(r.core.cmd.Args)-1]
	return r
}

// queriesToBlock asks the replicas in turn for name, one query every
// fleetPace, and returns how many it took to get a blocked answer.
func queriesToBlock(t *testing.T, name string, fleet ...*replica) int {
	t.Helper()
	for i := range 40 {
		netw := []string{"udp", "tcp"}[i%2]
		if blockedAnswer(query(t, netw, fleet[i%len(fleet)].addr, name, dns.TypeA, true)) {
			return i + 1
		}
		time.Sleep(fleetPace)
	}
	t.Fatalf("%s never blocked", name)
	return 0
}

// blockedEverywhere waits until every replica holds name, watching their
// indicators rather than asking them (a query would add evidence of its
// own), then checks that each blocks it, and returns how long the wait
// took.
func blockedEverywhere(t *testing.T, within time.Duration, name string, fleet ...*replica) time.Duration {
	t.Helper()
	start := time.Now()
	held := `"name":"` + strings.TrimSuffix(name, ".") + `"`
	for _, r := range fleet {
		waitFor(t, within, name+" held by "+r.addr, func() bool {
			return strings.Contains(httpGet(t, "http://"+r.report+"/indicators"), held)
		})
	}
	took := time.Since(start)
	for _, r := range fleet {
		if m := query(t, "udp", r.addr, name, dns.TypeA, true); !blockedAnswer(m) {
			t.Fatalf("%s holds %s but does not block it:\n%s", r.addr, name, m)
		}
	}
	return took
}

// TestFleet runs three real CoreDNS+fluxguard replicas sharing one real
// redis-server in front of the flux simulator, with a client that asks
// them in turn, as behind a Service or a load balancer.
func TestFleet(t *testing.T) {
	srv := testenv.StartRedis(t)
	sim := startSim(t)

	// What one replica that sees every query needs.
	alone := queriesToBlock(t, "login.fluxy.top.", startReplica(t, sim.Addr(), ""))

	shared := "shared redis://" + srv.Addr + " prefix e2e"
	fleet := []*replica{startReplica(t, sim.Addr(), shared), startReplica(t, sim.Addr(), shared), startReplica(t, sim.Addr(), shared)}

	t.Run("a flux name is flagged as fast as by one replica that sees everything", func(t *testing.T) {
		shared := queriesToBlock(t, "login.fluxy.top.", fleet...)
		t.Logf("queries to the first block: one replica %d, three sharing %d", alone, shared)
		if shared > alone+1 {
			t.Errorf("the fleet needed %d queries, one replica %d", shared, alone)
		}
	})

	t.Run("once flagged anywhere, it is blocked on every replica within 2s", func(t *testing.T) {
		took := blockedEverywhere(t, 2*time.Second, "login.fluxy.top.", fleet...)
		t.Logf("blocked on every replica %v after the first block", took)
		for _, r := range fleet {
			if up, err := metricSum(r.metrics, "coredns_fluxguard_shared_up"); err != nil || up != 1 {
				t.Errorf("%s: shared_up %v, %v", r.addr, up, err)
			}
		}
	})

	t.Run("Redis stopped: every query answered, local detection goes on", func(t *testing.T) {
		srv.Stop()
		names := []string{"www.stable.example.", "www.rr-shop.example.", "login.fluxy.top."}
		for i := range 30 {
			r := fleet[i%3]
			m := query(t, []string{"udp", "tcp"}[i%2], r.addr, names[i%len(names)], dns.TypeA, true)
			if blocked := blockedAnswer(m); blocked != (names[i%len(names)] == "login.fluxy.top.") {
				t.Fatalf("%s from %s during the outage: blocked %v\n%s", names[i%len(names)], r.addr, blocked, m)
			}
		}
		// cdn.kwik.tk, asked of the first replica only, is flagged there.
		queriesToBlock(t, "cdn.kwik.tk.", fleet[0])
		waitFor(t, 10*time.Second, "shared_up 0", func() bool {
			up, err := metricSum(fleet[0].metrics, "coredns_fluxguard_shared_up")
			return err == nil && up == 0
		})
		for _, r := range fleet[1:] {
			if blockedAnswer(query(t, "udp", r.addr, "cdn.kwik.tk.", dns.TypeA, true)) {
				t.Fatalf("%s blocks cdn.kwik.tk without Redis", r.addr)
			}
		}
		fleet[0].core.waitLog(t, "unreachable, going on with this replica's own state")
	})

	t.Run("Redis back: the replicas catch up", func(t *testing.T) {
		srv.Start() // empty: it kept nothing
		took := blockedEverywhere(t, 15*time.Second, "cdn.kwik.tk.", fleet...)
		t.Logf("the other replicas blocked the name flagged during the outage %v after Redis came back", took)
		fleet[0].core.waitLog(t, "reachable again, resynchronising")
	})

	t.Run("a replica restarted blocks the held names from its first answer", func(t *testing.T) {
		old := fleet[2]
		old.core.terminate(t)
		restarted := &replica{addr: old.addr, metrics: old.metrics, report: old.report, conf: old.conf}
		restarted.core = startCoreDNSFile(t, old.conf)
		for _, name := range []string{"login.fluxy.top.", "cdn.kwik.tk."} {
			if m := query(t, "udp", restarted.addr, name, dns.TypeA, true); !blockedAnswer(m) {
				t.Fatalf("first answer of the restarted replica for %s not blocked:\n%s", name, m)
			}
		}
		if m := query(t, "udp", restarted.addr, "www.stable.example.", dns.TypeA, true); blockedAnswer(m) || len(m.Answer) == 0 {
			t.Fatalf("a benign name blocked by the restarted replica:\n%s", m)
		}
	})
}

// TestFleetTwoBlocksOneServer runs two server blocks on one address, each
// with its fluxguard in the fleet: their links share the server label, and
// the scrape must show their series once, summed, rather than fail.
func TestFleetTwoBlocksOneServer(t *testing.T) {
	srv := testenv.StartRedis(t)
	sim := startSim(t)
	var addr, metrics string
	startCoreDNSOnFreePorts(t, func() string {
		addr, metrics = freeAddr(t), freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		block := `%s:%s {
    bind 127.0.0.1
    prometheus %s
    fluxguard {
        shared redis://%s prefix two
    }
    forward . %s
}
`
		return fmt.Sprintf(block, "top", port, metrics, srv.Addr, sim.Addr()) +
			fmt.Sprintf(block, "tk", port, metrics, srv.Addr, sim.Addr())
	})
	for _, name := range []string{"login.fluxy.top.", "cdn.kwik.tk."} {
		query(t, "udp", addr, name, dns.TypeA, true)
	}
	body := httpGet(t, "http://"+metrics+"/metrics")
	if n := strings.Count(body, "\ncoredns_fluxguard_shared_up{"); n != 1 {
		t.Errorf("%d shared_up series, want 1:\n%s", n, body)
	}
	if up, err := metricSum(metrics, "coredns_fluxguard_shared_up"); err != nil || up != 1 {
		t.Errorf("shared_up %v, %v", up, err)
	}
}

// TestFleetTLS runs two replicas on a real redis-server that speaks TLS
// only, under a certificate of a private authority (tls_ca): a name
// flagged by one is held by the other. A third replica, without tls_ca,
// does not trust the server: it stays out of the fleet and answers on.
func TestFleetTLS(t *testing.T) {
	srv := testenv.StartRedisTLS(t)
	sim := startSim(t)
	shared := "shared rediss://" + srv.Addr + " prefix tls tls_ca " + srv.CA
	a, b := startReplica(t, sim.Addr(), shared), startReplica(t, sim.Addr(), shared)
	untrusting := startReplica(t, sim.Addr(), "shared rediss://"+srv.Addr+" prefix tls")
	queriesToBlock(t, "login.fluxy.top.", a)
	t.Logf("held by the other replica %v after the first block", blockedEverywhere(t, 2*time.Second, "login.fluxy.top.", b))
	if m := query(t, "udp", untrusting.addr, "login.fluxy.top.", dns.TypeA, true); blockedAnswer(m) || len(m.Answer) == 0 {
		t.Fatalf("the replica that does not trust the server:\n%s", m)
	}
	untrusting.core.waitLog(t, "certificate signed by unknown authority")
	if up, err := metricSum(untrusting.metrics, "coredns_fluxguard_shared_up"); err != nil || up != 0 {
		t.Errorf("shared_up %v, %v on the replica that does not trust the server", up, err)
	}
}

// TestFleetSentinel runs two replicas that find the fleet's Redis through
// a real Sentinel (shared ... sentinel mymaster): a name flagged by one is
// held by the other.
func TestFleetSentinel(t *testing.T) {
	master := testenv.StartRedis(t)
	sentinel := testenv.StartRedisSentinel(t, master)
	sim := startSim(t)
	shared := "shared redis://" + sentinel.Addr + " sentinel mymaster prefix sentinel"
	a, b := startReplica(t, sim.Addr(), shared), startReplica(t, sim.Addr(), shared)
	queriesToBlock(t, "login.fluxy.top.", a)
	t.Logf("held by the other replica %v after the first block", blockedEverywhere(t, 2*time.Second, "login.fluxy.top.", b))
	a.core.waitLog(t, "joined the fleet at ["+sentinel.Addr+"]")
}

// TestFleetCluster runs two replicas on a real Redis Cluster of three
// masters, each replica given another node as its seed (shared ...
// cluster): a name flagged by one is held by the other.
func TestFleetCluster(t *testing.T) {
	nodes := testenv.StartRedisCluster(t)
	sim := startSim(t)
	a := startReplica(t, sim.Addr(), "shared redis://"+nodes[0].Addr+" cluster prefix cluster")
	b := startReplica(t, sim.Addr(), "shared redis://"+nodes[1].Addr+" redis://"+nodes[2].Addr+" cluster prefix cluster")
	queriesToBlock(t, "login.fluxy.top.", a)
	t.Logf("held by the other replica %v after the first block", blockedEverywhere(t, 2*time.Second, "login.fluxy.top.", b))
}
