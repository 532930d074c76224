#!/usr/bin/env bash
# Sustained run (issue 10): loads `transfers` transfers over `accounts` accounts through the API
# into a three-node mTLS site (`ledger-cluster up`, single-site topology, release build), then
# measures, with a shorter background load running for each fault:
#   (a) a follower killed with kill -9 and restarted: seconds until its applied index reaches the
#       commit index its leader had when it was restarted (issue 10: within 15 s);
#   (b) a follower stopped, its data dir wiped, restarted: seconds until it has caught up by
#       snapshot likewise (issue 10: within 120 s);
# and, when the cluster is empty, after the load and at the end: each node's resident memory
# and data-dir size (du -sb, with a breakdown, and the node's own count) and bytes per transfer.
# The main load reports committed transfers per minute (`timeline`; issue 10: the last full
# minute at least 0.75 of the first, `last_vs_first_interval`) and GetAccountHistory and
# LookupTransfers latencies at 50 reads/s (`reads`). Progress goes to stderr; one JSON object
# with every figure, the command and the commit goes to stdout at the end.
#
#   benches/sustained.sh [transfers, default 10000000] [accounts, default 1000000]
#
# Environment: INTERVAL_SECS (60), READS_PER_S (50), CONCURRENCY (64), BATCH (100),
# FAULT_LOAD_SECS (60: each background load), FAULT_LOAD_RATE (half the main load's
# transfers/s; "max" for closed-loop), CATCH_UP_DEADLINE_SECS (300), LOAD_MAX_SECS (7200: the
# main load stops there even short of its target), KEEP=1 keeps the data dir.
# Needs jq. Stops every process it started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
transfers="${1:-10000000}"
accounts="${2:-1000000}"
interval_secs="${INTERVAL_SECS:-60}"
reads_per_s="${READS_PER_S:-50}"
concurrency="${CONCURRENCY:-64}"
batch="${BATCH:-100}"
fault_load_secs="${FAULT_LOAD_SECS:-60}"
catch_up_deadline_secs="${CATCH_UP_DEADLINE_SECS:-300}"
load_max_secs="${LOAD_MAX_SECS:-7200}"
command -v jq >/dev/null || { echo "benches/sustained.sh needs jq" >&2; exit 2; }
invocation="benches/sustained.sh $transfers $accounts"
cargo build --release --locked -q -p ledger-cluster -p ledger-client
topology=cluster/topologies/single-site.toml
cluster_bin="$PWD/target/release/ledger-cluster"
data="$(mktemp -d /tmp/ledger-sustained.XXXXXX)"
report="$data/report"
mkdir -p "$report"
log() { echo "# $(date -u +%T) $*" >&2; }

"$cluster_bin" up --data "$data" --topology "$topology" >"$data/up.out" 2>&1 &
up_pid=$!
# Processes this script started besides `up` and has not reaped yet: nodes it restarted, loads,
# add-node. A reaped pid is forgotten at once, so that cleanup never signals a reused pid.
own_pids=()
forget() {
  local keep=() pid
  for pid in "${own_pids[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
  own_pids=("${keep[@]}")
}
cleanup() {
  local status=$?
  set +e
  for pid in "${own_pids[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null # the add-node retry loop's current attempt
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${own_pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  kill -TERM "$up_pid" 2>/dev/null
  wait "$up_pid" 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then
    echo "# kept $data" >&2
  else
    rm -rf "$data"
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready "$data/up.out" "$up_pid"
log "cluster up under $data"

endpoints=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
ledger=(target/release/ledger --endpoints "$endpoints" --json
  --ca "$data/certs/ca.pem" --cert "$data/certs/clients/writer.pem" --key "$data/certs/clients/writer.key")
cluster=("$cluster_bin" --data "$data" --topology "$topology")

now() { date +%s.%N; }
# Seconds from $1 to now, three decimals.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
# The status of every node as one JSON document (`{"nodes": []}` if none answered).
status_json() { "${cluster[@]}" status --json 2>/dev/null || echo '{"nodes": []}'; }
leader_id() { status_json | jq '[.nodes[] | select(.reachable and .raft_role == "leader") | .node_id][0] // 0'; }
# A reachable follower of leader $1; fails the run if there is none.
pick_follower() {
  local id
  id=$(status_json | jq --argjson l "$1" '[.nodes[] | select(.reachable and .raft_role == "follower" and .node_id != $l) | .node_id][0] // 0')
  [ "$1" != 0 ] && [ "$id" != 0 ] || { echo "no leader ($1) or no follower to pick" >&2; exit 1; }
  echo "$id"
}

# Node processes: `up` starts each as `<ledger-cluster> node --config <data>/primary/node-N/node.toml`
# (cluster/src/process.rs), output appended to node.log in the same folder. A node this script
# restarted is its own child, started the same way.
declare -A restarted_pid
node_dir() { echo "$data/primary/node-$1"; }
# Field $2 (zone, client_addr, peer_addr) of node $1 in the topology file.
topology_field() {
  awk -v id="$1" -v key="$2" '$1 == "id" { current = $3 } $1 == key && current == id { gsub(/"/, "", $3); print $3 }' \
    "$topology"
}
node_pid() {
  local id=$1 pid
  if [ -n "${restarted_pid[$id]:-}" ]; then
    echo "${restarted_pid[$id]}"
    return
  fi
  for pid in $(pgrep -P "$up_pid"); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--config $(node_dir "$id")/node.toml"; then
      echo "$pid"
      return
    fi
  done
}
# Running, not a zombie waiting for its parent to reap it.
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
start_node() {
  local id=$1
  "$cluster_bin" node --config "$(node_dir "$id")/node.toml" </dev/null >>"$(node_dir "$id")/node.log" 2>&1 &
  restarted_pid[$id]=$!
  own_pids+=($!)
}
# Waits until node $1's process (pid $2) is gone; a child of `up` is reaped by `up`, which
# notices within a second and logs it (and then no longer manages that node).
wait_gone() {
  local id=$1 pid=$2
  for _ in $(seq 150); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && { echo "node $id (pid $pid) did not stop" >&2; return 1; }
  if [ "${restarted_pid[$id]:-}" = "$pid" ]; then
    wait "$pid" 2>/dev/null || true
    forget "$pid"
    unset "restarted_pid[$id]"
  else
    for _ in $(seq 50); do grep -q "node primary/$id exited" "$data/up.out" && break; sleep 0.1; done
  fi
}

# Per node: pid, RSS from /proc and from the node, data dir by du -sb (total and per top-level
# entry) and by the node's own count, what its state indexes, and bytes per transfer indexed.
sizes() {
  local label=$1 status nodes='[]' id pid du rss_kb breakdown
  status=$(status_json)
  for id in 1 2 3; do
    pid=$(node_pid "$id")
    du=$(du -sb "$(node_dir "$id")/data" 2>/dev/null | cut -f1)
    breakdown=$(cd "$(node_dir "$id")/data" 2>/dev/null && du -sb -- * 2>/dev/null \
      | jq -R -s 'split("\n") | map(select(length > 0) | split("\t") | {(.[1]): (.[0] | tonumber)}) | add // {}' \
      || echo '{}')
    rss_kb=$( [ -n "$pid" ] && awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    nodes=$(jq -c --argjson id "$id" --arg pid "${pid:-}" --argjson du "${du:-0}" --argjson rss_kb "${rss_kb:-0}" \
      --argjson breakdown "$breakdown" --argjson status "$status" '. + [
        ($status.nodes[] | select(.node_id == $id)) as $s
        | {node_id: $id, pid: ($pid | tonumber? // null), raft_role: $s.raft_role, reachable: $s.reachable,
           applied_index: $s.applied_index, snapshot_index: $s.snapshot_index, purged_index: $s.purged_index,
           rss_bytes_proc: ($rss_kb * 1024), resident_bytes: $s.resident_bytes,
           du_bytes: $du, du_bytes_by_entry: $breakdown, data_dir_bytes: $s.data_dir_bytes,
           transfers_indexed: $s.transfers_indexed, accounts: $s.accounts,
           history_rows_indexed: $s.history_rows_indexed,
           du_bytes_per_transfer: (if $s.transfers_indexed > 0 then $du / $s.transfers_indexed else null end)}]' \
      <<<"$nodes")
  done
  jq -n --arg name "$label" --argjson nodes "$nodes" '{"label": $name, "nodes": $nodes}' >"$report/sizes-$label.json"
  jq -r '.nodes[] | "#   node \(.node_id) \(.raft_role): rss \(.resident_bytes / 1048576 | floor) MiB, data dir \(.du_bytes / 1048576 | floor) MiB, \(.transfers_indexed) transfers, \(.du_bytes_per_transfer // "-") B/transfer"' \
    "$report/sizes-$label.json" >&2
}

# Polls every 0.2 s until node $1's applied index reaches $2; prints the seconds since $3, or
# null past the deadline.
wait_caught_up() {
  local id=$1 target=$2 t0=$3 applied
  while :; do
    applied=$(status_json | jq --argjson id "$id" '[.nodes[] | select(.node_id == $id and .reachable) | .applied_index][0] // 0')
    if [ "$applied" -ge "$target" ]; then
      since "$t0"
      return
    fi
    if awk -v s="$(since "$t0")" -v d="$catch_up_deadline_secs" 'BEGIN { exit !(s > d) }'; then
      echo null
      return
    fi
    sleep 0.2
  done
}

# A background load for a fault: reuses the main run's first 10,000 accounts (opening a million
# again would take the whole load's time), with the main run's read rate, paced at
# $fault_load_rate transfers/s (closed-loop if "max").
background_load() {
  local name=$1 pace=()
  [ "$fault_load_rate" = max ] || pace=(--rate "$fault_load_rate")
  "${ledger[@]}" bench --concurrency "$concurrency" --batch "$batch" --duration "$fault_load_secs" "${pace[@]}" \
    --accounts "$(( accounts < 10000 ? accounts : 10000 ))" --run-id "$run_id" --interval-secs 10 \
    --reads-per-s "$reads_per_s" >"$report/load-$name.json" 2>"$report/load-$name.err" &
  bg_pid=$!
  own_pids+=($bg_pid)
  sleep 5
}
finish_load() {
  local name=$1
  wait "$bg_pid" || log "the $name load exited with status $?"
  forget "$bg_pid"
  [ -s "$report/load-$name.json" ] || echo '{}' >"$report/load-$name.json"
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {print int($2 / 1048576)}' /proc/meminfo) GiB" >&2
sizes empty

# The main load.
run_id="sustained-$(date +%s)-$$"
log "main load: $transfers transfers over $accounts accounts, $reads_per_s reads/s"
load_status=0
"${ledger[@]}" bench --concurrency "$concurrency" --batch "$batch" --transfers "$transfers" --duration "$load_max_secs" \
  --accounts "$accounts" --run-id "$run_id" --interval-secs "$interval_secs" --reads-per-s "$reads_per_s" \
  >"$report/load-main.json" 2>"$report/load-main.err" || load_status=$?
[ -s "$report/load-main.json" ] || { cat "$report/load-main.err" >&2; exit 1; }
jq -r '"#   \(.transfers_ok) committed in \(.duration_s | floor) s (\(.transfers_per_s | floor)/s), last/first minute \(.last_vs_first_interval // "-"), history p99 \(.reads.get_account_history.latency.p99_ms // "-") ms, lookup p99 \(.reads.lookup_transfers.latency.p99_ms // "-") ms"' \
  "$report/load-main.json" >&2
sizes after_load
# The fault loads offer half the main load's throughput unless FAULT_LOAD_RATE says otherwise
# (a number, or "max" for closed-loop): a node catching up competes for the same cores.
fault_load_rate="${FAULT_LOAD_RATE:-$(jq '.transfers_per_s / 2 | floor' "$report/load-main.json")}"
log "fault loads: $fault_load_secs s each at $fault_load_rate transfers/s"

# (a) kill -9 a follower and restart it the way `up` started it.
leader=$(leader_id)
victim=$(pick_follower "$leader")
background_load kill9
pid=$(node_pid "$victim")
log "kill -9 follower $victim (pid $pid; leader $leader)"
kill -KILL "$pid"
wait_gone "$victim" "$pid"
t0=$(now)
start_node "$victim"
commit_at_restart=$(status_json | jq --argjson l "$leader" '[.nodes[] | select(.node_id == $l) | .commit_index][0] // 0')
kill9_s=$(wait_caught_up "$victim" "$commit_at_restart" "$t0")
log "  caught up to $commit_at_restart in $kill9_s s"
status_json | jq --argjson id "$victim" '.nodes[] | select(.node_id == $id)' >"$report/kill9-node.json"
finish_load kill9

# (b) Wipe a follower, the documented way (docs/operations.md, "Membership"): a voter restarted
# empty under its old id has lost its log and its vote, so it is stopped, removed from the
# group, wiped, restarted, and added back as a learner that becomes a voter once it caught up
# (`add-node`); it catches up by snapshot. The clock starts at the restart.
leader=$(leader_id)
victim=$(pick_follower "$leader")
background_load wipe
pid=$(node_pid "$victim")
log "stop follower $victim (pid $pid; leader $leader), remove it, wipe its data dir"
t_stop=$(now)
kill -TERM "$pid"
wait_gone "$victim" "$pid"
"${cluster[@]}" remove-node --site primary --id "$victim" --json >"$report/remove-node.json"
rm -rf "$(node_dir "$victim")/data"
t0=$(now)
start_node "$victim"
commit_at_restart=$(status_json | jq --argjson l "$leader" '[.nodes[] | select(.node_id == $l) | .commit_index][0] // 0')
add_start_s=$(since "$t0")
# An election can leave the site without a leader for a moment ("no leader right now"): retry
# for up to a minute (the first 10 M run lost its wipe measurement to that).
add_back() {
  local until=$((SECONDS + 60))
  while ! "${cluster[@]}" add-node --site primary --id "$victim" --zone "$(topology_field "$victim" zone)" \
    --client-addr "$(topology_field "$victim" client_addr)" --peer-addr "$(topology_field "$victim" peer_addr)" \
    --catch-up-timeout-secs "$catch_up_deadline_secs" --json >"$report/add-node.json" 2>>"$report/add-node.err"; do
    [ $SECONDS -lt $until ] || return 1
    sleep 1
  done
}
add_back &
add_pid=$!
own_pids+=($add_pid)
wipe_s=$(wait_caught_up "$victim" "$commit_at_restart" "$t0")
log "  caught up to $commit_at_restart in $wipe_s s (stopped $(awk -v a="$t_stop" -v b="$t0" 'BEGIN { printf "%.1f", b - a }') s before the restart)"
add_status=0
wait "$add_pid" || add_status=$?
forget "$add_pid"
[ -s "$report/add-node.json" ] || echo '{}' >"$report/add-node.json"
status_json | jq --argjson id "$victim" '.nodes[] | select(.node_id == $id)' >"$report/wipe-node.json"
finish_load wipe
# Every node catches up with the leader before the last sizes.
t_drain=$(now)
leader=$(leader_id)
commit_now=$(status_json | jq --argjson l "$leader" '[.nodes[] | select(.node_id == $l) | .commit_index][0] // 0')
drain_s=0
for id in 1 2 3; do
  drain_s=$(wait_caught_up "$id" "$commit_now" "$t_drain")
done
log "every node applied $commit_now $drain_s s after the last load"
sizes end

commit=$(git rev-parse HEAD)
dirty=$(git status --porcelain --untracked-files=no | wc -l)
jq -n \
  --arg command "$invocation" --arg commit "$commit" --argjson dirty_files "$dirty" \
  --arg date "$(date -u +%FT%TZ)" --argjson cores "$(nproc)" \
  --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
  --argjson transfers "$transfers" --argjson accounts "$accounts" \
  --argjson settings "$(jq -n --argjson i "$interval_secs" --argjson r "$reads_per_s" --argjson c "$concurrency" \
    --argjson b "$batch" --argjson f "$fault_load_secs" --arg fr "$fault_load_rate" --argjson d "$catch_up_deadline_secs" \
    '{interval_secs: $i, reads_per_s: $r, concurrency: $c, batch: $b, fault_load_secs: $f,
      fault_load_rate: ($fr | tonumber? // $fr), catch_up_deadline_secs: $d}')" \
  --slurpfile main "$report/load-main.json" --argjson main_exit "$load_status" \
  --slurpfile empty "$report/sizes-empty.json" --slurpfile after "$report/sizes-after_load.json" \
  --slurpfile at_end "$report/sizes-end.json" \
  --argjson kill9_s "$kill9_s" --slurpfile kill9_node "$report/kill9-node.json" \
  --slurpfile kill9_load "$report/load-kill9.json" \
  --argjson wipe_s "$wipe_s" --slurpfile wipe_node "$report/wipe-node.json" \
  --slurpfile wipe_load "$report/load-wipe.json" \
  --slurpfile remove "$report/remove-node.json" --slurpfile add "$report/add-node.json" \
  --argjson add_exit "$add_status" --argjson add_start_s "$add_start_s" --argjson drain_s "$drain_s" \
  --arg add_err "$(cat "$report/add-node.err")" '
  def node_brief: {node_id, raft_role, applied_index, commit_index, snapshot_index, purged_index,
    checkpoint_index_at_start, committed_index_at_start, entries_reapplied_at_start, resident_bytes, data_dir_bytes};
  def load_brief: {transfers_ok, request_errors, transfers_per_s, latency,
    get_account_history_p99_ms: .reads.get_account_history.latency.p99_ms,
    lookup_transfers_p99_ms: .reads.lookup_transfers.latency.p99_ms, timeline};
  {
    command: $command, commit: $commit, dirty_files: $dirty_files, date: $date, cores: $cores, cpu: $cpu,
    transfers: $transfers, accounts: $accounts, settings: $settings,
    drained_after_faults_s: $drain_s,
    main_load: ($main[0] + {exit_status: $main_exit}),
    throughput_last_vs_first_minute: $main[0].last_vs_first_interval,
    get_account_history_p99_ms: $main[0].reads.get_account_history.latency.p99_ms,
    lookup_transfers_p99_ms: $main[0].reads.lookup_transfers.latency.p99_ms,
    sizes: {"empty": $empty[0].nodes, "after_load": $after[0].nodes, "end": $at_end[0].nodes},
    du_bytes_per_transfer_after_load: [$after[0].nodes[] | {node_id, du_bytes_per_transfer}],
    kill9_follower: {node_id: $kill9_node[0].node_id, caught_up_s: $kill9_s, node: ($kill9_node[0] | node_brief),
      load: ($kill9_load[0] | load_brief)},
    wiped_follower: {node_id: $wipe_node[0].node_id, caught_up_s: $wipe_s, by_snapshot: ($wipe_node[0].snapshot_index > 0),
      node: ($wipe_node[0] | node_brief), remove_node: $remove[0],
      add_node: {exit_status: $add_exit, started_s_after_restart: $add_start_s,
        voter_again_s_after_restart: (if $add[0].elapsed_ms then $add_start_s + $add[0].elapsed_ms / 1000 else null end),
        response: $add[0], error: $add_err},
      load: ($wipe_load[0] | load_brief)}
  }'
