#!/usr/bin/env bash
# bench/run.sh - CoreDNS with and without fluxguard, side by side: same binary, same machine, one run.
#
#   bench/run.sh            compare, on every chain, traffic and workload: BASE (the chain), FG (the same chain with
#                           fluxguard) and AA (a second BASE, the A/A noise floor), measured in turn; one table of
#                           FG/BASE qps ratios with the A/A ratio beside each
#   bench/run.sh flood      spray FLOOD_NAMES random names at a capped fluxguard (max_names), watch RSS
#   bench/run.sh soak       SOAK_DURATION s at full rate through a capped monitor-mode fluxguard; samples RSS,
#                           goroutines (pprof) and tracked names every 10 s; PASS/FAIL on lost queries and growth
#
# Rows of compare: every TRAFFIC x CHAINS x WORKLOADS, in that order.
#      CHAINS="lean full"   lean: cache + forward; full: errors + prometheus + cache + forward
#      TRAFFIC="sites storm" sites: ordinary sites, DISTINCT_NAMES names over DISTINCT_NAMES/10 sites (w0.site0.com ..),
#                           each site's names answered with 4 addresses in a /24 of its own, TTL 3600; storm: a
#                           wildcard-flux spray, names under one registered domain (s0.storm.top ..), each answer 2
#                           addresses built from the query id, scattered over 96 x 256 /24s and 192 /16s, TTL 300;
#                           fluxguard in monitor mode. held (not in the default): the storm with `action block`, so
#                           that fluxguard answers the names of the flagged domain itself
#      WORKLOADS="hot distinct miss"  hot: cache hits over HOT_NAMES names; distinct: cache hits over all DISTINCT_NAMES
#                           names (a cache that holds them, filled by one pass over the names before each round's
#                           measures); miss: the hot names without cache, every query upstream
#      HOT_NAMES=1000 DISTINCT_NAMES=200000 (names in the query files, shuffled)
#
# Env: ROUNDS=5 (fresh processes per row) DURATION=8 (s of throughput runs per configuration and round)
#      SLICE=1 (s per dnsperf run: the DURATION is taken in slices, the configurations in turn) WARMUP=2 (s; distinct:
#      one pass over its names) FLOOR=1 (run AA beside BASE and FG; FLOOR=0: BASE and FG only)
#      PAIR_N=5000 (queries to each configuration per round, one at a time, for the paired latency: bench/pairlat)
#      PAIR_SETTLE=2 (s of quiet before a round's paired runs: a GC cycle that the throughput runs left going on a
#      heap of cached names ends then, in idle time, on each server alike, rather than in the first pairing's tail)
#      LAT_LOADS="" (fixed rates for latency runs, in % of the first round's BASE qps, e.g. "10 25 50"; none by
#      default: this machine's p99 under load is noise, see docs/performance.md) LAT_ROUNDS=2 LAT_DURATION=2 (s)
#      PLUGIN=loadbalance: FG has this plugin block in fluxguard's place instead (e.g. "acl { allow }", loadbalance): the
#      price of another plugin there, beside fluxguard's (written to bench/results/plugin-latest.md). PLUGIN=passthrough
#      runs every configuration on bench/passthrough's binary, whose plugin of that name only calls the next one
#      AA=1: FG without fluxguard too (a whole A/A run, written to bench/results/aa-latest.md instead of latest.md)
#      SHARED=1: BASE is fluxguard alone, FG fluxguard with `shared` to a redis-server the script starts on CPU 1
#      (written to bench/results/shared-latest.md), with the Redis commands per 10,000 queries; CHAINS=full TRAFFIC=sites
#      by default
#      STATE=1: BASE is fluxguard alone, FG fluxguard saving its state to a state_file every STATE_INTERVAL (1s, the
#      least it takes) (written to bench/results/state-latest.md); CHAINS=full TRAFFIC=sites WORKLOADS=distinct by default
#      DISTINCT_DURATION=30 DISTINCT_SLICE=5 (distinct: the DURATION and SLICE, s). Over 200,000 cached names a GC
#      cycle takes about 0.4 s of CPU every 60,000-90,000 queries: in 1 s slices taken in turn, a slice with one runs
#      at 2/3 the rate of one without, and part of a cycle runs in the idle time between slices, which spreads the
#      rounds' A/A over 0.6-1.5; a 5 s slice, about a pass over the names, holds several (docs/performance.md)
#      TOGETHER="" (the workloads measured together instead: all configurations at once, a dnsperf each, for
#      TOGETHER_DURATION=20 s in one slice, so that they share CPU 0 and its drift; qps ratio = ratio of CPU per query.
#      The processes share the core's caches and TLB too, which taxes a plugin's misses to memory more than a core of
#      its own does). TOGETHER=1: every workload so. The start order rotates with the round (the first started runs
#      slower): take ROUNDS a multiple of 3
#      CLIENTS=8 OUTSTANDING=200 (dnsperf -c/-q: saturates one CoreDNS core from one dnsperf core)
#      PIN=1 (CoreDNS under test on CPU 0; dnsperf and the upstream on CPU 1; PIN=0 lets the kernel schedule)
#      PORT_BASE=15353 (first port tried), MODE=compare|flood|soak, FLOOD_NAMES=5000000, MAX_NAMES=200000
#      SOAK_DURATION=600 (s), SOAK_MAX_NAMES=50000, SOAK_RANDOM=400000 (distinct random names in the query file)
#  Quick look: ROUNDS=2 DURATION=4 DISTINCT_DURATION=10 DISTINCT_NAMES=50000 PAIR_N=2000 bash bench/run.sh
# GOMAXPROCS is left alone: Go derives it from the CPU affinity, so it is 1 when pinned (2 with PIN=0).
# Without prometheus (lean), the Go runtime figures and fluxguard's tracked names are not read.
# Latency: one query in flight in each round with bench/pairlat, the same query to BASE and FG (and to BASE and AA)
# in turn, so that the machine's stalls fall on both alike. dnsperf 2.10 has no latency histogram, so the optional
# fixed-rate latencies come from runs with -v, one latency per query, pooled per configuration and load.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
MODE=${1:-${MODE:-compare}}
case $MODE in compare | flood | soak) ;; *) echo "usage: $0 [compare|flood|soak]" >&2; exit 2 ;; esac
ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-8} SLICE=${SLICE:-1} WARMUP=${WARMUP:-2} LAT_ROUNDS=${LAT_ROUNDS:-2} LAT_DURATION=${LAT_DURATION:-2}
LAT_LOADS=${LAT_LOADS:-} PAIR_N=${PAIR_N:-5000} PAIR_SETTLE=${PAIR_SETTLE:-2} AA=${AA:-0} SHARED=${SHARED:-0} STATE=${STATE:-0} STATE_INTERVAL=${STATE_INTERVAL:-1s} FLOOR=${FLOOR:-1} TOGETHER=${TOGETHER:-} TOGETHER_DURATION=${TOGETHER_DURATION:-20} DISTINCT_DURATION=${DISTINCT_DURATION:-30} DISTINCT_SLICE=${DISTINCT_SLICE:-5} CLIENTS=${CLIENTS:-8} OUTSTANDING=${OUTSTANDING:-200} PIN=${PIN:-1}
FLOOD_NAMES=${FLOOD_NAMES:-5000000} MAX_NAMES=${MAX_NAMES:-200000} NEXT_PORT=${PORT_BASE:-15353}
PLUGIN=${PLUGIN:-} BINPKG=./cmd/coredns-fluxguard
[ "$STATE" = 1 ] && WORKLOADS=${WORKLOADS:-distinct}
WORKLOADS=${WORKLOADS:-hot distinct miss} HOT_NAMES=${HOT_NAMES:-1000} DISTINCT_NAMES=${DISTINCT_NAMES:-200000}
if [ "$SHARED" = 1 ] || [ "$STATE" = 1 ]; then CHAINS=${CHAINS:-full} TRAFFIC=${TRAFFIC:-sites}; else CHAINS=${CHAINS:-lean full} TRAFFIC=${TRAFFIC:-sites storm}; fi
SOAK_DURATION=${SOAK_DURATION:-600} SOAK_MAX_NAMES=${SOAK_MAX_NAMES:-50000} SOAK_RANDOM=${SOAK_RANDOM:-400000}
BIN=bin/coredns-fluxguard PAIRLAT=bin/pairlat TMP=$(mktemp -d /tmp/fluxbench.XXXXXX) PIDS=()
[ "$PLUGIN" = passthrough ] && BIN=bin/passthrough BINPKG=./bench/passthrough
declare -A PID_OF=()
CUT=() TOOL=()   # CPU pinning prefixes: CoreDNS under test / dnsperf + upstream
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then CUT=(taskset -c 0) TOOL=(taskset -c 1); fi

cleanup() {
  local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true; rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "bench: $*" >&2; exit 1; }

setup() {  # dnsperf and curl (apt) and the binary (go build is cached, so always run it)
  local p missing=() sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  for p in dnsperf curl; do command -v $p >/dev/null || missing+=($p); done
  if [ "${#missing[@]}" -gt 0 ]; then
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
      { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
  mkdir -p bin bench/results && go build -o "$BIN" "$BINPKG" && go build -o "$PAIRLAT" ./bench/pairlat
}

port_busy() { command -v ss >/dev/null && ss -Hltun "sport = :$1" | grep -q .; }
alloc_port() {  # alloc_port VAR: the next free TCP+UDP port on loopback
  while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
  printf -v "$1" %d "$NEXT_PORT"; NEXT_PORT=$((NEXT_PORT + 1))
}

# start NAME CPU-PREFIX-VAR: runs $BIN with $TMP/NAME.conf, waits until it serves, or fails with its log.
start() {
  local name=$1 i; local -n pre=$2
  "${pre[@]}" "$BIN" -conf "$TMP/$name.conf" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!) PID_OF[$name]=$!
  for i in $(seq 100); do
    grep -q '^CoreDNS-' "$TMP/$name.log" && return 0
    kill -0 "${PID_OF[$name]}" 2>/dev/null || break; sleep 0.1
  done
  cat "$TMP/$name.log" >&2; die "$name did not start"
}
stop() { kill "${PID_OF[$1]}" 2>/dev/null || true; wait "${PID_OF[$1]}" 2>/dev/null || true; unset "PID_OF[$1]"; }
check_alive() {
  local n; for n in "${!PID_OF[@]}"; do
    kill -0 "${PID_OF[$n]}" 2>/dev/null || { tail -n 30 "$TMP/$n.log" >&2; die "$n (pid ${PID_OF[$n]}) died"; }
  done
}
rss_kb() { awk -v f="^${2:-VmRSS}:" '$0 ~ f {print $2}' "/proc/${PID_OF[$1]}/status"; }  # rss_kb NAME [VmHWM: the peak]
cpu_ticks() { awk '{print $14 + $15}' "/proc/${PID_OF[$1]}/stat"; }  # utime+stime, in USER_HZ
# metric PORT NAME gauge|counter [LABEL-FILTER]: some fluxguard builds labelled gauges server="" before the
# server was known (a stale series), so a gauge prefers the labelled series; a counter sums them all.
metric() {
  local body; body=$(curl -sf "http://127.0.0.1:$1/metrics") || die "no metrics on 127.0.0.1:$1"
  awk -v m="$2{" -v kind="$3" -v f="${4:-}" 'index($1, m) == 1 && (f == "" || index($1, f)) {
      if (index($1, "server=\"\"")) e += $NF; else { s += $NF; n++ } }
    END {printf "%d\n", (kind == "counter") ? s + e : (n ? s : e)}' <<<"$body"
}

# upstream_conf PORT: the fast upstream (CoreDNS template), on CPU 1. Ordinary sites: site N's names get 4 addresses
# in 45.(N/256).(N%256).0/24. The storm: 2 addresses per answer from the query id, over many networks. flux.top
# (flood, soak) rotates per query id over many /16s. Anything else: 4 fixed public-looking A records.
upstream_conf() {
  cat >"$TMP/up.conf" <<CONF
.:$1 {
    bind 127.0.0.1
    template IN A com {
        match "^w[0-9]+\\.site([0-9]+)\\.com\\.\$"
        var site "int(group(1))"
        var hi "int(site / 256) % 256"
        var lo "site % 256"
        answer "{{ .Name }} 3600 IN A 45.{{ .Var.hi }}.{{ .Var.lo }}.1" "{{ .Name }} 3600 IN A 45.{{ .Var.hi }}.{{ .Var.lo }}.2"
        answer "{{ .Name }} 3600 IN A 45.{{ .Var.hi }}.{{ .Var.lo }}.3" "{{ .Name }} 3600 IN A 45.{{ .Var.hi }}.{{ .Var.lo }}.4"
        fallthrough
    }
    template IN A storm.top {
        var o "id() % 96 + 128"
        var p "int(id() / 96) % 256"
        answer "{{ .Name }} 300 IN A {{ .Var.o }}.1.{{ .Var.p }}.1" "{{ .Name }} 300 IN A {{ .Var.o }}.2.{{ .Var.p }}.2"
    }
    template IN A flux.top {
        var o "id() % 200 + 23"
        answer "{{ .Name }} 0 IN A {{ .Var.o }}.1.0.1" "{{ .Name }} 0 IN A {{ .Var.o }}.2.0.2"
    }
    template IN A {
        answer "{{ .Name }} 60 IN A 45.0.0.1" "{{ .Name }} 60 IN A 45.0.0.2"
        answer "{{ .Name }} 60 IN A 45.0.0.3" "{{ .Name }} 60 IN A 45.0.0.4"
    }
    template ANY ANY
}
CONF
}
# server_conf NAME PORT PROMPORT UPPORT FLUXGUARD-LINE CACHE-LINE [CHAIN]: the CoreDNS under test. CHAIN full (the
# default) has errors and prometheus (on PROMPORT) before fluxguard and cache; lean has neither.
server_conf() {
  local extra="errors
    prometheus 127.0.0.1:$3"
  [ "${7:-full}" = lean ] && extra=""
  cat >"$TMP/$1.conf" <<CONF
.:$2 {
    bind 127.0.0.1
    $extra
    $5
    $6
    forward . 127.0.0.1:$4
}
CONF
}

perf() {
  local out; out=$("${TOOL[@]}" dnsperf -s 127.0.0.1 -p "$2" -d "$3" -c "$CLIENTS" -q "$OUTSTANDING" "${@:4}" 2>&1) ||
    { echo "$out" >&2; die "dnsperf against $1 failed"; }
  check_alive; printf '%s\n' "$out"
}
field() { awk -v k="$1" 'index($0, k) {sub(/.*: */, ""); print $1; exit}'; }  # value after "KEY:"
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
lat_ms() { grep '^> [A-Z]' | awk 'NF == 5 {print $5 * 1000}'; }  # per-query latencies (ms) from dnsperf -v
lat_stats() { sort -g "$1" |  # "avg p50 p99" (ms) of a file of latencies
  awk 'function q(p) {return a[int(NR * p + 0.999)]}
    {a[NR] = $1; s += $1} END {if (!NR) print "nan nan nan"; else printf "%.3f %.3f %.3f\n", s / NR, q(0.5), q(0.99)}'; }
p99_of() { lat_stats "$1" | awk '{print $3}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print "n/a"}'; }
median_range() {  # "median (lowest–highest)" of ratios
  local s; s=$(printf '%s\n' "$@" | sort -g)
  printf '%.3f (%s–%s)' "$(median "$@")" "$(head -n 1 <<<"$s")" "$(tail -n 1 <<<"$s")"
}
busy() { awk -v t="$1" -v s="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%d%%", 100 * t / hz / s}'; }  # busy TICKS SECONDS: CPU share
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
# gostats PROMPORT: "bytes-allocated allocations gc-cycles" of a CoreDNS so far, from its Go runtime metrics
gostats() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk '$1 == "go_memstats_alloc_bytes_total" {a = $2}
    $1 == "go_memstats_mallocs_total" {m = $2} $1 == "go_gc_duration_seconds_count" {g = $2} END {printf "%.0f %.0f %.0f\n", a, m, g}'
}

# count_slice CONF T0 OUT: adds a throughput slice, dnsperf's OUT begun at CONF's CPU ticks T0, to row's totals.
count_slice() {
  local c=$1 out=$3
  ticks[$c]=$((ticks[$c] + $(cpu_ticks "$c") - $2))
  completed[$c]=$((completed[$c] + $(field 'Queries completed' <<<"$out")))
  secs[$c]=$(awk -v a="${secs[$c]}" -v b="$(field 'Run time' <<<"$out")" 'BEGIN {print a + b}')
  LOST=$((LOST + $(field 'Queries lost' <<<"$out")))
  if [ "$c" = FG ]; then rcodes=$(awk '/Response codes:/ {sub(/.*codes: */, ""); print}' <<<"$out"); fi
}

# row TRAFFIC CHAIN WORKLOAD: ROUNDS rounds, each with fresh processes of every configuration (BASE, FG and, with
# FLOOR=1, AA), started and warmed up, then measured in turn (or together, see TOGETHER): two processes of the same
# binary and configuration differ by several percent in throughput, so one set per row would measure their luck.
# Appends to the tables.
row() {
  local traffic=$1 chain=$2 wl=$3 names=$1 r c i k out t0 L fl=${PLUGIN:-fluxguard} bl="" cache=cache file cmds tracked rcodes
  local -a confs=(BASE FG) order warm
  local -A port=() prom=() qps=() ticks=() nq=() rss=() hwm=() q=() rate=() lticks=() p99r=() gostart=() goper=() gorun=()
  local -A completed=() secs=() ratios=() pair99=() t0s=() runs=()
  [ "$FLOOR" = 1 ] && confs+=(AA)
  [ "$traffic" = held ] && names=storm fl="fluxguard {
        action block
    }"
  [ "$AA" = 1 ] && fl=""
  if [ "$SHARED" = 1 ] || [ "$STATE" = 1 ]; then bl=fluxguard; fi
  case $wl in
    hot) file=$TMP/$names.hot.txt warm=(-l "$WARMUP") ;;
    distinct) file=$TMP/$names.distinct.txt warm=(-n 1) cache="cache {
        success $((DISTINCT_NAMES * 2))
    }" ;;
    miss) file=$TMP/$names.hot.txt warm=(-l "$WARMUP") cache="" ;;
    *) die "unknown workload $wl (WORKLOADS: hot distinct miss)" ;;
  esac
  for c in "${confs[@]}"; do ticks[$c]=0 nq[$c]=0 gorun[$c]="0 0 0" ratios[$c]="" pair99[$c]=""; done
  rm -f "$TMP"/pair.*
  # Together: one slice of TOGETHER_DURATION s. dnsperf reads its file from the start at each run: slice i starts
  # i/SLICES of the way into it, so that the slices of a round go on through the names rather than repeat the first ones.
  local together=0 slice=$SLICE slices=$((DURATION / SLICE)) lines; lines=$(wc -l <"$file")
  [ "$wl" = distinct ] && slice=$DISTINCT_SLICE slices=$((DISTINCT_DURATION / DISTINCT_SLICE))
  if [ "$TOGETHER" = 1 ] || [[ " $TOGETHER " == *" $wl "* ]]; then together=1 slice=$TOGETHER_DURATION slices=1; fi
  for i in $(seq 0 $((slices - 1))); do
    awk -v off=$((i * lines / slices)) 'NR > off' "$file" >"$TMP/slice.$i"
    awk -v off=$((i * lines / slices)) 'NR <= off' "$file" >>"$TMP/slice.$i"
  done
  for L in $LAT_LOADS; do for c in "${confs[@]}"; do : >"$TMP/lat.$c.$L"; lticks[$c.$L]=0; done; done
  for r in $(seq "$ROUNDS"); do
    # A fleet of its own per round: a new replica merges the last 5 minutes of its fleet's stream.
    [ "$SHARED" = 1 ] && fl="fluxguard {
        shared redis://127.0.0.1:$REDISPORT prefix bench-$traffic-$chain-$wl-$r
    }"
    [ "$STATE" = 1 ] && fl="fluxguard {
        state_file $TMP/state.$r
        state_interval $STATE_INTERVAL
    }"
    # The order rotates at each round (and below, at each slice), so that the machine's drift falls on all
    # alike; started first, a server runs a few % slower than those started after it (docs/performance.md).
    order=("${confs[@]}"); for i in $(seq $((r % ${#confs[@]}))); do order=("${order[@]:1}" "${order[0]}"); done
    for c in "${order[@]}"; do
      alloc_port "port[$c]"; alloc_port "prom[$c]"
      if [ "$c" = FG ]; then k=$fl; else k=$bl; fi
      server_conf "$c" "${port[$c]}" "${prom[$c]}" "$UPPORT" "$k" "$cache" "$chain"
      start "$c" CUT
    done
    for c in "${order[@]}"; do perf "$c" "${port[$c]}" "$file" "${warm[@]}" >/dev/null; done
    # Throughput, at saturation: DURATION s per configuration in slices of SLICE s taken in turn (or together);
    # qps: completed / run time.
    for c in "${confs[@]}"; do completed[$c]=0 secs[$c]=0; [ "$chain" = full ] && gostart[$c]=$(gostats "${prom[$c]}"); done
    [ "$SHARED" = 1 ] && cmds=$(redis_commands)
    for i in $(seq 0 $((slices - 1))); do
      if [ "$together" = 1 ]; then  # all at once, a dnsperf each: they share the core, and its drift
        for c in "${order[@]}"; do t0s[$c]=$(cpu_ticks "$c"); done
        for c in "${order[@]}"; do perf "$c" "${port[$c]}" "$TMP/slice.$i" -l "$slice" >"$TMP/out.$c" & runs[$c]=$!; done
        for c in "${order[@]}"; do wait "${runs[$c]}" || die "dnsperf against $c failed"; done
        for c in "${order[@]}"; do count_slice "$c" "${t0s[$c]}" "$(cat "$TMP/out.$c")"; done
      else
        for c in "${order[@]}"; do
          t0=$(cpu_ticks "$c")
          count_slice "$c" "$t0" "$(perf "$c" "${port[$c]}" "$TMP/slice.$i" -l "$slice")"
        done
      fi
      order=("${order[@]:1}" "${order[0]}")
    done
    for c in "${confs[@]}"; do
      if [ "$chain" = full ]; then  # Go runtime: what the throughput slices allocated and the GC cycles they took
        gorun[$c]=$(awk -v a="${gorun[$c]}" -v s="${gostart[$c]}" -v e="$(gostats "${prom[$c]}")" 'BEGIN {split(a, x); split(s, y); split(e, z)
          printf "%.0f %.0f %.0f\n", x[1] + z[1] - y[1], x[2] + z[2] - y[2], x[3] + z[3] - y[3]}')
      fi
      q[$c]=$(awk -v n="${completed[$c]}" -v s="${secs[$c]}" 'BEGIN {printf "%.0f", n / s}') nq[$c]=$((nq[$c] + completed[$c]))
      qps[$c]+="${q[$c]} "
    done
    for c in "${confs[@]:1}"; do ratios[$c]+="$(ratio "${q[$c]}" "${q[BASE]}") "; done
    if [ "$SHARED" = 1 ]; then REDISCMDS=$((REDISCMDS + $(redis_commands) - cmds)) FGQUERIES=$((FGQUERIES + completed[FG])); fi
    # Latency at fixed rates (LAT_LOADS % of the first round's BASE qps, the same for all): every query's latency,
    # pooled per configuration and load over all rounds; and this round's FG/BASE p99 ratio.
    for L in $LAT_LOADS; do
      [ -n "${rate[$L]:-}" ] || rate[$L]=$(awk -v q="${q[BASE]}" -v p="$L" 'BEGIN {printf "%d", q * p / 100}')
      for c in "${confs[@]}"; do : >"$TMP/round.$c"; done
      for i in $(seq "$LAT_ROUNDS"); do
        for c in "${order[@]}"; do
          t0=$(cpu_ticks "$c")
          out=$(perf "$c" "${port[$c]}" "$file" -l "$LAT_DURATION" -Q "${rate[$L]}" -v)
          lticks[$c.$L]=$((lticks[$c.$L] + $(cpu_ticks "$c") - t0))
          lat_ms <<<"$out" >>"$TMP/round.$c"
        done
        order=("${order[@]:1}" "${order[0]}")
      done
      for c in "${confs[@]}"; do cat "$TMP/round.$c" >>"$TMP/lat.$c.$L"; done
      p99r[$L]+="$(ratio "$(p99_of "$TMP/round.FG")" "$(p99_of "$TMP/round.BASE")") "
    done
    # Paired latency: one query at a time, the same to BASE (a) and FG (b) in turn, and to BASE and AA, from CPU 1.
    # Which pairing comes first alternates with the round: the first meets what the throughput runs left, a GC cycle
    # of a heap of cached names, say (docs/performance.md).
    local -a pairings=("${confs[@]:1}"); [ $((r % 2)) = 0 ] && pairings=($(printf '%s\n' "${pairings[@]}" | tac))
    sleep "$PAIR_SETTLE"
    for c in "${pairings[@]}"; do
      out=$("${TOOL[@]}" "$PAIRLAT" -a "127.0.0.1:${port[BASE]}" -b "127.0.0.1:${port[$c]}" -names "$file" -n "$PAIR_N" -out "$TMP/pair.$c") ||
        die "pairlat failed: $out"
      check_alive; pair99[$c]+="$(awk '/^ratio/ {print $6}' <<<"$out") "
      PAIRLOST=$((PAIRLOST + $(awk '/ lost / {n += $5} END {print n + 0}' <<<"$out")))
    done
    for c in "${confs[@]}"; do rss[$c]+="$(rss_kb "$c") " hwm[$c]+="$(rss_kb "$c" VmHWM) "; done
    [ "$STATE" = 1 ] && SAVES+=$(metric "${prom[FG]}" coredns_fluxguard_state_save_failures_total counter)/$(stat -c %s "$TMP/state.$r")" "
    if [ "$r" = "$ROUNDS" ] && [ -n "$fl" ] && [ -z "$PLUGIN" ] && [ "$chain" = full ]; then
      sleep 11; tracked=$(metric "${prom[FG]}" coredns_fluxguard_tracked_names gauge)
    else tracked=—; fi
    ERRS+="$(for c in "${confs[@]}"; do printf '%s/' "$(grep -c '\[ERROR\]' "$TMP/$c.log" || true)"; done) "
    for c in "${confs[@]}"; do stop "$c"; done
  done
  for c in "${confs[@]}"; do
    qps[$c]=$(median ${qps[$c]}) rss[$c]=$(median ${rss[$c]}) hwm[$c]=$(median ${hwm[$c]})
    # CPU time of the CoreDNS under test per completed query (10 ms tick resolution)
    ticks[$c]=$(awk -v t="${ticks[$c]}" -v n="${nq[$c]}" -v hz="$(getconf CLK_TCK)" -v s="$((ROUNDS * slices * slice))" \
      'BEGIN {printf "%.1f (%d%%)", t / hz * 1e6 / n, 100 * t / hz / s}')
    goper[$c]=$(awk -v g="${gorun[$c]}" -v n="${nq[$c]}" 'BEGIN {split(g, x); printf "%.0f %.2f %.0f", x[1] / n, x[2] / n, x[3] ? n / x[3] : 0}')
  done
  local floor=— pfloor=— b f gb gf
  if [ "$FLOOR" = 1 ]; then floor=$(median_range ${ratios[AA]}) pfloor=$(median_range ${pair99[AA]}); fi
  local cell; cell=$(printf '%.3f' "$(median ${ratios[FG]})")
  [ "$FLOOR" = 1 ] && cell+=" (A/A $(printf '%.3f' "$(median ${ratios[AA]})"))"
  CELL[$traffic.$chain.$wl]=$cell
  ROWS+="| $traffic | $chain | $wl | ${qps[BASE]%.*} | ${qps[FG]%.*} | $(median_range ${ratios[FG]}) | $floor"
  ROWS+=" | ${ticks[BASE]} / ${ticks[FG]}${ticks[AA]:+ / ${ticks[AA]}} | $(mib "${rss[BASE]}") / $(mib "${rss[FG]}") | $(mib "${hwm[BASE]}") / $(mib "${hwm[FG]}") | $tracked |"$'\n'
  RATIOS+="$traffic $chain $wl: ${ratios[FG]}(A/A ${ratios[AA]:-}); "
  if [ "$chain" = full ]; then
    read -r -a gb <<<"${goper[BASE]}"; read -r -a gf <<<"${goper[FG]}"
    GROWS+="| $traffic | $wl | ${gb[0]} / ${gf[0]} | ${gb[1]} / ${gf[1]} | ${gb[2]} / ${gf[2]} | $(ratio "${gb[2]}" "${gf[2]}") |"$'\n'
  fi
  local s=$((ROUNDS * LAT_ROUNDS * LAT_DURATION))
  for L in $LAT_LOADS; do
    b=$(lat_stats "$TMP/lat.BASE.$L") f=$(lat_stats "$TMP/lat.FG.$L")
    LROWS+="| $traffic | $chain | $wl | $L% (${rate[$L]} qps) | $(busy "${lticks[BASE.$L]}" $s) / $(busy "${lticks[FG.$L]}" $s)"
    LROWS+=" | ${b// / / } | ${f// / / } | $(ratio "${f##* }" "${b##* }") | $(median_range ${p99r[$L]}) |"$'\n'
  done
  b=$(lat_stats "$TMP/pair.FG.a") f=$(lat_stats "$TMP/pair.FG.b")
  PROWS+="| $traffic | $chain | $wl | ${b// / / } | ${f// / / } | $(ratio "${f%% *}" "${b%% *}") | $(ratio "${f##* }" "${b##* }")"
  PROWS+=" | $(median_range ${pair99[FG]}) | $pfloor |"$'\n'
  PAIRRATIOS+="$traffic $chain $wl: ${pair99[FG]}(A/A ${pair99[AA]:-}); "
  RCODES+="$traffic $chain $wl: $rcodes; "
}

header() {
  echo "Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)," \
    "$(go version | awk '{print $3}'), $(dnsperf -h 2>&1 | awk '/^Version/ {print "dnsperf " $2}'), $(date -u '+%Y-%m-%d %H:%M UTC'),"
  echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg) (the benchmark itself accounts for about 2: other load skews the numbers)"
  echo; echo "Parameters: $*,$([ -n "$PLUGIN" ] && echo " FG: \`$(tr -s '\n ' ' ' <<<"$PLUGIN" | sed 's/ $//')\` in fluxguard's place,") dnsperf -c $CLIENTS -q $OUTSTANDING -T 1, PIN=$PIN" \
    "$([ "${#CUT[@]}" -gt 0 ] && echo '(CoreDNS under test on CPU 0, dnsperf + upstream on CPU 1, GOMAXPROCS=1 from affinity)' || echo '(no pinning)')"
}

# redis_commands: the commands the bench's redis-server has processed so far
redis_commands() { redis-cli -p "$REDISPORT" info stats | awk -F: '/^total_commands_processed/ {print $2 + 0}'; }

start_redis() {
  command -v redis-server >/dev/null || die "SHARED=1 needs redis-server (apt-get install redis-server)"
  alloc_port REDISPORT
  "${TOOL[@]}" redis-server --port "$REDISPORT" --bind 127.0.0.1 --save "" --appendonly no >"$TMP/redis.log" 2>&1 &
  PIDS+=($!)
  local i; for i in $(seq 50); do redis-cli -p "$REDISPORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "redis-server did not start"
}

# names_file FILE N TRAFFIC: N names of TRAFFIC (sites: wI%10.siteI/10.com; storm: sI.storm.top), shuffled the same
# way every run.
names_file() {
  awk -v n="$2" -v t="$3" 'BEGIN {for (i = 0; i < n; i++) if (t == "sites") printf "w%d.site%d.com A\n", i % 10, int(i / 10)
    else printf "s%d.storm.top A\n", i}' | shuf --random-source=<(yes) >"$1"
}

compare() {
  REDISCMDS=0 FGQUERIES=0
  [ "$SHARED" = 1 ] && start_redis
  local t; for t in sites storm; do
    names_file "$TMP/$t.hot.txt" "$HOT_NAMES" $t; names_file "$TMP/$t.distinct.txt" "$DISTINCT_NAMES" $t
  done
  alloc_port UPPORT; upstream_conf "$UPPORT"; start up TOOL
  SAVES="" ROWS="" LROWS="" PROWS="" GROWS="" ERRS="" RATIOS="" PAIRRATIOS="" RCODES="" LOST=0 PAIRLOST=0
  declare -gA CELL=()
  local traffic chain wl line
  for traffic in $TRAFFIC; do
    case $traffic in sites | storm | held) ;; *) die "unknown traffic $traffic (TRAFFIC: sites storm held)" ;; esac
    for chain in $CHAINS; do
      case $chain in lean | full) ;; *) die "unknown chain $chain (CHAINS: lean full)" ;; esac
      for wl in $WORKLOADS; do
        ERRS+="$traffic $chain $wl:"
        row "$traffic" "$chain" "$wl"
      done
    done
  done
  {
    header "ROUNDS=$ROUNDS fresh processes per row, DURATION=${DURATION}s per configuration and round in ${SLICE}s slices taken in turn (distinct: ${DISTINCT_DURATION}s in ${DISTINCT_SLICE}s slices)$([ -n "$TOGETHER" ] && [ "$TOGETHER" != 0 ] && echo "; TOGETHER=$TOGETHER: ${TOGETHER_DURATION}s with all configurations at once instead") (warm-up ${WARMUP}s; distinct: one pass), HOT_NAMES=$HOT_NAMES DISTINCT_NAMES=$DISTINCT_NAMES PAIR_N=$PAIR_N PAIR_SETTLE=${PAIR_SETTLE}s"
    [ "$AA" = 1 ] && echo && echo "**A/A run (AA=1): FG is a second BASE, without fluxguard.**"
    [ "$STATE" = 1 ] && echo && echo "**STATE=1: BASE is fluxguard alone, FG fluxguard with \`state_file\` saved every $STATE_INTERVAL.**" \
      "Failed saves / the state file's bytes at the end of each round: $SAVES"
    [ "$SHARED" = 1 ] && echo && echo "**SHARED=1: BASE is fluxguard alone, FG fluxguard with \`shared\` to a local redis-server.**" \
      "Redis commands in the throughput runs: $REDISCMDS for $FGQUERIES FG queries," \
      "$(awk -v c="$REDISCMDS" -v q="$FGQUERIES" 'BEGIN {printf "%.2f", q ? c * 10000 / q : 0}') per 10,000 queries."
    echo
    echo "qps ratio FG/BASE, median of the rounds$([ "$FLOOR" = 1 ] && echo ", with the A/A ratio (AA/BASE: two identical processes without fluxguard) beside it"):"
    echo
    line="| traffic, chain |"; for wl in $WORKLOADS; do line+=" $wl |"; done; echo "$line"
    line="|---|"; for wl in $WORKLOADS; do line+="---|"; done; echo "$line"
    for traffic in $TRAFFIC; do for chain in $CHAINS; do
      line="| $traffic, $chain |"; for wl in $WORKLOADS; do line+=" ${CELL[$traffic.$chain.$wl]} |"; done; echo "$line"
    done; done
    echo
    echo "Chains: lean = cache + forward, full = errors + prometheus + cache + forward (fluxguard before cache in FG)."
    echo "Traffic: sites = names over sites of 10 names, each site's 4 addresses in a /24 of its own; storm = names under"
    echo "storm.top, every answer 2 addresses from the query id over many networks (monitor mode); held = the storm"
    echo "with action block. Workloads: hot = cache hits over $HOT_NAMES names, distinct = cache hits over $DISTINCT_NAMES"
    echo "names, miss = no cache."
    echo
    echo "qps: queries completed / run time at saturation over each round's slices, median over the rounds; ratios:"
    echo "median (lowest–highest) of the rounds'. CPU µs/q: utime+stime of the CoreDNS under test / queries completed in"
    echo "the throughput runs (softirq not included; AA's, the floor of BASE / FG, with the A/A), (busy %): its share of"
    echo "one core; pinned, below ~95% the bottleneck is CPU 1 (dnsperf and the upstream). RSS: VmRSS at the end of each"
    echo "round, median; peak: VmHWM. Tracked names (full chain only): coredns_fluxguard_tracked_names, 11 s after the last"
    echo "round."
    echo
    echo "| traffic | chain | workload | BASE qps | FG qps | qps ratio FG/BASE | A/A | CPU µs/q (busy %) BASE / FG$([ "$FLOOR" = 1 ] && echo ' / AA') | RSS BASE / FG | peak RSS BASE / FG | FG tracked names |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s' "$ROWS"
    echo
    echo "Latency in pairs (bench/pairlat, PAIR_N=$PAIR_N per configuration and round): one query in flight, the same"
    echo "query to BASE and to FG in turn (which goes first alternates); avg / p50 / p99 pooled over all rounds, avg ratio,"
    echo "pooled p99 ratio, the median (range) of the rounds' p99 ratios, and the same of BASE against AA (the two"
    echo "pairings take turns at running first in a round)."
    echo
    echo "| traffic | chain | workload | BASE avg / p50 / p99 (ms) | FG avg / p50 / p99 (ms) | avg ratio | p99 ratio, pooled | p99 ratio per round | A/A p99 ratio per round |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s' "$PROWS"
    if [ -n "$LAT_LOADS" ]; then
      echo
      echo "Latency at fixed rates (LAT_LOADS: % of the first round's BASE qps, the same rate for all): avg / p50 / p99"
      echo "of every query's latency (dnsperf -v), pooled per configuration over all rounds; busy: the CoreDNS under"
      echo "test's CPU during those runs; p99 ratio per round: median of the rounds' FG/BASE p99 ratios (lowest–highest)."
      echo
      echo "| traffic | chain | workload | load | busy BASE / FG | BASE avg / p50 / p99 (ms) | FG avg / p50 / p99 (ms) | p99 ratio, pooled | p99 ratio per round |"
      echo "|---|---|---|---|---|---|---|---|---|"
      printf '%s' "$LROWS"
    fi
    if [ -n "$GROWS" ]; then
      echo
      echo "Go runtime in the throughput runs of the full chain (go_memstats_alloc_bytes_total, go_memstats_mallocs_total"
      echo "and go_gc_duration_seconds_count, per completed query, all rounds): heap allocated per query, allocations per"
      echo "query, queries per GC cycle; GC cycles per query FG/BASE."
      echo
      echo "| traffic | workload | B/query BASE / FG | allocs/query BASE / FG | queries per GC cycle BASE / FG | GC cycles per query, FG/BASE |"
      echo "|---|---|---|---|---|---|"
      printf '%s' "$GROWS"
    fi
    echo; echo "Queries lost (all throughput runs): $LOST; in the paired runs: $PAIRLOST."
    echo "Per-round qps ratios: ${RATIOS}"
    echo "Per-round paired p99 ratios: ${PAIRRATIOS}"
    echo "FG's response codes in the last throughput slice: ${RCODES}"
    echo "CoreDNS [ERROR] lines per configuration ($(printf '%s/' BASE FG; [ "$FLOOR" = 1 ] && echo -n AA/)) and round: ${ERRS}"
  } | tee "bench/results/$([ -n "$PLUGIN" ] && echo plugin-)$([ "$AA" = 1 ] && echo aa-)$([ "$SHARED" = 1 ] && echo shared-)$([ "$STATE" = 1 ] && echo state-)latest.md"
}

flood() {
  local fport fprom out t0 t1 i peak final tracked evicted flagged refused
  alloc_port UPPORT; alloc_port fport; alloc_port fprom
  upstream_conf "$UPPORT"; start up TOOL
  server_conf FG "$fport" "$fprom" "$UPPORT" "fluxguard { max_names $MAX_NAMES
        action block
        block_rcode REFUSED
    }" "cache { disable success flux.top }"  # flux.top rotates per query: keep it out of the cache
  start FG CUT
  echo "login.flux.top A" >"$TMP/flag.txt"
  for i in $(seq 20); do  # sequential queries get new ids, hence new addresses, until the name is blocked
    out=$(perf FG "$fport" "$TMP/flag.txt" -n 1); grep -q 'Response codes:.*REFUSED' <<<"$out" && break
    [ "$i" = 20 ] && die "login.flux.top was not flagged after 20 queries"
  done
  echo "login.flux.top flagged and blocked after $i queries; generating $FLOOD_NAMES names"
  awk -v n="$FLOOD_NAMES" -v seed="$RANDOM" 'BEGIN {srand(seed); for (i = 0; i < n; i++)
    printf "%06x%x.flood.example.com A\n", int(rand() * 16777216), i}' >"$TMP/flood.txt"
  (while kill -0 "${PID_OF[FG]}" 2>/dev/null; do rss_kb FG >>"$TMP/rss.txt" 2>/dev/null || true; sleep 1; done) &
  PIDS+=($!)
  t0=$(date +%s); out=$(perf FG "$fport" "$TMP/flood.txt" -n 1); t1=$(date +%s)
  final=$(rss_kb FG); peak=$(sort -n "$TMP/rss.txt" | tail -n 1); peak=${peak:-0}; [ "$final" -gt "$peak" ] && peak=$final
  sleep 11  # gauges refresh every 10s
  tracked=$(metric "$fprom" coredns_fluxguard_tracked_names gauge)
  evicted=$(metric "$fprom" coredns_fluxguard_names_evicted_total counter)
  flagged=$(metric "$fprom" coredns_fluxguard_flagged gauge 'domain="login.flux.top"')
  refused=$(perf FG "$fport" "$TMP/flag.txt" -n 1); grep -q 'Response codes:.*REFUSED' <<<"$refused" && refused=yes || refused=NO
  {
    header "FLOOD_NAMES=$FLOOD_NAMES, max_names $MAX_NAMES, action block"
    echo
    echo "| flood | value |"; echo "|---|---|"
    echo "| names sent / completed / lost | $(field 'Queries sent' <<<"$out") / $(field 'Queries completed' <<<"$out") / $(field 'Queries lost' <<<"$out") |"
    echo "| duration / qps | $((t1 - t0)) s / $(field 'Queries per second' <<<"$out") |"
    echo "| peak RSS / final RSS | $(mib "$peak") / $(mib "$final") |"
    echo "| coredns_fluxguard_tracked_names | $tracked (max_names $MAX_NAMES) |"
    echo "| coredns_fluxguard_names_evicted_total | $evicted |"
    echo "| coredns_fluxguard_flagged{domain=\"login.flux.top\"} | $flagged |"
    echo "| login.flux.top still REFUSED | $refused |"
    echo; echo "CoreDNS [ERROR] lines: $(grep -c '\[ERROR\]' "$TMP/FG.log" || true)"
  } | tee bench/results/flood-latest.md
  [ "$refused" = yes ] && [ "$flagged" = 1 ] || die "the flagged name did not survive the flood"
}

# soak: one long dnsperf run at full rate against a capped, monitor-mode fluxguard, sampled every 10 s.
# dnsperf counts each response once and cannot see a duplicate reply; fluxguard/soak_test.go checks that.
goroutines() { curl -sf "http://127.0.0.1:$1/debug/pprof/goroutine?debug=1" | awk 'NR == 1 {print $NF}'; }
soak_sample() {  # soak_sample T0 PPROF PROM: "elapsed-s rss-kB goroutines tracked-names"
  echo "$(($(date +%s) - $1)) $(rss_kb FG 2>/dev/null || echo 0) $(goroutines "$2" || echo 0)" \
    "$( (metric "$3" coredns_fluxguard_tracked_names gauge) 2>/dev/null || echo 0)"
}
soak() {
  local fport fprom fpprof out t0 t1 n sent done lost qps cap verdict fails=0
  local rss_first rss_max rss_last rss_60 g_first g_max g_last tracked_max evicted at60
  alloc_port UPPORT; alloc_port fport; alloc_port fprom; alloc_port fpprof
  upstream_conf "$UPPORT"; start up TOOL
  server_conf FG "$fport" "$fprom" "$UPPORT" "pprof 127.0.0.1:$fpprof
    fluxguard {
        max_names $SOAK_MAX_NAMES
    }" "cache { disable success flux.top }"  # monitor mode; flux.top rotates per query: keep it out of the cache
  start FG CUT
  # Query mix, shuffled: 50% 1,000 hot names (cache hits), 40% a stream of SOAK_RANDOM distinct random names
  # (more than max_names, so eviction runs on every pass over the file), 10% the rotating flux name.
  n=$((SOAK_RANDOM * 10 / 4))
  awk -v n="$n" -v seed="$RANDOM" 'BEGIN {srand(seed); r = 0; for (i = 0; i < n; i++) { p = rand();
      if (p < 0.5) printf "h%d.example.com A\n", int(rand() * 1000);
      else if (p < 0.9) printf "%06x%x.soak.example.com A\n", int(rand() * 16777216), r++;
      else print "login.flux.top A" } }' >"$TMP/soak.txt"
  echo "soak: ${SOAK_DURATION}s at full rate, max_names $SOAK_MAX_NAMES, $n queries in the file" >&2
  t0=$(date +%s); soak_sample "$t0" "$fpprof" "$fprom" >"$TMP/samples.txt"
  (sleep 10; while kill -0 "${PID_OF[FG]}" 2>/dev/null; do
     soak_sample "$t0" "$fpprof" "$fprom" >>"$TMP/samples.txt"; sleep 10; done) &
  local sampler=$!; PIDS+=($sampler)
  out=$(perf FG "$fport" "$TMP/soak.txt" -l "$SOAK_DURATION"); t1=$(date +%s)
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  soak_sample "$t0" "$fpprof" "$fprom" >>"$TMP/samples.txt"  # at the end of the load
  g_first=$(awk 'NR == 1 {print $3}' "$TMP/samples.txt")
  for n in $(seq 40); do  # idle again: goroutines back near the first sample (up to 10 s)
    g_last=$(goroutines "$fpprof"); [ "$g_last" -le $((g_first + 20)) ] && break; sleep 0.25
  done
  sleep 11  # the tracked-names gauge and the evicted counter refresh every 10 s
  soak_sample "$t0" "$fpprof" "$fprom" >>"$TMP/samples.txt"
  evicted=$(metric "$fprom" coredns_fluxguard_names_evicted_total counter)
  check_alive
  sent=$(field 'Queries sent' <<<"$out") done=$(field 'Queries completed' <<<"$out") lost=$(field 'Queries lost' <<<"$out")
  qps=$(field 'Queries per second' <<<"$out")
  at60=$((SOAK_DURATION < 120 ? SOAK_DURATION / 2 : 60))  # short runs: RSS reference at half time
  read -r rss_first rss_max rss_last rss_60 at60 tracked_max g_max < <(awk -v at="$at60" '
    NR == 1 {first = $2} {if ($2 > max) max = $2; if ($4 > tmax) tmax = $4; if ($3 > gmax) gmax = $3; last = $2; lt = $1}
    !ref && $1 >= at {ref = $2; rt = $1} END {print first, max, last, ref ? ref : last, ref ? rt : lt, tmax, gmax}' "$TMP/samples.txt")
  cap=$((SOAK_MAX_NAMES + SOAK_MAX_NAMES / 4))
  pf() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
  {
    header "SOAK_DURATION=${SOAK_DURATION}s, fluxguard monitor mode, max_names $SOAK_MAX_NAMES, pprof + prometheus"
    echo
    echo "Query file: $(wc -l <"$TMP/soak.txt") lines, 50% 1,000 hot names, 40% $SOAK_RANDOM distinct random names, 10% login.flux.top"
    echo "(its addresses rotate per query id; kept out of the cache). dnsperf loops over the file at full rate."
    echo
    echo "| soak | value |"; echo "|---|---|"
    echo "| duration | $((t1 - t0)) s (dnsperf -l $SOAK_DURATION) |"
    echo "| queries sent / completed / lost | $sent / $done / $lost |"
    echo "| qps | ${qps%.*} |"
    echo "| RSS first / at ${at60} s / max / last | $(mib "$rss_first") / $(mib "$rss_60") / $(mib "$rss_max") / $(mib "$rss_last") |"
    echo "| goroutines first / max / last (idle, after the load) | $g_first / $g_max / $g_last |"
    echo "| coredns_fluxguard_tracked_names max | $tracked_max (max_names $SOAK_MAX_NAMES, limit $cap with domain aggregates) |"
    echo "| coredns_fluxguard_names_evicted_total | $evicted |"
    echo "| CoreDNS [ERROR] lines | $(grep -c '\[ERROR\]' "$TMP/FG.log" || true) |"
    echo
    echo "- $(pf "$([ "$lost" = 0 ] && echo 1)") queries lost == 0 ($lost)"
    echo "- $(pf "$([ "$g_last" -le $((g_first + 20)) ] && echo 1)") goroutines last <= first + 20 ($g_last <= $((g_first + 20)))"
    echo "- $(pf "$(awk -v l="$rss_last" -v r="$rss_60" 'BEGIN {if (l <= 1.5 * r) print 1}')") RSS last <= 1.5 x RSS at ${at60} s ($(mib "$rss_last") <= $(mib "$((rss_60 * 3 / 2))"))"
    echo "- $(pf "$([ "$tracked_max" -le "$cap" ] && echo 1)") tracked names max <= max_names + max_names/4 ($tracked_max <= $cap)"
    echo
    echo "dnsperf counts each response once, so duplicate replies are not visible here: \`go test -run TestSoak ./test/e2e\` checks them."
    echo; echo "Samples (every 10 s; the last two: end of load, then idle 11 s later):"; echo
    echo "| t (s) | RSS | goroutines | tracked names |"; echo "|---|---|---|---|"
    awk '{printf "| %d | %.1f MiB | %d | %d |\n", $1, $2 / 1024, $3, $4}' "$TMP/samples.txt"
  } | tee bench/results/soak-latest.md
  grep -q '^- FAIL' bench/results/soak-latest.md && die "soak: FAIL (see bench/results/soak-latest.md)"
  return 0
}

setup
"$MODE"
