#!/bin/bash
# Bad input: a clear message naming the object, non-zero exit, nothing
# mounted, no process left, the image untouched.
. "$(dirname "$0")/../lib.sh"

img=$T/good.img
qemu-img create -q -f raw "$img" 8M
sum=$(sha "$img")

# expect_error WHAT PATTERN imgfuse-args...
expect_error() {
    local what=$1 pat=$2; shift 2
    local before
    before=$(pgrep -c -f "imgfuse.* $T/" || true)
    if "$IMGFUSE" "$@" >"$T/out" 2>"$T/err"; then
        fail "$what: succeeded"
    fi
    grep -q -- "$pat" "$T/err" || fail "$what: message '$(cat "$T/err")' lacks '$pat'"
    grep -q "^imgfuse: " "$T/err" || fail "$what: message not prefixed"
    [ "$(pgrep -c -f "imgfuse.* $T/" || true)" = "$before" ] || fail "$what: a process was left behind"
    local mnt=${*: -1}
    if [ "$mnt" != "$T/busy" ] && grep -q " $mnt " /proc/mounts; then
        fail "$what: something stayed mounted"
    fi
    note "$what: $(head -1 "$T/err")"
}

expect_error "missing file" "$T/nope.img: no such file" "$T/nope.img" "$T/m1"
mkdir "$T/dir"
expect_error "directory as image" "is a directory" "$T/dir" "$T/m1"
expect_error "missing mountpoint arg" "missing MOUNTPOINT" "$img"
expect_error "bad option" "did you mean '--read-only'" --read-onyl "$img" "$T/m1"
expect_error "bad -o option" "did you mean 'share-rw'" -o share-wr "$img" "$T/m1"
expect_error "bad format" "unknown format 'rwa' (did you mean 'raw'?)" -F rwa "$img" "$T/m1"
expect_error "malformed json" "json:" 'json:{"driver": raw}' "$T/m1"
expect_error "malformed uri" "99999" "nbd://host:99999/x" "$T/m1"
expect_error "unknown scheme" "unknown URI scheme 'gopher'" "gopher://x/y" "$T/m1"
expect_error "bad cache mode" "did you mean 'none'" --cache=nnone "$img" "$T/m1"
expect_error "bad threads" "--threads=0" --threads=0 "$img" "$T/m1"
expect_error "char device" "character device" /dev/null "$T/m1"
expect_error "mountpoint in a missing dir" "cannot create it" "$img" "$T/no/such/dir/m"
expect_error "several sources on a file" "directory" "$img" "$img" "$T/m1"

# unreadable image (as an unprivileged user)
chmod 711 "$T"
chmod 600 "$img"
if setpriv --reuid=65534 --regid=65534 --clear-groups "$IMGFUSE" "$img" /tmp/imgfuse-nobody-$$ 2>"$T/err"; then
    fail "unreadable image mounted"
fi
grep -q "$img: cannot open for writing (Permission denied); mount it read-only with -r" "$T/err" \
    || fail "unreadable: $(cat "$T/err")"

# mountpoint busy
mount_img "$img" "$T/busy"
expect_error "busy mountpoint" "already mounted" -r "$img" "$T/busy"
unmount_img "$T/busy"

# a raw image whose first sector looks like another format is not written
# unless -F raw says so
printf 'QFI\xfb\x00\x00\x00\x09' | dd of="$T/fake.img" conv=notrunc status=none
truncate -s 1M "$T/fake.img"
if "$IMGFUSE" info "$T/fake.img" 2>/dev/null | grep -q "file format: raw"; then
    expect_error "raw that looks like qcow2" "pass -F raw" "$T/fake.img" "$T/m3"
    mount_img -F raw "$T/fake.img" "$T/m3"
    unmount_img "$T/m3"
fi

expect_eq "$(sha "$img")" "$sum" "image changed by failed mounts"
echo ok
