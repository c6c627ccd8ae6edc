#!/usr/bin/env bash
# qcow2 images streamed by the agent (issue 32). See bench/README.md.
#
# In one run, on the same disk content: `metalhost-agent write-image` of the raw image, of the
# same disk as qcow2 (plain clusters) and as qcow2 with zstd-compressed clusters (both made by
# qemu-img), each served by bench/range_server.py on 127.0.0.1 and written into a fresh file on
# this disk with the sha256 checked and fsync. Prints the disk bytes written per second, the
# ratio qcow2 / raw (goal >= 0.90), and each variant's peak RSS (VmHWM, as the agent reports it
# from /proc/self/status; goal <= 64 MiB) for the 4 GiB-virtual image.
#
# BENCH_VIRTUAL_MIB (default 4096) is the disk's size, BENCH_DATA_MIB (default 1024) how much of
# it holds data (1 MiB pieces, half random, half text, a 1 MiB hole after each; BENCH_HOLES=0
# packs them with no holes, the worst case for qcow2: nothing to skip); BENCH_RUNS (default 3)
# the runs per variant, interleaved (the median is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
VIRT=${BENCH_VIRTUAL_MIB:-4096}
DATA=${BENCH_DATA_MIB:-1024}
RUNS=${BENCH_RUNS:-3}
HOLES=${BENCH_HOLES:-1}

cargo build -q --release -p metalhost-agent
AGENT="$PWD/target/release/metalhost-agent"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qcow2-bench.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$WORK/image.raw" "$VIRT" "$DATA" "$HOLES" <<'PY'
import os, sys
path, virt, data, holes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] != "0"

text = (b"metalhost streams qcow2 images to disk; " * 26000)[: 1 << 20]
with open(path, "wb") as f:
    f.truncate(virt << 20)
    for i in range(data):
        f.seek(i * (2 if holes else 1) << 20)
        f.write(os.urandom(1 << 20) if i % 2 else text)
PY
qemu-img convert -O qcow2 "$WORK/image.raw" "$WORK/image.qcow2"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$WORK/image.raw" "$WORK/image-zstd.qcow2"
declare -A SHA SIZE
for v in raw qcow2 zstd; do
    f=$WORK/image.raw; [ $v = qcow2 ] && f=$WORK/image.qcow2; [ $v = zstd ] && f=$WORK/image-zstd.qcow2
    SHA[$v]=$(sha256sum "$f" | cut -d' ' -f1)
    SIZE[$v]=$(stat -c %s "$f")
done

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 bench/range_server.py "$PORT" "$WORK" >/dev/null 2>&1 &
SERVER_PID=$!
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf -o /dev/null -r 0-0 "$BASE/image.raw" && break; sleep 0.1; done

now() { date +%s.%N; }
declare -A T HWM
# Each run writes a fresh file, so no run finds the previous one's pages.
run() {
    local v=$1 name=image.raw format=raw
    [ "$v" = qcow2 ] && name=image.qcow2 && format=qcow2
    [ "$v" = zstd ] && name=image-zstd.qcow2 && format=qcow2
    rm -f "$WORK/disk.raw"; : > "$WORK/disk.raw"
    local t0; t0=$(now)
    "$AGENT" write-image --url "$BASE/$name" --sha256 "${SHA[$v]}" --format "$format" --disk "$WORK/disk.raw" 2>"$WORK/last.log" \
        || { cat "$WORK/last.log" >&2; exit 1; }
    T[$v]+="$(echo "$(now) - $t0" | bc -l) "
    local kb; kb=$(sed -n 's/.*peak memory \([0-9]*\) kB.*/\1/p' "$WORK/last.log")
    if [ "${kb:-0}" -gt "${HWM[$v]:-0}" ]; then HWM[$v]=$kb; fi
}
for _ in $(seq "$RUNS"); do
    for v in raw qcow2 zstd; do run "$v"; done
done
cmp "$WORK/image.raw" "$WORK/disk.raw" || { echo "the last write differs from the raw image" >&2; exit 1; }
grep -h "qcow2:" "$WORK/last.log" || true

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
python3 - "$VIRT" "$DATA" "$RUNS" "$(echo "${T[raw]}" | median)" "$(echo "${T[qcow2]}" | median)" "$(echo "${T[zstd]}" | median)" \
    "${HWM[raw]}" "${HWM[qcow2]}" "${HWM[zstd]}" "${SIZE[raw]}" "${SIZE[qcow2]}" "${SIZE[zstd]}" <<'PY'
import sys
virt, data, runs = map(int, sys.argv[1:4])
t = dict(zip(["raw", "qcow2", "zstd"], map(float, sys.argv[4:7])))
hwm = dict(zip(["raw", "qcow2", "zstd"], map(int, sys.argv[7:10])))
size = dict(zip(["raw", "qcow2", "zstd"], map(int, sys.argv[10:13])))
print(f"disk {virt} MiB ({data} MiB of data), served by bench/range_server.py on 127.0.0.1, written to a file with sha256 and fsync; median of {runs}")
for v, label in [("raw", "raw"), ("qcow2", "qcow2, plain clusters"), ("zstd", "qcow2, zstd clusters")]:
    print(f"  {label:24} file {size[v] / 2**20:7.0f} MiB  {t[v]:6.2f} s  {virt / t[v]:6.0f} MiB/s written  peak RSS {hwm[v] / 1024:5.1f} MiB")
print(f"ratio qcow2 (plain) / raw throughput: {t['raw'] / t['qcow2']:.2f}  (goal >= 0.90)")
print(f"ratio qcow2 (zstd)  / raw throughput: {t['raw'] / t['zstd']:.2f}  (goal >= 0.90)")
print(f"peak RSS, largest: {max(hwm.values()) / 1024:.1f} MiB  (goal <= 64 MiB)")
PY
