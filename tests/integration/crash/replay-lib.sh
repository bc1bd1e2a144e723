# Crash points beyond kill -9, for one format (sourced by test-replay-*.sh
# after lib.sh): mount a fresh image with the logwrites filter under the
# format, run random writes with fsyncs through the mount
# (replay-workload.py), unmount, then rebuild the image at every flush
# point and at random points between flushes from the log and check each
# with qemu-img (tests/tools/replay-writes.py).
#
# replay_test FMT SIZE WRITES RANDOM SEED [qemu-img create -o OPTS]
# With KNOWN_BUG=REGEX set, failures matching it are known bugs (see
# replay-writes.py --known-bug): noted, not failed.
replay_test() {
    local fmt=$1 size=$2 writes=$3 random=$4 seed=$5 opts=${6:-}
    local img="$T/a.$fmt" rc=0
    qemu-img create -q -f "$fmt" ${opts:+-o "$opts"} "$img" "$size"
    cp "$img" "$T/initial"
    mount_img "driver=$fmt,file.driver=logwrites,file.log=$T/log,file.filename=$img" \
        "$T/m.raw"
    python3 "$ROOT/tests/integration/crash/replay-workload.py" "$T/m.raw" "$T/log" \
        "$T/journal" "$writes" "$seed" || fail "$fmt: the workload failed"
    unmount_img "$T/m.raw"
    mkdir "$T/replay"
    python3 "$ROOT/tests/tools/replay-writes.py" -f "$fmt" --journal "$T/journal" \
        --random "$random" --seed "$seed" ${KNOWN_BUG:+--known-bug "$KNOWN_BUG"} \
        "$T/initial" "$T/log" "$img" \
        "$T/replay" >"$T/out" 2>&1 || rc=$?
    [ $rc -eq 0 ] || fail "$fmt (seed $seed): $(head -5 "$T/out"; tail -1 "$T/out")"
    if grep -q '^KNOWN BUG' "$T/out"; then
        note "$(grep -m1 -A2 '^KNOWN BUG' "$T/out")"
    fi
    note "$fmt: $(tail -1 "$T/out")"
}
