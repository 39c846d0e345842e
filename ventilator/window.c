/*  tl_window: the ventilator's window of chunks cut and not yet acknowledged.

    A plain array of capacity slots, scanned whole for each decision: the window is small
    (64 by default), and a scan keeps every rule in one readable loop. Time is whatever the
    caller says it is; nothing here reads a clock or touches a socket.                     */

#include "window.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

//  One chunk in the window: cut, maybe sent, not yet acknowledged.
typedef struct {
    tl_window_slot_t pub;  //  Id and lines; first, so the sender's pointer leads back here
    bool used;             //  Slot holds a chunk
    double sent_at;        //  Last send (when sends > 0)
    uint32_t sends;        //  Times sent
    bool suspect;          //  A worker left since it was sent: it may be lost
} s_slot_t;

struct _tl_window_t {
    s_slot_t *slots;       //  capacity slots
    size_t capacity;       //  Chunks held at most
    double retry;          //  Least seconds before a resend while the job streams
    size_t inflight;       //  Slots in use
    size_t unsent;         //  Slots in use whose chunk never went out
    uint64_t next_id;      //  Id of the next chunk added
    uint64_t acked;        //  Chunks acknowledged
    uint64_t acked_bytes;  //  Payload bytes acknowledged
    uint64_t resent;       //  Sends after a chunk's first
    double latency;        //  Smoothed send-to-ack seconds, 0 before the first sample
};

tl_window_t *tl_window_new (size_t capacity, double retry)
{
    assert (capacity > 0);
    tl_window_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    self->slots = calloc (capacity, sizeof *self->slots);
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->capacity = capacity;
    self->retry = retry;
    return self;
}

void tl_window_destroy (tl_window_t **self_p)
{
    assert (self_p);
    tl_window_t *self = *self_p;
    if (!self) return;
    for (size_t i = 0; i < self->capacity; i++)
        if (self->slots[i].used) tl_buf_release (self->slots[i].pub.chunk.buf);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

bool tl_window_has_room (tl_window_t *self)
{
    assert (self);
    return self->inflight < self->capacity;
}

const tl_window_slot_t *tl_window_add (tl_window_t *self, const tl_chunk_t *chunk)
{
    assert (self && chunk && chunk->buf);
    s_slot_t *slot = NULL;
    for (size_t i = 0; i < self->capacity && !slot; i++)
        if (!self->slots[i].used) slot = &self->slots[i];
    assert (slot);
    *slot = (s_slot_t){.pub = {.id = self->next_id++, .chunk = *chunk}, .used = true};
    self->inflight++;
    self->unsent++;
    return &slot->pub;
}

//  Seconds after which an unacknowledged chunk goes out again: generous while the job
//  streams, short at the tail, where the last few chunks decide the finish (backup
//  tasks, as MapReduce does for stragglers).
static double s_resend_after (tl_window_t *self, bool tail)
{
    double typical = self->latency > 0 ? self->latency : 0.5;
    if (tail) return fmax (self->retry / 4, 4 * typical);
    return fmax (self->retry, 10 * typical);
}

const tl_window_slot_t *tl_window_due (tl_window_t *self, double now, bool last_cut)
{
    assert (self);
    double after = s_resend_after (self, last_cut && self->unsent == 0);
    //  A chunk out since before a worker left goes again as soon as a live worker
    //  would have answered it: a lost worker costs a moment, not a timeout.
    double suspect_after = fmax (0.25, 3 * self->latency);
    s_slot_t *oldest = NULL;  //  Overdue and waiting longest
    s_slot_t *first = NULL;   //  Never sent, cut first
    for (size_t i = 0; i < self->capacity; i++) {
        s_slot_t *slot = &self->slots[i];
        if (!slot->used) continue;
        if (slot->sends == 0) {
            if (!first || slot->pub.id < first->pub.id) first = slot;
        } else if (now - slot->sent_at >= (slot->suspect ? suspect_after : after) &&
                   (!oldest || slot->sent_at < oldest->sent_at))
            oldest = slot;
    }
    if (oldest) return &oldest->pub;
    return first ? &first->pub : NULL;
}

//  The window's own slot behind a pointer it handed out.
static s_slot_t *s_slot_of (tl_window_t *self, const tl_window_slot_t *pub)
{
    const s_slot_t *slot = (const s_slot_t *)pub;
    assert (slot >= self->slots && slot < self->slots + self->capacity);
    s_slot_t *own = &self->slots[slot - self->slots];
    assert (own->used);
    return own;
}

void tl_window_sent (tl_window_t *self, const tl_window_slot_t *pub, double now)
{
    assert (self && pub);
    s_slot_t *slot = s_slot_of (self, pub);
    if (slot->sends++)
        self->resent++;
    else
        self->unsent--;
    slot->sent_at = now;
    slot->suspect = false;
}

int tl_window_ack (tl_window_t *self, uint64_t id, double now)
{
    assert (self);
    for (size_t i = 0; i < self->capacity; i++) {
        s_slot_t *slot = &self->slots[i];
        if (!slot->used || slot->pub.id != id) continue;
        if (slot->sends == 1) {
            double sample = now - slot->sent_at;
            self->latency = self->latency ? 0.9 * self->latency + 0.1 * sample : sample;
        }
        if (slot->sends == 0) self->unsent--;
        self->acked++;
        self->acked_bytes += slot->pub.chunk.size;
        tl_buf_release (slot->pub.chunk.buf);
        memset (slot, 0, sizeof *slot);
        self->inflight--;
        return 0;
    }
    return -1;
}

void tl_window_disconnected (tl_window_t *self)
{
    assert (self);
    for (size_t i = 0; i < self->capacity; i++)
        if (self->slots[i].used && self->slots[i].sends > 0) self->slots[i].suspect = true;
}

size_t tl_window_inflight (tl_window_t *self)
{
    assert (self);
    return self->inflight;
}

bool tl_window_all_sent (tl_window_t *self)
{
    assert (self);
    return self->unsent == 0;
}

uint64_t tl_window_added (tl_window_t *self)
{
    assert (self);
    return self->next_id;
}

uint64_t tl_window_acked (tl_window_t *self)
{
    assert (self);
    return self->acked;
}

uint64_t tl_window_acked_bytes (tl_window_t *self)
{
    assert (self);
    return self->acked_bytes;
}

uint64_t tl_window_resent (tl_window_t *self)
{
    assert (self);
    return self->resent;
}

double tl_window_latency (tl_window_t *self)
{
    assert (self);
    return self->latency;
}
