#!/bin/bash
# raw offset=/size= slices from -o, dotted sources and json:; bad slices.
. "$(dirname "$0")/../lib.sh"

img=$T/part.img
qemu-img create -q -f raw "$img" 16M
qemu-io -f raw -c 'write -P 7 1M 1M' -c 'write -P 8 2M 1M' "$img" >/dev/null

mount_img -F raw -o offset=1M,size=2M "$img" "$T/a"
expect_eq "$(stat -c %s "$T/a")" 2097152 "slice size"
cmp <(dd if="$img" bs=1M skip=1 count=2 status=none) "$T/a" || fail "slice content"
printf 'HELLO' | dd of="$T/a" bs=1 seek=0 conv=notrunc status=none
unmount_img "$T/a"
expect_eq "$(dd if="$img" bs=1 skip=$((1 << 20)) count=5 status=none)" HELLO "write through slice"

mount_img "driver=raw,file.driver=file,file.filename=$img,offset=2M,size=1M" "$T/b"
expect_eq "$(stat -c %s "$T/b")" 1048576 "dotted slice size"
cmp <(dd if="$img" bs=1M skip=2 count=1 status=none) "$T/b" || fail "dotted slice content"
unmount_img "$T/b"

mount_img -r "json:{\"driver\":\"raw\",\"offset\":3145728,\"file\":{\"driver\":\"file\",\"filename\":\"$img\"}}" "$T/c"
expect_eq "$(stat -c %s "$T/c")" $((13 << 20)) "json slice size"
unmount_img "$T/c"

sum=$(sha "$img")
if "$IMGFUSE" -o offset=15M,size=2M "$img" "$T/d" 2>"$T/err"; then fail "oversized slice mounted"; fi
grep -q "beyond the end" "$T/err" || fail "oversized slice message: $(cat "$T/err")"
if "$IMGFUSE" -o offset=20M "$img" "$T/d" 2>"$T/err"; then fail "offset past end mounted"; fi
grep -q "offset=20971520 lies beyond" "$T/err" || fail "offset message: $(cat "$T/err")"
if "$IMGFUSE" -o ofset=1M "$img" "$T/d" 2>"$T/err"; then fail "misspelt option mounted"; fi
grep -q "did you mean 'offset'" "$T/err" || fail "did-you-mean: $(cat "$T/err")"
is_mounted "$T/d" && fail "something mounted after an error"
[ -e "$T/d" ] && fail "mountpoint left behind after an error"
expect_eq "$(sha "$img")" "$sum" "image untouched by failed mounts"
echo ok
