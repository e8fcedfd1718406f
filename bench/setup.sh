#!/usr/bin/env bash
# Installs what bench/run.sh needs (Debian/Ubuntu, as root or with sudo) and
# builds the clb binary and the bench helpers into bench/bin.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

pkgs=(nginx libnginx-mod-stream haproxy wrk nghttp2-client iperf3 openssl procps)
# Caddy is optional: run.sh skips it when it is not installed.
if apt-cache policy caddy 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  pkgs+=(caddy)
else
  echo "setup: caddy is not in this machine's apt sources; run.sh will skip it" >&2
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null

# The packaged services are not used: run.sh starts its own instances on
# 127.0.0.1 with its own configs. Stop any the packages started.
for svc in nginx haproxy caddy; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done

mkdir -p bin
(cd .. && go build -o bench/bin/clb ./examples/clb)
go build -o bin/ ./cmd/httputilproxy ./cmd/iocopyproxy ./cmd/udpload ./cmd/idleconns ./cmd/report
# Its own module, on the library's quic-go (README.md, "HTTP/3").
(cd h3load && GOWORK=off go build -o ../bin/ . ./h3proxy)
echo "setup: done: bin/ has $(find bin -type f | wc -l) programs"
