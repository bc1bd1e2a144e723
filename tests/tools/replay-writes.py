#!/usr/bin/python3
"""Crash points from a write log: rebuilds an image as a power cut could
have left it, from the initial copy of the image and the log the logwrites
filter kept (drivers/filter/logwrites/logwrites.h), and checks every such
image with qemu-img.

Replay points: each flush point k (every record before flush k, in order),
and RANDOM points between flush k and k+1 (all before flush k, plus a random
subset, in random order, of the writes between the two flushes: what a disk
cache or the host page cache may have kept of them). The last point is the
whole log; it must equal FINAL (the image as the mount left it).

At each point: qemu-img info opens the image, qemu-img check finds no
corruption (leaks allowed; vhdx: check -r all first replays its log, as
QEMU needs), and with --journal, every guest write acknowledged before the
last guest fsync the point covers is there. A guest fsync is covered when
the last flush record between the log sizes the workload saw at fsync start
and return is in the point. Bytes guest writes touched after that fsync
may be old or new and are not compared.

usage: replay-writes.py -f FMT [--journal J] [--random N] [--seed S]
                        INITIAL LOG FINAL SCRATCH
JOURNAL: JSON lines from the workload: ["w", off, len, seed] (data is
random.Random(seed).randbytes(len)) and ["fsync", logsize0, logsize1].
Exit 0 when every point passes; 1 with the first failure explained."""
import argparse, json, os, random, re, shutil, struct, subprocess, sys

HDR, REC = 16, 24
WRITE, ZEROES, DISCARD, FLUSH, TRUNCATE = 1, 2, 3, 4, 5


def fail(msg):
    sys.exit('FAIL: ' + msg)


def read_log(path):
    """[(type, off, len, data_pos, end_pos)] in log order."""
    with open(path, 'rb') as f:
        buf = f.read()
    if len(buf) < HDR or buf[:8] != b'IMGFLOGW' or buf[8] != 1:
        fail('%s: not a logwrites log (version 1)' % path)
    recs, p = [], HDR
    while p < len(buf):
        if p + REC > len(buf):
            fail('%s: record cut short at byte %d' % (path, p))
        typ, _flags, off, ln = struct.unpack_from('<IIQQ', buf, p)
        data = p + REC
        end = data + (ln if typ == WRITE else 0)
        if typ not in (WRITE, ZEROES, DISCARD, FLUSH, TRUNCATE) or end > len(buf):
            fail('%s: bad record at byte %d (type %d)' % (path, p, typ))
        recs.append((typ, off, ln, data, end))
        p = end
    return buf, recs


def apply(fd, buf, rec):
    typ, off, ln, data, _ = rec
    if typ == WRITE:
        os.pwrite(fd, buf[data:data + ln], off)
    elif typ in (ZEROES, DISCARD):
        # the file protocol punches or zeroes: either reads back as zeroes
        for p in range(off, off + ln, 1 << 20):
            os.pwrite(fd, bytes(min(1 << 20, off + ln - p)), p)
    elif typ == TRUNCATE:
        os.ftruncate(fd, off)


def qimg(*args):
    r = subprocess.run(['qemu-img'] + list(args), capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


class Journal:
    """The guest's writes and fsyncs, and what a replay point must hold."""

    def __init__(self, path, initial, fmt, scratch):
        self.events = [json.loads(l) for l in open(path) if l.strip()]
        self.base = guest_bytes(initial, fmt, scratch)

    def prepare(self, flushes):
        """For each guest fsync, the last flush record between the log sizes
        seen at its start and return: the flush that made it durable."""
        self.fsyncs = []
        for i, e in enumerate(self.events):
            if e[0] != 'fsync':
                continue
            inside = [p for p in flushes if e[1] <= p and p + REC <= e[2]]
            if not inside:
                fail('guest fsync event #%d (log %d..%d) reached no flush of '
                     'the file' % (i, e[1], e[2]))
            self.fsyncs.append((i, inside[-1]))

    def covered(self, flush_pos):
        """Index in events of the last guest fsync made durable by a flush at
        or before log position flush_pos (-1: none)."""
        last = -1
        for i, p in self.fsyncs:
            if p <= flush_pos:
                last = i
        return last

    def expect(self, upto, got):
        """The first offset where got lacks a write acknowledged before event
        upto, or None."""
        want = bytearray(self.base)
        for e in self.events[:max(upto, 0)]:
            if e[0] == 'w':
                want[e[1]:e[1] + e[2]] = random.Random(e[3]).randbytes(e[2])
        for e in self.events[max(upto, 0):]:
            if e[0] == 'w':
                want[e[1]:e[1] + e[2]] = got[e[1]:e[1] + e[2]]
        if want == got:
            return None
        return next(i for i in range(len(got)) if got[i] != want[i])


def guest_bytes(img, fmt, scratch):
    out = os.path.join(scratch, 'guest.raw')
    rc, msg = qimg('convert', '-f', fmt, '-O', 'raw', img, out)
    if rc:
        return None
    with open(out, 'rb') as f:
        data = f.read()
    os.unlink(out)
    return data


def qed_needs_check(img):
    """QED_F_NEED_CHECK (0x2) in the header's features (byte 16): the
    tables may point past the data written, and the spec (Consistency
    checking) has the next read-write open check and repair them; QEMU's
    does."""
    with open(img, 'rb') as f:
        head = f.read(24)
    return len(head) == 24 and struct.unpack_from('<Q', head, 16)[0] & 2


def check_point(a, img, what, journal, upto):
    # what QEMU's first read-write open does: vhdx replays its log, a qed
    # marked need-check is checked and repaired; a qed not so marked must
    # be consistent as it is
    if a.format == 'vhdx' or (a.format == 'qed' and qed_needs_check(img)):
        qimg('check', '-q', '-r', 'all', '-f', a.format, img)
    rc, msg = qimg('info', '-f', a.format, img)
    if rc:
        return '%s: qemu-img info fails: %s' % (what, msg[-400:])
    rc, msg = qimg('check', '-f', a.format, img)
    # 3: leaks only; 63: qemu-img has no check for this format (vpc)
    if rc not in (0, 3, 63):
        return '%s: qemu-img check rc %d: %s' % (what, rc, msg[-600:])
    if journal:
        got = guest_bytes(img, a.format, a.scratch)
        if got is None:
            return '%s: qemu-img convert cannot read the image' % what
        bad = journal.expect(upto, got)
        if bad is not None:
            return ('%s: byte %d lacks a write acknowledged before guest fsync '
                    'event #%d' % (what, bad, upto))
    return None


def known_bug(regex, err):
    """err matches the known bug's regex; when it has groups named lo and
    hi, only while lo < hi (the harmless direction of a count mismatch)."""
    m = re.search(regex, err) if regex else None
    if m and 'lo' in m.groupdict():
        return int(m.group('lo')) < int(m.group('hi'))
    return m is not None


def main():
    p = argparse.ArgumentParser()
    p.add_argument('-f', '--format', required=True)
    p.add_argument('--journal')
    p.add_argument('--random', type=int, default=2)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--known-bug', metavar='REGEX',
                   help='a failure matching REGEX is a known bug: printed '
                   'as KNOWN BUG, not counted as a failure (groups lo and hi: '
                   'only when lo < hi)')
    p.add_argument('initial'), p.add_argument('log')
    p.add_argument('final'), p.add_argument('scratch')
    a = p.parse_args()
    buf, recs = read_log(a.log)
    flush_idx = [i for i, r in enumerate(recs) if r[0] == FLUSH]
    flush_pos = [recs[i][3] - REC for i in flush_idx]
    journal = Journal(a.journal, a.initial, a.format, a.scratch) if a.journal else None
    if journal:
        journal.prepare(flush_pos)
    rnd = random.Random(a.seed)
    base = os.path.join(a.scratch, 'replay-base')
    work = os.path.join(a.scratch, 'replay-point')
    shutil.copyfile(a.initial, base)
    bfd = os.open(base, os.O_RDWR)
    points = failures = known = 0
    bounds = [-1] + flush_idx + [len(recs)]

    def run(what, extra, upto):
        nonlocal points, failures, known
        shutil.copyfile(base, work)
        fd = os.open(work, os.O_RDWR)
        for r in extra:
            apply(fd, buf, r)
        os.close(fd)
        points += 1
        err = check_point(a, work, what, journal, upto)
        if err and known_bug(a.known_bug, err):
            known += 1
            if known == 1:
                print('KNOWN BUG: ' + err, flush=True)
            return None
        if err:
            failures += 1
            print(err, flush=True)
            shutil.copyfile(work, os.path.join(a.scratch, 'failed-%d' % failures))
        return err

    for k in range(len(bounds) - 1):
        # base holds every record up to and including flush k (k=0: none)
        between = recs[bounds[k] + 1:bounds[k + 1]]
        done_pos = flush_pos[k - 1] if k > 0 else -1
        upto = journal.covered(done_pos) if journal else 0
        writes = [r for r in between if r[0] != FLUSH]
        if k == 0 or bounds[k] - bounds[k - 1] > 1:
            # (after two flushes in a row the image is the one just checked)
            run('seed %d flush point %d' % (a.seed, k), [], upto)
        for j in range(a.random if len(writes) > 1 else 0):
            pick = [r for r in writes if rnd.random() < 0.5]
            rnd.shuffle(pick)
            what = ('seed %d between flushes %d and %d, random point %d (%d of '
                    '%d records)' % (a.seed, k, k + 1, j, len(pick), len(writes)))
            run(what, pick, upto)
        for r in between:
            apply(bfd, buf, r)
        if failures >= 3:
            break
    os.close(bfd)
    if not failures:
        with open(base, 'rb') as f1, open(a.final, 'rb') as f2:
            if f1.read() != f2.read():
                fail('the whole log replayed differs from the final image: the '
                     'log misses something that reached the file')
        run('seed %d whole log' % a.seed, [], len(journal.events) if journal else 0)
    print('%d records, %d flushes, %d points, %d failed%s' %
          (len(recs), len(flush_idx), points, failures,
           ', %d known bug' % known if known else ''))
    sys.exit(1 if failures else 0)


main()
