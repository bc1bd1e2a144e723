#!/bin/bash
# The preallocate filter on a growing image: a new qcow2 (2 GiB virtual,
# 64 KiB clusters) written whole through the mount with dd bs=1M (one fsync
# at the end), without and with --preallocate (the defaults, 128M ahead on
# 1M), best of 3 each, in one run on the same disk. Reports MiB/s and the
# image file's extent count (filefrag, where the file system tells), and
# checks that after unmount the filtered image has exactly the length of
# the unfiltered one and qemu-img checks it clean.
# usage: bench/preallocate.sh [MiB]   (default 2048)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
MIB=${1:-2048}
bench_tmp preallocate "${TMPDIR:-/var/tmp}"

# 64 MiB of random data, repeated: incompressible without 2 GiB of source
head -c 64M /dev/urandom >"$T/chunk"
write_all() {
    local i
    for ((i = 0; i < (MIB + 63) / 64; i++)); do cat "$T/chunk"; done |
        head -c "${MIB}M" |
        dd of="$T/mnt" bs=1M iflag=fullblock conv=notrunc,fsync status=none
}
extents() {
    command -v filefrag >/dev/null || { echo "?"; return; }
    filefrag "$1" 2>/dev/null | grep -oE '[0-9]+ extents? found' | cut -d' ' -f1 || echo "?"
}

declare -A speed size frags
for mode in plain prealloc; do
    speed[$mode]=""
done
for run in 1 2 3; do
    for mode in plain prealloc; do
        rm -f "$T/$mode.qcow2"
        qemu-img create -q -f qcow2 "$T/$mode.qcow2" "${MIB}M"
        opt=()
        [ $mode = prealloc ] && opt=(--preallocate)
        "$IMGFUSE" "${opt[@]}" --pidfile "$T/pid" "$T/$mode.qcow2" "$T/mnt"
        pid=$(cat "$T/pid")
        speed[$mode]+="$(mbps "$MIB" "$(secs write_all)") "
        umnt
        # the daemon's last flush and close (the filter cuts its tail there)
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
        size[$mode]=$(stat -c %s "$T/$mode.qcow2")
        frags[$mode]=$(extents "$T/$mode.qcow2")
    done
    [ "${size[plain]}" = "${size[prealloc]}" ] || {
        echo "bench: run $run: with the filter the image is ${size[prealloc]} bytes," \
             "without ${size[plain]}" >&2
        exit 1
    }
done
qemu-img check -q "$T/prealloc.qcow2" || { echo "bench: qemu-img check fails" >&2; exit 1; }
qemu-img compare -q "$T/plain.qcow2" "$T/prealloc.qcow2" ||
    { echo "bench: the two images differ" >&2; exit 1; }
p=$(echo "${speed[plain]}" | best) a=$(echo "${speed[prealloc]}" | best)
echo "new qcow2 ${MIB} MiB, dd bs=1M: without filter ${p} MiB/s (${frags[plain]} extents)," \
     "--preallocate ${a} MiB/s (${frags[prealloc]} extents); $(echo "scale=2; $a / $p" | bc)x;" \
     "image ${size[prealloc]} bytes either way, check clean"
