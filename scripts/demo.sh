#!/usr/bin/env bash
# fluxguard demo: builds CoreDNS with fluxguard, starts the fluxsim simulated
# upstream on 127.0.0.1:1054 and CoreDNS with Corefile.example on
# 127.0.0.1:1053, sends client queries, and shows a fast-flux domain flagged
# and blocked, the benign ones untouched, the metrics and the report.
# No internet access is needed. Set DEMO_EXIT=1 to stop after the show.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

bin=bin
mkdir -p "$bin"
echo "== building (the first build of CoreDNS takes a few minutes)"
go build -o "$bin/coredns-fluxguard" ./cmd/coredns-fluxguard
go build -o "$bin/fluxsim" ./cmd/fluxsim
go build -o "$bin/dnsq" ./cmd/dnsq

log=$(mktemp)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

"$bin/fluxsim" -listen 127.0.0.1:1054 &
pids+=($!)
"$bin/coredns-fluxguard" -conf Corefile.example >"$log" 2>&1 &
pids+=($!)

for _ in $(seq 50); do
  "$bin/dnsq" www.stable.example >/dev/null 2>&1 && break
  sleep 0.2
done
if ! kill -0 "${pids[1]}" 2>/dev/null; then
  echo "CoreDNS did not start:"; cat "$log"; exit 1
fi

echo
echo "== client queries through CoreDNS+fluxguard (127.0.0.1:1053), one round every 2s"
names=(login.fluxy.top cdn.kwik.tk www.stable.example www.rr-shop.example www.alias.example img.shop.cloudfront.net intranet.corp)
flagged=0
for round in $(seq 30); do
  echo "-- round $round"
  for n in "${names[@]}"; do "$bin/dnsq" "$n"; done
  "$bin/dnsq" -tcp login.fluxy.top AAAA
  if grep -q 'domain=cdn.kwik.tk level=flagged' "$log" && grep -q 'domain=login.fluxy.top level=flagged' "$log"; then
    flagged=1
    break
  fi
  sleep 2
done

echo
echo "== fluxguard's detections (CoreDNS log)"
grep 'plugin/fluxguard: domain=' "$log" || true
echo
echo "== per-query log lines with fluxguard's metadata (last 8)"
grep 'fluxguard=' "$log" | tail -n 8
sleep 11 # let the gauges refresh
echo
echo "== metrics (http://127.0.0.1:9153/metrics)"
curl -s http://127.0.0.1:9153/metrics 2>/dev/null | grep '^coredns_fluxguard' || echo "(curl not installed)"
echo
echo "== report (http://127.0.0.1:9154/report)"
curl -s http://127.0.0.1:9154/report 2>/dev/null | head -n 60 || true
echo
echo "== report page: http://127.0.0.1:9154/ (a name's detail: http://127.0.0.1:9154/name/login.fluxy.top)"

if [ "$flagged" != 1 ]; then
  echo "demo: the flux domains were not both flagged" >&2
  exit 1
fi
echo
echo "demo: fast-flux domains flagged and blocked; benign names untouched."
if [ "${DEMO_EXIT:-0}" != 1 ]; then
  echo "CoreDNS+fluxguard keeps serving on 127.0.0.1:1053 (fluxsim upstream on :1054); Ctrl-C to stop."
  wait "${pids[1]}"
fi
