/*
 * The FUSE operations: one request in, core calls, exactly one reply out,
 * all in the worker that took the request. In single-file mode the root
 * inode is the raw image; in directory mode inode 1 is a directory and
 * inodes 2.. are the images.
 */
#include "fusefs.h"
#include "core/overflow.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define FUSEFS_MAX_IO (1u << 20)
#define ATTR_TIMEOUT 1.0
/* Below this, pread+writev beats the two splice calls and the pipe. */
#define FUSEFS_SPLICE_MIN (64u << 10)

static struct fusefs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static struct fusefs_file *file_of(struct fusefs *fs, fuse_ino_t ino)
{
    if (!fs->dir_mode)
        return ino == FUSE_ROOT_ID ? &fs->files[0] : NULL;
    if (ino < 2 || ino - 2 >= fs->nfiles)
        return NULL;
    return &fs->files[ino - 2];
}

/* Whose node state and gathered writes serve ff's I/O. */
static struct fusefs_file *io_of(struct fusefs_file *ff)
{
    return ff->io ? ff->io : ff;
}

/* The file's size: a partition's own length, else the image's. */
static int64_t file_size(struct fusefs_file *ff)
{
    return ff->is_slice ? (int64_t)ff->slice_len : bd_size(ff->node);
}

int fusefs_file_init(struct fusefs_file *ff, const char *name, struct bd_node *n,
                     const struct stat *img_st)
{
    memset(ff, 0, sizeof(*ff));
    ff->name = strdup(name);
    if (!ff->name)
        return -ENOMEM;
    ff->node = n;
    ff->read_only = n->flags.read_only;
    pthread_mutex_init(&ff->meta_lock, NULL);
    wc_init(&ff->wc);
    ff->mode = S_IFREG | (img_st->st_mode & 07777);
    ff->uid = img_st->st_uid;
    ff->gid = img_st->st_gid;
    ff->atime = img_st->st_atim;
    ff->mtime = img_st->st_mtim;
    ff->ctime = img_st->st_ctim;
    return 0;
}

void fusefs_file_fini(struct fusefs_file *ff)
{
    pthread_mutex_destroy(&ff->meta_lock);
    wc_fini(&ff->wc);
    free(ff->name);
}

/* Cap the walk so a pathological map cannot stall getattr: past the cap
 * the rest counts as data, which is always a safe answer. */
#define BLOCKS_WALK_MAX 1000000

uint64_t fusefs_allocated_bytes(struct fusefs_file *ff)
{
    struct fusefs_file *io = io_of(ff);
    uint64_t gen = atomic_load(&io->write_gen);
    pthread_mutex_lock(&ff->meta_lock);
    if (ff->blocks_valid && ff->blocks_gen == gen) {
        uint64_t v = ff->blocks_cache;
        pthread_mutex_unlock(&ff->meta_lock);
        return v;
    }
    pthread_mutex_unlock(&ff->meta_lock);

    wc_flush_range(io, 0, UINT64_MAX);      /* gathered bytes count too */
    int64_t size = file_size(ff);
    uint64_t off = 0, data = 0, base = ff->slice_off;
    unsigned steps = 0;
    while (size > 0 && off < (uint64_t)size) {
        uint64_t pnum;
        unsigned st;
        if (++steps > BLOCKS_WALK_MAX ||
            bd_block_status_above(ff->node, base + off, (uint64_t)size - off,
                                  &pnum, &st) < 0 ||
            pnum == 0) {
            data += (uint64_t)size - off;
            break;
        }
        if (!(st & BD_STATUS_ZERO))
            data += pnum;
        off += pnum;
    }
    pthread_mutex_lock(&ff->meta_lock);
    ff->blocks_cache = data;
    ff->blocks_gen = gen;
    ff->blocks_valid = true;
    pthread_mutex_unlock(&ff->meta_lock);
    return data;
}

static void touch_content(struct fusefs_file *ff)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    atomic_fetch_add(&io_of(ff)->write_gen, 1);
    pthread_mutex_lock(&ff->meta_lock);
    ff->mtime = ff->ctime = now;
    pthread_mutex_unlock(&ff->meta_lock);
}

static int file_stat(struct fusefs_file *ff, fuse_ino_t ino, struct stat *st)
{
    int64_t size = file_size(ff);
    if (size < 0)
        return (int)-size;
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_nlink = 1;
    st->st_size = size;
    st->st_blocks = (blkcnt_t)((fusefs_allocated_bytes(ff) + 511) / 512);
    uint32_t bs = ff->node->lim.opt_transfer;
    st->st_blksize = bs >= 512 && bs <= (1u << 21) ? bs : 4096;
    pthread_mutex_lock(&ff->meta_lock);
    st->st_mode = ff->mode;
    st->st_uid = ff->uid;
    st->st_gid = ff->gid;
    st->st_atim = ff->atime;
    st->st_mtim = ff->mtime;
    st->st_ctim = ff->ctime;
    pthread_mutex_unlock(&ff->meta_lock);
    return 0;
}

static int node_stat(struct fusefs *fs, fuse_ino_t ino, struct stat *st)
{
    if (fs->dir_mode && ino == FUSE_ROOT_ID) {
        *st = fs->dir_st;
        st->st_ino = FUSE_ROOT_ID;
        return 0;
    }
    struct fusefs_file *ff = file_of(fs, ino);
    return ff ? file_stat(ff, ino, st) : ENOENT;
}

/* ---- init / attributes ---- */

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
    struct fusefs *fs = userdata;
    conn->max_write = FUSEFS_MAX_IO;
    /* the same as the max_read mount option: libfuse insists they agree */
    conn->max_read = fs->max_read;
    conn->max_readahead = FUSEFS_MAX_IO;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
    if (fs->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
        conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    else
        conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    /* Our size only changes through us: no need to re-read it on reads. */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
        conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    (void)fi;
    int e = node_stat(fs_of(req), ino, &st);
    if (e)
        fuse_reply_err(req, e);
    else
        fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void set_time(struct timespec *dst, const struct timespec *src, bool now)
{
    if (now)
        clock_gettime(CLOCK_REALTIME, dst);
    else
        *dst = *src;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    struct fusefs *fs = fs_of(req);
    struct fusefs_file *ff = file_of(fs, ino);
    (void)fi;
    if (!ff) {
        fuse_reply_err(req, fs->dir_mode && ino == FUSE_ROOT_ID ? EPERM : ENOENT);
        return;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        wc_flush_range(io_of(ff), 0, UINT64_MAX);
        int64_t size = file_size(ff);
        if (ff->read_only) {
            fuse_reply_err(req, EROFS);
            return;
        }
        if (size < 0 || (uint64_t)size != (uint64_t)attr->st_size) {
            struct bd_err err = { 0 };
            if (!ff->node->flags.growable || ff->is_slice) {
                fuse_reply_err(req, EPERM);
                return;
            }
            int r = bd_truncate(ff->node, (uint64_t)attr->st_size,
                                BD_PREALLOC_OFF, &err);
            if (r < 0) {
                log_warn("%s", err.msg);
                fuse_reply_err(req, -r);
                return;
            }
            touch_content(ff);
        }
    }
    pthread_mutex_lock(&ff->meta_lock);
    if (to_set & FUSE_SET_ATTR_MODE)
        ff->mode = S_IFREG | (attr->st_mode & 07777);
    if (to_set & FUSE_SET_ATTR_UID)
        ff->uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID)
        ff->gid = attr->st_gid;
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
        set_time(&ff->atime, &attr->st_atim, to_set & FUSE_SET_ATTR_ATIME_NOW);
    if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
        set_time(&ff->mtime, &attr->st_mtim, to_set & FUSE_SET_ATTR_MTIME_NOW);
    clock_gettime(CLOCK_REALTIME, &ff->ctime);
    pthread_mutex_unlock(&ff->meta_lock);
    fs_getattr(req, ino, NULL);
}

/* ---- directory mode ---- */

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fusefs *fs = fs_of(req);
    struct fuse_entry_param e;
    if (!fs->dir_mode || parent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    for (size_t i = 0; i < fs->nfiles; i++) {
        if (strcmp(fs->files[i].name, name) == 0) {
            memset(&e, 0, sizeof(e));
            e.ino = i + 2;
            e.attr_timeout = e.entry_timeout = ATTR_TIMEOUT;
            int err = node_stat(fs, e.ino, &e.attr);
            if (err)
                fuse_reply_err(req, err);
            else
                fuse_reply_entry(req, &e);
            return;
        }
    }
    fuse_reply_err(req, ENOENT);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct fusefs *fs = fs_of(req);
    (void)fi;
    if (!fs->dir_mode || ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    char *buf = calloc(1, size);
    size_t used = 0;
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    for (size_t i = (size_t)off; i < fs->nfiles + 2; i++) {
        struct stat st = { 0 };
        const char *name;
        if (i == 0) {
            name = ".";
            st.st_ino = FUSE_ROOT_ID;
            st.st_mode = S_IFDIR;
        } else if (i == 1) {
            name = "..";
            st.st_ino = FUSE_ROOT_ID;
            st.st_mode = S_IFDIR;
        } else {
            name = fs->files[i - 2].name;
            st.st_ino = i;
            st.st_mode = S_IFREG;
        }
        size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st,
                                        (off_t)(i + 1));
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fusefs *fs = fs_of(req);
    if (!fs->dir_mode || ino != FUSE_ROOT_ID)
        fuse_reply_err(req, ENOTDIR);
    else
        fuse_reply_open(req, fi);
}

/* ---- files ---- */

/* fi->fh of a handle whose I/O skips the page cache (direct_io) */
#define FH_DIRECT 1u

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fusefs *fs = fs_of(req);
    struct fusefs_file *ff = file_of(fs, ino);
    if (!ff) {
        fuse_reply_err(req, fs->dir_mode && ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY && ff->read_only) {
        fuse_reply_err(req, EROFS);
        return;
    }
    /* O_TRUNC leaves the size alone, as on a block device: cp and dd
     * rewrite the content anyway. */
    if ((fi->flags & O_ACCMODE) == O_WRONLY && fs->direct_wronly) {
        /* A write-only opener (dd of=, cp into the mount) gains nothing
         * from the kernel copying its data into the page cache on the way
         * to us, and that copy halves the speed of large writes: its
         * writes come straight through. Cached pages other opens hold are
         * invalidated as they are overwritten (fs_write). */
        fi->direct_io = 1;
        /* libfuse (3.14) gives write and release no direct_io flag: the
         * handle itself remembers it (FH_DIRECT) */
        fi->fh = FH_DIRECT;
        fuse_reply_open(req, fi);
        return;
    }
    atomic_fetch_add(&ff->cached_opens, 1);
    uint64_t gen = atomic_load(&ff->direct_gen);
    bool keep = fs->keep_cache;
    pthread_mutex_lock(&ff->meta_lock);
    if (ff->cache_gen != gen) {
        keep = false;               /* written past the cache since */
        ff->cache_gen = gen;
    }
    pthread_mutex_unlock(&ff->meta_lock);
    fi->keep_cache = keep;
    if (fuse_reply_open(req, fi) != 0)
        atomic_fetch_sub(&ff->cached_opens, 1);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fusefs_file *ff = file_of(fs_of(req), ino);
    if (ff && fi->fh != FH_DIRECT)
        atomic_fetch_sub(&ff->cached_opens, 1);
    fuse_reply_err(req, 0);
}

/* One I/O buffer per worker thread, freed when the worker ends. */
static pthread_key_t io_buf_key;
static pthread_once_t io_buf_once = PTHREAD_ONCE_INIT;

static void io_buf_key_init(void)
{
    (void)pthread_key_create(&io_buf_key, free);
}

static void *worker_buf(void)
{
    pthread_once(&io_buf_once, io_buf_key_init);
    void *b = pthread_getspecific(io_buf_key);
    if (!b) {
        if (posix_memalign(&b, 4096, FUSEFS_MAX_IO) != 0)
            return NULL;
        if (pthread_setspecific(io_buf_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    return b;
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fusefs_file *ff = file_of(fs_of(req), ino);
    (void)fi;
    if (!ff) {
        fuse_reply_err(req, EBADF);
        return;
    }
    int64_t isize = file_size(ff);
    if (isize < 0) {
        fuse_reply_err(req, (int)-isize);
        return;
    }
    if (off < 0 || (uint64_t)off >= (uint64_t)isize) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if ((uint64_t)size > (uint64_t)isize - (uint64_t)off)
        size = (size_t)((uint64_t)isize - (uint64_t)off);
    off += (off_t)ff->slice_off;            /* from here on, on the node */
    wc_flush_range(io_of(ff), (uint64_t)off, size);
    int fd;
    uint64_t fd_off;
    if (size >= FUSEFS_SPLICE_MIN && fs_of(req)->splice &&
        bd_map_fd(ff->node, (uint64_t)off, size, &fd, &fd_off) == 0) {
        /* The bytes are a run of a host file: let the kernel move them
         * from its page cache to the reply without a copy through us. */
        struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
        bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
        bv.buf[0].fd = fd;
        bv.buf[0].pos = (off_t)fd_off;
        fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
        bd_map_fd_done(ff->node);
        return;
    }
    void *buf = size <= FUSEFS_MAX_IO ? worker_buf() : NULL;
    bool own = false;
    if (!buf) {
        if (posix_memalign(&buf, 4096, size) != 0) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        own = true;
    }
    int r = bd_pread(ff->node, buf, size, (uint64_t)off);
    if (r < 0) {
        if (ff->node->io_errors++ == 0)
            log_err("%s: read of %zu bytes at %lld failed: %s", ff->node->name,
                    size, (long long)off, strerror(-r));
        fuse_reply_err(req, r == -EINVAL ? EIO : -r);
    } else {
        fuse_reply_buf(req, buf, size);
    }
    if (own)
        free(buf);
}

static int map_write_err(int r)
{
    switch (r) {
    case -ENOSPC: case -EROFS: case -EFBIG: case -EPERM: case -ENOMEM:
    case -EDQUOT: case -EOPNOTSUPP:
        return -r;
    default:
        return EIO;
    }
}

/* A change of content through ff at [off, off + len) of ff: the whole
 * disk and its partitions are separate inodes over the same bytes, so
 * pages the kernel cached of the others' views of that range are stale:
 * dropped now from open files, at the next open from the others.
 * (A mount with kernel write caching shows no partitions: see mount.c.) */
void fusefs_inval_aliases(struct fusefs *fs, struct fusefs_file *ff,
                          uint64_t off, uint64_t len)
{
    struct fusefs_file *io = io_of(ff);
    uint64_t a = ff->slice_off + off, b = a + len;
    if (!fs->dir_mode || !fs->has_slices)
        return;
    for (size_t i = 0; i < fs->nfiles; i++) {
        struct fusefs_file *o = &fs->files[i];
        if (o == ff || io_of(o) != io)
            continue;
        uint64_t lo = o->slice_off, hi = o->is_slice ? lo + o->slice_len : UINT64_MAX;
        if (b <= lo || a >= hi)
            continue;
        atomic_fetch_add(&o->direct_gen, 1);    /* its next open drops the cache */
        if (atomic_load(&o->cached_opens) == 0)
            continue;
        uint64_t s0 = a > lo ? a : lo, s1 = b < hi ? b : hi;
        fuse_lowlevel_notify_inval_inode(fs->se, (fuse_ino_t)(i + 2),
                                         (off_t)(s0 - lo), (off_t)(s1 - s0));
    }
}

/* A write through a handle that skips the page cache: pages other opens
 * cached of that range are stale now. Opens made later drop the cache
 * (fs_open); open ones lose the range here, before the writer hears back.
 * Pages of a mount without kernel write caching are never dirty, so the
 * kernel invalidates without calling back into us. */
static void past_cache(struct fusefs *fs, struct fusefs_file *ff, fuse_ino_t ino,
                       const struct fuse_file_info *fi, uint64_t off, size_t size)
{
    fusefs_inval_aliases(fs, ff, off, size);
    if (fi->fh != FH_DIRECT)
        return;
    atomic_fetch_add(&ff->direct_gen, 1);
    if (atomic_load(&ff->cached_opens) > 0)
        fuse_lowlevel_notify_inval_inode(fs->se, ino, (off_t)off, (off_t)size);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                     off_t off, struct fuse_file_info *fi)
{
    struct fusefs_file *ff = file_of(fs_of(req), ino);
    if (!ff) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (ff->read_only) {
        fuse_reply_err(req, EROFS);
        return;
    }
    int64_t isize = file_size(ff);
    if (isize < 0) {
        fuse_reply_err(req, (int)-isize);
        return;
    }
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    /* A disk does not grow: a write at the end is ENOSPC, one that crosses
     * it is short. Growable images grow instead. */
    if (!ff->node->flags.growable || ff->is_slice) {
        if ((uint64_t)off >= (uint64_t)isize) {
            if (size)
                fuse_reply_err(req, ENOSPC);
            else
                fuse_reply_write(req, 0);
            return;
        }
        if ((uint64_t)size > (uint64_t)isize - (uint64_t)off)
            size = (size_t)((uint64_t)isize - (uint64_t)off);
    }
    unsigned flags = (fi->flags & (O_SYNC | O_DSYNC)) ? BD_REQ_FUA : 0;
    struct fusefs *fs = fs_of(req);
    struct fusefs_file *io = io_of(ff);
    uint64_t noff = ff->slice_off + (uint64_t)off;     /* on the node */
    if (fs->write_combine && !flags && (uint64_t)size <= (uint64_t)isize &&
        (uint64_t)off <= (uint64_t)isize - (uint64_t)size) {
        int w = wc_write(fs, io, buf, size, noff);
        if (w == 1) {
            past_cache(fs, ff, ino, fi, (uint64_t)off, size);
            touch_content(ff);
            fuse_reply_write(req, size);
            return;
        }
        if (w < 0) {
            fuse_reply_err(req, map_write_err(w));
            return;
        }
    }
    /* gathered bytes this write overlaps must not land after it */
    wc_flush_range(io, noff, size);
    int r = bd_pwrite(ff->node, buf, size, noff, flags);
    if (r < 0) {
        if (ff->node->io_errors++ == 0 && r != -EPERM)
            log_err("%s: write of %zu bytes at %lld failed: %s", ff->node->name,
                    size, (long long)off, strerror(-r));
        fuse_reply_err(req, map_write_err(r));
        return;
    }
    past_cache(fs, ff, ino, fi, (uint64_t)off, size);
    touch_content(ff);
    fuse_reply_write(req, size);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fusefs_file *ff = file_of(fs_of(req), ino);
    (void)fi;
    if (!ff) {
        fuse_reply_err(req, EBADF);
        return;
    }
    /* close(2) does not promise durability; fsync does. Still push our
     * gathered writes and metadata caches to the file so other readers see
     * a whole image, and tell close of a write that failed. */
    int w = ff->read_only ? 0 : wc_flush(io_of(ff));
    int r = ff->read_only ? 0 : bd_flush(ff->node);
    if (r == 0)
        r = w;
    fuse_reply_err(req, r < 0 ? (r == -ENOSPC ? ENOSPC : EIO) : 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
    struct fusefs_file *ff = file_of(fs_of(req), ino);
    (void)datasync;
    (void)fi;
    if (!ff) {
        fuse_reply_err(req, EBADF);
        return;
    }
    int w = ff->read_only ? 0 : wc_flush(io_of(ff));
    int r = ff->read_only ? 0 : bd_flush(ff->node);
    if (r < 0)
        log_err("%s: flush failed: %s", ff->node->name, strerror(-r));
    else
        r = w;
    fuse_reply_err(req, r < 0 ? (r == -ENOSPC ? ENOSPC : EIO) : 0);
}

/* fallocate mode 0: make sure the range is allocated. */
static int allocate_range(struct fusefs_file *ff, uint64_t off, uint64_t len)
{
    uint64_t end = off + len;
    while (off < end) {
        uint64_t pnum;
        unsigned st;
        int r = bd_block_status_above(ff->node, off, end - off, &pnum, &st);
        if (r < 0)
            return r;
        if (pnum == 0)
            break;
        if (!(st & BD_STATUS_DATA)) {
            r = bd_pwrite_zeroes(ff->node, pnum, off, 0);
            if (r < 0)
                return r;
        }
        off += pnum;
    }
    return 0;
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
                         off_t len, struct fuse_file_info *fi)
{
    struct fusefs_file *ff = file_of(fs_of(req), ino);
    uint64_t end;
    int r;
    (void)fi;
    if (!ff) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (ff->read_only) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (off < 0 || len <= 0 || ovf_add_u64((uint64_t)off, (uint64_t)len, &end)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE |
                FALLOC_FL_UNSHARE_RANGE)) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    wc_flush_range(io_of(ff), 0, UINT64_MAX);
    int64_t isize = file_size(ff);
    if (isize < 0) {
        fuse_reply_err(req, (int)-isize);
        return;
    }
    bool keep = mode & FALLOC_FL_KEEP_SIZE;
    if (end > (uint64_t)isize) {
        if (keep) {
            if ((uint64_t)off >= (uint64_t)isize) {
                fuse_reply_err(req, 0);
                return;
            }
            end = (uint64_t)isize;
        } else if (!ff->node->flags.growable || ff->is_slice) {
            fuse_reply_err(req, ENOSPC);
            return;
        }
    }
    uint64_t rel = (uint64_t)off;                      /* in the file */
    off += (off_t)ff->slice_off;                       /* on the node */
    end += ff->slice_off;
    if (mode & FALLOC_FL_PUNCH_HOLE) {
        if (!keep) {
            fuse_reply_err(req, EINVAL);
            return;
        }
        r = bd_pwrite_zeroes(ff->node, end - (uint64_t)off, (uint64_t)off,
                             BD_REQ_MAY_UNMAP);
    } else if (mode & FALLOC_FL_ZERO_RANGE) {
        r = bd_pwrite_zeroes(ff->node, end - (uint64_t)off, (uint64_t)off, 0);
    } else if (mode == 0 || mode == FALLOC_FL_KEEP_SIZE) {
        r = 0;
        if (end > (uint64_t)isize && !ff->is_slice) {
            struct bd_err err = { 0 };
            r = bd_truncate(ff->node, end, BD_PREALLOC_OFF, &err);
            /* with the kernel's write-back cache our size can lag behind
             * the file's (extending pages not written back yet): a
             * format sized in sectors then refuses an end inside the
             * file; its next sector boundary is still inside it */
            if (r == -EINVAL && end % BD_SECTOR)
                r = bd_truncate(ff->node, bd_align_up(end, BD_SECTOR),
                                BD_PREALLOC_OFF, &(struct bd_err){ 0 });
        }
        if (r == 0)
            r = allocate_range(ff, (uint64_t)off, end - (uint64_t)off);
    } else {
        r = -EOPNOTSUPP;
    }
    if (r == 0) {
        touch_content(ff);
        fusefs_inval_aliases(fs_of(req), ff, rel, end - (uint64_t)off);
    }
    fuse_reply_err(req, r < 0 ? map_write_err(r) : 0);
}

static void fs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    struct fusefs_file *ff = file_of(fs_of(req), ino);
    (void)fi;
    if (!ff) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    wc_flush_range(io_of(ff), 0, UINT64_MAX);
    int64_t size = file_size(ff);
    if (size < 0 || off < 0 || (uint64_t)off >= (uint64_t)size) {
        fuse_reply_err(req, ENXIO);
        return;
    }
    uint64_t pos = (uint64_t)off;
    while (pos < (uint64_t)size) {
        uint64_t pnum;
        unsigned st;
        int r = bd_block_status_above(ff->node, ff->slice_off + pos,
                                      (uint64_t)size - pos, &pnum, &st);
        if (r < 0 || pnum == 0) {
            /* Unknown: everything is data, as the safe answer. */
            if (whence == SEEK_DATA)
                fuse_reply_lseek(req, (off_t)pos);
            else
                fuse_reply_lseek(req, size);
            return;
        }
        bool hole = st & BD_STATUS_ZERO;
        if ((whence == SEEK_DATA && !hole) || (whence == SEEK_HOLE && hole)) {
            fuse_reply_lseek(req, (off_t)pos);
            return;
        }
        pos += pnum;
    }
    if (whence == SEEK_DATA)
        fuse_reply_err(req, ENXIO);
    else
        fuse_reply_lseek(req, size);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct fusefs *fs = fs_of(req);
    struct statvfs sv;
    uint64_t total = 0, used = 0;
    (void)ino;
    for (size_t i = 0; i < fs->nfiles; i++) {
        if (fs->files[i].shares_node)
            continue;                   /* a partition: counted in its disk */
        int64_t s = file_size(&fs->files[i]);
        total += s > 0 ? (uint64_t)s : 0;
        used += fusefs_allocated_bytes(&fs->files[i]);
    }
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = sv.f_frsize = 4096;
    sv.f_blocks = total / 4096;
    sv.f_bfree = sv.f_bavail = (total - (used < total ? used : total)) / 4096;
    sv.f_files = fs->nfiles + (fs->dir_mode ? 1 : 0);
    sv.f_namemax = 255;
    fuse_reply_statfs(req, &sv);
}

void fusefs_ops(struct fuse_lowlevel_ops *ops)
{
    memset(ops, 0, sizeof(*ops));
    ops->init = fs_init;
    ops->lookup = fs_lookup;
    ops->getattr = fs_getattr;
    ops->setattr = fs_setattr;
    ops->opendir = fs_opendir;
    ops->readdir = fs_readdir;
    ops->open = fs_open;
    ops->release = fs_release;
    ops->read = fs_read;
    ops->write = fs_write;
    ops->flush = fs_flush;
    ops->fsync = fs_fsync;
    ops->fallocate = fs_fallocate;
    ops->lseek = fs_lseek;
    ops->statfs = fs_statfs;
}
