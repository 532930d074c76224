#!/usr/bin/env bash
# Reference benchmark: TigerBeetle, three replicas on loopback, driven by its own
# `tigerbeetle benchmark --addresses=...` load generator (one client, 10,000 accounts,
# sequential ids, full 8189-transfer batches: TigerBeetle's defaults).
#
#   benches/tigerbeetle.sh                       # 2,000,000 transfers
#   TRANSFERS=100000 benches/tigerbeetle.sh      # quick smoke run
#   benches/tigerbeetle.sh --account-count=100000 --clients=4   # extra flags go to `benchmark`
#
# Environment:
#   TIGERBEETLE  path of the tigerbeetle binary (default /work/tb/tigerbeetle; built from tag
#                0.17.8 with `zig build -Drelease`, Zig 0.14.1). With only package registries
#                reachable, Zig comes from PyPI and the source from a git clone of the tag
#                (build.zig reads `git rev-parse`, so a real checkout, not an archive):
#                  python3 -m venv /work/tb/venv && /work/tb/venv/bin/pip install ziglang==0.14.1
#                  cd <checkout of 0.17.8> && /work/tb/venv/bin/python -m ziglang build -j1 -Drelease \
#                    -Dgit-commit=$(git rev-parse HEAD) -Dconfig-release=0.17.8 -Dconfig-release-client-min=0.16.4
#                  cp tigerbeetle /work/tb/tigerbeetle      # ~7 min on 2 cores
#                It logs "binary does not contain valid multiversion data" at start (built
#                without -Dmultiversion, which needs an older release's binary): harmless here.
#   TRANSFERS    --transfer-count (default 2000000)
#   PORT_BASE    replicas listen on 127.0.0.1:PORT_BASE..PORT_BASE+2 (default 3100)
#   CACHE_GRID   optional --cache-grid for each replica (e.g. 512MiB; TigerBeetle's default is 1GiB)
#   TB_TMP       parent of the temporary data directory (default $TMPDIR or /tmp). It must be a
#                file system with Direct IO (ext4/xfs, not tmpfs): no --development is used.
#
# Formats three data files in a temporary directory, starts the replicas, runs the benchmark,
# prints its output, then kills the replicas by pid and removes the directory.
set -euo pipefail

tb="${TIGERBEETLE:-/work/tb/tigerbeetle}"
transfers="${TRANSFERS:-2000000}"
port_base="${PORT_BASE:-3100}"
if [[ ! -x "$tb" ]]; then
  echo "tigerbeetle binary not found at $tb (set TIGERBEETLE)" >&2
  exit 2
fi

dir="$(mktemp -d "${TB_TMP:-${TMPDIR:-/tmp}}/tigerbeetle-bench.XXXXXX")"
pids=()
bench_pid=
cleanup() {
  local pid
  [[ -n "$bench_pid" ]] && { kill -TERM "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; }
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

addresses="127.0.0.1:${port_base},127.0.0.1:$((port_base + 1)),127.0.0.1:$((port_base + 2))"
start_args=(--addresses="$addresses")
[[ -n "${CACHE_GRID:-}" ]] && start_args+=(--cache-grid="$CACHE_GRID")

"$tb" version
for r in 0 1 2; do
  "$tb" format --cluster=0 --replica="$r" --replica-count=3 "$dir/0_$r.tigerbeetle" \
    >"$dir/format_$r.log" 2>&1 || { cat "$dir/format_$r.log" >&2; exit 1; }
done
for r in 0 1 2; do
  "$tb" start "${start_args[@]}" "$dir/0_$r.tigerbeetle" >"$dir/replica_$r.log" 2>&1 &
  pids+=($!)
done

# Wait until all three replicas listen (the client would retry anyway; this catches early exits).
for r in 0 1 2; do
  port=$((port_base + r))
  for _ in $(seq 1200); do  # up to ~2 min: each replica zeroes ~3 GiB at start
    if ! kill -0 "${pids[$r]}" 2>/dev/null; then
      echo "replica $r exited:" >&2; cat "$dir/replica_$r.log" >&2; exit 1
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done

echo "tigerbeetle benchmark: 3 replicas at $addresses, --transfer-count=$transfers $*"
rc=0
# In the background + wait, so that a signal to this script stops the benchmark too (via cleanup).
"$tb" benchmark --addresses="$addresses" --transfer-count="$transfers" "$@" &
bench_pid=$!
wait "$bench_pid" || rc=$?
bench_pid=

for r in 0 1 2; do
  if ! kill -0 "${pids[$r]}" 2>/dev/null; then
    echo "replica $r died during the run:" >&2; tail -n 20 "$dir/replica_$r.log" >&2; rc=1
  else
    echo "replica $r rss: $(awk '/VmRSS/ {print $2, $3}' "/proc/${pids[$r]}/status")"
  fi
done
echo "data files: $(du -sh "$dir" | cut -f1)"
exit "$rc"
