#!/usr/bin/env python3
"""Crash rounds for an image of any writable format: mount it read-write, run writers (two
threads on disjoint stripes: writes and punched holes, an fsync every few
operations), SIGKILL the daemon once each writer has synced twice and a
random moment later, then require that qemu-img check finds no corruption
(leaks allowed) and that every operation a writer completed before one of
its fsyncs is in the image. Operations after a writer's last fsync may or
may not have landed: their bytes are not compared.
Usage: crash-rounds.py IMGFUSE IMAGE SCRATCH ROUNDS [FORMAT (default qed)]"""
import ctypes, os, random, signal, subprocess, sys, threading, time

imgfuse, image, scratch, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fmt = sys.argv[5] if len(sys.argv) > 5 else 'qed'
PUNCH = 0x02 | 0x01
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
mnt = os.path.join(scratch, 'crash.raw')
pidfile = os.path.join(scratch, 'crash.pid')
nthreads, stripe = 2, 256 << 10


def fail(msg):
    sys.exit('FAIL: ' + msg)


def image_bytes():
    out = os.path.join(scratch, 'crash-content.raw')
    subprocess.run(['qemu-img', 'convert', '-U', '-f', fmt, '-O', 'raw', image, out],
                   check=True)
    with open(out, 'rb') as f:
        data = f.read()
    os.unlink(out)
    return data


def gone(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            return not any(l.startswith('State:') and l.split()[1] in 'RSD' for l in f)
    except OSError:
        return True


def writer(t, fd, size, seed, log, synced):
    r = random.Random(seed * 10 + t)
    n = 0
    try:
        while True:
            s = r.randrange(size // stripe)
            s = s - s % nthreads + t
            if (s + 1) * stripe > size:
                continue
            ln = r.choice([512, 4096, 65536, r.randint(1, 150000)])
            off = s * stripe + r.randrange(stripe - ln + 1)
            if r.random() < 0.06:
                log.append((off, ln, None))
                if libc.fallocate(fd, PUNCH, off, ln) != 0:
                    return
            else:
                data = r.randbytes(ln)
                log.append((off, ln, data))
                os.pwrite(fd, data, off)
            n += 1
            if n % 7 == 0:
                done = len(log)
                os.fsync(fd)
                synced[t] = done
    except OSError:
        return


def one_round(k, base):
    subprocess.run([imgfuse, '--pidfile', pidfile, '-F', fmt, image, mnt], check=True)
    pid = int(open(pidfile).read())
    fd = os.open(mnt, os.O_RDWR)
    size = os.fstat(fd).st_size
    logs = [[] for _ in range(nthreads)]
    synced = [0] * nthreads
    ts = [threading.Thread(target=writer, args=(t, fd, size, k, logs[t], synced))
          for t in range(nthreads)]
    for th in ts:
        th.start()
    deadline = time.time() + 120
    while min(synced) < 14 and time.time() < deadline:
        time.sleep(0.01)
    if min(synced) < 14:
        fail('round %d: writers made no progress' % k)
    time.sleep(random.Random(k).random() * 0.3)
    os.kill(pid, signal.SIGKILL)
    for th in ts:
        th.join()
    try:
        os.close(fd)
    except OSError:
        pass
    if subprocess.run(['fusermount3', '-u', mnt], stderr=subprocess.DEVNULL).returncode:
        subprocess.run(['umount', '-l', mnt], stderr=subprocess.DEVNULL)
    for _ in range(500):
        if gone(pid):
            break
        time.sleep(0.02)
    if fmt == 'vhdx':
        # a vhdx killed while open for writing keeps its log: QEMU replays
        # it with check -r all (read-only opens refuse until then)
        subprocess.run(['qemu-img', 'check', '-q', '-r', 'all', '-f', fmt, image],
                       capture_output=True)
    rc = subprocess.run(['qemu-img', 'check', '-q', '-f', fmt, image], capture_output=True)
    # 3: leaks only; 63: qemu-img has no check for this format (vpc, qcow)
    if rc.returncode not in (0, 3, 63):
        fail('round %d: qemu-img check rc %d: %s' % (k, rc.returncode, rc.stdout + rc.stderr))
    got = image_bytes()
    want = bytearray(base)
    for t in range(nthreads):
        for i, (off, ln, data) in enumerate(logs[t]):
            if i < synced[t]:
                want[off:off + ln] = data if data is not None else bytes(ln)
            else:
                want[off:off + ln] = got[off:off + ln]
    if want != got:
        i = next(i for i in range(len(got)) if got[i] != want[i])
        fail('round %d: fsynced data lost at offset %d' % (k, i))
    print('round %d: %s ops, synced %s, check rc %d' %
          (k, [len(l) for l in logs], synced, rc.returncode))
    return got


base = image_bytes()
for k in range(1, rounds + 1):
    base = one_round(k, base)
