#!/bin/bash
# --object secret (QEMU's syntax) on every command, in -o for mount(8) and
# fstab, and --key-prompt on a terminal: bad specs are explained without
# showing the secret, inline data= warns and never stays in the daemon's
# command line, info and errors never show a passphrase.
. "$(dirname "$0")/../lib.sh"

img=$T/disk.img
qemu-img create -q -f raw "$img" 1M

# bad specs: exit 2, a message naming what to fix, never the secret
bad() {  # SPEC PATTERN
    local rc=0
    "$IMGFUSE" info --object "$1" "$img" >/dev/null 2>"$T/err" || rc=$?
    expect_eq "$rc" 2 "exit status for --object $1"
    expect_err "$2"
    if grep -q hunter "$T/err"; then fail "secret shown: $(cat "$T/err")"; fi
}
bad "secret,id=k" "exactly one of data=STRING or file=PATH"
bad "secret,data=hunter2" "id=ID"
bad "secret,id=k,data=hunter2,hunter3" "a comma inside data= is written ',,'"
bad "secret,id=k,data=hunt*r2,format=base64" "not valid base64"
bad "secret,id=k,file=$T/missing" "$T/missing"
bad "secret,id=k,fille=/x" "did you mean 'file'"
bad "iothread,id=k" "only secret objects"
rc=0
"$IMGFUSE" info --object secret,id=k,data=a --object secret,id=k,data=b \
    "$img" >/dev/null 2>"$T/err" || rc=$?
expect_eq "$rc" 2 "a duplicate id"
expect_err "defined twice"

# every command takes --object; data= warns, file= does not
printf 'pass\n' > "$T/key"
"$IMGFUSE" info --object "secret,id=k,file=$T/key" "$img" >/dev/null 2>"$T/err"
[ ! -s "$T/err" ] || fail "file= secret printed: $(cat "$T/err")"
"$IMGFUSE" check --object secret,id=k,data=hunter2 "$img" >/dev/null 2>"$T/err" || true
expect_err "warning: --object secret,id=k,data=...: a secret given inline is visible"
if grep -q hunter "$T/err"; then fail "secret shown: $(cat "$T/err")"; fi
"$IMGFUSE" create -F raw --object secret,id=k,format=base64,data=aHVudGVyMg== \
    "$T/new.img" 1M 2>"$T/err"
expect_err "visible to other users"

# the daemon's command line keeps no inline secret, from --object or -o
mount_img -r -F raw --object secret,id=a,data=hunter2,,x "$img" "$T/m1"
mount_img -o ro,format=raw,object=secret,id=b,data=hunter3 "$img" "$T/m2"
for m in m1 m2; do
    pid=$(cat "$T/pid.$(echo "$T/$m" | md5sum | cut -c1-8)")
    tr '\0' ' ' < "/proc/$pid/cmdline" > "$T/cmdline"
    grep -q "object" "$T/cmdline" || fail "not the daemon's cmdline: $(cat "$T/cmdline")"
    if grep -q hunter "$T/cmdline"; then fail "secret in ps: $(cat "$T/cmdline")"; fi
    if ps -ww -o args= -p "$pid" | grep -q hunter; then fail "secret in ps"; fi
    unmount_img "$T/$m"
done

# an encrypted image (qemu-img makes it) opened through each way of giving
# the passphrase; the passphrase never shows in output, errors or ps
pw=hunter2-$RANDOM
printf '%s' "$pw" > "$T/pw"
enc=$T/enc.qcow2
qemu-img create -q -f qcow2 --object "secret,id=k,file=$T/pw" \
    -o encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10 "$enc" 1M
qemu-io --object "secret,id=k,file=$T/pw" --image-opts \
    "driver=qcow2,file.filename=$enc,encrypt.key-secret=k" -c "write -P 0x61 0 4k" >/dev/null
"$IMGFUSE" info --json --object "secret,id=k,data=$pw" -o encrypt.key-secret=k \
    "$enc" > "$T/out" 2>"$T/err"
grep -q '"encrypt.format": "luks"' "$T/out" || fail "info --json: $(cat "$T/out")"
"$IMGFUSE" info --object "secret,id=k,format=base64,data=$(printf '%s' "$pw" | base64)" \
    "json:{\"driver\":\"qcow2\",\"encrypt.key-secret\":\"k\",\"file\":{\"driver\":\"file\",\"filename\":\"$enc\"}}" \
    >> "$T/out" 2>>"$T/err" || fail "json: with encrypt.key-secret: $(cat "$T/err")"
"$IMGFUSE" info --object "secret,id=k,file=$T/pw" \
    "driver=qcow2,encrypt.key-secret=k,file.filename=$enc" >> "$T/out" 2>>"$T/err" ||
    fail "dotted encrypt.key-secret: $(cat "$T/err")"
printf 'nope' > "$T/bad"
"$IMGFUSE" info --object "secret,id=k,file=$T/bad" -o encrypt.key-secret=k "$enc" \
    >>"$T/out" 2>>"$T/err" && fail "a wrong passphrase opened"
if grep -q "$pw\|nope" "$T/out" "$T/err"; then fail "a passphrase in output or errors"; fi

# the fstab form, through mount.fuse3 as mount(8) runs it: the options field
# "noauto,format=qcow2,object=secret,id=k,file=PW,encrypt.key-secret=k"
mkdir -p "$T/bin"; ln -s "$IMGFUSE" "$T/bin/imgfuse"
touch "$T/mf"; _MOUNTS+=("$T/mf")
PATH=$T/bin:$PATH mount.fuse3 "imgfuse#$enc" "$T/mf" \
    -o "noauto,format=qcow2,object=secret,id=k,file=$T/pw,encrypt.key-secret=k" ||
    fail "mount.fuse3 with an object=secret option"
expect_eq "$(head -c 4 "$T/mf")" aaaa "content through the fstab form"
pid=$(pgrep -n -f "imgfuse.*$T/mf" || true)
[ -n "$pid" ] || fail "no daemon for $T/mf"
if grep -q "$pw" "/proc/$pid/cmdline" "/proc/$pid/environ" 2>/dev/null; then
    fail "passphrase in the daemon's command line or environment"
fi
fusermount3 -u "$T/mf"

# --key-prompt: on a terminal (a pty), without echo; without one, an error
# naming the option to use
python3 - "$IMGFUSE" "$enc" "$pw" "$T/mp" > "$T/pty" <<'PY' || fail "prompt: $(cat "$T/pty")"
import os, pty, sys, time, select
imgfuse, img, pw, mnt = sys.argv[1:]
def run(args, answer):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(imgfuse, [imgfuse] + args)
    out = b''
    deadline = time.time() + 30
    sent = False
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not sent and b'Passphrase for' in out:
            os.write(fd, answer.encode() + b'\n')
            sent = True
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st), out.decode(errors='replace')
rc, out = run(['info', '--key-prompt', img], pw)
assert rc == 0 and 'encrypt.format: luks' in out, (rc, out)
assert pw not in out, 'passphrase echoed: ' + out
assert 'Passphrase for ' + img in out, out
rc, out = run(['info', '--key-prompt', img], 'wrong')
assert rc != 0 and 'no key slot matches the passphrase' in out, (rc, out)
open(mnt, 'w').close()
rc, out = run(['--key-prompt', img, mnt], pw)
assert rc == 0, (rc, out)
print('prompt ok')
PY
_MOUNTS+=("$T/mp")
expect_eq "$(head -c 4 "$T/mp")" aaaa "content after --key-prompt"
fusermount3 -u "$T/mp"
rc=0
setsid -w "$IMGFUSE" info --key-prompt "$enc" </dev/null >/dev/null 2>"$T/err" || rc=$?
expect_eq "$rc" 1 "exit status of --key-prompt without a terminal"
expect_err "--key-prompt: no terminal to ask for the passphrase on; use --object secret,id=ID,file=PATH with encrypt.key-secret=ID"
"$IMGFUSE" info "$enc" >/dev/null 2>"$T/err" && fail "opened with no secret"
expect_err "no secret is given: use --object secret,id=ID,file=PATH with encrypt.key-secret=ID, or --key-prompt"
echo ok
