#!/bin/bash
# TLS: PSK against nbdkit and qemu-nbd, X.509 against nbdkit; a plaintext
# client refused by a TLS-only server, a TLS client by a plain server, a
# wrong PSK identity and a wrong CA get clear errors; info never prints the
# key.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/nbd-lib.sh"

pki=$NBD_S/pki
make_pki "$pki"
psk_key=$(cut -d: -f2 "$pki/keys.psk")

p1=$(free_port)
start_nbdkit psk -i 127.0.0.1 -p "$p1" --tls=require --tls-psk="$pki/keys.psk" memory 8M
p2=$(free_port)
start_nbdkit x509 -i 127.0.0.1 -p "$p2" --tls=require --tls-certificates="$pki" memory 8M
img=$T/disk.raw
truncate -s 4M "$img"
qemu-io -f raw -c 'write -P 0x42 1M 64k' "$img" >/dev/null
start_qemu_nbd qpsk -k "$NBD_S/q.sock" \
    --object "tls-creds-psk,id=tls0,endpoint=server,dir=$pki" --tls-creds tls0 \
    -f raw -x disk "$img"

note "PSK (nbdkit, TCP): write through the mount, read back with nbdcopy"
u1="nbds://alice@127.0.0.1:$p1/?tls-psk-file=$pki/keys.psk"
mount_img -F raw "$u1" "$T/m1"
head -c 1M /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/m1" bs=64k seek=16 conv=notrunc,fsync status=none
nbdcopy "$u1" "$T/e1.raw"
cmp "$T/m1" "$T/e1.raw" || fail "PSK mount and export differ"
cmp <(dd if="$T/e1.raw" bs=64k skip=16 count=16 status=none) "$T/pat" ||
    fail "PSK export lacks the written data"
unmount_img "$T/m1"

note "X.509 (nbdkit, TCP)"
u2="nbds://localhost:$p2/?tls-certificates=$pki"
mount_img -F raw "$u2" "$T/m2"
dd if="$T/pat" of="$T/m2" conv=notrunc,fsync status=none
nbdcopy "$u2" "$T/e2.raw"
cmp "$T/m2" "$T/e2.raw" || fail "X.509 mount and export differ"
unmount_img "$T/m2"

note "PSK (qemu-nbd, unix socket)"
u3="nbds+unix://alice@/disk?socket=$NBD_S/q.sock&tls-psk-file=$pki/keys.psk"
mount_img -r -F raw "$u3" "$T/m3"
cmp "$T/m3" "$img" || fail "qemu-nbd TLS mount differs from the image"
unmount_img "$T/m3"

note "info names the TLS mode but never the key"
"$IMGFUSE" info -F raw "$u1" > "$T/info" 2>&1 || fail "info failed: $(cat "$T/info")"
grep -qi psk "$T/info" || fail "info does not say psk: $(cat "$T/info")"
! grep -q "$psk_key" "$T/info" || fail "info prints the PSK key"

note "plaintext to a TLS-only server, TLS to a plain one, wrong PSK identity"
expect_fail_within 10 "$IMGFUSE" info -F raw "nbd://127.0.0.1:$p1/"
expect_err "requires TLS"
p3=$(free_port)
start_nbdkit plain -i 127.0.0.1 -p "$p3" memory 1M
expect_fail_within 10 "$IMGFUSE" info -F raw "nbds://127.0.0.1:$p3/?tls-psk-file=$pki/keys.psk"
expect_err "does not offer TLS"
expect_fail_within 10 "$IMGFUSE" info -F raw "nbds://mallory@127.0.0.1:$p1/?tls-psk-file=$pki/keys.psk"
expect_err "TLS"
! grep -q "$psk_key" "$T/err" || fail "an error message prints the PSK key"

note "a CA that did not sign the server's certificate, a missing directory"
mkdir "$NBD_S/other"
certtool --generate-privkey --key-type=ecdsa --outfile "$NBD_S/other/ca-key.pem" 2>/dev/null
certtool --generate-self-signed --load-privkey "$NBD_S/other/ca-key.pem" \
    --template "$pki/ca.info" --outfile "$NBD_S/other/ca-cert.pem" 2>/dev/null
expect_fail_within 10 "$IMGFUSE" info -F raw "nbds://localhost:$p2/?tls-certificates=$NBD_S/other"
expect_err "hold the CA that signed the server's certificate"
expect_fail_within 10 "$IMGFUSE" info -F raw "nbds://localhost:$p2/?tls-certificates=$NBD_S/none"
expect_err "is not a directory"
echo OK
