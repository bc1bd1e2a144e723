#!/bin/bash
# imgfuse against qemu-storage-daemon's FUSE export on the same raw image,
# in one run, reported as ratios (imgfuse/qsd; higher is better except RSS).
#   bash bench/bench-raw.sh [SIZE_MIB] [ROUNDS]
# Warm reads: image in the page cache, O_DIRECT on the mounted file so every
# request reaches the daemon. Cold: caches dropped before the read.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMGFUSE=${IMGFUSE:-$ROOT/build/imgfuse}
SIZE_MIB=${1:-2048}
ROUNDS=${2:-2}
RUNTIME=${RUNTIME:-5}
W=$(mktemp -d "${TMPDIR:-/var/tmp}/imgfuse-bench.XXXXXX")
img=$W/disk.img
mnt=$W/disk.raw
QSD_PID=

cleanup() {
    fusermount3 -u "$mnt" 2>/dev/null || true
    [ -n "$QSD_PID" ] && kill "$QSD_PID" 2>/dev/null || true
    sleep 0.3
    rm -rf "$W"
}
. "$(dirname "$0")/chart-hook.sh"
trap 'cleanup; [ -z "${_BENCH_CHART_ON:-}" ] || _bench_chart' EXIT

echo "making a ${SIZE_MIB} MiB raw image of random data" >&2
fio --name=fill --filename="$img" --rw=write --bs=1M --size=${SIZE_MIB}M \
    --refill_buffers --randrepeat=0 --end_fsync=1 --output=/dev/null

mount_engine() {
    case $1 in
    imgfuse)
        "$IMGFUSE" -F raw --pidfile "$W/pid" "$img" "$mnt"
        ENGINE_PID=$(cat "$W/pid")
        ;;
    imgfuse-wb)
        "$IMGFUSE" -F raw --writeback-cache --pidfile "$W/pid" "$img" "$mnt"
        ENGINE_PID=$(cat "$W/pid")
        ;;
    qsd)
        touch "$mnt"
        qemu-storage-daemon --blockdev driver=file,node-name=f,filename="$img" \
            --export type=fuse,id=e,node-name=f,mountpoint="$mnt",writable=on \
            >"$W/qsd.log" 2>&1 &
        QSD_PID=$!
        ENGINE_PID=$QSD_PID
        for _ in $(seq 200); do
            grep -q " $mnt fuse" /proc/mounts && break
            sleep 0.05
        done
        ;;
    esac
    # reset the peak RSS so VmHWM covers this round only
    echo 5 > /proc/$ENGINE_PID/clear_refs 2>/dev/null || true
}

unmount_engine() {
    fusermount3 -u "$mnt"
    # qsd does not always exit when its export is unmounted: ask it to
    [ "$1" = qsd ] && { sleep 1; kill "$QSD_PID" 2>/dev/null || true; }
    for _ in $(seq 200); do
        [ "$(awk '{print $3}' /proc/$ENGINE_PID/stat 2>/dev/null || echo gone)" = Z ] && break
        kill -0 "$ENGINE_PID" 2>/dev/null || break
        sleep 0.02
    done
    if [ "$1" = qsd ]; then wait "$QSD_PID" 2>/dev/null || true; QSD_PID=; fi
}

warm() { cat "$img" > /dev/null; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "cannot drop caches" >&2; }

# fio_run NAME ARGS... -> prints MiB/s and IOPS
fio_run() {
    local out
    out=$(fio --name=b --filename="$mnt" --output-format=terse --terse-version=3 \
              --ioengine=psync --group_reporting "$@")
    # terse v3: field 7 read bw KiB/s, 8 read iops; 48 write bw, 49 write iops
    awk -F';' '{ r=$7; ri=$8; w=$48; wi=$49; if (r > 0) printf "%.1f %.0f\n", r/1024, ri;
                 else printf "%.1f %.0f\n", w/1024, wi }' <<<"$out"
}

declare -A RES
buffered_write() {
    local e=$1 v
    sync
    v=$(fio_run --rw=write --bs=4k --size=$((SIZE_MIB / 4))M --end_fsync=1); RES[$e,seqwrite4k_buf]+="${v%% *} "
}

measure() {
    local e=$1 v
    mount_engine "$e"
    if [ "$e" = imgfuse-wb ]; then
        buffered_write "$e"
        unmount_engine "$e"
        return
    fi
    buffered_write "$e"
    warm
    v=$(fio_run --rw=read --bs=1M --direct=1 --size=${SIZE_MIB}M); RES[$e,seqread_warm]+="${v%% *} "
    drop
    v=$(fio_run --rw=read --bs=1M --direct=1 --size=${SIZE_MIB}M); RES[$e,seqread_cold]+="${v%% *} "
    warm
    v=$(fio_run --rw=randread --bs=4k --direct=1 --numjobs=1 --time_based --runtime=$RUNTIME --size=${SIZE_MIB}M)
    RES[$e,randread4k_j1]+="${v##* } "
    v=$(fio_run --rw=randread --bs=4k --direct=1 --numjobs=4 --time_based --runtime=$RUNTIME --size=${SIZE_MIB}M)
    RES[$e,randread4k_j4]+="${v##* } "
    # each write test starts with no dirty host pages left by the last one
    sync
    v=$(fio_run --rw=write --bs=1M --direct=1 --size=$((SIZE_MIB / 2))M --end_fsync=1); RES[$e,seqwrite1m]+="${v%% *} "
    sync
    v=$(fio_run --rw=write --bs=4k --direct=1 --size=256M --time_based --runtime=$RUNTIME --end_fsync=1)
    RES[$e,seqwrite4k]+="${v%% *} "
    sync
    v=$(fio_run --rw=randwrite --bs=4k --direct=1 --numjobs=1 --time_based --runtime=$RUNTIME --size=${SIZE_MIB}M)
    RES[$e,randwrite4k_j1]+="${v##* } "
    sync
    v=$(fio_run --rw=randwrite --bs=4k --direct=1 --numjobs=4 --time_based --runtime=$RUNTIME --size=${SIZE_MIB}M)
    RES[$e,randwrite4k_j4]+="${v##* } "
    RES[$e,rss]+="$(awk '/VmHWM/ {print $2}' /proc/$ENGINE_PID/status) "
    unmount_engine "$e"
}

for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS" >&2
    measure imgfuse
    measure imgfuse-wb
    measure qsd
done

best() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -1; }
least() { tr ' ' '\n' | grep -v '^$' | sort -g | head -1; }
printf '| %-28s | %12s | %12s | %7s |\n' "metric (best of $ROUNDS)" imgfuse qsd ratio
printf '|%s|%s|%s|%s|\n' "------------------------------" "--------------" "--------------" "---------"
row() {
    local key=$1 label=$2 pick=${3:-best} a b
    a=$(echo "${RES[imgfuse,$key]}" | $pick); b=$(echo "${RES[qsd,$key]}" | $pick)
    printf '| %-28s | %12s | %12s | %6.2fx |\n' "$label" "$a" "$b" "$(echo "$a / $b" | bc -l)"
}
row seqread_warm "seq read 1M warm (MiB/s)"
row seqread_cold "seq read 1M cold (MiB/s)"
row randread4k_j1 "rand read 4K 1 job (IOPS)"
row randread4k_j4 "rand read 4K 4 jobs (IOPS)"
row seqwrite1m "seq write 1M (MiB/s)"
row seqwrite4k "seq write 4K (MiB/s)"
row randwrite4k_j1 "rand write 4K 1 job (IOPS)"
row randwrite4k_j4 "rand write 4K 4 jobs (IOPS)"
row seqwrite4k_buf "seq write 4K buffered (MiB/s)"
row rss "peak RSS (KiB, lower=better)" least
# the same buffered writes with kernel write caching (--writeback-cache)
a=$(echo "${RES[imgfuse-wb,seqwrite4k_buf]}" | best); b=$(echo "${RES[qsd,seqwrite4k_buf]}" | best)
printf '| %-28s | %12s | %12s | %6.2fx |\n' "  same, --writeback-cache" "$a" "$b" "$(echo "$a / $b" | bc -l)"
