/*  tl_source: turns a list of files into chunks of whole lines for the ventilator.

    Three layers, each pulling from the one below:
    - a reader backend (source_uring.c or source_sync.c, chosen once in tl_source_new)
      hands out the file bytes as blocks in pooled buffers;
    - the stream layer passes plain blocks through and inflates gzip files (detected by
      their magic bytes) into pooled buffers of the same shape (source_gz.c);
    - the chunker cuts each block after its last LF. The unfinished line after that LF
      (the carry) is copied into the free headroom in front of the next block, so the
      block's bulk is never copied and a chunk is a slice of the buffer it was read
      into. Chunks share their buffer by reference count and the buffer goes back to the
      pool when the last chunk on it is released (possibly from ZeroMQ's I/O thread).

    A chunk may run 1/8 over chunk_size before it is cut, so that a block plus the tail
    carried into it goes out whole rather than leaving a tiny chunk behind. A line is
    counted with its LF when compared with max_line (the bytes it takes in a chunk). A
    carry that outgrows the headroom (a line longer than 64 KiB) moves to a one-off
    buffer that grows until the line ends: rare, so copying is fine there.             */

#include "source_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MIB              (1024 * 1024)
#define S_DEFAULT_CHUNK    (1 * S_MIB)
#define S_DEFAULT_MAX_LINE (16 * S_MIB)
#define S_DEFAULT_DEPTH    8
#define S_MIN_BLOCK        4096          //  Reads never smaller (tiny chunk sizes cut blocks)
#define S_MAX_BLOCK        (64 * S_MIB)  //  Reads never larger (bounds buffer memory)
#define S_MAX_HEADROOM     (64 * 1024)   //  Carries up to this length are copied in front
#define S_PAGE             4096

//  --------------------------------------------------------------------------
//  tl_buf and its pool

struct _tl__pool_t {
    pthread_mutex_t lock;  //  Guards the rest: buffers come back from other threads
    size_t cap;            //  Bytes per buffer
    unsigned keep;         //  Idle buffers kept at most
    tl_buf_t **idle;       //  Idle buffers, ready for reuse
    unsigned nidle;        //  Entries in idle
    size_t out;            //  Buffers handed out and not back yet
    bool closed;           //  The source is gone: free buffers as they come back
};

static void s_buf_free (tl_buf_t *buf)
{
    free (buf->mem);
    free (buf);
}

//  A buffer with one reference; pool buffers are page aligned so reads copy fast.
static tl_buf_t *s_buf_new (tl__pool_t *pool, size_t cap)
{
    tl_buf_t *buf = malloc (sizeof *buf);
    if (!buf) return NULL;
    buf->mem = pool ? aligned_alloc (S_PAGE, (cap + S_PAGE - 1) / S_PAGE * S_PAGE) : malloc (cap);
    if (!buf->mem) {
        free (buf);
        return NULL;
    }
    atomic_init (&buf->refs, 1);
    buf->pool = pool;
    buf->cap = cap;
    return buf;
}

tl_buf_t *tl__buf_new (size_t cap)
{
    return s_buf_new (NULL, cap ? cap : 1);
}

static void s_pool_free (tl__pool_t *pool)
{
    pthread_mutex_destroy (&pool->lock);
    free (pool->idle);
    free (pool);
}

tl__pool_t *tl__pool_new (size_t cap, unsigned keep)
{
    tl__pool_t *pool = calloc (1, sizeof *pool);
    if (!pool) return NULL;
    pool->idle = calloc (keep, sizeof *pool->idle);
    if (!pool->idle) {
        free (pool);
        return NULL;
    }
    pthread_mutex_init (&pool->lock, NULL);
    pool->cap = cap;
    pool->keep = keep;
    return pool;
}

tl_buf_t *tl__pool_get (tl__pool_t *pool)
{
    pthread_mutex_lock (&pool->lock);
    tl_buf_t *buf = pool->nidle ? pool->idle[--pool->nidle] : NULL;
    pool->out++;
    pthread_mutex_unlock (&pool->lock);
    if (buf)
        atomic_store_explicit (&buf->refs, 1, memory_order_relaxed);
    else if (!(buf = s_buf_new (pool, pool->cap))) {
        pthread_mutex_lock (&pool->lock);
        pool->out--;
        pthread_mutex_unlock (&pool->lock);
    }
    return buf;
}

//  Takes back a buffer whose last reference went, from whichever thread dropped it.
static void s_pool_put (tl__pool_t *pool, tl_buf_t *buf)
{
    pthread_mutex_lock (&pool->lock);
    pool->out--;
    bool keep = !pool->closed && pool->nidle < pool->keep;
    if (keep) pool->idle[pool->nidle++] = buf;
    bool last = pool->closed && pool->out == 0;
    pthread_mutex_unlock (&pool->lock);
    if (!keep) s_buf_free (buf);
    if (last) s_pool_free (pool);
}

void tl__pool_close (tl__pool_t **pool_p)
{
    tl__pool_t *pool = *pool_p;
    if (!pool) return;
    pthread_mutex_lock (&pool->lock);
    pool->closed = true;
    while (pool->nidle)
        s_buf_free (pool->idle[--pool->nidle]);
    bool last = pool->out == 0;
    pthread_mutex_unlock (&pool->lock);
    if (last) s_pool_free (pool);
    *pool_p = NULL;
}

void tl_buf_ref (tl_buf_t *buf)
{
    assert (buf);
    unsigned was = atomic_fetch_add_explicit (&buf->refs, 1, memory_order_relaxed);
    assert (was > 0);
    (void)was;
}

void tl_buf_release (tl_buf_t *buf)
{
    assert (buf);
    //  acq_rel: whoever frees sees every other holder's writes
    unsigned was = atomic_fetch_sub_explicit (&buf->refs, 1, memory_order_acq_rel);
    assert (was > 0);
    if (was != 1) return;
    if (buf->pool)
        s_pool_put (buf->pool, buf);
    else
        s_buf_free (buf);
}

//  --------------------------------------------------------------------------
//  Files

int tl__file_open (const tl__reader_cfg_t *cfg, uint32_t index, tl__file_t *file, char *error)
{
    const char *path = cfg->files[index];
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int err = fd < 0 || fstat (fd, &st) < 0 ? errno : S_ISDIR (st.st_mode) ? EISDIR : 0;
    if (err) {
        snprintf (error, TL__ERROR_MAX, "%s: %s", path, strerror (err));
        if (fd >= 0) close (fd);
        return -1;
    }
    file->fd = fd;
    file->sized = S_ISREG (st.st_mode);
    file->size = file->sized ? (uint64_t)st.st_size : 0;
    if (file->sized) posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return 0;
}

//  --------------------------------------------------------------------------
//  The source

typedef enum {
    S_RUNNING,  //  Chunks may follow
    S_DONE,     //  All files chunked
    S_FAILED    //  Stopped at an error
} s_state_t;

struct _tl_source_t {
    char **files;               //  Our copy of the file names
    size_t nfiles;              //  Entries in files
    size_t chunk_size;          //  Target chunk bytes
    size_t slack;               //  A chunk may run this much over chunk_size before a cut
    size_t max_line;            //  Longer lines are skipped
    size_t block_size;          //  Bytes per read or per inflated block
    size_t headroom;            //  Free bytes in front of each block, for the carry
    tl__pool_t *pool;           //  Buffers for blocks
    tl__reader_t *reader;       //  The backend
    s_state_t state;            //  Running, done, failed
    char error[TL__ERROR_MAX];  //  Last error, naming the file
    const char *fallback;       //  Why io_uring was not used under TL_IO_AUTO, or NULL
    uint64_t skipped;           //  Lines skipped as longer than max_line

    //  Stream layer: the gzip file being inflated
    tl__gz_t *gz;       //  Inflater, made for the first gzip file
    bool gz_on;         //  The current file is gzip
    tl__block_t gz_in;  //  Compressed block being inflated (buf referenced)
    size_t gz_used;     //  Bytes of gz_in inflated
    uint64_t gz_out;    //  Bytes inflated so far in the file

    //  Chunker: a window of the current file's bytes: region, then carry
    bool in_file;       //  A file's blocks are arriving
    bool file_done;     //  Its last block arrived: the carry is its last line
    bool first;         //  The next chunk is its first
    uint32_t file;      //  Its index
    tl_buf_t *wbuf;     //  Buffer holding region and carry (one reference)
    char *region;       //  Whole lines not sent yet
    size_t region_len;  //  Bytes in region
    uint64_t pos;       //  File offset of region[0] (then of carry[0] when region is empty)
    char *carry;        //  Unfinished line after the region
    size_t carry_len;   //  Bytes in carry
    bool skipping;      //  Dropping a too long line until its LF
};

static const char *s_uring_error (int err)
{
    switch (err) {
    case -EPERM:
        return "io_uring unavailable: not permitted (seccomp profile, e.g. Docker >= 25)";
    case -ENOSYS:
        return "io_uring unavailable: kernel without io_uring";
    case -ENOMEM:
        return "io_uring unavailable: out of memory or locked-memory limit";
    default:
        return "io_uring unavailable: io_uring_queue_init failed";
    }
}

//  The one place that picks the backend. With TL_IO_AUTO any failure of io_uring
//  falls back to plain reads, and *fallback says why.
static tl__reader_t *s_reader_new (const tl__reader_cfg_t *cfg, tl_io_t io, const char **error,
                                   const char **fallback)
{
    if (io != TL_IO_SYNC) {
        int err = 0;
        tl__reader_t *reader = tl__uring_new (cfg, &err);
        if (reader) return reader;
        if (io == TL_IO_URING) {
            *error = s_uring_error (err);
            return NULL;
        }
        *fallback = s_uring_error (err);
    }
    tl__reader_t *reader = tl__sync_new (cfg);
    if (!reader) *error = "out of memory";
    return reader;
}

static size_t s_or (size_t value, size_t fallback)
{
    return value ? value : fallback;
}

static size_t s_clamp (size_t value, size_t low, size_t high)
{
    return value < low ? low : value > high ? high : value;
}

tl_source_t *tl_source_new (const char *const *files, size_t nfiles, const tl_source_opts_t *opts,
                            const char **error)
{
    assert (files || nfiles == 0);
    assert (nfiles <= UINT32_MAX);
    const char *dummy;
    if (!error) error = &dummy;
    *error = "out of memory";
    tl_source_opts_t o = opts ? *opts : (tl_source_opts_t){0};
    tl_source_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    self->chunk_size = s_or (o.chunk_size, S_DEFAULT_CHUNK);
    self->slack = self->chunk_size / 8;
    self->max_line = s_or (o.max_line, S_DEFAULT_MAX_LINE);
    self->block_size = s_clamp (self->chunk_size, S_MIN_BLOCK, S_MAX_BLOCK);
    self->headroom = s_clamp (self->block_size, 0, S_MAX_HEADROOM);
    unsigned depth = (unsigned)s_or (o.depth, S_DEFAULT_DEPTH);
    self->files = calloc (nfiles ? nfiles : 1, sizeof *self->files);
    if (!self->files) goto fail;
    for (self->nfiles = 0; self->nfiles < nfiles; self->nfiles++) {
        assert (files[self->nfiles]);
        if (!(self->files[self->nfiles] = strdup (files[self->nfiles]))) goto fail;
    }
    //  Idle buffers kept: as many as the ventilator's window may hold at once, so a
    //  steady job recycles its buffers instead of mapping and faulting in fresh ones.
    //  Keeping them costs nothing beyond the peak that was in use anyway.
    self->pool = tl__pool_new (self->headroom + self->block_size, depth + 4 + 1024);
    if (!self->pool) goto fail;
    tl__reader_cfg_t cfg = {.files = self->files,
                            .nfiles = nfiles,
                            .pool = self->pool,
                            .headroom = self->headroom,
                            .block_size = self->block_size,
                            .depth = depth};
    self->reader = s_reader_new (&cfg, o.io, error, &self->fallback);
    if (!self->reader) goto fail;
    return self;
fail:
    tl_source_destroy (&self);
    return NULL;
}

static void s_drop (tl_buf_t **buf_p)
{
    if (*buf_p) tl_buf_release (*buf_p);
    *buf_p = NULL;
}

void tl_source_destroy (tl_source_t **self_p)
{
    assert (self_p);
    tl_source_t *self = *self_p;
    if (!self) return;
    s_drop (&self->wbuf);
    s_drop (&self->gz_in.buf);
    if (self->reader) self->reader->ops->destroy (self->reader);
    tl__gz_destroy (&self->gz);
    tl__pool_close (&self->pool);
    for (size_t i = 0; i < self->nfiles; i++)
        free (self->files[i]);
    free (self->files);
    free (self);
    *self_p = NULL;
}

static int s_fail (tl_source_t *self, uint32_t file, const char *why)
{
    snprintf (self->error, sizeof self->error, "%s: %s", self->files[file], why);
    return -1;
}

//  --------------------------------------------------------------------------
//  Stream layer: plain blocks pass, gzip blocks are inflated

static bool s_is_gzip (const tl__block_t *block)
{
    return block->offset == 0 && block->size >= 2 && (uint8_t)block->data[0] == 0x1f &&
           (uint8_t)block->data[1] == 0x8b;
}

//  Next compressed block of the gzip file into gz_in. Returns 0 or -1.
static int s_gz_refill (tl_source_t *self)
{
    uint32_t file = self->gz_in.file;
    s_drop (&self->gz_in.buf);
    int rc = self->reader->ops->next (self->reader, &self->gz_in);
    if (rc < 0) {
        memcpy (self->error, self->reader->error, sizeof self->error);
        return -1;
    }
    //  The previous block was not the file's last, so this one is the same file's
    assert (rc == 1 && self->gz_in.file == file);
    (void)file;  //  Used by the assert only
    self->gz_used = 0;
    return 0;
}

//  Inflates the next block of the gzip file: full, or the file's last.
static int s_gz_next (tl_source_t *self, tl__block_t *block)
{
    uint32_t file = self->gz_in.file;
    tl_buf_t *buf = tl__pool_get (self->pool);
    if (!buf) return s_fail (self, file, "out of memory");
    uint8_t *start = (uint8_t *)buf->mem + self->headroom;
    uint8_t *out = start;
    size_t room = self->block_size;
    tl__gz_status_t status;
    for (;;) {
        const uint8_t *in = (const uint8_t *)self->gz_in.data + self->gz_used;
        size_t in_len = self->gz_in.size - self->gz_used;
        status = tl__gz_inflate (self->gz, &in, &in_len, self->gz_in.eof, &out, &room);
        self->gz_used = self->gz_in.size - in_len;
        if (status != TL__GZ_NEED_INPUT) break;
        if (s_gz_refill (self)) {
            tl_buf_release (buf);
            return -1;
        }
    }
    if (status == TL__GZ_ERROR) {
        tl_buf_release (buf);
        return s_fail (self, file, tl__gz_error (self->gz));
    }
    size_t size = (size_t)(out - start);
    *block = (tl__block_t){.file = file, .offset = self->gz_out, .size = size};
    self->gz_out += size;
    if (size > 0) {
        block->buf = buf;
        block->data = (char *)start;
    } else
        tl_buf_release (buf);
    if (status == TL__GZ_END) {
        block->eof = true;
        self->gz_on = false;
        s_drop (&self->gz_in.buf);
    }
    return 1;
}

//  Next block of decompressed file bytes: 1, 0 after the last file, -1 on error.
static int s_stream_next (tl_source_t *self, tl__block_t *block)
{
    if (self->gz_on) return s_gz_next (self, block);
    int rc = self->reader->ops->next (self->reader, block);
    if (rc < 0) memcpy (self->error, self->reader->error, sizeof self->error);
    if (rc <= 0 || !s_is_gzip (block)) return rc;
    if (!self->gz && !(self->gz = tl__gz_new ())) {
        tl_buf_release (block->buf);
        return s_fail (self, block->file, "out of memory");
    }
    tl__gz_begin (self->gz);
    self->gz_on = true;
    self->gz_in = *block;
    self->gz_used = 0;
    self->gz_out = 0;
    return s_gz_next (self, block);
}

//  --------------------------------------------------------------------------
//  Chunker

//  Makes room for need bytes in the one-off buffer holding the carry; keeps the carry
//  at its front. Returns the buffer, or NULL when out of memory.
static tl_buf_t *s_long_line_buf (tl_source_t *self, size_t need)
{
    tl_buf_t *buf = self->wbuf;
    bool ours = buf && !buf->pool && atomic_load (&buf->refs) == 1;
    if (ours) {
        //  Nobody else holds it, so its bytes before the carry are free
        memmove (buf->mem, self->carry, self->carry_len);
        if (need > buf->cap) {
            size_t cap = need > 2 * buf->cap ? need : 2 * buf->cap;
            char *mem = realloc (buf->mem, cap);
            if (!mem) return NULL;
            buf->mem = mem;
            buf->cap = cap;
        }
        return buf;
    }
    size_t cap = need > 2 * self->block_size ? need : 2 * self->block_size;
    if (!(buf = s_buf_new (NULL, cap))) return NULL;
    memcpy (buf->mem, self->carry, self->carry_len);
    s_drop (&self->wbuf);
    self->wbuf = buf;
    return buf;
}

//  Puts the carry in front of the block's data. Returns the window start or NULL.
static char *s_join (tl_source_t *self, tl__block_t *block, char *data, size_t size)
{
    if (self->carry_len == 0) {
        s_drop (&self->wbuf);
        self->wbuf = block->buf;
        return data;
    }
    if (self->carry_len <= (size_t)(data - block->buf->mem)) {
        //  The common case: only the short carry is copied, not the block
        char *start = data - self->carry_len;
        memcpy (start, self->carry, self->carry_len);
        s_drop (&self->wbuf);
        self->wbuf = block->buf;
        return start;
    }
    tl_buf_t *buf = s_long_line_buf (self, self->carry_len + size);
    if (buf) memcpy (buf->mem + self->carry_len, data, size);
    tl_buf_release (block->buf);
    return buf ? buf->mem : NULL;
}

//  Takes a block into the window: region = up to its last LF, carry = the rest.
static int s_absorb (tl_source_t *self, tl__block_t *block)
{
    if (!self->in_file) {
        self->in_file = true;
        self->first = true;
        self->file = block->file;
    }
    assert (block->file == self->file);
    char *data = block->data;
    size_t size = block->size;
    uint64_t offset = block->offset;
    if (self->skipping && size > 0) {
        char *lf = memchr (data, '\n', size);
        size_t gone = lf ? (size_t)(lf + 1 - data) : size;
        data += gone;
        size -= gone;
        offset += gone;
        self->skipping = !lf;
    }
    self->file_done = block->eof;
    if (size == 0) {
        s_drop (&block->buf);
        return 0;
    }
    size_t old = self->carry_len;
    char *window = s_join (self, block, data, size);
    if (!window) return s_fail (self, self->file, "out of memory");
    self->pos = offset - old;
    size_t len = old + size;
    char *lf = memrchr (window + old, '\n', size);
    self->region = window;
    self->region_len = lf ? (size_t)(lf + 1 - window) : 0;
    self->carry = window + self->region_len;
    self->carry_len = len - self->region_len;
    if (self->carry_len > self->max_line) {
        self->skipped++;
        self->skipping = true;
        self->carry_len = 0;
    }
    return 0;
}

static void s_emit (tl_source_t *self, tl_chunk_t *chunk, const char *data, size_t size)
{
    *chunk = (tl_chunk_t){.file = self->file,
                          .offset = self->pos,
                          .first = self->first,
                          .data = data,
                          .size = size,
                          .buf = self->wbuf};
    tl_buf_ref (self->wbuf);
    self->first = false;
    self->pos += size;
}

//  Bytes of the whole lines at the start of data (size bytes, ending with LF) before
//  the first line longer than max_line.
static size_t s_short_lines (const char *data, size_t size, size_t max_line)
{
    size_t at = 0;
    while (at < size) {
        const char *lf = memchr (data + at, '\n', size - at);
        size_t line = (size_t)(lf + 1 - (data + at));
        if (line > max_line) break;
        at += line;
    }
    return at;
}

//  Cuts the next chunk off the region: all of it when small enough, else whole lines
//  up to chunk_size or one longer line alone. Skips lines longer than max_line.
//  Returns true with *chunk set, false when it only skipped a line.
static bool s_cut (tl_source_t *self, tl_chunk_t *chunk)
{
    char *start = self->region;
    size_t len = self->region_len;
    size_t take = len;
    if (len > self->chunk_size + self->slack || len > self->max_line) {
        size_t limit = len < self->chunk_size ? len : self->chunk_size;
        char *lf = memrchr (start, '\n', limit);
        if (!lf)  //  The first line alone is longer than chunk_size
            lf = memchr (start + limit, '\n', len - limit);
        take = (size_t)(lf + 1 - start);
        if (take > self->max_line) take = s_short_lines (start, take, self->max_line);
    }
    if (take == 0) {
        size_t line = (size_t)((char *)memchr (start, '\n', len) + 1 - start);
        self->skipped++;
        self->region += line;
        self->region_len -= line;
        self->pos += line;
        return false;
    }
    s_emit (self, chunk, start, take);
    self->region += take;
    self->region_len -= take;
    return true;
}

static void s_end_file (tl_source_t *self)
{
    s_drop (&self->wbuf);
    self->in_file = false;
    self->file_done = false;
    self->skipping = false;
    self->region_len = 0;
    self->carry_len = 0;
}

int tl_source_next (tl_source_t *self, tl_chunk_t *chunk)
{
    assert (self);
    assert (chunk);
    while (self->state == S_RUNNING) {
        if (self->region_len > 0) {
            if (s_cut (self, chunk)) return 1;
            continue;
        }
        if (self->file_done) {
            //  The last line had no LF; it is no longer than max_line (s_absorb)
            if (self->carry_len > 0) {
                s_emit (self, chunk, self->carry, self->carry_len);
                self->carry_len = 0;
                return 1;
            }
            s_end_file (self);
            continue;
        }
        tl__block_t block;
        int rc = s_stream_next (self, &block);
        if (rc == 0)
            self->state = S_DONE;
        else if (rc < 0 || s_absorb (self, &block) < 0) {
            self->state = S_FAILED;
            s_end_file (self);
        }
    }
    return self->state == S_DONE ? 0 : -1;
}

const char *tl_source_error (tl_source_t *self)
{
    assert (self);
    return self->error;
}

const char *tl_source_fallback (tl_source_t *self)
{
    assert (self);
    return self->fallback;
}

const char *tl_source_backend (tl_source_t *self)
{
    assert (self);
    return self->reader->ops->name;
}

uint64_t tl_source_bytes_read (tl_source_t *self)
{
    assert (self);
    return self->reader->bytes_read;
}

uint64_t tl_source_skipped_lines (tl_source_t *self)
{
    assert (self);
    return self->skipped;
}
