#!/usr/bin/env bash
# Agent image write throughput (issue 5). See bench/README.md.
#
# Part 1 (always): the agent's write path (`metalhost-agent write-image`: download, sha256, write,
# fsync) from `python3 -m http.server` on 127.0.0.1, against `curl -s URL | dd of=FILE bs=4M
# conv=fsync` from the same server in the same run; with and without sha256, so the hash's cost shows.
# Part 2 (BENCH_SKIP_DAEMON=1 skips it): the same through the real daemon and agent API
# (tests/benches/agent_throughput.rs).
#
# BENCH_IMAGE_MIB (default 512) sets the image size; BENCH_RUNS (default 3) the runs per variant
# (the median is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${BENCH_IMAGE_MIB:-512}
RUNS=${BENCH_RUNS:-3}

cargo build -q --release -p metalhost-agent
AGENT="$PWD/target/release/metalhost-agent"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/agent-bench.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

head -c "$((MIB << 20))" /dev/urandom > "$WORK/image.raw"
SHA=$(sha256sum "$WORK/image.raw" | cut -d' ' -f1)

# A free port: bind 0 and read it back, then let the server take it.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK" >/dev/null 2>&1 &
SERVER_PID=$!
URL="http://127.0.0.1:$PORT/image.raw"
for _ in $(seq 100); do curl -sf -o /dev/null -r 0-0 "$URL" && break; sleep 0.1; done

now() { date +%s.%N; }
# Each run writes a fresh file, so no run finds the previous one's pages.
run() {
    rm -f "$WORK/disk.raw"
    : > "$WORK/disk.raw"
    local t0; t0=$(now)
    "$@" >/dev/null 2>"$WORK/last.log" || { cat "$WORK/last.log" >&2; exit 1; }
    echo "$(now) - $t0" | bc -l
}
agent_sha() { "$AGENT" write-image --url "$URL" --sha256 "$SHA" --disk "$WORK/disk.raw"; }
agent_nosha() { "$AGENT" write-image --url "$URL" --disk "$WORK/disk.raw"; }
curl_dd() { sh -c "curl -s '$URL' | dd of='$WORK/disk.raw' bs=4M iflag=fullblock conv=fsync status=none"; }
curl_dd_sha() {
    bash -c "curl -s '$URL' | tee >(sha256sum > '$WORK/curl.sha') | dd of='$WORK/disk.raw' bs=4M iflag=fullblock conv=fsync status=none"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A T
for variant in agent_sha agent_nosha curl_dd curl_dd_sha; do T[$variant]=; done
# Interleaved, so drift (other load on the machine) hits every variant alike.
for _ in $(seq "$RUNS"); do
    for variant in agent_sha agent_nosha curl_dd curl_dd_sha; do
        T[$variant]+="$(run "$variant") "
    done
done
cmp -n "$((MIB << 20))" "$WORK/image.raw" "$WORK/disk.raw" || { echo "the last write differs from the image" >&2; exit 1; }
t0=$(now); sha256sum "$WORK/image.raw" >/dev/null; SHASUM=$(echo "$(now) - $t0" | bc -l)
# OpenSSL (SHA-NI where the CPU has it, like the agent's sha2 crate) over the same cached bytes.
OSSL=$(python3 -c 'import hashlib,sys,time
data = open(sys.argv[1], "rb").read(); t = time.perf_counter(); hashlib.sha256(data).hexdigest(); print(time.perf_counter() - t)' "$WORK/image.raw")

m() { echo "${T[$1]}" | tr ' ' '\n' | grep . | median; }
A=$(m agent_sha); B=$(m agent_nosha); C=$(m curl_dd); D=$(m curl_dd_sha)
python3 - "$MIB" "$RUNS" "$A" "$B" "$C" "$D" "$SHASUM" "$OSSL" <<'EOF'
import sys
mib, runs = int(sys.argv[1]), int(sys.argv[2])
a, b, c, d, s, o = map(float, sys.argv[3:])
rate = lambda t: mib / t
print(f"image {mib} MiB from python3 -m http.server on 127.0.0.1, into a file on this disk, fsync; median of {runs}")
print(f"  agent write-image, sha256 on:        {a:6.2f} s  {rate(a):6.0f} MiB/s")
print(f"  agent write-image, no sha256:        {b:6.2f} s  {rate(b):6.0f} MiB/s")
print(f"  curl | dd bs=4M conv=fsync:          {c:6.2f} s  {rate(c):6.0f} MiB/s")
print(f"  curl | tee >(sha256sum) | dd:        {d:6.2f} s  {rate(d):6.0f} MiB/s")
print(f"ratio agent (sha256 on) / curl|dd throughput:          {c / a:.2f}  (target >= 0.9)")
print(f"ratio agent (sha256 on) / curl|tee sha256sum|dd:       {d / a:.2f}")
print(f"sha256 costs the agent {a - b:+.2f} s ({100 * (a - b) / b:+.0f}%) end to end (it runs beside the writes)")
print(f"sha256 alone over the cached image: OpenSSL {o:.2f} s = {rate(o):.0f} MiB/s; "
      f"coreutils sha256sum (no SHA-NI) {s:.2f} s = {rate(s):.0f} MiB/s")
EOF

if [ "${BENCH_SKIP_DAEMON:-0}" != 1 ]; then
    echo
    echo "through the daemon and the agent API:"
    (cd plugins && cargo build -q --release --target wasm32-wasip2)
    cargo build -q --release -p metalhost -p metalhost-agent
    METALHOST_BIN_DIR="$PWD/target/release" BENCH_IMAGE_MIB="$MIB" cargo bench -q -p metalhost-tests --bench agent_throughput
fi
