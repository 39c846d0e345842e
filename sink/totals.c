/*  tl_totals: writes a job's sorted totals to its file atomically, and reads the file
    back in the feed's batches (see totals.h).                                       */

#include "totals.h"
#include "tl_replace.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PREFETCH_AHEAD 16  //  Entries whose keys are asked for before they are copied

//  The lines are formatted in blocks of about S_BLOCK_BYTES (no printf per line; a key
//  longer than that makes its block longer) and each block is written at its place in
//  the file. From this many entries on, on as many threads as CPUs (at most 4).
#ifndef TL_TOTALS_THREADED_MIN
#define TL_TOTALS_THREADED_MIN (1u << 16)
#endif
#define S_BLOCK_BYTES (1u << 20)
#define S_THREADS_MAX 4

//  Writes v in decimal at p; returns the end.
static char *s_u64_decimal (char *p, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n)
        *p++ = digits[--n];
    return p;
}

//  The digits of v in decimal.
static size_t s_u64_digits (uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

//  Writes an entry's line at p ("key TAB total LF"); returns the end.
static inline char *s_line (char *p, const tl_entry_t *entry)
{
    memcpy (p, entry->key, entry->len);
    p += entry->len;
    *p++ = '\t';
    p = s_u64_decimal (p, entry->count);
    *p++ = '\n';
    return p;
}

//  The blocks of a write: block b holds entries [first[b], first[b + 1]) and
//  starts at byte offset[b] of the file.
typedef struct {
    const tl_entry_t *entries;
    size_t *first;
    uint64_t *offset;
    size_t nblocks;
    int fd;
    atomic_bool failed;  //  A thread failed: the others stop
} s_blocks_t;

typedef struct {
    s_blocks_t *blocks;
    size_t start, stride;  //  This thread's blocks: start, start + stride, ...
    int error;             //  errno of its failure, 0: none
} s_part_t;

//  Makes room for block nblocks and the end after it. Returns 0 or -1 (no memory).
static int s_blocks_room (s_blocks_t *self, size_t *max)
{
    if (self->nblocks + 1 < *max) return 0;
    size_t want = *max ? *max * 2 : 1024;
    size_t *first = realloc (self->first, want * sizeof *first);
    if (!first) return -1;
    self->first = first;
    uint64_t *offset = realloc (self->offset, want * sizeof *offset);
    if (!offset) return -1;
    self->offset = offset;
    *max = want;
    return 0;
}

//  Cuts the entries into blocks of about S_BLOCK_BYTES (a block ends at the first line
//  that reaches it), from their lines' lengths: no key is read. Returns 0 or -1.
static int s_blocks_cut (s_blocks_t *self, size_t n)
{
    size_t max = 0;
    uint64_t at = 0, block_at = 0;
    self->nblocks = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || at - block_at >= S_BLOCK_BYTES) {
            if (s_blocks_room (self, &max)) return -1;
            self->first[self->nblocks] = i;
            self->offset[self->nblocks++] = block_at = at;
        }
        at += self->entries[i].len + 2 + s_u64_digits (self->entries[i].count);
    }
    if (s_blocks_room (self, &max)) return -1;
    self->first[self->nblocks] = n;  //  Where the last block ends
    self->offset[self->nblocks] = at;
    return 0;
}

static void *s_write_part (void *arg)
{
    s_part_t *part = arg;
    s_blocks_t *blocks = part->blocks;
    const tl_entry_t *entries = blocks->entries;
    char *buffer = NULL;
    size_t size = 0;
    for (size_t b = part->start; b < blocks->nblocks; b += part->stride) {
        if (atomic_load (&blocks->failed)) break;
        size_t bytes = (size_t)(blocks->offset[b + 1] - blocks->offset[b]);
        if (bytes > size) {
            free (buffer);
            size = bytes;
            if (!(buffer = malloc (size))) {
                part->error = ENOMEM;
                break;
            }
        }
        char *p = buffer;
        size_t end = blocks->first[b + 1];
        for (size_t i = blocks->first[b]; i < end; i++) {
            if (i + S_PREFETCH_AHEAD < end)
                __builtin_prefetch (entries[i + S_PREFETCH_AHEAD].key, 0, 0);
            p = s_line (p, &entries[i]);
        }
        assert ((size_t)(p - buffer) == bytes);
        for (size_t done = 0; done < bytes;) {
            ssize_t rc =
                pwrite (blocks->fd, buffer + done, bytes - done, (off_t)(blocks->offset[b] + done));
            if (rc < 0 && errno == EINTR) continue;
            if (rc <= 0) {
                part->error = rc < 0 ? errno : EIO;
                break;
            }
            done += (size_t)rc;
        }
        if (part->error) break;
        //  The block goes to the disk now rather than all at the commit's fsync, which
        //  then waits for less (a hint: a file system that cannot says so, and the fsync
        //  does it all).
        (void)sync_file_range (blocks->fd, (off_t)blocks->offset[b], (off_t)bytes,
                               SYNC_FILE_RANGE_WRITE);
    }
    if (part->error) atomic_store (&blocks->failed, true);
    free (buffer);
    return NULL;
}

//  Writes the lines in blocks, on up to threads threads, each formatting its blocks
//  and writing them at their offsets. Returns 0 or -1 (errno).
static int s_write_blocks (FILE *file, const tl_entry_t *entries, size_t n, size_t threads)
{
    s_blocks_t blocks = {.entries = entries, .fd = fileno (file)};
    atomic_init (&blocks.failed, false);
    if (s_blocks_cut (&blocks, n) != 0 || blocks.nblocks == 0) {
        free (blocks.first);
        free (blocks.offset);
        if (blocks.nblocks == 0) return 0;  //  No entries: an empty file
        errno = ENOMEM;
        return -1;
    }
    if (threads > blocks.nblocks) threads = blocks.nblocks;
    s_part_t part[S_THREADS_MAX];
    pthread_t thread[S_THREADS_MAX];
    size_t started = 0;
    for (size_t t = 0; t < threads; t++)
        part[t] = (s_part_t){&blocks, t, threads, 0};
    //  Thread 0 is this one; a thread that cannot start leaves its blocks to it
    while (started + 1 < threads &&
           pthread_create (&thread[started], NULL, s_write_part, &part[started + 1]) == 0)
        started++;
    s_write_part (&part[0]);
    for (size_t t = 0; t < started; t++)
        pthread_join (thread[t], NULL);
    //  Blocks of threads that never started, written here
    for (size_t t = started + 1; t < threads && !atomic_load (&blocks.failed); t++)
        s_write_part (&part[t]);
    int error = 0;
    for (size_t t = 0; t < threads && !error; t++)
        error = part[t].error;
    free (blocks.first);
    free (blocks.offset);
    if (error) {
        errno = error;
        return -1;
    }
    return 0;
}

int tl_totals_write (const char *path, const tl_entry_t *entries, size_t n, int *read_fd)
{
    assert (path);
    assert (entries || n == 0);
    if (read_fd) *read_fd = -1;
    tl_replace_t *replace = tl_replace_new (path, 0666);
    if (!replace) return -1;
    size_t threads = 1;
    if (n >= TL_TOTALS_THREADED_MIN) {
        long cpus = sysconf (_SC_NPROCESSORS_ONLN);
        threads = cpus < 2 ? 1 : cpus > S_THREADS_MAX ? S_THREADS_MAX : (size_t)cpus;
    }
    if (s_write_blocks (tl_replace_file (replace), entries, n, threads) != 0) {
        tl_replace_destroy (&replace);
        return -1;
    }
    return tl_replace_commit (&replace, read_fd);
}

int tl_totals_check (const char *path)
{
    assert (path);
    return tl_replace_check (path);
}

//  ---------------------------------------------------------------------------------
//  Batches

size_t tl_totals_entry_bytes (const tl_entry_t *entry)
{
    assert (entry);
    size_t len = entry->len, header = len < 256 ? 2 : len < 65536 ? 3 : 5;
    uint64_t count = entry->count;
    size_t total = count < 128          ? 1
                   : count < 256        ? 2
                   : count < 65536      ? 3
                   : count < 1ull << 32 ? 5
                                        : 9;
    return header + len + total;
}

//  Whether an entry of size bytes starts a new batch after n entries of bytes in all.
static bool s_cut_before (size_t n, size_t bytes, size_t size, size_t max_keys, size_t max_bytes)
{
    return n > 0 && (n >= max_keys || bytes + size > max_bytes);
}

uint64_t tl_totals_batches (const tl_entry_t *entries, size_t n, size_t max_keys, size_t max_bytes)
{
    assert (entries || n == 0);
    uint64_t batches = 1;
    size_t in_batch = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size = tl_totals_entry_bytes (&entries[i]);
        if (s_cut_before (in_batch, bytes, size, max_keys, max_bytes)) {
            batches++;
            in_batch = bytes = 0;
        }
        in_batch++;
        bytes += size;
    }
    return batches;
}

struct _tl_totals_reader_t {
    FILE *file;           //  The totals file
    size_t max_keys;      //  Entries in a batch, at most
    size_t max_bytes;     //  tl_totals_entry_bytes in a batch, at most (but one entry)
    char *line;           //  The last line read (getline's buffer), without its LF
    size_t line_size;     //  Its allocation
    bool waiting;         //  The last line read starts the next batch
    size_t key_len;       //  Its key's length (the bytes before its last TAB)
    uint64_t count;       //  Its total
    char *keys;           //  The batch's keys, one after the other
    size_t keys_size;     //  Their allocation
    tl_entry_t *entries;  //  The batch (keys point into keys)
    size_t entries_size;  //  Their allocation, in entries
    uint64_t skipped;     //  Lines that were not "key TAB total"
    uint64_t offset;      //  File offset of the first byte not handed out in a batch
    size_t pending;       //  Bytes of the waiting line, LF included
};

tl_totals_reader_t *tl_totals_reader_new (int fd, size_t max_keys, size_t max_bytes)
{
    return tl_totals_reader_new_at (fd, 0, max_keys, max_bytes);
}

tl_totals_reader_t *tl_totals_reader_new_at (int fd, uint64_t from, size_t max_keys,
                                             size_t max_bytes)
{
    assert (fd >= 0);
    assert (max_keys > 0);
    tl_totals_reader_t *self = calloc (1, sizeof *self);
    if (self && from <= INT64_MAX && lseek (fd, (off_t)from, SEEK_SET) == (off_t)from)
        self->file = fdopen (fd, "r");
    if (!self || !self->file) {
        close (fd);
        free (self);
        return NULL;
    }
    self->max_keys = max_keys;
    self->max_bytes = max_bytes;
    self->offset = from;
    return self;
}

void tl_totals_reader_destroy (tl_totals_reader_t **self_p)
{
    assert (self_p);
    tl_totals_reader_t *self = *self_p;
    if (!self) return;
    fclose (self->file);
    free (self->line);
    free (self->keys);
    free (self->entries);
    free (self);
    *self_p = NULL;
}

//  Parses the line just read as "key TAB total" (the key is what comes before the
//  last TAB: a key may hold a TAB, never a LF). Returns 0, or -1 when it is not.
static int s_parse (tl_totals_reader_t *self, size_t len)
{
    const char *tab = memrchr (self->line, '\t', len);
    const char *digits = tab ? tab + 1 : NULL, *end = self->line + len;
    if (!digits || digits == end || end - digits > 20) return -1;
    uint64_t count = 0;
    for (const char *p = digits; p < end; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (digit > 9 || count > (UINT64_MAX - digit) / 10) return -1;
        count = count * 10 + digit;
    }
    self->key_len = (size_t)(tab - self->line);
    self->count = count;
    return self->key_len <= TL_KEY_MAX ? 0 : -1;
}

//  Reads lines until one is "key TAB total"; sets self->waiting. Returns 0 (also at
//  the end of the file: then nothing waits), or -1 with errno when it cannot read.
static int s_read_line (tl_totals_reader_t *self)
{
    while (true) {
        errno = 0;
        ssize_t len = getline (&self->line, &self->line_size, self->file);
        if (len < 0) return ferror (self->file) || errno == ENOMEM ? -1 : 0;
        size_t raw = (size_t)len;
        if (len > 0 && self->line[len - 1] == '\n') len--;
        if (s_parse (self, (size_t)len) == 0) {
            self->waiting = true;
            self->pending = raw;
            return 0;
        }
        self->skipped++;
        self->offset += raw;
    }
}

//  Makes room for entry n and key_len more key bytes after used. Returns 0 or -1.
static int s_reserve (tl_totals_reader_t *self, size_t n, size_t used, size_t key_len)
{
    if (n == self->entries_size) {
        size_t size = self->entries_size ? self->entries_size * 2 : 1024;
        tl_entry_t *entries = realloc (self->entries, size * sizeof *entries);
        if (!entries) return -1;
        self->entries = entries;
        self->entries_size = size;
    }
    if (!self->keys || used + key_len > self->keys_size) {
        size_t size = self->keys_size ? self->keys_size : 1 << 16;
        while (size < used + key_len)
            size *= 2;
        char *keys = realloc (self->keys, size);
        if (!keys) return -1;
        self->keys = keys;
        self->keys_size = size;
    }
    return 0;
}

int tl_totals_reader_next (tl_totals_reader_t *self, const tl_entry_t **entries, size_t *n)
{
    assert (self && entries && n);
    *entries = NULL;
    *n = 0;
    size_t count = 0, used = 0, bytes = 0;
    while (true) {
        if (!self->waiting && s_read_line (self) != 0) return -1;
        if (!self->waiting) break;  //  The end of the file
        size_t size =
            tl_totals_entry_bytes (&(tl_entry_t){self->line, (uint32_t)self->key_len, self->count});
        if (s_cut_before (count, bytes, size, self->max_keys, self->max_bytes)) break;
        if (s_reserve (self, count, used, self->key_len) != 0) return -1;
        memcpy (self->keys + used, self->line, self->key_len);
        //  The key is pointed to once the batch is whole: keys may move while it grows.
        self->entries[count++] = (tl_entry_t){NULL, (uint32_t)self->key_len, self->count};
        used += self->key_len;
        bytes += size;
        self->waiting = false;
        self->offset += self->pending;
    }
    for (size_t i = 0, at = 0; i < count; at += self->entries[i++].len)
        self->entries[i].key = self->keys + at;
    *entries = self->entries;
    *n = count;
    return 0;
}

uint64_t tl_totals_reader_offset (tl_totals_reader_t *self)
{
    assert (self);
    return self->offset;
}

uint64_t tl_totals_reader_skipped (tl_totals_reader_t *self)
{
    assert (self);
    return self->skipped;
}
