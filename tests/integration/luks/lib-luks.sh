# Helpers for the luks tests (sourced after ../lib.sh).
# $PW: a passphrase file; SEC: the --object option naming it "s".
printf 'pass phrase 1' > "$T/pw"
PW=$T/pw
SEC="secret,id=s,file=$PW"

# qemu_luks_sha IMAGE [SECRET_FILE]: qemu-img's raw content hash
qemu_luks_sha() {
    local out=$T/oracle.$RANDOM.raw
    qemu-img convert -U --object "secret,id=q,file=${2:-$PW}" --image-opts \
        "driver=luks,key-secret=q,file.filename=$1" -O raw "$out"
    sha "$out"; rm -f "$out"
}

# qemu_luks_create IMAGE SIZE OPTS: qemu-img create, retried with a longer
# iter-time when QEMU's PBKDF2 benchmark is too short to measure
qemu_luks_create() {
    local it
    for it in 10 100 500; do
        qemu-img create -q -f luks --object "$SEC" \
            -o "key-secret=s,iter-time=$it${3:+,$3}" "$1" "$2" 2>"$T/qerr" && return 0
        grep -q "accurate CPU usage" "$T/qerr" || break
    done
    fail "qemu-img create $3: $(cat "$T/qerr")"
}

# oracle_luks_raw IMAGE KEYFILE OUT: the payload decrypted by luks-oracle.py
# with the master key cryptsetup gives for KEYFILE (AES images)
oracle_luks_raw() {
    local mk
    mk=$(cryptsetup luksDump --dump-master-key -q --key-file "$2" "$1" |
         sed -n '/MK dump:/,$p' | sed 's/MK dump://' | tr -d ' \t\n')
    [ -n "$mk" ] || fail "cryptsetup gave no master key for $1"
    python3 "$(dirname "$0")/luks-oracle.py" "$1" "$mk" "$3"
}

# oracle_luks_sha IMAGE KEYFILE: the hash of that
oracle_luks_sha() {
    local out=$T/py.$RANDOM.raw
    oracle_luks_raw "$1" "$2" "$out"
    sha "$out"; rm -f "$out"
}

# our_sha IMAGE [KEYFILE]: mount read-only with the key, hash, unmount
our_sha() {
    local key=${2:-$PW}
    mount_img -r --object "secret,id=k,file=$key" -o key-secret=k "$1" "$T/m.raw"
    sha "$T/m.raw"
    unmount_img "$T/m.raw"
}
