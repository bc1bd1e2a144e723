# Helpers shared by the qcow tests: lib.sh, and qcow images qemu compresses.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# qemu_compress [ARGS...] RAW OUT: qemu-img 7.2's convert -c -O qcow writes a
# good image but exits 1 without a message (its final zero-length compressed
# write): accept that, and let qemu-img compare vouch for the image
qemu_compress() {
    local raw=${*: -2:1} out=${*: -1}
    qemu-img convert -c -f raw -O qcow "$@" 2>"$T/qerr" || [ $? -eq 1 ] ||
        fail "qemu-img convert -c: $(cat "$T/qerr")"
    [ ! -s "$T/qerr" ] || fail "qemu-img convert -c: $(cat "$T/qerr")"
    qemu-img compare -q -f qcow -F raw "$out" "$raw" ||
        fail "qemu-img convert -c made an image that differs from $raw"
}
