/*  source_sync: the plain read(2) reader backend of tl_source.

    Used where io_uring is unavailable (Docker's default seccomp profile refuses it) or
    asked for. Reads one block at a time when the chunker asks, one file open at a time. */

#include "source_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    tl__reader_t base;  //  Common part; first, so the struct casts to it
    uint32_t next;      //  Index of the next file to open
    tl__file_t file;    //  The file being read
    bool open;          //  file is open
    uint64_t offset;    //  Where the next read starts in file
} s_sync_t;

//  Reads want bytes into data, retrying short reads until want or end of file.
//  Returns the bytes read, or -1 with errno set.
static ssize_t s_read_full (int fd, char *data, size_t want)
{
    size_t got = 0;
    while (got < want) {
        ssize_t rc = read (fd, data + got, want - got);
        if (rc == 0) break;
        if (rc < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        got += (size_t)rc;
    }
    return (ssize_t)got;
}

static void s_close (s_sync_t *self)
{
    if (self->open) close (self->file.fd);
    self->open = false;
}

static int s_next (tl__reader_t *base, tl__block_t *block)
{
    s_sync_t *self = (s_sync_t *)base;
    const tl__reader_cfg_t *cfg = &base->cfg;
    if (!self->open) {
        if (self->next == cfg->nfiles) return 0;
        if (tl__file_open (cfg, self->next, &self->file, base->error)) return -1;
        self->open = true;
        self->offset = 0;
        self->next++;
    }
    *block = (tl__block_t){.file = self->next - 1, .offset = self->offset};
    size_t want = tl__read_want (&self->file, cfg, self->offset);
    if (want > 0) {
        block->buf = tl__pool_get (cfg->pool);
        if (!block->buf) {
            snprintf (base->error, sizeof base->error, "%s: out of memory",
                      cfg->files[block->file]);
            return -1;
        }
        block->data = block->buf->mem + cfg->headroom;
        ssize_t got = s_read_full (self->file.fd, block->data, want);
        if (got < 0) {
            snprintf (base->error, sizeof base->error, "%s: %s", cfg->files[block->file],
                      strerror (errno));
            tl_buf_release (block->buf);
            block->buf = NULL;
            return -1;
        }
        block->size = (size_t)got;
    }
    block->eof = tl__read_ends_file (&self->file, self->offset, want, block->size);
    if (block->size == 0 && block->buf) {
        tl_buf_release (block->buf);
        block->buf = NULL;
        block->data = NULL;
    }
    self->offset += block->size;
    base->bytes_read += block->size;
    if (block->eof) s_close (self);
    return 1;
}

static void s_destroy (tl__reader_t *base)
{
    s_sync_t *self = (s_sync_t *)base;
    s_close (self);
    free (self);
}

static const tl__reader_ops_t s_ops = {.name = "sync", .next = s_next, .destroy = s_destroy};

tl__reader_t *tl__sync_new (const tl__reader_cfg_t *cfg)
{
    s_sync_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    self->base.ops = &s_ops;
    self->base.cfg = *cfg;
    return &self->base;
}
