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
. benches/lib.sh
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
wait_ready "$data/up.out" "$up_pid"
ledger=(target/release/ledger --endpoints 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103 --json)
if [ "$tls" = 1 ]; then
  ledger+=(--ca "$data/certs/ca.pem" --cert "$data/certs/clients/writer.pem" --key "$data/certs/clients/writer.key")
else
  ledger+=(--insecure)
fi
status=(target/release/ledger-cluster status --data "$data" --json)
case "$mode" in
  single-site) status+=(--topology cluster/topologies/single-site.toml) ;;
  insecure) status+=(--insecure) ;;
esac
# After a saturating run the DR site is behind; wait (up to 120 s) until every site has caught up so
# that its catch-up does not compete for the 2 cores with the next run.
drain() {
  local start=$SECONDS
  for _ in $(seq 240); do
    lag=$("${status[@]}" 2>/dev/null | grep -o '"dr_lag_records": *[0-9]*' | grep -o '[0-9]*$' | sort -n | tail -1)
    if [ "${lag:-0}" = 0 ]; then
      echo "# all sites caught up $((SECONDS - start)) s after the run" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "# DR site still $lag records behind" >&2
}
# During each run, the DR lag (`ledger_dr_lag_seconds`, measured by every primary node against
# the standby's watermark every 500 ms) is sampled every 250 ms from the primary nodes' /metrics.
lag_ports=()
[ "$mode" != single-site ] && lag_ports=(7301 7302 7303)
sample_lag() {
  while :; do
    for port in "${lag_ports[@]}"; do
      curl -s --max-time 0.2 "http://127.0.0.1:$port/metrics" | awk '/^ledger_dr_lag_seconds /{print $2}'
    done | sort -g | tail -1 >>"$1"
    sleep 0.25
  done
}
bench() {
  if [ ${#lag_ports[@]} = 0 ]; then
    "${ledger[@]}" bench "$@" 2>/dev/null
    return
  fi
  : >"$data/lag"
  sample_lag "$data/lag" &
  local sampler=$!
  "${ledger[@]}" bench "$@" 2>/dev/null
  kill $sampler
  wait $sampler 2>/dev/null || true
  sort -g "$data/lag" | awk '{v[NR]=$1} END {if (NR) printf "# dr lag during the run: %d samples, p50 %.2f s, p99 %.2f s, max %.2f s\n", NR, v[int((NR-1)*0.5)+1], v[int((NR-1)*0.99)+1], v[NR]}' >&2
}
echo "# $(date -u +%FT%TZ) mode=$mode $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
for batch in 100 1; do
  max=$(bench --concurrency 64 --batch "$batch" --duration "$seconds" --accounts "$accounts")
  echo "$max"
  drain
  half=$(echo "$max" | sed -E 's/.*"transfers_per_s":([0-9.]+).*/\1/' | awk '{printf "%d", $1 / 2}')
  bench --concurrency 64 --batch "$batch" --rate "$half" --duration "$seconds" --accounts "$accounts"
  drain
done
