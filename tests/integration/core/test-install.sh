#!/bin/bash
# meson install into a scratch DESTDIR: the installed binary runs, its bash
# completion loads and completes, mount -t fuse.imgfuse runs the installed
# imgfuse, the systemd unit is there, and a daemon with NOTIFY_SOCKET sends
# READY=1 only once its mount answers (a socket of the test's own stands in
# for systemd).
. "$(dirname "$0")/../lib.sh"

BUILD=$(dirname "$IMGFUSE")
dest=$T/dest
DESTDIR=$dest meson install -C "$BUILD" --no-rebuild --quiet >"$T/install.log" 2>&1 \
    || fail "meson install: $(tail -5 "$T/install.log")"
prefix=$(meson introspect "$BUILD" --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
bin=$dest$prefix/bin/imgfuse
[ -x "$bin" ] || fail "no installed binary at $bin"
"$bin" --version | grep -q '^imgfuse ' || fail "installed binary does not run"
ls "$dest$prefix"/share/man/man1/imgfuse.1* >/dev/null || fail "no man page installed"
comp=$dest$prefix/share/bash-completion/completions/imgfuse
[ -f "$comp" ] || fail "no bash completion installed"
unit=$dest$prefix/lib/systemd/system/imgfuse@.service
[ -f "$unit" ] || fail "no systemd unit installed"
grep -q '^Type=notify$' "$unit" || fail "unit is not Type=notify"
grep -q "^ExecStart=$prefix/bin/imgfuse -f " "$unit" || fail "unit ExecStart: $(grep ExecStart "$unit")"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$unit" 2>&1 | grep -iE 'unknown|invalid|syntax' && fail "unit does not verify"
fi

# completion: loads, and completes subcommands, formats and options
out=$(cd "$T" && PATH=$dest$prefix/bin:$PATH bash --norc --noprofile -c '
    source "$1"
    complete -p imgfuse || exit 3
    COMP_WORDS=(imgfuse cre); COMP_CWORD=1; _imgfuse; echo "sub: ${COMPREPLY[*]}"
    COMP_WORDS=(imgfuse -F qc); COMP_CWORD=2; _imgfuse; echo "fmt: ${COMPREPLY[*]}"
    COMP_WORDS=(imgfuse --over); COMP_CWORD=1; _imgfuse; echo "opt: ${COMPREPLY[*]}"
    COMP_WORDS=(imgfuse li); COMP_CWORD=1; _imgfuse; echo "list: ${COMPREPLY[*]}"
' _ "$comp") || fail "completion does not load: $out"
echo "$out" | grep -q '^complete -F _imgfuse imgfuse$' || fail "complete -p: $out"
echo "$out" | grep -qx 'sub: create' || fail "subcommand completion: $out"
echo "$out" | grep -q '^fmt: .*qcow2' || fail "format completion: $out"
echo "$out" | grep -q '^fmt: .*qcow\b' || fail "format completion: $out"
echo "$out" | grep -qx 'opt: --overlay=' || fail "option completion: $out"
echo "$out" | grep -qx 'list: list' || fail "list completion: $out"

# mount(8) -> mount.fuse3 -> `imgfuse`, looked up in mount's fixed PATH
# (/usr/local/sbin first): in a mount namespace of the test's own, the
# installed bin directory is bound there, so that what runs is the
# installed binary and no other test sees it.
img=$T/disk.qcow2
qemu-img create -q -f qcow2 "$img" 8M
qemu-io -f qcow2 -c 'write -P 0x62 0 4k' "$img" >/dev/null
touch "$T/m1"
unshare -m --propagation private bash -c '
    set -e
    mount --bind "$1" /usr/local/sbin
    mount -t fuse.imgfuse -o ro,format=qcow2 "$2" "$3"
    head -c 4 "$3"; echo
    pid=$(pgrep -nf "imgfuse.* $3")
    stat -L -c %i "/proc/$pid/exe"
    grep " $3 " /proc/self/mounts | cut -d" " -f3
    umount "$3"
' _ "$dest$prefix/bin" "$img" "$T/m1" >"$T/m1.out" 2>&1 || fail "mount -t fuse.imgfuse: $(cat "$T/m1.out")"
expect_eq "$(sed -n 1p "$T/m1.out")" bbbb "content through mount(8)"
expect_eq "$(sed -n 2p "$T/m1.out")" "$(stat -c %i "$bin")" "inode of the binary mount(8) ran"
expect_eq "$(sed -n 3p "$T/m1.out")" fuse.imgfuse "file system type"

# readiness: READY=1 arrives on NOTIFY_SOCKET, and by then the mount answers
sock=$T/notify.sock
cat > "$T/listen.py" <<'PY'
import os, socket, sys
sock, mnt, before = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock)
s.settimeout(20)
print("bound", flush=True)
msg = s.recv(4096).decode()
answered = os.stat(mnt).st_dev != before
print("msg=" + msg.replace("\n", "|"))
print("answered=%d" % answered, flush=True)
PY
touch "$T/m2"
before=$(stat -c %d "$T/m2")
python3 "$T/listen.py" "$sock" "$T/m2" "$before" >"$T/notify.out" &
lpid=$!
for i in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || fail "notify listener did not start"
_MOUNTS+=("$T/m2")
NOTIFY_SOCKET=$sock "$bin" -f -F qcow2 "$img" "$T/m2" 2>"$T/daemon.err" &
dpid=$!
wait "$lpid" || fail "no notification: $(cat "$T/notify.out") $(cat "$T/daemon.err")"
grep -q '^msg=READY=1' "$T/notify.out" || fail "first notification is not READY=1: $(cat "$T/notify.out")"
grep -qx 'answered=1' "$T/notify.out" || fail "READY=1 before the mount answered"
expect_eq "$(head -c 4 "$T/m2")" bbbb "content of the notified mount"
fusermount3 -u "$T/m2"
wait "$dpid" || fail "daemon exit status $?"
echo ok
