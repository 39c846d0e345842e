/*  tl_replay: chunks produced again from the files alone (see tl_source.h).

    Chunks are deterministic: the same files, chunk size and line limit always give
    the same cuts, whatever the backend (tl_source reads fixed blocks from each file's
    start, and a chunk never spans two files). A chunk is the bytes [offset, offset +
    size) of its file's decompressed stream, so a plain file's chunk is one pread; a
    gzip stream cannot be entered in the middle, so a source over that one file runs
    again from its start and the chunk is picked out by its offset.                  */

#include "source_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct _tl_replay_t {
    char **files;               //  Our copy of the names
    tl_file_id_t *ids;          //  Their identities when the job started
    size_t nfiles;              //  Entries in both
    tl_source_opts_t opts;      //  How the job cut them
    tl_source_t *gz;            //  Source over one gzip file, or NULL
    uint32_t gz_file;           //  Which file gz reads
    uint64_t gz_at;             //  Offset of the next chunk gz gives
    char error[TL__ERROR_MAX];  //  Why the last chunk failed
};

int tl_file_id (const char *path, tl_file_id_t *id)
{
    struct stat st;
    if (stat (path, &st) != 0) return -1;
    *id = (tl_file_id_t){.size = (uint64_t)st.st_size,
                         .mtime = (int64_t)st.st_mtim.tv_sec,
                         .mtime_ns = (int64_t)st.st_mtim.tv_nsec};
    return 0;
}

tl_replay_t *tl_replay_new (const char *const *files, const tl_file_id_t *ids, size_t nfiles,
                            const tl_source_opts_t *opts)
{
    assert (files && ids && opts);
    tl_replay_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    self->files = calloc (nfiles ? nfiles : 1, sizeof *self->files);
    self->ids = calloc (nfiles ? nfiles : 1, sizeof *self->ids);
    if (!self->files || !self->ids) goto fail;
    for (self->nfiles = 0; self->nfiles < nfiles; self->nfiles++)
        if (!(self->files[self->nfiles] = strdup (files[self->nfiles]))) goto fail;
    memcpy (self->ids, ids, nfiles * sizeof *ids);
    self->opts = *opts;
    self->opts.io = TL_IO_SYNC;  //  A rare path: plain reads are enough
    return self;
fail:
    tl_replay_destroy (&self);
    return NULL;
}

void tl_replay_destroy (tl_replay_t **self_p)
{
    assert (self_p);
    tl_replay_t *self = *self_p;
    if (!self) return;
    tl_source_destroy (&self->gz);
    for (size_t i = 0; i < self->nfiles; i++)
        free (self->files[i]);
    free (self->files);
    free (self->ids);
    free (self);
    *self_p = NULL;
}

const char *tl_replay_error (tl_replay_t *self)
{
    assert (self);
    return self->error;
}

static int s_fail (tl_replay_t *self, uint32_t file, const char *why)
{
    snprintf (self->error, sizeof self->error, "%s: %s", self->files[file], why);
    return -1;
}

//  Opens file and checks that it is what the job started with. Returns the descriptor
//  or -1 (error set).
static int s_open_same (tl_replay_t *self, uint32_t file)
{
    int fd = open (self->files[file], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat (fd, &st) != 0) {
        s_fail (self, file, strerror (errno));
        if (fd >= 0) close (fd);
        return -1;
    }
    const tl_file_id_t *id = &self->ids[file];
    if ((uint64_t)st.st_size != id->size || (int64_t)st.st_mtim.tv_sec != id->mtime ||
        (int64_t)st.st_mtim.tv_nsec != id->mtime_ns) {
        s_fail (self, file,
                "changed since the job started (size or modification time): its chunks cannot "
                "be produced again");
        close (fd);
        return -1;
    }
    return fd;
}

//  Reads size bytes at offset of fd into a new buffer. Returns it, or NULL (error set).
static tl_buf_t *s_read_range (tl_replay_t *self, uint32_t file, int fd, uint64_t offset,
                               size_t size)
{
    tl_buf_t *buf = tl__buf_new (size);
    if (!buf) {
        s_fail (self, file, "out of memory");
        return NULL;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread (fd, buf->mem + got, size - got, (off_t)(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            s_fail (self, file, n < 0 ? strerror (errno) : "shorter than when the job started");
            tl_buf_release (buf);
            return NULL;
        }
        got += (size_t)n;
    }
    return buf;
}

//  Takes the chunk at offset from the gzip source over file, starting one when none
//  reads this file or it has passed offset. Returns 0 or -1 (error set).
static int s_from_gzip (tl_replay_t *self, uint32_t file, uint64_t offset, size_t size,
                        tl_chunk_t *chunk)
{
    if (self->gz && (self->gz_file != file || self->gz_at > offset)) tl_source_destroy (&self->gz);
    if (!self->gz) {
        const char *why = NULL;
        const char *name = self->files[file];
        self->gz = tl_source_new (&name, 1, &self->opts, &why);
        if (!self->gz) return s_fail (self, file, why ? why : "cannot read");
        self->gz_file = file;
        self->gz_at = 0;
    }
    for (;;) {
        tl_chunk_t next;
        int rc = tl_source_next (self->gz, &next);
        if (rc < 0) {
            snprintf (self->error, sizeof self->error, "%s", tl_source_error (self->gz));
            tl_source_destroy (&self->gz);
            return -1;
        }
        if (rc == 0 || next.offset > offset) {
            if (rc) tl_buf_release (next.buf);
            tl_source_destroy (&self->gz);
            return s_fail (self, file, "its chunks are not the ones it gave when the job started");
        }
        self->gz_at = next.offset + next.size;
        if (next.offset < offset) {
            tl_buf_release (next.buf);
            continue;
        }
        if (next.size != size) {
            tl_buf_release (next.buf);
            tl_source_destroy (&self->gz);
            return s_fail (self, file, "its chunks are not the ones it gave when the job started");
        }
        *chunk = next;
        chunk->file = file;
        chunk->first = false;
        return 0;
    }
}

int tl_replay_chunk (tl_replay_t *self, uint32_t file, uint64_t offset, size_t size,
                     tl_chunk_t *chunk)
{
    assert (self && chunk);
    assert (file < self->nfiles);
    assert (size > 0);
    self->error[0] = 0;
    int fd = s_open_same (self, file);
    if (fd < 0) return -1;
    uint8_t magic[2];
    bool gzip = pread (fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    int rc = 0;
    if (gzip) {
        close (fd);
        return s_from_gzip (self, file, offset, size, chunk);
    }
    tl_buf_t *buf = s_read_range (self, file, fd, offset, size);
    close (fd);
    if (!buf) return -1;
    *chunk = (tl_chunk_t){
        .file = file, .offset = offset, .first = false, .data = buf->mem, .size = size, .buf = buf};
    return rc;
}
