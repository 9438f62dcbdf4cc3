package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/fluxsim"
	"github.com/fluxguard/fluxguard/internal/testenv"
)

// fillZone answers every name under it with one public address: each
// random name asked there is one more name for fluxguard to keep.
const fillZone = "fill.example."

// fillName is fillZone in fluxsim.
var fillName = fluxsim.Name{Name: fillZone, Kind: fluxsim.Static, IPs: []string{"93.184.215.15"}, TTL: 300, Wildcard: true}

// stateCorefile is a block that blocks flagged names and saves its state
// to state every second.
func stateCorefile(addr, state, upstream, extra string) string {
	return fmt.Sprintf(`%s {
    bind 127.0.0.1
    %s
    fluxguard {
        action block
        block_rcode REFUSED
        state_file %s
        state_interval 1s
    }
    cache 30
    forward . %s
}
`, zoneAt(addr), extra, state, upstream)
}

// flagFlux asks for the demo's flux name until it is blocked.
func flagFlux(t *testing.T, addr string) {
	t.Helper()
	flag(t, addr, "login.fluxy.top.")
}

// waitSaved waits up to 10 s for the state file at path to hold name.
func waitSaved(t *testing.T, path, name string) {
	t.Helper()
	waitFor(t, 10*time.Second, path+" to hold "+name, func() bool { return stateHolds(t, path, name) })
}

// stateHolds reports whether the state file at path loads and holds name.
func stateHolds(t *testing.T, path, name string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	e, err := engine.New(engine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Load(f); err != nil {
		return false
	}
	_, held := e.Held(name)
	return held
}

// fill sends random names under fillZone from 4 clients until ctx ends,
// and returns how many were answered.
func fill(ctx context.Context, addr string) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	answered := 0
	for range 4 {
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: time.Second}
			for ctx.Err() == nil {
				m := new(dns.Msg).SetQuestion(fmt.Sprintf("r%x.%s", rand.Uint64(), fillZone), dns.TypeA)
				if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
					mu.Lock()
					answered++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return answered
}

// temps lists the save's temporary files in dir.
func temps(dir string) []string {
	names, _ := filepath.Glob(filepath.Join(dir, "fluxguard.state.tmp*"))
	return names
}

// TestStateCrashLoop kills the binary with SIGKILL twenty times in a row
// while it saves its state under load: every other time as soon as a
// save's temporary file appears, else at a random moment. Each restart
// must load a complete snapshot, never a torn one, block the held name
// from its first answer, and remove the temporary files left behind.
func TestStateCrashLoop(t *testing.T) {
	sim := startSim(t, fillName)
	dir := t.TempDir()
	addr, state, conf := freeAddr(t), filepath.Join(dir, "fluxguard.state"), filepath.Join(dir, "Corefile")
	if err := os.WriteFile(conf, []byte(stateCorefile(addr, state, sim.Addr(), "")), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("seed %d", seed)

	core := startCoreDNSBin(t, bin, conf)
	flagFlux(t, addr)
	waitSaved(t, state, "login.fluxy.top")
	restoredRE := regexp.MustCompile(`restored (\d+) names`)
	midSave, leftBehind := 0, 0
	for i := range 20 {
		core.cmd.Process.Kill()
		<-core.exited
		left := temps(dir)
		leftBehind += len(left)

		core = startCoreDNSBin(t, bin, conf)
		if r := query(t, "udp", addr, "login.fluxy.top.", dns.TypeA, true); r.Rcode != dns.RcodeRefused {
			t.Fatalf("restart %d: the held name's first answer is %s, want REFUSED\n%s", i, dns.RcodeToString[r.Rcode], core)
		}
		out := core.String()
		if strings.Contains(out, "ignored") || !restoredRE.MatchString(out) {
			t.Fatalf("restart %d: no complete snapshot loaded:\n%s", i, out)
		}
		for _, name := range left {
			if _, err := os.Stat(name); err == nil {
				t.Fatalf("restart %d: %s left behind by the crash is still there", i, name)
			}
		}

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int)
		go func() { done <- fill(ctx, addr) }()
		if i%2 == 0 {
			// Kill as a save is under way.
			deadline := time.Now().Add(10 * time.Second)
			for len(temps(dir)) == 0 && time.Now().Before(deadline) {
				time.Sleep(200 * time.Microsecond)
			}
			if len(temps(dir)) > 0 {
				midSave++
			}
		} else {
			time.Sleep(time.Duration(300+rng.IntN(2200)) * time.Millisecond)
		}
		core.cmd.Process.Signal(syscall.SIGKILL)
		cancel()
		n := <-done
		m := restoredRE.FindStringSubmatch(out)
		t.Logf("restart %d: restored %s names; %d fill answers before the kill", i, m[1], n)
	}
	t.Logf("%d of 20 kills saw a save's temporary file; %d temporary files were left behind and removed", midSave, leftBehind)
	if midSave < 5 {
		t.Errorf("only %d kills landed during a save", midSave)
	}
}

// TestStateSaveFailures runs the binary with its state directory on a
// small tmpfs in a mount namespace of its own: when the disk fills, and
// when it turns read-only, the save fails with one log line and a metric,
// the previous file stays intact, and the resolver keeps answering.
func TestStateSaveFailures(t *testing.T) {
	unshare := testenv.Tool(t, "unshare")
	nsenter := testenv.Tool(t, "nsenter")
	sim := startSim(t, fillName)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	state, conf := filepath.Join(stateDir, "fluxguard.state"), filepath.Join(dir, "Corefile")
	corefile := stateCorefile(addr, state, sim.Addr(), "prometheus "+metricsAddr)
	if err := os.WriteFile(conf, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "--", "sh", "-c",
		`mount -t tmpfs -o size=64k fluxguard-state "$1" && exec "$2" -conf "$3"`, "sh", stateDir, bin, conf)
	core := startCoreDNSCommand(t, cmd)
	// The state as the binary's mount namespace shows it.
	inside := filepath.Join("/proc", strconv.Itoa(core.cmd.Process.Pid), "root", state)

	flagFlux(t, addr)
	checkSaved := func(what string) {
		t.Helper()
		if !stateHolds(t, inside, "login.fluxy.top") {
			t.Fatalf("%s: the state file does not load, or does not hold login.fluxy.top", what)
		}
	}
	waitSaved(t, inside, "login.fluxy.top")
	checkSaved("before the disk fills")
	failures := func() float64 {
		v, err := metricSum(metricsAddr, "coredns_fluxguard_state_save_failures_total")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	keepsAnswering := func(what string) {
		t.Helper()
		if r := query(t, "tcp", addr, "www.stable.example.", dns.TypeA, true); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("%s: stable name:\n%s", what, r)
		}
		if r := query(t, "udp", addr, "login.fluxy.top.", dns.TypeA, true); r.Rcode != dns.RcodeRefused {
			t.Fatalf("%s: flux name not blocked:\n%s", what, r)
		}
	}

	// A full disk: thousands of names make the next snapshot outgrow 64 KiB.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	fill(ctx, addr)
	cancel()
	waitFor(t, 15*time.Second, "3 failed saves", func() bool { return failures() >= 3 })
	if n := strings.Count(core.String(), "saving state to "+state+" failed"); n != 1 {
		t.Errorf("%d log lines for the failing saves, want 1:\n%s", n, core)
	}
	if !strings.Contains(core.String(), "no space left on device") {
		t.Errorf("the log does not say the disk is full:\n%s", core)
	}
	checkSaved("with the disk full")
	keepsAnswering("with the disk full")
	if left := temps(filepath.Join("/proc", strconv.Itoa(core.cmd.Process.Pid), "root", stateDir)); len(left) > 0 {
		t.Errorf("failed saves left %v", left)
	}

	// A read-only disk, after room was made: saves work again, then fail.
	mountNS := fmt.Sprintf("--mount=/proc/%d/ns/mnt", core.cmd.Process.Pid)
	if out, err := exec.Command(nsenter, mountNS, "mount", "-o", "remount,size=64m", stateDir).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v\n%s", err, out)
	}
	core.waitLog(t, "saving state to "+state+" works again")
	if out, err := exec.Command(nsenter, mountNS, "mount", "-o", "remount,ro", stateDir).CombinedOutput(); err != nil {
		t.Fatalf("remounting read-only: %v\n%s", err, out)
	}
	before := failures()
	waitFor(t, 15*time.Second, "2 failed saves on the read-only disk", func() bool { return failures() >= before+2 })
	if !strings.Contains(core.String(), "read-only file system") {
		t.Errorf("the log does not say the disk is read-only:\n%s", core)
	}
	checkSaved("with the disk read-only")
	keepsAnswering("with the disk read-only")
}
