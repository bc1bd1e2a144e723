# Shared by the bench scripts. Source it after `set -euo pipefail`:
#   . "$(dirname "$0")/lib.sh"
#   bench_tmp NAME DIR
# Gives: $ROOT, $IMGFUSE (the binary), and after bench_tmp $T (scratch dir,
# mount point $T/mnt) removed at exit, with the mount, a qsd started by
# qsd_mount and $OUT (when a script sets it) gone too.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMGFUSE=${IMGFUSE:-$ROOT/build/imgfuse}
T= OUT= QSD_PID=

# bench_tmp NAME DIR: T=DIR/bench-NAME.XXXXXX
bench_tmp() { T=$(mktemp -d "$2/bench-$1.XXXXXX"); }

cleanup() {
    [ -n "$T" ] || return 0
    fusermount3 -u "$T/mnt" 2>/dev/null || true
    if [ -n "$QSD_PID" ]; then
        kill "$QSD_PID" 2>/dev/null || true
        sleep 0.3
    fi
    rm -rf "$T" ${OUT:+"$OUT"}
}
. "$ROOT/bench/chart-hook.sh"
trap 'cleanup; [ -z "${_BENCH_CHART_ON:-}" ] || _bench_chart' EXIT

best() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -1; }
secs() { local t0; t0=$(date +%s.%N); "$@"; echo "$(date +%s.%N) - $t0" | bc; }
mbps() { echo "scale=1; $1 / ($2)" | bc; }
now() { date +%s.%N; }

# unmount and wait until the mount is really gone
umnt() {
    fusermount3 -u "$T/mnt"
    for _ in $(seq 200); do
        grep -q " $T/mnt " /proc/mounts || return 0
        sleep 0.05
    done
    echo "bench: $T/mnt stays mounted" >&2; exit 1
}

# qsd_mount IMAGE FMT [rw]: qemu-storage-daemon's FUSE export at $T/mnt
qsd_mount() {
    local ro=on
    [ "${3:-}" = rw ] && ro=off
    touch "$T/mnt"
    qemu-storage-daemon \
        --blockdev driver=file,node-name=f,filename="$1",read-only=$ro \
        --blockdev driver="$2",node-name=v,file=f,read-only=$ro \
        --export type=fuse,id=e,node-name=v,mountpoint="$T/mnt",writable=$([ $ro = on ] && echo off || echo on) \
        >"$T/qsd.log" 2>&1 &
    QSD_PID=$!
    for _ in $(seq 200); do
        grep -q " $T/mnt fuse " /proc/mounts && return 0
        sleep 0.05
    done
    cat "$T/qsd.log"; exit 1
}
qsd_umount() { umnt; kill "$QSD_PID" 2>/dev/null || true; wait "$QSD_PID" 2>/dev/null || true; QSD_PID=; }

seqread() { dd if="$T/mnt" of=/dev/null bs=1M iflag=direct status=none; }

# convert_vs_read FMT IMAGE: best of 3 of `qemu-img convert -f FMT -O raw`
# into $OUT and of an O_DIRECT read of IMAGE mounted read-only by imgfuse;
# sets best_qemu and best_ours (seconds). qemu-img's messages are shown only
# when it fails.
convert_vs_read() {
    local fmt=$1 img=$2 t0 t1 q o
    best_qemu=999999 best_ours=999999
    touch "$T/mnt"
    for _ in 1 2 3; do
        t0=$(now)
        qemu-img convert -U -f "$fmt" -O raw "$img" "$OUT/out.raw" 2>"$T/qemu-img.err" ||
            { cat "$T/qemu-img.err" >&2; exit 1; }
        t1=$(now)
        rm -f "$OUT/out.raw"
        q=$(echo "$t1 - $t0" | bc)
        best_qemu=$(echo "if ($q < $best_qemu) $q else $best_qemu" | bc)

        "$IMGFUSE" -r -F "$fmt" "$img" "$T/mnt"
        t0=$(now)
        dd if="$T/mnt" of=/dev/null bs=1M iflag=direct status=none
        t1=$(now)
        fusermount3 -u "$T/mnt"
        o=$(echo "$t1 - $t0" | bc)
        best_ours=$(echo "if ($o < $best_ours) $o else $best_ours" | bc)
    done
}
