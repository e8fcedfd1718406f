#!/usr/bin/env bash
# Whole-process benchmarks: lbkit's clb beside nginx, HAProxy,
# Caddy and plain Go proxies, all on 127.0.0.1, one proxy at a time over the
# same backends, each load bounded in time.
#
#   bash bench/setup.sh            # once: apt packages, bench/bin/*
#   bash bench/run.sh [l7|l4|tls|udp|l7gzip|h2|h3|idle|all]...
#
# Raw outputs go to bench/out/<suite>/ (wrk text, h2load text, h3load text, iperf3 JSON,
# udpload JSON, the idle suite's .idle RSS files, and for each run <name>.<rep>.cpu: the proxy's CPU seconds
# during the load, from /proc/<pid>/stat utime+stime of the proxy and its
# children, and the load's wall-clock seconds). bench/cmd/report then rewrites BENCHMARKS.md and the chart from
# everything in bench/out/.
#
# Environment: BENCH_REPEATS (3), BENCH_SECONDS (5: wrk and h2load; iperf3
# and udp use one second less plus one omitted second), BENCH_CONNS (64),
# BENCH_HANDSHAKES (4000 new TLS connections per tls handshake run),
# BENCH_IDLE_CONNS (4000 idle connections per idle run), BENCH_CLB_CPUPROFILE
# (a file: each clb run writes its CPU profile there, the last run's stays;
# with BENCH_REPEATS=1 and one suite, that suite's).
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
BIN=$BENCH/bin
OUT=$BENCH/out
REPS=${BENCH_REPEATS:-3}
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNS:-64}
HANDSHAKES=${BENCH_HANDSHAKES:-4000}
IDLE_CONNS=${BENCH_IDLE_CONNS:-4000}
KA_REQS=$((SECS * 12000))
HZ=$(getconf CLK_TCK)
START=$(date +%s)

suites=("$@")
if [ ${#suites[@]} -eq 0 ] || [ "${suites[0]}" = all ]; then
  suites=(l7 l4 tls udp l7gzip h2 h3 idle)
fi
for s in "${suites[@]}"; do
  case $s in l7 | l4 | tls | udp | l7gzip | h2 | h3 | idle) ;; *)
    echo "usage: run.sh [l7|l4|tls|udp|l7gzip|h2|h3|idle|all]..." >&2
    exit 2
    ;;
  esac
done

WORK=$(mktemp -d /tmp/lbkit-bench.XXXXXX)
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%4ds] %s\n' "$(($(date +%s) - START))" "$*"; }

have() { command -v "$1" >/dev/null 2>&1; }

# --- tools -----------------------------------------------------------------

missing=()
for t in nginx haproxy wrk h2load iperf3 openssl; do
  have "$t" || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: missing ${missing[*]}: run bash bench/setup.sh first" >&2
  exit 1
fi
HAVE_CADDY=1
if ! have caddy; then
  HAVE_CADDY=0
  log "caddy is not installed: skipping it"
fi
if [ ! -f /usr/lib/nginx/modules/ngx_stream_module.so ]; then
  echo "run.sh: nginx's stream module is missing: apt-get install libnginx-mod-stream" >&2
  exit 1
fi

log "building clb and the bench helpers"
mkdir -p "$BIN"
(cd "$ROOT" && go build -o "$BIN/clb" ./examples/clb)
(cd "$BENCH" && go build -o "$BIN/" ./cmd/httputilproxy ./cmd/iocopyproxy ./cmd/udpload ./cmd/idleconns ./cmd/report)
# Its own module: the library's quic-go, not bench/'s (see bench/README.md).
(cd "$BENCH/h3load" && GOWORK=off go build -o "$BIN/" . ./h3proxy)

# The idle suite holds IDLE_CONNS connections: the client one fd each, a
# proxy two (client and backend side). Raise the soft fd limit to the hard
# one; size the suite down if even that is short.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ $((2 * IDLE_CONNS + 1000)) -gt "$(ulimit -n)" ]; then
  IDLE_CONNS=$((($(ulimit -n) - 1000) / 2))
  log "fd limit $(ulimit -n): the idle suite holds $IDLE_CONNS connections, not 4000"
fi

# --- helpers -----------------------------------------------------------------

# render TEMPLATE NAME: fill in @WORK@, @NAME@, @BENCH@; prints the path.
render() {
  local dst=$WORK/$2.${1##*.}
  case $1 in Caddyfile-*) dst=$WORK/$2.Caddyfile ;; esac
  sed -e "s|@WORK@|$WORK|g" -e "s|@NAME@|$2|g" -e "s|@BENCH@|$BENCH|g" "$BENCH/configs/$1" >"$dst"
  echo "$dst"
}

# start NAME CMD...: runs CMD in the background, output to $WORK/NAME.log;
# sets STARTED to its pid.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

# stop PID: SIGTERM, then SIGKILL after 5 s.
stop() {
  local pid=$1 _
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do
    [ "$p" = "$pid" ] || keep+=("$p")
  done
  PIDS=("${keep[@]}")
}

# wait_tcp PORT PID NAME: until 127.0.0.1:PORT accepts (10 s).
wait_tcp() {
  local _
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "run.sh: $3 did not listen on 127.0.0.1:$1; its log:" >&2
  cat "$WORK/$3.log" >&2 || true
  exit 1
}

# wait_udp PORT PID NAME: until a UDP socket is bound on 127.0.0.1:PORT.
wait_udp() {
  local _
  for _ in $(seq 100); do
    if ss -Hnlu "sport = :$1" 2>/dev/null | grep -q .; then
      return 0
    fi
    if ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "run.sh: $3 did not bind udp 127.0.0.1:$1; its log:" >&2
  cat "$WORK/$3.log" >&2 || true
  exit 1
}

# ticks PID: utime+stime of PID and its children, in clock ticks.
ticks() {
  local t=0 p v
  for p in "$1" $(pgrep -P "$1" || true); do
    if [ -r "/proc/$p/stat" ]; then
      v=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
      t=$((t + v))
    fi
  done
  echo "$t"
}

# measure OUTFILE PID CMD...: runs CMD (stdout to OUTFILE) and writes the CPU
# seconds PID used meanwhile to OUTFILE's .cpu (nothing for PID "-").
measure() {
  local out=$1 pid=$2 t0 t1 w0 w1
  shift 2
  if [ "$pid" != - ]; then t0=$(ticks "$pid"); fi
  w0=$(date +%s.%N)
  if ! "$@" >"$out" 2>"$out.err"; then
    # h2load now and then hangs after its last request (timeout 60 ends
    # it): say so and run the load once more.
    log "$1 ${*: -1} failed (exit status or timeout); running it again"
    echo "retried after a failed attempt" >"${out%.*}.retried"
    if [ "$pid" != - ]; then t0=$(ticks "$pid"); fi
    w0=$(date +%s.%N)
    "$@" >"$out" 2>"$out.err" || {
      echo "run.sh: $* failed twice:" >&2
      tail -5 "$out.err" >&2
      exit 1
    }
  fi
  w1=$(date +%s.%N)
  if [ "$pid" != - ]; then
    t1=$(ticks "$pid")
    awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v w0="$w0" -v w1="$w1" 'BEGIN{printf "%.3f %.3f\n", (b-a)/hz, w1-w0}' >"${out%.*}.cpu"
  fi
}

# start_proxy KIND NAME SUITE: starts contender NAME of SUITE; sets PROXY.
start_proxy() {
  local kind=$1 name=$2 cfg
  case $kind in
  nginx)
    cfg=$(render "nginx-$3.conf" "$name")
    start "$name" nginx -p "$WORK/" -e "$WORK/$name.err" -c "$cfg" -g 'daemon off; master_process on;'
    ;;
  haproxy)
    cfg=$(render "haproxy-$3.cfg" "$name")
    start "$name" haproxy -db -f "$cfg"
    ;;
  caddy)
    cfg=$(render "Caddyfile-$3" "$name")
    start "$name" env HOME="$WORK" XDG_DATA_HOME="$WORK" XDG_CONFIG_HOME="$WORK" caddy run --adapter caddyfile --config "$cfg"
    ;;
  clb)
    cfg=$(render "clb-$3.yaml" "$name")
    start "$name" "$BIN/clb" -config "$cfg" -admin off -access-log=false -drain-timeout 1s \
      ${BENCH_CLB_CPUPROFILE:+-cpuprofile "$BENCH_CLB_CPUPROFILE"}
    ;;
  *)
    shift 3
    start "$name" "$@"
    ;;
  esac
  PROXY=$STARTED
}

# --- shared backends ----------------------------------------------------------

mkdir -p "$WORK/www"
head -c 1024 /dev/zero | tr '\0' 'x' >"$WORK/www/1k"
# For clb's default health check (HEAD /, expecting 2xx) in l7gzip.
echo ok >"$WORK/www/index.html"
BACKEND=""
need_http_backends() {
  [ -n "$BACKEND" ] && return 0
  start_proxy nginx backend backend
  BACKEND=$PROXY
  wait_tcp 18001 "$BACKEND" backend
  wait_tcp 18002 "$BACKEND" backend
}

need_cert() {
  [ -f "$WORK/cert.pem" ] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
  cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"
}

# --- l7 -------------------------------------------------------------------------

# name kind port
L7=(
  "lbkit clb 19080"
  "nginx nginx 19081"
  "haproxy haproxy 19082"
  "caddy caddy 19083"
  "httputil go 19084"
  "direct - 18001"
)

# wrk_suite SUITE TABLE [HEADER]: the keep-alive HTTP/1.1 runs of SUITE over
# the contenders in array TABLE ("name kind port [config]"), with HEADER
# sent on every request (and checked to be answered with gzip).
wrk_suite() {
  local suite=$1 d=$OUT/$1 line name kind port cfg r url hdr=()
  local -n table=$2
  [ $# -lt 3 ] || hdr=(-H "$3")
  rm -rf "$d" && mkdir -p "$d"
  need_http_backends
  for line in "${table[@]}"; do
    read -r name kind port cfg <<<"$line"
    if [ "$kind" = caddy ] && [ $HAVE_CADDY = 0 ]; then continue; fi
    case $kind in
    -) PROXY=- ;;
    go) start_proxy go "$name" "$suite" "$BIN/httputilproxy" -listen "127.0.0.1:$port" -backends 127.0.0.1:18001,127.0.0.1:18002 ;;
    *) start_proxy "$kind" "$name" "${cfg:-$suite}" ;;
    esac
    [ "$PROXY" = - ] || wait_tcp "$port" "$PROXY" "$name"
    url=http://127.0.0.1:$port/1k
    curl -fsS -o /dev/null "$url" || {
      echo "run.sh: $name: GET $url failed; its log:" >&2
      cat "$WORK/$name.log" >&2
      exit 1
    }
    if [ ${#hdr[@]} -gt 0 ] && ! curl -fsS "${hdr[@]}" -D - -o /dev/null "$url" | grep -qi '^content-encoding: gzip'; then
      echo "run.sh: $name: GET $url with ${hdr[*]} was not answered with gzip" >&2
      exit 1
    fi
    wrk -t1 -c"$CONNS" -d1s "${hdr[@]}" "$url" >/dev/null # warm-up: connection pools
    for r in $(seq "$REPS"); do
      measure "$d/$name.$r.wrk" "$PROXY" wrk -t1 -c"$CONNS" -d"${SECS}s" "${hdr[@]}" --latency "$url"
      log "$suite $name #$r: $(awk '/Requests\/sec/{print $2" req/s"}' "$d/$name.$r.wrk") $(cat "$d/$name.$r.cpu" 2>/dev/null || true)"
    done
    [ "$PROXY" = - ] || stop "$PROXY"
  done
}

suite_l7() { wrk_suite l7 L7; }

# --- l7gzip: CLB defaults, browser-like client ----------------------------------

# clb with the CLB's shipped defaults (gzip, X-Forwarded-For, HTTP health
# check) beside nginx and HAProxy configured to do the same.
L7GZIP=(
  "lbkit clb 19090 l7-defaults"
  "nginx nginx 19091"
  "haproxy haproxy 19092"
)

suite_l7gzip() { wrk_suite l7gzip L7GZIP 'Accept-Encoding: gzip, deflate, br'; }

# --- tls ------------------------------------------------------------------------

TLS=(
  "lbkit clb 19443"
  "nginx nginx 19444"
  "haproxy haproxy 19445"
  "caddy caddy 19446"
)

suite_tls() {
  local d=$OUT/tls line name kind port r url
  rm -rf "$d" && mkdir -p "$d"
  need_http_backends
  need_cert
  for line in "${TLS[@]}"; do
    read -r name kind port <<<"$line"
    if [ "$kind" = caddy ] && [ $HAVE_CADDY = 0 ]; then continue; fi
    start_proxy "$kind" "$name" tls
    wait_tcp "$port" "$PROXY" "$name"
    url=https://127.0.0.1:$port/1k
    curl -fsSk -o /dev/null "$url" || {
      echo "run.sh: $name: GET $url failed; its log:" >&2
      cat "$WORK/$name.log" >&2
      exit 1
    }
    # Full handshakes: every request on a new connection (Connection:
    # close; h2load reconnects and does not resume sessions). A fixed count:
    # h2load -D does not stop with Connection: close.
    for r in $(seq "$REPS"); do
      measure "$d/$name.hs.$r.h2load" "$PROXY" timeout 60 h2load --h1 -c 16 -n "$HANDSHAKES" -H 'Connection: close' "$url"
      log "tls handshakes $name #$r: $(awk '/^finished in/{print $4" req/s"}' "$d/$name.hs.$r.h2load") $(cat "$d/$name.hs.$r.cpu")"
    done
    # Keep-alive HTTPS, HTTP/1.1: a fixed count too (-D hung once at its
    # end in testing), after a warm-up.
    timeout 60 h2load --h1 -c "$CONNS" -n 5000 "$url" >/dev/null 2>&1 || true
    for r in $(seq "$REPS"); do
      measure "$d/$name.ka.$r.h2load" "$PROXY" timeout 60 h2load --h1 -c "$CONNS" -n "$KA_REQS" "$url"
      log "tls keep-alive $name #$r: $(awk '/^finished in/{print $4" req/s"}' "$d/$name.ka.$r.h2load") $(cat "$d/$name.ka.$r.cpu")"
    done
    stop "$PROXY"
  done
}

# --- l4 -------------------------------------------------------------------------

L4=(
  "lbkit clb 19180"
  "nginx nginx 19181"
  "haproxy haproxy 19182"
  "iocopy go 19184"
  "direct - 15201"
)

suite_l4() {
  local d=$OUT/l4 line name kind port r p iperf
  rm -rf "$d" && mkdir -p "$d"
  start iperf3 iperf3 -s -B 127.0.0.1 -p 15201
  iperf=$STARTED
  wait_tcp 15201 "$iperf" iperf3
  for line in "${L4[@]}"; do
    read -r name kind port <<<"$line"
    case $kind in
    -) PROXY=- ;;
    go) start_proxy go "$name" l4 "$BIN/iocopyproxy" -listen "127.0.0.1:$port" -backend 127.0.0.1:15201 ;;
    *) start_proxy "$kind" "$name" l4 ;;
    esac
    [ "$PROXY" = - ] || wait_tcp "$port" "$PROXY" "$name"
    for p in 1 8; do
      for r in $(seq "$REPS"); do
        measure "$d/$name.p$p.$r.json" "$PROXY" iperf3 -c 127.0.0.1 -p "$port" -P "$p" -t $((SECS - 1)) -O 1 -J
        log "l4 $name -P $p #$r: $(grep -A12 '"sum_received"' "$d/$name.p$p.$r.json" | awk '/bits_per_second/{gsub(/,/, "", $2); printf "%.1f Gbit/s", $2/1e9; exit}') $(cat "$d/$name.p$p.$r.cpu" 2>/dev/null || true)"
      done
    done
    [ "$PROXY" = - ] || stop "$PROXY"
  done
  stop "$iperf"
}

# --- udp ------------------------------------------------------------------------

UDP=(
  "lbkit clb 19280"
  "nginx nginx 19281"
  "direct - 15301"
)

suite_udp() {
  local d=$OUT/udp line name kind port r echo
  rm -rf "$d" && mkdir -p "$d"
  start udpecho "$BIN/udpload" echo -listen 127.0.0.1:15301
  echo=$STARTED
  wait_udp 15301 "$echo" udpecho
  for line in "${UDP[@]}"; do
    read -r name kind port <<<"$line"
    case $kind in
    -) PROXY=- ;;
    *)
      start_proxy "$kind" "$name" udp
      wait_udp "$port" "$PROXY" "$name"
      ;;
    esac
    "$BIN/udpload" load -target "127.0.0.1:$port" -d 1s >/dev/null # warm-up: flows
    for r in $(seq "$REPS"); do
      measure "$d/$name.$r.json" "$PROXY" "$BIN/udpload" load -target "127.0.0.1:$port" -flows 16 -window 8 -d "$((SECS - 1))s"
      log "udp $name #$r: $(cat "$d/$name.$r.json") $(cat "$d/$name.$r.cpu" 2>/dev/null || true)"
    done
    [ "$PROXY" = - ] || stop "$PROXY"
  done
  stop "$echo"
}

# --- h2: HTTP/2 over TLS 1.3 ------------------------------------------------------

H2=(
  "lbkit clb 19543"
  "nginx nginx 19544"
  "haproxy haproxy 19545"
  "httputil go 19546"
)

suite_h2() {
  local d=$OUT/h2 line name kind port
  rm -rf "$d" && mkdir -p "$d"
  need_http_backends
  need_cert
  for line in "${H2[@]}"; do
    read -r name kind port <<<"$line"
    case $kind in
    go) start_proxy go "$name" h2 "$BIN/httputilproxy" -listen "127.0.0.1:$port" -cert "$WORK/cert.pem" -key "$WORK/key.pem" -backends 127.0.0.1:18001,127.0.0.1:18002 ;;
    *) start_proxy "$kind" "$name" h2 ;;
    esac
    wait_tcp "$port" "$PROXY" "$name"
    h2load_runs h2 "$name" "https://127.0.0.1:$port/1k"
    stop "$PROXY"
  done
}

# h2load_runs SUITE KEY URL: REPS runs of h2load -c16 -m16 against URL, the
# proxy $PROXY, to $OUT/SUITE/KEY.<rep>.h2load.
h2load_runs() {
  local suite=$1 key=$2 url=$3 r n
  # A one-second warm-up that also sizes the runs: -n is about SECS
  # seconds at the warm-up's rate (h2load -D hung at its end in testing;
  # a count ends cleanly). Every client connection lives the whole run:
  # h2load does not reconnect after a GOAWAY, so each proxy's HTTP/2
  # request limit is raised in its config.
  timeout 60 h2load -c16 -m16 -D 1 "$url" >"$WORK/$key.warm" 2>&1 || true
  if ! grep -q '^TLS Protocol: TLSv1.3' "$WORK/$key.warm" || ! grep -q '^Application protocol: h2' "$WORK/$key.warm"; then
    echo "run.sh: $key: h2load did not get HTTP/2 over TLS 1.3; its output:" >&2
    cat "$WORK/$key.warm" >&2
    exit 1
  fi
  n=$(awk -v s="$SECS" '/^finished in/{r=$4+0} END{n=int(r*s/1000)*1000; print (n < 16000 ? 16000 : n)}' "$WORK/$key.warm")
  for r in $(seq "$REPS"); do
    measure "$OUT/$suite/$key.$r.h2load" "$PROXY" timeout 60 h2load -c16 -m16 -n "$n" "$url"
    log "$suite $key #$r: $(awk '/^finished in/{print $4" req/s"}' "$OUT/$suite/$key.$r.h2load") $(cat "$OUT/$suite/$key.$r.cpu")"
  done
}

# --- h3: HTTP/3 ----------------------------------------------------------------------

# Caddy v2.11.9 (HTTP/3 on by default on its TLS sites), clb's HTTPS
# listener with EnableHttp3 and bench/h3load/h3proxy (httputil.ReverseProxy
# behind quic-go's http3.Server: quic-go's own cost), loaded by
# bench/h3load (quic-go's http3 client, at the library's quic-go version)
# with 16 connections × 16 streams, as the h2 suite loads HTTP/2; then
# HTTP/2 on the same listener with h2load -c16 -m16 where the protocols
# name h2. Keys: <name>.h3, <name>.h2.
# name kind port protocols
H3=(
  "caddy caddy 19643 h3"
  "lbkit clb 19644 h3,h2"
  "h3proxy go 19645 h3,h2"
)

# need_caddy_h3: builds Caddy v2.11.9 from bench/go.mod's pins into
# bin/caddy-h3 (Debian's caddy is 2.6.2, with a quic-go from 2022), every
# run so that it follows go.mod (the build cache makes it quick). Its
# quic-go is v0.63: v2.11.9 does not build with the library's v0.65. The
# build runs on a copy of go.mod and go.sum, which gains the sums of
# Caddy's own command's dependencies, so the module stays as it is.
need_caddy_h3() {
  log "building Caddy (bench/go.mod's version) into bin/caddy-h3"
  local m=$WORK/caddy-build
  mkdir -p "$m"
  cp "$BENCH/go.mod" "$BENCH/go.sum" "$m/"
  (cd "$m" && go mod edit -replace "github.com/lbkit/lbkit=$ROOT" &&
    GOWORK=off GOFLAGS=-mod=mod go build -o "$BIN/caddy-h3" github.com/caddyserver/caddy/v2/cmd/caddy)
}

suite_h3() {
  local d=$OUT/h3 line name kind port protos cfg url r
  rm -rf "$d" && mkdir -p "$d"
  need_http_backends
  need_cert
  need_caddy_h3
  for line in "${H3[@]}"; do
    read -r name kind port protos <<<"$line"
    case $kind in
    caddy)
      cfg=$(render Caddyfile-h3 "$name")
      start "$name" env HOME="$WORK" XDG_DATA_HOME="$WORK" XDG_CONFIG_HOME="$WORK" "$BIN/caddy-h3" run --adapter caddyfile --config "$cfg"
      PROXY=$STARTED
      ;;
    go) start_proxy go "$name" h3 "$BIN/h3proxy" -listen "127.0.0.1:$port" -cert "$WORK/cert.pem" -key "$WORK/key.pem" -backends 127.0.0.1:18001,127.0.0.1:18002 ;;
    *) start_proxy "$kind" "$name" h3 ;;
    esac
    if [ "$kind" = clb ] && ! wait_udp_quiet "$port" "$PROXY"; then
      if grep -q 'EnableHttp3' "$WORK/$name.log"; then
        log "h3: SKIPPING clb: it refuses EnableHttp3 (this clb has no HTTP/3): $(grep -m1 EnableHttp3 "$WORK/$name.log")"
        stop "$PROXY"
        continue
      fi
    fi
    wait_tcp "$port" "$PROXY" "$name"
    wait_udp "$port" "$PROXY" "$name"
    url=https://127.0.0.1:$port/1k
    # Warm-up, and the check that HTTP/3 answers at all.
    if ! "$BIN/h3load" -url "$url" -cacert "$WORK/cert.pem" -c 16 -m 16 -d 1s -warmup 0s >"$WORK/$name.h3warm" 2>&1; then
      echo "run.sh: $name: h3load got no answer over HTTP/3; its output and the proxy's log:" >&2
      cat "$WORK/$name.h3warm" "$WORK/$name.log" >&2
      exit 1
    fi
    for r in $(seq "$REPS"); do
      measure "$d/$name.h3.$r.h3load" "$PROXY" timeout 60 "$BIN/h3load" -url "$url" -cacert "$WORK/cert.pem" -c 16 -m 16 -d "${SECS}s" -warmup 200ms
      log "h3 $name #$r: $(awk '/^req_per_s:/{r=$2} /^errors:/{e=$2} END{print r" req/s, " e" errors"}' "$d/$name.h3.$r.h3load") $(cat "$d/$name.h3.$r.cpu")"
    done
    if [[ ,$protos, == *,h2,* ]]; then h2load_runs h3 "$name.h2" "$url"; fi
    stop "$PROXY"
  done
}

# wait_udp_quiet PORT PID: like wait_udp, but returns 1 instead of exiting
# when PID ends first.
wait_udp_quiet() {
  local _
  for _ in $(seq 100); do
    if ss -Hnlu "sport = :$1" 2>/dev/null | grep -q .; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# --- idle: memory per idle connection ----------------------------------------------

# name kind port config mode. The HTTP contenders run their l7 configs (clb's
# keep-alive idle timeout is its maximum, 60 s) except HAProxy, whose l7
# maxconn is 4000; the TCP ones proxy to an echo server on the l4 port.
IDLE=(
  "lbkit clb 19080 l7 http"
  "nginx nginx 19081 l7 http"
  "haproxy haproxy 19082 idle-http http"
  "lbkit clb 19180 l4 tcp"
  "nginx nginx 19181 idle-tcp tcp"
  "haproxy haproxy 19182 idle-tcp tcp"
)

# rss PID: VmRSS of PID and its children, KiB (nginx: master and worker).
rss() {
  local t=0 p v
  for p in "$1" $(pgrep -P "$1" || true); do
    v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# hold NAME PORT MODE N: starts idleconns holding N connections; sets HOLDER
# once it reports them ready (60 s).
hold() {
  local _
  start "$1" "$BIN/idleconns" hold -target "127.0.0.1:$2" -mode "$3" -n "$4"
  HOLDER=$STARTED
  for _ in $(seq 600); do
    grep -q '^ready' "$WORK/$1.log" && return 0
    kill -0 "$HOLDER" 2>/dev/null || break
    sleep 0.1
  done
  echo "run.sh: $1: $4 connections to 127.0.0.1:$2 not ready; its log:" >&2
  cat "$WORK/$1.log" >&2
  exit 1
}

suite_idle() {
  local d=$OUT/idle line name kind port cfg mode r before after echo="" out
  rm -rf "$d" && mkdir -p "$d"
  need_http_backends
  start idleecho "$BIN/idleconns" echo -listen 127.0.0.1:15201
  echo=$STARTED
  wait_tcp 15201 "$echo" idleecho
  for line in "${IDLE[@]}"; do
    read -r name kind port cfg mode <<<"$line"
    # A fresh proxy each run: a Go heap does not give memory back at once
    # when connections close, so a second run would start from a high mark.
    for r in $(seq "$REPS"); do
      start_proxy "$kind" "$name" "$cfg"
      wait_tcp "$port" "$PROXY" "$name"
      # Warm-up: 64 connections used and released, so pools, buffers and
      # goroutines every connection shares exist before "before".
      hold "$name-warm" "$port" "$mode" 64
      stop "$HOLDER"
      sleep 1
      before=$(rss "$PROXY")
      hold "$name-hold" "$port" "$mode" "$IDLE_CONNS"
      sleep 2 # let the proxy finish its accepts and settle
      after=$(rss "$PROXY")
      stop "$HOLDER"
      out=$d/$name.$mode.$r.idle
      {
        echo "conns $IDLE_CONNS"
        echo "rss_before_kib $before"
        echo "rss_after_kib $after"
        # idleconns prints it after SIGTERM; "unknown" if it did not.
        awk '/^closed-by-peer/{c=$2} END{print "closed_by_peer " (c == "" ? "unknown" : c)}' "$WORK/$name-hold.log"
      } >"$out"
      cp "$WORK/$name-hold.log" "$out.log"
      log "idle $mode $name #$r: $before KiB → $after KiB: $(awk -v a="$before" -v b="$after" -v n="$IDLE_CONNS" 'BEGIN{printf "%.1f KiB per connection", (b-a)/n}') ($(grep closed "$out"))"
      stop "$PROXY"
    done
  done
  stop "$echo"
}

# --- run --------------------------------------------------------------------------

mkdir -p "$OUT"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  echo "cores: $(nproc)"
  echo "kernel: $(uname -sr)"
  echo "go: $(go version | awk '{print $3}')"
  echo "nginx: $(nginx -v 2>&1 | sed 's/.*nginx\///')"
  echo "haproxy: $(haproxy -v | awk 'NR==1{print $3}')"
  if [ $HAVE_CADDY = 1 ]; then echo "caddy: $(caddy version | awk '{print $1}')"; else echo "caddy: not installed"; fi
  echo "wrk: $(wrk -v 2>&1 | awk 'NR==1{print $2}')"
  echo "h2load: $(h2load --version | awk '{print $2}' | sed 's/nghttp2\///')"
  echo "h3load_quic_go: $(awk '$1 == "github.com/quic-go/quic-go" {print $2}' "$BENCH/h3load/go.mod")"
  echo "caddy_h3: $(awk '$1 == "github.com/caddyserver/caddy/v2" {print $2}' "$BENCH/go.mod") (quic-go $(awk '$1 == "replace" && $2 == "github.com/quic-go/quic-go" {print $5}' "$BENCH/go.mod"))"
  echo "iperf3: $(iperf3 -v | awk 'NR==1{print $2}')"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "repeats: $REPS"
  echo "seconds: $SECS"
  echo "conns: $CONNS"
  echo "handshakes: $HANDSHAKES"
  echo "ka_reqs: $KA_REQS"
  echo "idle_conns: $IDLE_CONNS"
} >"$WORK/meta"

for s in "${suites[@]}"; do
  log "suite $s"
  "suite_$s"
  cp "$WORK/meta" "$OUT/$s/meta.txt"
done
[ -n "$BACKEND" ] && stop "$BACKEND"

elapsed=$(($(date +%s) - START))
# Earlier runs' times whose suites this run measured again are stale.
for f in "$OUT"/elapsed-*.txt; do
  [ -e "$f" ] || continue
  ran=${f##*/elapsed-}
  ran=${ran%.txt}
  stale=1
  for x in ${ran//-/ }; do
    [[ " ${suites[*]} " == *" $x "* ]] || stale=0
  done
  if [ "$stale" = 1 ]; then rm -f "$f"; fi
done
echo "$elapsed" >"$OUT/elapsed-$(IFS=-; echo "${suites[*]}").txt"
log "measurements done in ${elapsed}s; writing BENCHMARKS.md"
"$BIN/report" -out "$OUT" -md "$ROOT/BENCHMARKS.md" -chart "$BENCH/benchmarks.png"
log "done in $(($(date +%s) - START))s"
