#!/usr/bin/env bash
# Cluster benchmark: starts `ledger-cluster up` (release build) on loopback, runs `ledger bench`
# with 64 clients at --batch 100 and --batch 1 closed-loop (maximum rate), then paced at half of
# each measured maximum (latency from the scheduled send time), and prints one JSON object per
# run. Stops the cluster it started, by pid.
#
#   benches/cluster.sh [default|single-site|insecure] [seconds per run, default 20]
#
# default: the README's `up` (primary + DR, six nodes, mTLS); single-site: three nodes, mTLS,
# no DR site; insecure: primary + DR without TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-default}"
seconds="${2:-20}"
accounts=10000
cargo build --release --locked -q -p ledger-cluster -p ledger-client
data="$(mktemp -d /tmp/ledger-bench.XXXXXX)"
up_args=(up --data "$data")
tls=1
case "$mode" in
  default) ;;
  single-site) up_args+=(--topology cluster/topologies/single-site.toml) ;;
  insecure) up_args+=(--insecure); tls=0 ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
target/release/ledger-cluster "${up_args[@]}" >"$data/up.out" 2>&1 &
up_pid=$!
trap 'kill -TERM $up_pid 2>/dev/null; wait $up_pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 120); do
  grep -q '^ready' "$data/up.out" && break
  kill -0 $up_pid 2>/dev/null || { cat "$data/up.out" >&2; exit 1; }
  sleep 0.5
done
grep -q '^ready' "$data/up.out" || { echo "cluster not ready" >&2; exit 1; }
ledger=(target/release/ledger --endpoints 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103 --json)
if [ "$tls" = 1 ]; then
  ledger+=(--ca "$data/certs/ca.pem" --cert "$data/certs/clients/writer.pem" --key "$data/certs/clients/writer.key")
else
  ledger+=(--insecure)
fi
echo "# $(date -u +%FT%TZ) mode=$mode $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
for batch in 100 1; do
  max=$("${ledger[@]}" bench --concurrency 64 --batch "$batch" --duration "$seconds" --accounts "$accounts" 2>/dev/null)
  echo "$max"
  half=$(echo "$max" | sed -E 's/.*"transfers_per_s":([0-9.]+).*/\1/' | awk '{printf "%d", $1 / 2}')
  "${ledger[@]}" bench --concurrency 64 --batch "$batch" --rate "$half" --duration "$seconds" --accounts "$accounts" 2>/dev/null
done
