#!/bin/bash
# Cold sequential read (page cache dropped before each read) of raw, qcow2,
# vmdk and vhdx images of the same random data through imgfuse (dd bs=1M,
# O_DIRECT on the mounted file), against reading the raw file directly
# (dd bs=1M, buffered: the host's readahead), alternating in each round,
# best of ROUNDS each (want >= 0.95x). With BASE=/path/to/older/imgfuse the
# older binary is measured in the same rounds (before/after). Needs root.
# usage: [FORMATS="raw qcow2"] bench/cold-seqread.sh [MiB] [rounds]   (defaults 1024, 3)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
MIB=${1:-1024}
ROUNDS=${2:-3}
bench_tmp cold "${TMPDIR:-/var/tmp}"
touch "$T/mnt"
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
cold() { drop_caches; mbps "$MIB" "$(secs dd if="$1" of=/dev/null bs=1M "${@:2}" status=none)"; }
through() {
    local bin=$1 fmt=$2 r
    drop_caches
    "$bin" -r -F "$fmt" "$T/disk.$fmt" "$T/mnt"
    r=$(mbps "$MIB" "$(secs dd if="$T/mnt" of=/dev/null bs=1M iflag=direct status=none)")
    umnt
    echo "$r"
}

head -c "${MIB}M" /dev/urandom >"$T/disk.raw"
for f in qcow2 vmdk vhdx; do
    qemu-img convert -f raw -O $f "$T/disk.raw" "$T/disk.$f"
done
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for f in ${FORMATS:-raw qcow2 vmdk vhdx}; do
    file="" ours="" base=""
    for _ in $(seq "$ROUNDS"); do
        file+="$(cold "$T/disk.raw") "
        ours+="$(through "$IMGFUSE" $f) "
        [ -z "${BASE:-}" ] || base+="$(through "$BASE" $f) "
    done
    a=$(echo "$ours" | best) r=$(echo "$file" | best)
    line="cold $f ${MIB} MiB: imgfuse ${a} MiB/s, raw file directly ${r}; $(echo "scale=2; $a / $r" | bc)x"
    if [ -n "${BASE:-}" ]; then
        b=$(echo "$base" | best)
        line+="; base ${b} ($(echo "scale=2; $b / $r" | bc)x)"
    fi
    echo "$line   [file: $file| ours: $ours| base: ${base:-none}]"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
