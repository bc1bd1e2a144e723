# Helpers for the lease tests, sourced after ../lib.sh. Not a test itself.
#
# A "host" is a mount namespace kept alive by a sleeping process: each has
# its own view of the shared storage at the same path ($VIEW), and its own
# FUSE mounts, which the other host does not see.
#   host_start NAME SETUP_CMD...   new namespace; SETUP_CMD runs in it
#   on NAME CMD...                 run CMD in NAME's namespace
#   host_mount NAME ARGS...        imgfuse ARGS in NAME; its pid in $T/NAME.MNT.pid
#   host_umount NAME MNT           unmount, wait for that daemon to exit
# getlk FILE: "TYPE PID" of a POSIX lock on byte 0 of FILE ("F_UNLCK 0"
# when none), from the kernel's table (/proc/locks), as F_GETLK would say.

declare -A HOST_PID=()
HOST_DAEMONS=()

host_start() {
    local name=$1; shift
    unshare -m --propagation private sleep 100000 &
    HOST_PID[$name]=$!
    local i
    for i in $(seq 1 100); do      # until unshare has exec'd into sleep
        [ "$(readlink /proc/${HOST_PID[$name]}/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] && break
        sleep 0.02
    done
    on "$name" "$@"
}

on() {
    local name=$1; shift
    nsenter -t "${HOST_PID[$name]}" -m -- "$@"
}

host_mount() {
    local name=$1; shift
    local mnt=${*: -1} pidf
    pidf="$T/$name.$(basename "$mnt").pid"
    rm -f "$pidf"
    on "$name" "$IMGFUSE" --pidfile "$pidf" "$@" || return $?
    HOST_DAEMONS+=("$(cat "$pidf")")
}

host_daemon() { cat "$T/$1.$(basename "$2").pid"; }

wait_exit() {
    local pid=$1 i
    for i in $(seq 1 200); do
        if ! kill -0 "$pid" 2>/dev/null ||
           [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
            return 0
        fi
        sleep 0.05
    done
    fail "pid $pid did not exit"
}

host_umount() {
    local name=$1 mnt=$2 pid
    pid=$(host_daemon "$name" "$mnt")
    on "$name" fusermount3 -u "$mnt"
    wait_exit "$pid"
}

hosts_stop() {
    local p
    for p in "${HOST_DAEMONS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${HOST_DAEMONS[@]}"; do
        wait_exit "$p" 2>/dev/null || kill -9 "$p" 2>/dev/null || true
    done
    for p in "${HOST_PID[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

getlk() {
    local d ino
    d=$(stat -L -c %d "$1") ino=$(stat -L -c %i "$1")
    awk -v dev="$(printf '%02x:%02x' $(( (d >> 8) & 0xfff )) $(( (d & 0xff) | ((d >> 12) & 0xfff00) )))" \
        -v ino="$ino" '
        $2 == "POSIX" && $6 == dev ":" ino && $7 == 0 {
            print ($4 == "WRITE" ? "F_WRLCK" : "F_RDLCK"), $5; found = 1; exit
        }
        END { if (!found) print "F_UNLCK 0" }' /proc/locks
}

# hold_lock ex|sh FILE READY: hold a POSIX lock on byte 0, length 1 of FILE
# the way virtlockd does (creating FILE 0600), touch READY, sleep; run it in
# the background and kill it to let go
hold_lock() {
    exec perl -MFcntl -e '
        sysopen(my $fh, $ARGV[1], O_RDWR | O_CREAT, 0600) or die "$ARGV[1]: $!";
        my $t = $ARGV[0] eq "ex" ? F_WRLCK : F_RDLCK;
        fcntl($fh, F_SETLK, pack("s s x4 q q i x4", $t, 0, 0, 1, 0)) or die "lock: $!";
        open(my $r, ">", $ARGV[2]) or die; close($r);
        sleep 600;' "$@"
}

# lease_name PATH: the lockd lease file name libvirt gives PATH
lease_name() { printf '%s' "$1" | sha256sum | cut -c1-64; }

# mount_refused_on HOST WHAT PATTERN ARGS...: imgfuse ARGS on HOST fails,
# with PATTERN (grep -E) in its message, and nothing is mounted there
mount_refused_on() {
    local host=$1 what=$2 pattern=$3 rc=0; shift 3
    local mnt=${*: -1}
    on "$host" "$IMGFUSE" "$@" 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] || fail "$what: mounted; expected a refusal"
    [ $rc -lt 128 ] || fail "$what: imgfuse died of signal $((rc - 128))"
    grep -Eq -- "$pattern" "$T/err" || fail "$what: message '$(cat "$T/err")' lacks '$pattern'"
    ! on "$host" grep -q " $mnt fuse" /proc/mounts || fail "$what: $mnt is mounted"
    note "ok: $what: $(head -c 300 "$T/err")"
}
