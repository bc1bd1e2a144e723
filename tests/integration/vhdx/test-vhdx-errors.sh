#!/bin/bash
# Hostile and damaged vhdx files fail with a clear message, never a crash or
# a hang: corrupt headers and region tables, a truncated file, absurd block
# and disk sizes, BAT entries beyond the file, a parent loop, and a few
# hundred randomly damaged copies of a real image (each must open cleanly
# or fail with a message, and never kill imgfuse).
. "$(dirname "$0")/../lib.sh"

# expect_open_error FILE PATTERN
expect_open_error() {
    local img=$1 pattern=$2 rc=0
    "$IMGFUSE" info -F vhdx "$img" >/dev/null 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] || fail "$img opened; expected: $pattern"
    [ $rc -lt 128 ] || fail "$img: imgfuse died with signal $((rc - 128))"
    grep -q -- "$pattern" "$T/err" || fail "$img: message '$(cat "$T/err")' lacks '$pattern'"
    note "$(basename "$img"): $(head -1 "$T/err")"
}
# poke FILE OFFSET HEXBYTES
poke() { printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
fresh() { rm -f "$T/$1"; "$IMGFUSE" create -F vhdx -o block_size=1M "$T/$1" 64M >/dev/null; echo "$T/$1"; }

img=$(fresh headers.vhdx)
poke "$img" $((64 * 1024 + 100)) 01020304
poke "$img" $((128 * 1024 + 100)) 01020304
expect_open_error "$img" "both vhdx headers are corrupt"

img=$(fresh regions.vhdx)
poke "$img" $((192 * 1024 + 100)) 01020304
poke "$img" $((256 * 1024 + 100)) 01020304
expect_open_error "$img" "both vhdx region tables are corrupt"

img=$(fresh trunc.vhdx)
truncate -s 1536K "$img"
expect_open_error "$img" "truncated"
truncate -s 100K "$img"
expect_open_error "$img" "too small for a vhdx image"

# metadata items of our layout: file parameters at 2 MiB + 64 KiB
img=$(fresh blocksize.vhdx)
poke "$img" $((2 * 1048576 + 65536)) 00003000     # 3 MiB: not a power of two
expect_open_error "$img" "block size 3145728 is invalid"
img=$(fresh vsize.vhdx)
poke "$img" $((2 * 1048576 + 65536 + 32)) 00000000000000f0
expect_open_error "$img" "virtual size .* is invalid"
img=$(fresh lsec.vhdx)
poke "$img" $((2 * 1048576 + 65536 + 96)) 00040000
expect_open_error "$img" "logical sector size 1024 is invalid"

# BAT entry 1: fully present at 1 TiB
img=$(fresh bat.vhdx)
poke "$img" $((3 * 1048576 + 8)) 0600000000001000
expect_open_error "$img" "outside the file"

# not a vhdx at all
head -c 2M /dev/urandom >"$T/noise.vhdx"
expect_open_error "$T/noise.vhdx" "not a vhdx image"

# a parent loop: a's parent is b, b's parent is a
"$IMGFUSE" create -F vhdx "$T/base.vhdx" 8M >/dev/null
"$IMGFUSE" create -F vhdx -o parent="$T/base.vhdx" "$T/a.vhdx" 0 >/dev/null
"$IMGFUSE" create -F vhdx -o parent="$T/a.vhdx" "$T/b.vhdx" 0 >/dev/null
python3 - "$T/a.vhdx" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, 'rb').read())
old = '.\\base.vhdx'.encode('utf-16-le')
new = '.\\b.vhdx'.encode('utf-16-le')
i = d.index(old)
d[i:i + len(old)] = new + bytes(len(old) - len(new))
open(p, 'wb').write(d)
PY
expect_open_error "$T/b.vhdx" "loop"

# a parent that is not a vhdx any more is refused, not read as raw
"$IMGFUSE" create -F vhdx "$T/p2.vhdx" 8M >/dev/null
"$IMGFUSE" create -F vhdx -o parent="$T/p2.vhdx" "$T/c2.vhdx" 0 >/dev/null
head -c 8M /dev/urandom >"$T/p2.vhdx"
expect_open_error "$T/c2.vhdx" "not a vhdx image"

# random damage in the metadata of a real image (with its dirty log):
# any outcome but a crash or a hang
bunzip2 -c "$DATA/vhdx/iotest-dirtylog-10G-4M.vhdx.bz2" >"$T/orig.vhdx"
python3 - "$T/orig.vhdx" "$T/fz.vhdx" "$IMGFUSE" <<'PY'
import os, random, subprocess, sys
src, dst, imgfuse = sys.argv[1:4]
orig = open(src, 'rb').read(4 << 20)        # headers, log, metadata, BAT
r = random.Random(4)
bad = 0
for i in range(150):
    d = bytearray(orig)
    for _ in range(r.choice([1, 4, 16])):
        off = r.choice([r.randrange(0, 1 << 20), r.randrange(1 << 20, 4 << 20),
                        r.randrange(64 << 10, (64 << 10) + 128),
                        r.randrange(192 << 10, (192 << 10) + 128)])
        d[off] = r.randrange(256)
    with open(dst, 'r+b' if os.path.exists(dst) else 'wb') as f:
        f.write(d)
    if i == 0:
        os.truncate(dst, os.path.getsize(src))
    p = subprocess.run([imgfuse, 'info', '-F', 'vhdx', dst], capture_output=True,
                       timeout=20)
    if p.returncode < 0 or p.returncode >= 128:
        sys.exit(f"imgfuse died ({p.returncode}) on damaged copy {i}")
    if p.returncode and not p.stderr.strip():
        sys.exit(f"damaged copy {i} failed without a message")
    bad += p.returncode != 0
print(f"  damaged copies: {bad} of 150 refused with a message, the rest opened")
PY
echo ok
