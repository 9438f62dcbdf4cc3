package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/testenv"
)

// TestReportPage opens the report page of the real binary, in front of
// fluxsim, in Debian's headless chromium once a demo flux name is
// flagged: the name and its reasons are on the page, and its detail,
// reached by its link, explains the block. It saves both pages as PNG
// screenshots to $FLUXGUARD_ARTIFACTS (an absolute path, or one relative
// to test/e2e), or to the test's temporary directory.
func TestReportPage(t *testing.T) {
	chromium := testenv.Tool(t, "chromium")
	sim := startSim(t)
	addr, reportAddr := freeAddr(t), freeAddr(t)
	// No cache: each query reaches fluxsim, whose cdn.kwik.tk rotates 3 of
	// 40 addresses an answer.
	startCoreDNS(t, fmt.Sprintf(`%s {
    bind 127.0.0.1
    fluxguard {
        action block
        report %s
    }
    forward . %s
}
`, zoneAt(addr), reportAddr, sim.Addr()))
	flag(t, addr, "login.fluxy.top.")
	flag(t, addr, "cdn.kwik.tk.")
	for range 3 {
		query(t, "udp", addr, "www.stable.example.", dns.TypeA, true)
	}

	ctx := browser(t, chromium)
	var mu sync.Mutex
	var requested []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if r, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, r.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	dir := artifacts(t)
	page := "http://" + reportAddr + "/"

	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#names"))); err != nil {
		t.Fatalf("opening %s: %v", page, err)
	}
	row := browse(t, ctx, chromedp.Text(chromedp.CSS(`tr.row-flagged:has(a[href="/name/login.fluxy.top"])`)))
	for _, want := range []string{"login.fluxy.top", "flagged", "suspicious_tld", "prefix_diversity", "rotating", "short_ttl", "127.0.0.1"} {
		if !strings.Contains(row, want) {
			t.Errorf("the page's row for login.fluxy.top lacks %q: %q", want, row)
		}
	}
	if names := browse(t, ctx, chromedp.Text(chromedp.CSS("#names"))); !strings.Contains(names, "cdn.kwik.tk") || strings.Contains(names, "www.stable.example") {
		t.Errorf("the page should list cdn.kwik.tk and not www.stable.example:\n%s", names)
	}
	screenshot(t, ctx, filepath.Join(dir, "report-page.png"))

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[href="/name/login.fluxy.top"]`)), chromedp.WaitVisible(chromedp.CSS("#why"))); err != nil {
		t.Fatalf("following the detail link: %v", err)
	}
	if url := browse(t, ctx, chromedp.Location()); url != page+"name/login.fluxy.top" {
		t.Errorf("the link led to %s", url)
	}
	status := browse(t, ctx, chromedp.Text(chromedp.CSS("#status")))
	if !strings.HasPrefix(status, "Blocked: answered NXDOMAIN with EDE 15 (Blocked), without going upstream, until ") {
		t.Errorf("the detail does not say the name is blocked: %q", status)
	}
	why := browse(t, ctx, chromedp.Text(chromedp.CSS("#why")))
	for _, want := range []string{"suspicious_tld", "its top-level domain .top is on the suspicious list",
		"prefix_diversity", "effective networks", "rotating", "at least twice its largest answers", "short_ttl", "mean TTL is 5 s"} {
		if !strings.Contains(why, want) {
			t.Errorf("the detail's reasons lack %q:\n%s", want, why)
		}
	}
	if score := browse(t, ctx, chromedp.Text(chromedp.CSS("#score"))); !strings.Contains(score, "= score (threshold 8)") {
		t.Errorf("the detail lacks the score's terms:\n%s", score)
	}
	if addrs := browse(t, ctx, chromedp.Text(chromedp.CSS("#addresses"))); strings.Count(addrs, "/16") < 4 {
		t.Errorf("the detail lacks the addresses' networks:\n%s", addrs)
	}
	screenshot(t, ctx, filepath.Join(dir, "report-detail.png"))

	mu.Lock()
	defer mu.Unlock()
	for _, u := range requested {
		if !strings.HasPrefix(u, page) {
			t.Errorf("the page loaded %s: it must have no external assets", u)
		}
	}
	if len(requested) != 2 {
		t.Errorf("want the two pages requested, and nothing else: %q", requested)
	}
}

// browser starts chromium, headless, until the test ends, and returns the
// context of a tab.
func browser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.WindowSize(1400, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root with its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser, and must have no deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return ctx
}

// browse runs a, within 30 seconds, and returns its value.
func browse[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// screenshot writes a PNG of the whole page to path.
func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	b := browse(t, ctx, chromedp.FullScreenshot(100))
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if size := img.Bounds().Size(); size.X < 800 || size.Y < 200 {
		t.Errorf("screenshot of %v", size)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// artifacts returns where tests save what they produce for people to see:
// $FLUXGUARD_ARTIFACTS, made if missing, or the test's temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FLUXGUARD_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
