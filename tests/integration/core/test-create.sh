#!/bin/bash
# imgfuse create (raw, preallocation, nocow) and --create then mount.
. "$(dirname "$0")/../lib.sh"

"$IMGFUSE" create -F raw "$T/off.img" 64M >/dev/null
expect_eq "$(stat -c %s "$T/off.img")" 67108864 "size"
expect_eq "$(stat -c %b "$T/off.img")" 0 "preallocation=off allocates nothing"
"$IMGFUSE" create -F raw -o preallocation=full "$T/full.img" 4M >/dev/null
[ "$(stat -c %b "$T/full.img")" -ge 8192 ] || fail "preallocation=full did not allocate"
"$IMGFUSE" create -F raw -o preallocation=falloc,nocow=on "$T/fa.img" 4M >/dev/null
[ "$(stat -c %b "$T/fa.img")" -ge 8192 ] || fail "preallocation=falloc did not allocate"
qemu-img info --output=json "$T/fa.img" | grep -q '"format": "raw"' || fail "qemu-img info"

if "$IMGFUSE" create -F raw "$T/off.img" 1M 2>"$T/err"; then fail "overwrote an image"; fi
grep -q "already exists" "$T/err" || fail "overwrite message: $(cat "$T/err")"
expect_eq "$(stat -c %s "$T/off.img")" 67108864 "existing image untouched"
if "$IMGFUSE" create -F raw -o prealocation=full "$T/x.img" 1M 2>"$T/err"; then fail "bad option"; fi
grep -q "did you mean 'preallocation'" "$T/err" || fail "create did-you-mean: $(cat "$T/err")"
[ -e "$T/x.img" ] && fail "failed create left a file"
if "$IMGFUSE" create -F raw "$T/y.img" 12Q 2>"$T/err"; then fail "bad size"; fi
grep -q "not a size" "$T/err" || fail "size message"

# create and mount in one step, then convert into it with dd
head -c 3M /dev/urandom > "$T/src"
mount_img --create 3M -F raw "$T/new.img" "$T/new.raw"
dd if="$T/src" of="$T/new.raw" bs=1M conv=notrunc status=none
unmount_img "$T/new.raw"
qemu-img compare -q -f raw -F raw "$T/src" "$T/new.img" || fail "converted image differs"
if "$IMGFUSE" --create 1M -F raw "$T/new.img" "$T/again.raw" 2>"$T/err"; then
    fail "--create overwrote"
fi
grep -q "already exists" "$T/err" || fail "--create overwrite message"
echo ok
