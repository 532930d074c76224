# Shared by the benchmark scripts (sourced, not run).

# wait_ready UP_OUT UP_PID: waits (up to 60 s) until `ledger-cluster up` printed `ready` into
# UP_OUT; exits the script if it died or never got there.
wait_ready() {
  local out=$1 pid=$2
  for _ in $(seq 120); do
    grep -q '^ready' "$out" && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; exit 1; }
    sleep 0.5
  done
  echo "cluster not ready" >&2
  exit 1
}
