#!/usr/bin/env python3
"""Load test: two mounts under many processes at once.

  stress.py IMGFUSE SCRATCH [SECONDS (default 60)] [PROCS (default 8)]

- A: a qcow2 over a raw backing file, mounted read-write; PROCS processes
  each own a stripe of it and do random writes, zero writes and reads
  (every read checked against the process's own model of its stripe),
  with an fsync now and then.
- B: another qcow2 over the same backing file, mounted read-only; PROCS
  processes read random ranges and check them against B's content taken
  beforehand with qemu-img convert.
- Meanwhile qemu-img convert -U reads the backing file in a loop.
- The daemons' RSS is sampled every second: the peak and the first and
  last ten seconds are printed; "flat" means the last is within 20 % (plus
  8 MiB) of the first.
At the end A is unmounted, qemu-img check must find it clean and its
content must equal the models; any I/O error, mismatch, hang (a process
that stops making progress for 30 s) or growing RSS fails the run.
"""
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time

imgfuse, scratch = sys.argv[1], sys.argv[2]
seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 60
procs = int(sys.argv[4]) if len(sys.argv) > 4 else 8
SIZE = 256 << 20
STRIPE = SIZE // procs


def path(name):
    return os.path.join(scratch, name)


def run(*cmd):
    subprocess.run(cmd, check=True)


def rss_kib(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def writer(k, deadline, progress, errors):
    r = random.Random(k)
    base = k * STRIPE
    try:
        fd = os.open(path('a.raw'), os.O_RDWR)
        with open(path('base.raw'), 'rb') as f:
            f.seek(base)
            model = bytearray(f.read(STRIPE))
        n = 0
        while time.time() < deadline:
            ln = r.choice([512, 4096, 65536, r.randint(1, 300000)])
            off = r.randrange(STRIPE - ln)
            op = r.random()
            if op < 0.45:
                data = r.randbytes(ln)
                os.pwrite(fd, data, base + off)
                model[off:off + ln] = data
            elif op < 0.5:
                os.pwrite(fd, bytes(ln), base + off)
                model[off:off + ln] = bytes(ln)
            else:
                got = os.pread(fd, ln, base + off)
                if got != model[off:off + ln]:
                    errors.put('writer %d: read at %d (+%d) differs from what it wrote'
                               % (k, base + off, ln))
                    return
            n += 1
            if n % 50 == 0:
                os.fsync(fd)
            progress[k] = time.time()
        os.fsync(fd)
        if os.pread(fd, STRIPE, base) != model:
            errors.put('writer %d: its stripe differs from its model at the end' % k)
        with open(path('model.%d' % k), 'wb') as f:
            f.write(model)
        os.close(fd)
    except OSError as e:
        errors.put('writer %d: %s' % (k, e))


def reader(k, deadline, progress, errors):
    r = random.Random(1000 + k)
    try:
        fd = os.open(path('b.raw'), os.O_RDONLY)
        ref = os.open(path('b-ref.raw'), os.O_RDONLY)
        while time.time() < deadline:
            ln = r.choice([4096, 131072, r.randint(1, 1 << 20)])
            off = r.randrange(SIZE - ln)
            if os.pread(fd, ln, off) != os.pread(ref, ln, off):
                errors.put('reader %d: read at %d (+%d) differs from qemu-img' % (k, off, ln))
                return
            progress[procs + k] = time.time()
        os.close(fd)
        os.close(ref)
    except OSError as e:
        errors.put('reader %d: %s' % (k, e))


def mount(image, mnt, *opts):
    open(mnt, 'a').close()
    pidf = mnt + '.pid'
    run(imgfuse, '--pidfile', pidf, *opts, image, mnt)
    return int(open(pidf).read())


def main():
    with open(path('base.raw'), 'wb') as f:
        for _ in range(SIZE >> 20):
            f.write(os.urandom(1 << 20))
    for img in ('a', 'b'):
        run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', path('base.raw'),
            '-F', 'raw', path(img + '.qcow2'))
    # B gets content of its own, then its reference copy
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 8M 16M',
        '-c', 'write -z 64M 8M', path('b.qcow2')], check=True, stdout=subprocess.DEVNULL)
    run('qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', path('b.qcow2'), path('b-ref.raw'))
    pa = mount(path('a.qcow2'), path('a.raw'))
    pb = mount(path('b.qcow2'), path('b.raw'), '-r')
    deadline = time.time() + seconds
    progress = mp.Array('d', [time.time()] * (2 * procs))
    errors = mp.Queue()
    workers = [mp.Process(target=writer, args=(k, deadline, progress, errors)) for k in range(procs)]
    workers += [mp.Process(target=reader, args=(k, deadline, progress, errors)) for k in range(procs)]
    qimg = subprocess.Popen(['bash', '-c', 'while :; do qemu-io -r -U -f raw '
                             '-c "read 0 %d" "$0" >/dev/null || exit 1; done' % SIZE,
                             path('base.raw')])
    for w in workers:
        w.start()
    samples, stuck, fails = [], None, []
    while any(w.is_alive() for w in workers):
        time.sleep(1)
        samples.append(rss_kib(pa) + rss_kib(pb))
        now = time.time()
        late = [i for i in range(2 * procs) if now < deadline and now - progress[i] > 30]
        if late and stuck is None:
            stuck = 'processes %s made no progress for 30 s' % late
            for w in workers:
                w.kill()
    if qimg.poll() is not None:
        fails.append('qemu-io -U reading the backing file failed (exit %s)' % qimg.returncode)
    qimg.kill()
    qimg.wait()
    for w in workers:
        w.join()
    while not errors.empty():
        fails.append(errors.get())
    if stuck:
        fails.append(stuck)
    fails += ['a process ended with status %s' % w.exitcode for w in workers if w.exitcode]
    run('fusermount3', '-u', path('a.raw'))
    run('fusermount3', '-u', path('b.raw'))
    for _ in range(200):
        if not rss_kib(pa) and not rss_kib(pb):
            break
        time.sleep(0.05)
    check = subprocess.run(['qemu-img', 'check', '-q', path('a.qcow2')])
    if check.returncode:
        fails.append('qemu-img check of A: exit %d' % check.returncode)
    run('qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', path('a.qcow2'), path('a-out.raw'))
    with open(path('a-out.raw'), 'rb') as f:
        for k in range(procs):
            want = open(path('model.%d' % k), 'rb').read() if os.path.exists(path('model.%d' % k)) else None
            if want is not None and f.read(STRIPE) != want:
                fails.append('A after unmount: stripe %d differs from its writer\'s model' % k)
    first = samples[:10] or [0]
    last = samples[-10:] or [0]
    f_avg, l_avg = sum(first) / len(first), sum(last) / len(last)
    flat = l_avg <= f_avg * 1.2 + 8192
    print('stress: %d s, %d writers + %d readers; RSS of both daemons: peak %d KiB, '
          'first 10 s %.0f KiB, last 10 s %.0f KiB (%s)'
          % (seconds, procs, procs, max(samples or [0]), f_avg, l_avg, 'flat' if flat else 'GROWING'))
    print('stress: RSS every second (KiB): ' + ' '.join(str(s) for s in samples))
    if not flat:
        fails.append('the daemons\' memory grew')
    for f in fails:
        print('FAIL: ' + f)
    return 1 if fails else 0


if __name__ == '__main__':
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
