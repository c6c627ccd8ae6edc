#!/usr/bin/env bash
# The API's contract (issue 34) fuzzed longer than the suite does, on a seed nobody chose:
# schemathesis, all phases, every check but use_after_free, with and without the operator token,
# against a release daemon. Prints the seed, the cases generated, failures and time of each run.
# BENCH_EXAMPLES (default 100) sets hypothesis's examples per operation and phase.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup >/dev/null
# The daemon serves the agent binary from beside itself (GET /v1/agent/binary).
cargo build --release -q -p metalhost -p metalhost-agent
examples=${BENCH_EXAMPLES:-100}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$dir/metalhost.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$dir/data"
token = "$token"
power_sync = { interval_s = 0 }
TOML
cat >"$dir/schemathesis.toml" <<'TOML'
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "416", "422", "426"]
TOML
target/release/metalhost serve --config "$dir/metalhost.toml" >"$dir/daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
st=.lab/schemathesis/bin/schemathesis
status=0
for who in operator anonymous; do
  auth=()
  [ "$who" = operator ] && auth=(-H "Authorization: Bearer $token")
  start=$(date +%s.%N)
  set +e
  "$st" --no-color --config-file "$dir/schemathesis.toml" run "http://127.0.0.1:$port/v1/openapi.json" "${auth[@]}" \
    --workers 1 --max-examples "$examples" --checks all --exclude-checks use_after_free >"$dir/$who.log" 2>&1
  rc=$?
  set -e
  took=$(echo "$(date +%s.%N) - $start" | bc)
  cases=$(grep -m1 ' generated,' "$dir/$who.log" | sed 's/^ *//')
  seed=$(grep -m1 '^Seed:' "$dir/$who.log" || true)
  printf '%-9s %s; %s; %.0f s; exit %s\n' "$who" "$cases" "$seed" "$took" "$rc"
  if [ "$rc" -ne 0 ]; then status=1; sed -n '/FAILURES\|ERRORS/,$p' "$dir/$who.log" | head -80; fi
done
exit $status
