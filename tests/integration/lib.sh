# Shared helpers for integration tests. Source it first thing:
#   . "$(dirname "$0")/../lib.sh"
# Gives: $IMGFUSE (the binary), $T (scratch dir, removed at exit with every
# mount made through mount_img unmounted), $DATA (tests/data), $SHARED_IMAGES.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMGFUSE=${IMGFUSE:-$ROOT/build/imgfuse}
DATA=$ROOT/tests/data
SHARED_IMAGES=${SHARED_IMAGES:-$ROOT/../shared/images}
T=$(mktemp -d "${TMPDIR:-/tmp}/imgfuse-test.XXXXXX")
_MOUNTS=()

_cleanup() {
    local m
    for m in "${_MOUNTS[@]}"; do
        if mountpoint -q "$m" 2>/dev/null || grep -q " $m fuse" /proc/mounts; then
            fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        fi
    done
    sleep 0.1
    rm -rf "$T"
}
trap _cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "  $*"; }

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# oracle_agrees IMAGE FMT SHADOW WHAT: qemu-img check finds IMAGE clean and
# qemu-img compare finds it equal to the raw SHADOW.
oracle_agrees() {
    qemu-img check -q "$1" || fail "$4: qemu-img check finds errors"
    qemu-img compare -q -f "$2" -F raw "$1" "$3" || fail "$4: differs from the shadow"
}

# crash_daemon PID MOUNTPOINT: kill -9 a daemon, take its mount down and wait
# until it has let go of its locks (a zombie waiting for its reaper has).
crash_daemon() {
    kill -9 "$1"
    fusermount3 -u "$2" 2>/dev/null || umount -l "$2" 2>/dev/null || true
    for _ in $(seq 1 200); do
        grep -qs "^State:.*[RSD]" /proc/"$1"/status || break
        sleep 0.02
    done
    rm -f "$T"/pid.*
}

# no_corruption IMAGE WHAT: qemu-img check finds no corruption (leaks are
# allowed: a crash may leave some).
no_corruption() {
    local rc=0
    qemu-img check -q "$1" >"$T/check" 2>&1 || rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 3 ] ||
        fail "$2: qemu-img check rc $rc: $(head -5 "$T/check")"
}

# vmdk_extents_made IMAGE DIR PREFIX N WHAT: `imgfuse create` of a 5G
# twoGbMaxExtentSparse vmdk at IMAGE put exactly PREFIX-s001..N in DIR.
vmdk_extents_made() {
    local i
    "$IMGFUSE" create -F vmdk -o subformat=twoGbMaxExtentSparse "$1" 5G \
        > /dev/null || fail "$5: vmdk twoGbMaxExtentSparse create failed"
    for i in $(seq 1 "$4"); do
        [ -f "$2/$3-s00$i.vmdk" ] || fail "$5: extent $3-s00$i.vmdk is not there"
    done
    [ ! -e "$2/$3-s00$(($4 + 1)).vmdk" ] || fail "$5: one extent too many"
}

# Data/hole ranges of a file as the kernel reports them (SEEK_DATA/SEEK_HOLE).
seek_map() {
    python3 - "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
off = 0
while off < size:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    print(d, h)
    off = h
EOF
}

# The same ranges from qemu-img map of an image (the oracle), merged.
qemu_data_map() {
    qemu-img map --output=json "$@" | python3 -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    if not e["data"]:
        continue
    s, t = e["start"], e["start"] + e["length"]
    if out and out[-1][1] == s:
        out[-1][1] = t
    else:
        out.append([s, t])
for s, t in out:
    print(s, t)'
}

# Run a command that must fail within SECS; its stderr goes to $T/err.
expect_fail_within() {
    local secs=$1; shift
    local start end rc
    start=$(date +%s.%N)
    set +e
    timeout -k 2 $((secs + 5)) "$@" > "$T/out" 2> "$T/err"
    rc=$?
    set -e
    end=$(date +%s.%N)
    [ $rc -ne 0 ] || fail "'$*' succeeded; expected a failure"
    [ $rc -ne 124 ] && [ $rc -ne 137 ] || fail "'$*' hung (killed after $((secs + 5)) s)"
    python3 -c "import sys; sys.exit(0 if $end - $start <= $secs else 1)" ||
        fail "'$*' took more than $secs s to fail"
}

expect_err() {
    grep -qF -- "$1" "$T/err" || fail "expected '$1' in the error, got: $(cat "$T/err")"
}

# expect_error FILE PATTERN [imgfuse info options...]: `imgfuse info` on
# FILE must fail within 20 s, without a signal, with PATTERN (grep regex) in
# its message ($T/err)
expect_error() {
    local img=$1 pattern=$2 rc=0
    shift 2
    timeout 20 "$IMGFUSE" info "$@" "$img" >/dev/null 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] || fail "$(basename "$img") opened; expected: $pattern"
    [ $rc -ne 124 ] || fail "$(basename "$img"): imgfuse hung"
    [ $rc -lt 128 ] || fail "$(basename "$img"): imgfuse died with signal $((rc - 128))"
    grep -q -- "$pattern" "$T/err" ||
        fail "$(basename "$img"): message '$(cat "$T/err")' lacks '$pattern'"
    note "$(basename "$img"): $(head -1 "$T/err")"
}

# info_survives FORMAT FILE...: `imgfuse info -F FORMAT` on each (damaged)
# FILE may fail, but never hang or die of a signal
info_survives() {
    local fmt=$1 f rc
    shift
    for f in "$@"; do
        rc=0
        timeout 20 "$IMGFUSE" info -F "$fmt" "$f" >/dev/null 2>&1 || rc=$?
        [ $rc -lt 124 ] || fail "$(basename "$f"): rc $rc (hang or crash)"
    done
}

# mirror_writes TARGET SHADOW SEED COUNT: the same random writes to both
mirror_writes() {
    python3 - "$@" <<'PY'
import os, random, sys
tgt, shadow, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
a = os.open(tgt, os.O_WRONLY)
b = os.open(shadow, os.O_WRONLY)
size = os.fstat(b).st_size
for i in range(count):
    ln = rnd.randint(1, 3 << 20 if i % 5 == 0 else 70000)
    off = rnd.randrange(size)
    ln = min(ln, size - off)
    buf = rnd.randbytes(ln)
    assert os.pwrite(a, buf, off) == ln
    os.pwrite(b, buf, off)
os.fsync(a)
PY
}

# mirror_parallel_writes TARGET SHADOW: 4 processes writing interleaved 64 KiB
# stripes (disjoint bytes, shared blocks), so allocations race
mirror_parallel_writes() {
    python3 - "$@" <<'PY'
import os, random, sys
from multiprocessing import Process
tgt, shadow, nproc, stripe = sys.argv[1], sys.argv[2], 4, 65536
size = os.path.getsize(shadow)
def worker(k):
    rnd = random.Random(k)
    a = os.open(tgt, os.O_WRONLY)
    b = os.open(shadow, os.O_WRONLY)
    for i in range(150):
        s = rnd.randrange(size // stripe)
        s += k - s % nproc
        if s * stripe >= size:
            continue
        off = s * stripe + rnd.randrange(stripe - 512)
        ln = min(rnd.randint(1, stripe), (s + 1) * stripe - off, size - off)
        buf = rnd.randbytes(ln)
        os.pwrite(a, buf, off)
        os.pwrite(b, buf, off)
    os.fsync(a)
ps = [Process(target=worker, args=(k,)) for k in range(nproc)]
for p in ps:
    p.start()
for p in ps:
    p.join()
    if p.exitcode:
        sys.exit(1)
PY
}

# Raw content hash of an image, by the oracle.
qemu_raw_sha() {
    local img=$1 fmt=${2:-}
    local out=$T/oracle.$RANDOM.raw
    if [ -n "$fmt" ]; then
        qemu-img convert -U -f "$fmt" -O raw "$img" "$out"
    else
        qemu-img convert -U -O raw "$img" "$out"
    fi
    sha "$out"; rm -f "$out"
}

# mount_img [imgfuse options...] SOURCE MOUNTPOINT: returns once live.
mount_img() {
    local mnt=${*: -1}
    _MOUNTS+=("$mnt")
    "$IMGFUSE" --pidfile "$T/pid.$(echo "$mnt" | md5sum | cut -c1-8)" "$@"
}

# unmount_img MOUNTPOINT: unmount and wait for the daemon to exit.
unmount_img() {
    local mnt=$1 pidf pid i
    pidf="$T/pid.$(echo "$mnt" | md5sum | cut -c1-8)"
    pid=$(cat "$pidf" 2>/dev/null || true)
    fusermount3 -u "$mnt"
    for i in $(seq 1 200); do
        # gone, or a zombie waiting for a slow reaper: either way exited
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null ||
           [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
            return 0
        fi
        sleep 0.05
    done
    fail "imgfuse for $mnt did not exit after unmount"
}

is_mounted() { grep -q " $1 fuse" /proc/mounts; }
