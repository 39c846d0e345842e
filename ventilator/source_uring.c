/*  source_uring: the io_uring reader backend of tl_source.

    Keeps up to depth reads in flight, over the current file and the next ones, so the
    disk works while the ventilator sends. Reads land in pooled buffers and are handed
    out strictly in submission order (a ring of slots; completions that arrive early wait
    in their slot). Files are opened when their first read is queued and closed when
    their last block is handed out, so only the files being read are open.           */

#include "source_int.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_CANCEL_TAG UINT64_MAX  //  user_data of the cancel request sent on destroy

typedef struct {
    tl_buf_t *buf;    //  Read target; NULL when the slot has no read
    uint32_t file;    //  Index of the file read
    tl__file_t info;  //  The file: descriptor, size
    uint64_t offset;  //  File offset of the block
    size_t want;      //  Bytes asked for
    size_t got;       //  Bytes read so far
    int err;          //  errno of a failed read, or -1 for a failed open
    bool in_flight;   //  The kernel has a read for this slot
    bool done;        //  Finished: can be handed out
    bool owns_fd;     //  The file's last planned block: handing it out closes the file
} s_slot_t;

typedef struct {
    tl__reader_t base;     //  Common part; first, so the struct casts to it
    struct io_uring ring;  //  Submission and completion queues
    s_slot_t *slots;       //  depth slots, used as a ring in submission order
    unsigned head;         //  Oldest slot: the next to hand out
    unsigned count;        //  Slots in use
    unsigned in_flight;    //  Slots with a read in the kernel
    bool closing;          //  Destroying: don't resubmit short reads
    //  Planning cursor: which read to queue next
    uint32_t next;                   //  Index of the next file to open
    uint32_t file;                   //  Index of the open file being planned
    tl__file_t info;                 //  That file
    bool open;                       //  The cursor owns an open file
    uint64_t offset;                 //  Next read's offset in it
    bool stalled;                    //  Unsized file (pipe): one read at a time, wait for it
    bool stopped;                    //  An open failed: queue nothing more
    char open_error[TL__ERROR_MAX];  //  Message for the failed open's slot
    int64_t cut_file;  //  File that shrank while read: drop its later blocks (-1: none)
} s_uring_t;

static void s_prep_read (s_uring_t *self, s_slot_t *slot, unsigned index)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe (&self->ring);
    //  There is an SQ entry per slot and we submit after every batch
    if (!sqe) {
        io_uring_submit (&self->ring);
        sqe = io_uring_get_sqe (&self->ring);
    }
    uint64_t offset = slot->info.sized ? slot->offset + slot->got : (uint64_t)-1;
    io_uring_prep_read (sqe, slot->info.fd, slot->buf->mem + self->base.cfg.headroom + slot->got,
                        (unsigned)(slot->want - slot->got), offset);
    io_uring_sqe_set_data64 (sqe, index);
    slot->in_flight = true;
    self->in_flight++;
}

//  Claims the next free slot (the caller checked count < depth).
static s_slot_t *s_push (s_uring_t *self, unsigned *index)
{
    *index = (self->head + self->count) % self->base.cfg.depth;
    self->count++;
    s_slot_t *slot = &self->slots[*index];
    *slot = (s_slot_t){.file = self->file, .info = self->info, .offset = self->offset};
    return slot;
}

//  Opens the next file for the cursor. Returns false when planning must stop there.
static bool s_open_next (s_uring_t *self)
{
    const tl__reader_cfg_t *cfg = &self->base.cfg;
    if (self->next == cfg->nfiles) return false;
    self->file = self->next++;
    self->offset = 0;
    self->stalled = false;
    if (tl__file_open (cfg, self->file, &self->info, self->open_error) == 0) {
        self->open = true;
        return true;
    }
    unsigned index;
    s_slot_t *slot = s_push (self, &index);
    slot->err = -1;
    slot->done = true;
    self->stopped = true;
    return false;
}

//  Queues reads until depth are out or the files run out. Returns -1 when out of memory.
static int s_plan (s_uring_t *self)
{
    const tl__reader_cfg_t *cfg = &self->base.cfg;
    bool queued = false;
    int rc = 0;
    while (self->count < cfg->depth && !self->stopped) {
        if (!self->open && !s_open_next (self)) break;
        if (self->stalled) break;
        unsigned index;
        s_slot_t *slot = s_push (self, &index);
        slot->want = tl__read_want (&self->info, cfg, self->offset);
        if (slot->want == 0) {
            slot->done = true;  //  Empty file: an empty eof block, no read
            slot->owns_fd = true;
            self->open = false;
            continue;
        }
        slot->buf = tl__pool_get (cfg->pool);
        if (!slot->buf) {
            self->count--;
            rc = -1;
            break;
        }
        s_prep_read (self, slot, index);
        queued = true;
        if (!self->info.sized)
            self->stalled = true;
        else {
            self->offset += slot->want;
            if (self->offset == self->info.size) {
                slot->owns_fd = true;
                self->open = false;
            }
        }
    }
    //  Submit even after a failure: destroy waits for every queued read
    if (queued) io_uring_submit (&self->ring);
    return rc;
}

//  Records a completion; reissues the rest of a short read. Returns true if it queued one.
static bool s_complete (s_uring_t *self, uint64_t tag, int res)
{
    if (tag == S_CANCEL_TAG) return false;
    s_slot_t *slot = &self->slots[tag];
    slot->in_flight = false;
    self->in_flight--;
    if (res < 0 && (res == -EINTR || res == -EAGAIN) && !self->closing) {
        s_prep_read (self, slot, (unsigned)tag);
        return true;
    }
    if (res < 0)
        slot->err = -res;
    else {
        slot->got += (size_t)res;
        if (res > 0 && slot->got < slot->want && !self->closing) {
            s_prep_read (self, slot, (unsigned)tag);
            return true;
        }
    }
    slot->done = true;
    if (!slot->info.sized && self->open && self->file == slot->file) {
        //  A pipe's block ends it when short; else the cursor may queue the next read
        self->stalled = false;
        if (slot->err || slot->got < slot->want) {
            slot->owns_fd = true;
            self->open = false;
        } else
            self->offset += slot->got;
    }
    return false;
}

//  Waits for at least one completion and records all that are ready.
static int s_reap (s_uring_t *self)
{
    struct io_uring_cqe *cqe;
    int rc;
    while ((rc = io_uring_wait_cqe (&self->ring, &cqe)) == -EINTR)
        ;
    if (rc < 0) return rc;
    unsigned head, seen = 0;
    bool resubmit = false;
    io_uring_for_each_cqe (&self->ring, head, cqe)
    {
        resubmit |= s_complete (self, cqe->user_data, cqe->res);
        seen++;
    }
    io_uring_cq_advance (&self->ring, seen);
    if (resubmit) io_uring_submit (&self->ring);
    return 0;
}

//  Pops the head slot, closing its file when it was the file's last.
static void s_pop (s_uring_t *self, s_slot_t *slot)
{
    if (slot->owns_fd) close (slot->info.fd);
    self->head = (self->head + 1) % self->base.cfg.depth;
    self->count--;
}

static int s_fail (s_uring_t *self, const char *file, const char *why)
{
    snprintf (self->base.error, sizeof self->base.error, "%s: %s", file, why);
    return -1;
}

static int s_next (tl__reader_t *base, tl__block_t *block)
{
    s_uring_t *self = (s_uring_t *)base;
    const tl__reader_cfg_t *cfg = &base->cfg;
    for (;;) {
        if (s_plan (self)) return s_fail (self, cfg->files[self->file], "out of memory");
        if (self->count == 0) return 0;
        s_slot_t *slot = &self->slots[self->head];
        while (!slot->done) {
            int rc = s_reap (self);
            if (rc < 0) return s_fail (self, cfg->files[slot->file], strerror (-rc));
        }
        if (slot->err == -1) {
            memcpy (base->error, self->open_error, sizeof base->error);
            s_pop (self, slot);
            return -1;
        }
        if (slot->err > 0) {
            s_fail (self, cfg->files[slot->file], strerror (slot->err));
            if (slot->buf) tl_buf_release (slot->buf);
            s_pop (self, slot);
            self->stopped = true;
            return -1;
        }
        if (self->cut_file == (int64_t)slot->file) {
            //  A read past the end of a file that shrank while read
            if (slot->buf) tl_buf_release (slot->buf);
            s_pop (self, slot);
            continue;
        }
        bool eof = tl__read_ends_file (&slot->info, slot->offset, slot->want, slot->got);
        *block = (tl__block_t){.file = slot->file, .offset = slot->offset, .eof = eof};
        if (slot->got > 0) {
            block->buf = slot->buf;
            block->data = slot->buf->mem + cfg->headroom;
            block->size = slot->got;
        } else if (slot->buf)
            tl_buf_release (slot->buf);
        if (eof && !slot->owns_fd)
            self->cut_file = slot->file;  //  Ended early: the file's later reads are void
        base->bytes_read += block->size;
        s_pop (self, slot);
        //  Keep depth reads going while the caller works on this block
        if (s_plan (self)) return s_fail (self, cfg->files[self->file], "out of memory");
        return 1;
    }
}

static void s_destroy (tl__reader_t *base)
{
    s_uring_t *self = (s_uring_t *)base;
    self->closing = true;
    if (self->in_flight > 0) {
        //  Reads on pipes may never finish on their own
        struct io_uring_sqe *sqe = io_uring_get_sqe (&self->ring);
        if (sqe) {
            io_uring_prep_cancel64 (sqe, 0, IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data64 (sqe, S_CANCEL_TAG);
            io_uring_submit (&self->ring);
        }
    }
    //  The kernel may still write into buffers until their reads complete
    while (self->in_flight > 0)
        if (s_reap (self) < 0) break;
    while (self->count > 0) {
        s_slot_t *slot = &self->slots[self->head];
        if (slot->buf) tl_buf_release (slot->buf);
        s_pop (self, slot);
    }
    if (self->open) close (self->info.fd);
    io_uring_queue_exit (&self->ring);
    free (self->slots);
    free (self);
}

static const tl__reader_ops_t s_ops = {.name = "io_uring", .next = s_next, .destroy = s_destroy};

tl__reader_t *tl__uring_new (const tl__reader_cfg_t *cfg, int *err)
{
    s_uring_t *self = calloc (1, sizeof *self);
    if (self) self->slots = calloc (cfg->depth, sizeof *self->slots);
    if (!self || !self->slots) {
        free (self);
        *err = -ENOMEM;
        return NULL;
    }
    int rc = io_uring_queue_init (cfg->depth, &self->ring, 0);
    if (rc < 0) {
        free (self->slots);
        free (self);
        *err = rc;
        return NULL;
    }
    self->base.ops = &s_ops;
    self->base.cfg = *cfg;
    self->cut_file = -1;
    return &self->base;
}
