#!/bin/bash
# imgfuse info --json speaks qemu-img's --output=json: for every format both
# read, and for backing chains (--backing-chain: an array, top first), the
# facts qemu-img shows (virtual-size, actual-size, format, filename,
# cluster-size, dirty-flag, backing-filename, full-backing-filename,
# backing-filename-format, format-specific type and qcow2's data,
# snapshots' names) have the same keys and values in ours.
. "$(dirname "$0")/../lib.sh"

cat > "$T/compare.py" <<'PY'
import json, sys
SHARED = ["virtual-size", "actual-size", "format", "filename", "cluster-size",
          "dirty-flag", "backing-filename", "full-backing-filename",
          "backing-filename-format"]
def one(q, o, where):
    for k in SHARED:
        assert (k in q) == (k in o), f"{where}: key {k}: qemu {k in q}, ours {k in o}"
        if k in q:
            assert q[k] == o[k], f"{where}: {k}: qemu {q[k]!r}, ours {o[k]!r}"
    if "format-specific" in q:
        fq, fo = q["format-specific"], o.get("format-specific", {})
        assert fq["type"] == fo.get("type"), f"{where}: format-specific type {fo}"
        if fq["type"] == "qcow2":
            for k, v in fq["data"].items():
                assert fo["data"].get(k) == v, f"{where}: format-specific {k}: qemu {v!r}, ours {fo['data'].get(k)!r}"
    sq = [s["name"] for s in q.get("snapshots", [])]
    so = [s["name"] for s in o.get("snapshots", [])]
    assert sq == so, f"{where}: snapshots qemu {sq}, ours {so}"
    assert "protocol" in o, where            # ours, under its own name
for case in open(sys.argv[1]).read().split("\n")[:-1]:
    qf, of, what = case.split(" ", 2)
    q, o = json.load(open(qf)), json.load(open(of))
    try:
        if isinstance(q, list):
            assert isinstance(o, list) and len(q) == len(o), f"chain: qemu {len(q)}, ours {len(o) if isinstance(o, list) else o}"
            for i, (a, b) in enumerate(zip(q, o)):
                one(a, b, f"chain[{i}]")
        else:
            one(q, o, "image")
    except AssertionError as e:
        sys.exit(f"{what}: {e}\nours: {json.dumps(o)}\nqemu-img's: {json.dumps(q)}")
PY

# same IMAGE [info options]: our JSON and qemu-img's, compared at the end
same() {
    local img=$1
    shift
    n=$((n + 1))
    qemu-img info -U --output=json "$@" "$img" > "$T/q.$n.json" 2>/dev/null
    "$IMGFUSE" info --json "$@" "$img" > "$T/o.$n.json" 2>/dev/null ||
        fail "imgfuse info --json $* $img failed"
    echo "$T/q.$n.json $T/o.$n.json $img $*" >> "$T/cases"
}

cd "$T"
n=0
for f in raw qcow2 qed vdi vpc vhdx vmdk qcow parallels; do
    qemu-img create -q -f "$f" "x.$f" 8M
    qemu-io -f "$f" -c "write -P 0x5a 1M 1M" "x.$f" >/dev/null
    same "x.$f"                 # a relative name, as given
done
same "$T/x.qcow2"
same "$T/x.vmdk"
for s in qemu-iotests/empty.bochs qemu-iotests/simple-pattern.cloop qemu-iotests/simple-dmg.dmg; do
    cp "$SHARED_IMAGES/public/$s" .
    same "$(basename "$s")"
done
# backing chains, relative and absolute names, with and without a format
qemu-img create -q -f qcow2 -b x.raw -F raw top.qcow2
qemu-img create -q -f qed -b top.qcow2 -F qcow2 top.qed
qemu-img create -q -f qcow2 -b "$T/x.qcow2" -F qcow2 top2.qcow2
qemu-img create -q -f qcow -b x.raw -F raw top.qcow
qemu-img create -q -f vmdk -b x.vmdk -F vmdk top.vmdk
mkdir -p sub && qemu-img create -q -f qcow2 -b ../x.qcow2 -F qcow2 sub/s.qcow2
for img in top.qcow2 top2.qcow2 top.qcow "$T/sub/s.qcow2"; do
    same "$img"
done
for img in top.qed top.vmdk sub/s.qcow2; do
    same "$img" --backing-chain
done
# dirty flags: qcow2's incompatible bit 0 (lazy refcounts), qed's need-check
qemu-img create -q -f qcow2 -o lazy_refcounts=on dirty.qcow2 8M
printf '\001' | dd of=dirty.qcow2 bs=1 seek=79 conv=notrunc status=none
printf '\002' | dd of=x.qed bs=1 seek=16 conv=notrunc status=none
same dirty.qcow2
grep -q '"dirty-flag": true' "$T/o.$n.json" || fail "dirty.qcow2: no dirty flag"
same x.qed
# internal snapshots
qemu-img snapshot -c first x.qcow2
qemu-img snapshot -c second x.qcow2
same x.qcow2
python3 "$T/compare.py" "$T/cases" || fail "imgfuse info --json differs from qemu-img's"
note "$n comparisons with qemu-img info --output=json"
echo ok
