# after ../lib.sh: run tests/tools/randops on a mounted image and check the
# image afterwards with qemu-img.
RANDOPS=${RANDOPS:-$(dirname "$IMGFUSE")/randops}
[ -x "$RANDOPS" ] || fail "randops is not built: $RANDOPS (run scripts/build.sh)"
RANDOPS_OPS=${RANDOPS_OPS:-20000}
RANDOPS_SEED=${RANDOPS_SEED:-$(( $(date +%s) % 100000 ))}

# randops_run FMT IMAGE MODE [IMGFUSE OPTIONS...]: mount IMAGE, run the
# tester (MODE: fixed, growable), unmount and remount it half way through,
# then qemu-img check must find IMAGE clean and its content must equal the
# tester's model. The seed is printed so a failure replays. RANDOPS_EXTRA:
# more randops options (e.g. "--no truncate --size-align 512").
randops_run() {
    local fmt=$1 img=$2 mode=$3 mnt d extra=()
    shift 3
    mnt=$T/m.$fmt.$mode
    d=$T/model.$fmt.$mode
    touch "$mnt"
    [ "$mode" = growable ] && extra=(--growable)
    mount_img "${extra[@]}" "$@" -F "$fmt" "$img" "$mnt" ||
        fail "$fmt ($mode): the mount failed"
    # the remount command: unmount, wait for the daemon to end, mount again
    cat > "$T/remount.$fmt.$mode" <<EOS
set -e
. "$ROOT/tests/integration/lib.sh" >/dev/null
T=$T
_MOUNTS=()
trap - EXIT
unmount_img "$mnt"
"$IMGFUSE" --pidfile "$T/pid.\$(echo "$mnt" | md5sum | cut -c1-8)" ${extra[*]} $* -F "$fmt" "$img" "$mnt"
EOS
    local args=(--file "$mnt" --ops "$RANDOPS_OPS" --seed "$RANDOPS_SEED"
                --maxlen 131072 --direct --dump "$d" --quiet
                --remount-at $((RANDOPS_OPS / 2)) --remount-cmd "bash $T/remount.$fmt.$mode")
    [ "$mode" = growable ] && args+=(--growable --maxsize $((16 << 20)))
    # shellcheck disable=SC2206 # options split on spaces on purpose
    [ -n "${RANDOPS_EXTRA:-}" ] && args+=($RANDOPS_EXTRA)
    "$RANDOPS" "${args[@]}" || fail "$fmt ($mode): randops found a difference (seed $RANDOPS_SEED)"
    unmount_img "$mnt"
    local rc=0
    qemu-img check -q -f "$fmt" "$img" 2>"$T/check.err" || rc=$?
    [ $rc -eq 63 ] || cat "$T/check.err" >&2
    # 63: qemu-img has no check for this format (raw, qcow, vpc)
    [ $rc -eq 0 ] || [ $rc -eq 63 ] ||
        fail "$fmt ($mode): qemu-img check finds errors after randops (rc $rc, seed $RANDOPS_SEED)"
    if [ "$fmt" = raw ]; then
        # QEMU rounds a raw file's size up to whole sectors: compare the
        # file itself
        cp --sparse=always "$img" "$T/conv.raw"
    else
        qemu-img convert -f "$fmt" -O raw "$img" "$T/conv.raw"
    fi
    local vsize
    vsize=$(stat -c %s "$d")
    [ "$(stat -c %s "$T/conv.raw")" = "$vsize" ] ||
        fail "$fmt ($mode): qemu-img sees $(stat -c %s "$T/conv.raw") bytes, the model $vsize (seed $RANDOPS_SEED)"
    cmp -s "$T/conv.raw" "$d" || fail "$fmt ($mode): qemu-img convert differs from the model: $(cmp "$T/conv.raw" "$d" | head -1) (seed $RANDOPS_SEED)"
    rm -f "$T/conv.raw" "$d"
    note "$fmt ($mode): $RANDOPS_OPS operations agree with qemu-img (seed $RANDOPS_SEED)"
}
