#!/bin/bash
# The preallocate filter under a qcow2 image, watched from outside: the
# same writes through a mount without the filter give the lengths the
# image file must have (steps.py prints stat after each step). With the
# filter the file runs ahead of them by at most prealloc-size plus the
# alignment, on 1M boundaries; every flush and the unmount cut it back to
# exactly the unfiltered length, and the two images end byte-identical.
# The other forms (json SOURCE, -o file.driver=) build the same filter;
# --share-rw makes it pass through with one warning.
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
MiB=1048576

qemu-img create -q -f qcow2 "$T/plain.qcow2" 256M
for c in filt share json opt; do cp "$T/plain.qcow2" "$T/$c.qcow2"; done

run_steps() {   # IMAGE MOUNTED OUT [imgfuse options...]
    local img=$1 mnt=$2 out=$3
    shift 3
    mount_img "$@" "$img" "$mnt" 2>"$out.err"
    python3 "$here/steps.py" "$img" "$mnt" >"$out"
    unmount_img "$mnt"
}
run_steps "$T/plain.qcow2" "$T/p.raw" "$T/plain.steps"
run_steps "$T/filt.qcow2" "$T/f.raw" "$T/filt.steps" --preallocate=8M

python3 - "$T/plain.steps" "$T/filt.steps" <<'PY' || fail "lengths with the filter"
import sys
MiB = 1 << 20
plain = [l.split() for l in open(sys.argv[1])]
filt = [l.split() for l in open(sys.argv[2])]
assert [p[0] for p in plain] == [f[0] for f in filt], (plain, filt)
ahead = 0
for (step, n), (_, p) in zip(plain, filt):
    n, p = int(n), int(p)
    print(f"  {step:6} without {n:>10}  with {p:>10}")
    if step in ("open", "fsync", "close"):
        assert p == n, f"{step}: {p} != {n}: the tail must be cut"
        continue
    assert n <= p <= n + 9 * MiB, f"{step}: {p} not within 8M+1M ahead of {n}"
    assert p % MiB == 0 or p == n, f"{step}: {p} is not on a 1M boundary"
    ahead += p > n
assert ahead >= 4, f"only {ahead} steps ran ahead of the data"
PY
cmp "$T/plain.qcow2" "$T/filt.qcow2" || fail "the images differ after unmount"
qemu-img check -q "$T/filt.qcow2" || fail "qemu-img check finds errors"
expect_eq "$(qemu-img info --output=json "$T/filt.qcow2" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" \
    268435456 "qemu-img info's virtual size"
note "qcow2: ahead while writing, cut at fsync and unmount, identical image"

# --share-rw: another writer may resize, so the filter stands aside
run_steps "$T/share.qcow2" "$T/s.raw" "$T/share.steps" --preallocate --share-rw
cmp "$T/plain.steps" "$T/share.steps" || fail "--share-rw: lengths differ"
expect_eq "$(grep -c 'preallocate filter inactive' "$T/share.steps.err")" 1 \
    "--share-rw: warnings"
note "--share-rw: passes through, $(head -c 80 "$T/share.steps.err")..."

# the long forms, json SOURCE and -o file.driver=
j="json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"preallocate\",\"prealloc-size\":\"4M\",\"prealloc-align\":\"2M\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/json.qcow2\"}}}"
mount_img "$j" "$T/j.raw"
python3 "$here/steps.py" "$T/json.qcow2" "$T/j.raw" >"$T/json.steps"
unmount_img "$T/j.raw"
mount_img -o file.driver=preallocate,file.prealloc-size=4M,file.prealloc-align=2M \
    "$T/opt.qcow2" "$T/o.raw"
python3 "$here/steps.py" "$T/opt.qcow2" "$T/o.raw" >"$T/opt.steps"
unmount_img "$T/o.raw"
cmp "$T/json.steps" "$T/opt.steps" || fail "json and -o forms differ"
python3 - "$T/plain.steps" "$T/json.steps" <<'PY' || fail "lengths with the json form"
import sys
plain = [l.split() for l in open(sys.argv[1])]
other = [l.split() for l in open(sys.argv[2])]
MiB = 1 << 20
for (step, n), (_, p) in zip(plain, other):
    n, p = int(n), int(p)
    if step in ("open", "fsync", "close"):
        assert p == n, (step, p, n)
    else:
        assert n <= p <= n + 6 * MiB and (p == n or p % (2 * MiB) == 0), (step, p, n)
assert any(int(p) > int(n) for (_, n), (_, p) in zip(plain, other))
PY
cmp "$T/plain.qcow2" "$T/json.qcow2" || fail "json form: the images differ"
note "json SOURCE and -o file.driver=preallocate: 4M ahead on 2M, same image"
