#!/bin/bash
# imgfuse-test: serial (glusterd listens on fixed ports)
# The gluster protocol against a real glusterd on loopback: one single-brick
# volume per run (glusterd is slow to start and every gfapi client slow to
# stop, so every gluster check lives in this one script). Raw image: writes
# both ways (imgfuse -> brick file, glusterfs FUSE -> imgfuse), the unix
# socket and server-list forms, SEEK_DATA/SEEK_HOLE, discard and zeroes;
# a qcow2 image on the volume read and written, with backing files on the
# volume, and created there (a vmdk with its extents there too); missing
# volume, missing file, no server and a malformed URI give clear errors
# quickly; a brick that stops answering or dies under a mount gives EIO,
# not a hang.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/gluster-lib.sh"


gl_start
V=$GL_S/vol                      # the volume through glusterfs FUSE
B=$GL_S/brick/b1                 # the brick: the bytes as stored
U=gluster://$GL_IP/$GL_VOL

note "raw image: content, writes both ways"
qemu-img create -q -f raw "$V/disk.img" 16M
qemu-io -f raw -c 'write -P 0x61 0 64k' -c 'write -P 0x62 5M 1M' "$V/disk.img" > /dev/null
"$IMGFUSE" info "$U/disk.img" > "$T/info" 2>&1 || fail "info failed: $(cat "$T/info")"
grep -q "server: tcp:$GL_IP:24007" "$T/info" || fail "info lacks the server: $(cat "$T/info")"
grep -q "volume: $GL_VOL" "$T/info" || fail "info lacks the volume: $(cat "$T/info")"
mount_img -F raw "$U/disk.img" "$T/m"
expect_eq "$(stat -c %s "$T/m")" 16777216 "size of the raw image"
cmp "$T/m" "$B/disk.img" || fail "the mount differs from the brick file"
seek_map "$T/m" > "$T/ours.map"
seek_map "$B/disk.img" > "$T/brick.map"
diff -u "$T/brick.map" "$T/ours.map" || fail "SEEK_DATA/SEEK_HOLE differ from the brick file"
[ "$(wc -l < "$T/ours.map")" -ge 2 ] || fail "no holes seen: $(cat "$T/ours.map")"
head -c 1M /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/m" bs=64k seek=160 conv=notrunc,fsync status=none
cmp <(dd if="$B/disk.img" bs=64k skip=160 count=16 status=none) "$T/pat" ||
    fail "a write through imgfuse is not on the brick after fsync"
fallocate -z -o 5M -l 256k "$T/m" || fail "zeroing a range failed"
fallocate -p -o 5376k -l 256k "$T/m" || fail "punching a hole failed"
sync "$T/m"
cmp -n 524288 <(dd if="$B/disk.img" bs=256k skip=20 count=2 status=none) /dev/zero ||
    fail "zeroed or punched ranges do not read as zeroes on the brick"
cmp <(dd if="$T/m" bs=256k skip=20 count=2 status=none) <(head -c 512k /dev/zero) ||
    fail "zeroed or punched ranges do not read as zeroes through imgfuse"
unmount_img "$T/m"
# a write from another gluster client, read back through a fresh imgfuse
# mount, here by the server list form (a dead server first, then the socket)
head -c 64k /dev/urandom > "$T/pat2"
dd if="$T/pat2" of="$V/disk.img" bs=64k seek=100 conv=notrunc,fsync status=none
dead=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
mount_img -r -F raw "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"gluster\",\"volume\":\"$GL_VOL\",\"path\":\"disk.img\",\"server\":[{\"type\":\"tcp\",\"host\":\"$GL_IP\",\"port\":$dead},{\"type\":\"unix\",\"path\":\"$GL_S/run/glusterd.socket\"}]}}" "$T/m2"
cmp <(dd if="$T/m2" bs=64k skip=100 count=1 status=none) "$T/pat2" ||
    fail "imgfuse does not read what another gluster client wrote"
cmp "$T/m2" "$B/disk.img" || fail "the server-list mount differs from the brick file"
unmount_img "$T/m2"

note "qcow2 image on the volume"
qemu-img create -q -f qcow2 "$V/d.qcow2" 32M
qemu-io -f qcow2 -c 'write -P 0x71 0 1M' -c 'write -P 0x72 10M 64k' \
    -c 'write -z 20M 1M' "$V/d.qcow2" > /dev/null
want=$(qemu_raw_sha "$B/d.qcow2" qcow2)
"$IMGFUSE" info "gluster+unix:///$GL_VOL/d.qcow2?socket=$GL_S/run/glusterd.socket" \
    > "$T/info" 2>&1 || fail "info over the unix socket failed: $(cat "$T/info")"
grep -qi qcow2 "$T/info" || fail "info does not see qcow2: $(cat "$T/info")"
mount_img "$U/d.qcow2" "$T/q"
expect_eq "$(stat -c %s "$T/q")" 33554432 "virtual size of the qcow2 image"
expect_eq "$(sha "$T/q")" "$want" "raw content of the qcow2 image on gluster"
dd if="$T/pat" of="$T/q" bs=64k seek=300 conv=notrunc,fsync status=none
unmount_img "$T/q"
qemu-img check -q "$B/d.qcow2" || fail "qemu-img check fails after writes over gluster"
qemu-img convert -f qcow2 -O raw "$B/d.qcow2" "$T/q.raw"
cmp <(dd if="$T/q.raw" bs=64k skip=300 count=16 status=none) "$T/pat" ||
    fail "qemu-img does not read back what was written into qcow2 over gluster"

note "backing files on the same volume; a name only on this host is not opened"
qemu-img create -q -f qcow2 "$V/gbase.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x21 0 2M' "$V/gbase.qcow2" > /dev/null
qemu-img create -q -f qcow2 -b gbase.qcow2 -F qcow2 "$V/gtop.qcow2"
qemu-io -f qcow2 -c 'write -P 0x22 1M 64k' "$V/gtop.qcow2" > /dev/null
want=$(qemu_raw_sha "$B/gtop.qcow2" qcow2)
mount_img "$U/gtop.qcow2" "$T/gt"
expect_eq "$(sha "$T/gt")" "$want" "qcow2 with a relative backing file on gluster"
dd if="$T/pat" of="$T/gt" bs=4k seek=100 count=64 conv=notrunc,fsync status=none
cp "$T/gt" "$T/gt.shadow"
unmount_img "$T/gt"
qemu-img check -q "$B/gtop.qcow2" || fail "qemu-img check fails (backing on gluster)"
qemu-img compare -q -f qcow2 -F raw "$B/gtop.qcow2" "$T/gt.shadow" ||
    fail "gtop.qcow2 differs from what the mount showed"
mkdir -p "$V/sub"
qemu-img create -q -f qcow2 -b "$B/gbase.qcow2" -F qcow2 "$V/sub/gabs.qcow2"
want=$(qemu_raw_sha "$B/sub/gabs.qcow2" qcow2)
qemu-img rebase -u -b /gbase.qcow2 -F qcow2 "$V/sub/gabs.qcow2"
mount_img -r "$U/sub/gabs.qcow2" "$T/ga"
expect_eq "$(sha "$T/ga")" "$want" "an absolute backing path on the volume"
unmount_img "$T/ga"
qemu-img rebase -u -b "$B/gbase.qcow2" -F qcow2 "$V/sub/gabs.qcow2"
expect_fail_within 20 "$IMGFUSE" info --untrusted "$U/sub/gabs.qcow2"
expect_err "is not on the server"

note "imgfuse create onto gluster://"
"$IMGFUSE" create -F qcow2 "$U/gnew.qcow2" 64M > /dev/null || fail "create over gluster failed"
qemu-img check -q "$B/gnew.qcow2" || fail "qemu-img check fails on a qcow2 created over gluster"
expect_eq "$(qemu-img info --output=json "$B/gnew.qcow2" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" 67108864 "created size"
expect_fail_within 20 "$IMGFUSE" create -F qcow2 "$U/gnew.qcow2" 32M
expect_err "already exists"
vmdk_extents_made "$U/gx.vmdk" "$B" gx 3 "create over gluster"
qemu-img check -q "$B/gx.vmdk" || fail "qemu-img check fails on vmdk extents made over gluster"

note "errors"
expect_fail_within 15 "$IMGFUSE" info "gluster://$GL_IP/novol/disk.img"
expect_err "gluster://$GL_IP/novol/disk.img: the gluster server has no started volume 'novol'"
expect_fail_within 15 "$IMGFUSE" info "$U/none.img"
expect_err "$U/none.img: no file 'none.img' on gluster volume '$GL_VOL'"
expect_fail_within 15 "$IMGFUSE" -F raw "$U/none.img" "$T/never"
expect_err "no file 'none.img'"
! is_mounted "$T/never" || fail "a failed mount left a mount behind"
expect_fail_within 15 "$IMGFUSE" info "gluster://127.0.0.1:$dead/$GL_VOL/disk.img"
expect_err "gluster://127.0.0.1:$dead/$GL_VOL/disk.img: cannot reach the gluster server"
python3 - "$T/bh.port" <<'PY' &
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
conns = []
s.settimeout(0.5)
end = time.time() + 20
while time.time() < end:
    try:
        conns.append(s.accept()[0])
    except socket.timeout:
        pass
PY
bh=$!
for i in $(seq 1 100); do [ -s "$T/bh.port" ] && break; sleep 0.05; done
bport=$(cat "$T/bh.port")
expect_fail_within 8 "$IMGFUSE" info "driver=raw,file.driver=gluster,file.filename=gluster://127.0.0.1:$bport/$GL_VOL/disk.img,file.connect-timeout=2"
expect_err "no answer from the gluster server 127.0.0.1:$bport within 2 s"
# a silent server first in the list is skipped after its time limit
"$IMGFUSE" info -F raw "driver=raw,file.driver=gluster,file.volume=$GL_VOL,file.path=disk.img,file.connect-timeout=2,file.server.0.host=127.0.0.1,file.server.0.port=$bport,file.server.1.type=unix,file.server.1.path=$GL_S/run/glusterd.socket" \
    > "$T/info" 2>&1 || fail "the second server of a list is not tried: $(cat "$T/info")"
kill $bh 2>/dev/null || true
expect_fail_within 5 "$IMGFUSE" info "gluster://127.0.0.1/$GL_VOL"
expect_err "no image path after the volume name"
expect_fail_within 5 "$IMGFUSE" info "gluster+unix:///$GL_VOL/disk.img"
expect_err "no socket"

note "a brick that stops answering: EIO after timeout=, then recovery"
mount_img -F raw "driver=raw,file.driver=gluster,file.filename=$U/disk.img,file.timeout=3" "$T/h"
dd if="$T/h" of=/dev/null bs=64k count=1 iflag=direct status=none ||
    fail "reading before the brick stops failed"
bp=$(gl_brick_pid)
kill -STOP "$bp"
expect_fail_within 20 dd if="$T/h" of=/dev/null bs=64k skip=100 count=1 iflag=direct status=none
expect_err "Input/output error"
kill -CONT "$bp"
for i in $(seq 1 100); do
    dd if="$T/h" of=/dev/null bs=64k skip=101 count=1 iflag=direct status=none 2>/dev/null && break
    [ "$i" = 100 ] && fail "no recovery within 30 s after the brick answers again"
    sleep 0.3
done
unmount_img "$T/h"

note "the brick dies under a mount: EIO, no hang"
mount_img -F raw "$U/disk.img" "$T/d"
dd if="$T/d" of=/dev/null bs=64k count=1 iflag=direct status=none ||
    fail "reading before the brick dies failed"
kill -9 "$(gl_brick_pid)"
sleep 0.5
expect_fail_within 30 dd if="$T/d" of=/dev/null bs=64k skip=200 count=1 iflag=direct status=none
expect_err "Input/output error"
expect_fail_within 30 dd if=/dev/zero of="$T/d" bs=64k seek=20 count=1 oflag=direct conv=notrunc status=none
expect_err "Input/output error"
unmount_img "$T/d"
echo OK
