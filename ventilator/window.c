/*  tl_window: the ventilator's window of chunks cut and not yet acknowledged.

    A plain array of capacity slots, scanned whole for each decision: the window is small
    (64 by default), and a scan keeps every rule in one readable loop. Time is whatever the
    caller says it is; nothing here reads a clock or touches a socket.

    Why attempts are not sends: a chunk that can never be merged (larger than a worker's
    --max-message, or lines that crash or exhaust every worker) must fail the job, but a
    healthy chunk is also sent several times when the job goes well: backup copies at the
    tail, copies while the sink was down. Only a send that follows a failure the chunk
    itself could have caused opens a new attempt (s_new_attempt); the rest are backups
    within the attempt that is running.                                                     */

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
    bool stale;            //  Its sends went to a sink that restarted since: due at once
    uint32_t attempts;     //  Sends that opened a new attempt (see s_new_attempt)
    double attempt_at;     //  When the last attempt opened (when attempts > 0)
} s_slot_t;

struct _tl_window_t {
    s_slot_t *slots;         //  capacity slots
    size_t capacity;         //  Chunks held at most
    double retry;            //  Least seconds before a resend while the job streams
    uint32_t max_attempts;   //  Attempts a chunk may take; the next one fails it
    size_t inflight;         //  Slots in use
    size_t unsent;           //  Slots in use whose chunk never went out
    uint64_t next_id;        //  Id of the next chunk added
    uint64_t acked;          //  Chunks acknowledged
    uint64_t acked_bytes;    //  Payload bytes acknowledged
    uint64_t resent;         //  Sends after a chunk's first
    double latency;          //  Smoothed send-to-ack seconds, 0 before the first sample
    bool heard;              //  The sink has answered at least once
    double heard_at;         //  When the sink last answered (when heard)
    uint32_t most_attempts;  //  Most attempts an acknowledged chunk took
};

tl_window_t *tl_window_new (size_t capacity, double retry, uint32_t max_attempts)
{
    assert (capacity > 0 && max_attempts > 0);
    tl_window_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    self->slots = calloc (capacity, sizeof *self->slots);
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->capacity = capacity;
    self->retry = retry;
    self->max_attempts = max_attempts;
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

//  Puts chunk into a free slot under id, never sent yet. The window must have room.
static const tl_window_slot_t *s_put (tl_window_t *self, const tl_chunk_t *chunk, uint64_t id)
{
    assert (self && chunk && chunk->buf);
    s_slot_t *slot = NULL;
    for (size_t i = 0; i < self->capacity && !slot; i++)
        if (!self->slots[i].used) slot = &self->slots[i];
    assert (slot);
    *slot = (s_slot_t){.pub = {.id = id, .chunk = *chunk}, .used = true};
    self->inflight++;
    self->unsent++;
    return &slot->pub;
}

const tl_window_slot_t *tl_window_add (tl_window_t *self, const tl_chunk_t *chunk)
{
    assert (self);
    return s_put (self, chunk, self->next_id++);
}

const tl_window_slot_t *tl_window_add_id (tl_window_t *self, const tl_chunk_t *chunk, uint64_t id)
{
    assert (self);
    assert (id < self->next_id && !tl_window_holds (self, id));
    return s_put (self, chunk, id);
}

uint64_t tl_window_skip (tl_window_t *self, size_t size)
{
    assert (self);
    self->acked++;
    self->acked_bytes += size;
    return self->next_id++;
}

bool tl_window_holds (tl_window_t *self, uint64_t id)
{
    assert (self);
    for (size_t i = 0; i < self->capacity; i++)
        if (self->slots[i].used && self->slots[i].pub.id == id) return true;
    return false;
}

void tl_window_restart (tl_window_t *self, double now)
{
    assert (self);
    for (size_t i = 0; i < self->capacity; i++) {
        s_slot_t *slot = &self->slots[i];
        if (!slot->used || slot->sends == 0) continue;
        slot->attempts = 0;
        slot->attempt_at = now;
        slot->suspect = false;
        slot->stale = true;
    }
}

void tl_window_set_acked (tl_window_t *self, uint64_t chunks, uint64_t bytes)
{
    assert (self);
    self->acked = chunks;
    self->acked_bytes = bytes;
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

//  Whether a whole streaming interval has passed at time now since slot's last attempt
//  opened, and the sink has answered since: the chunk's answer was due and the sink was
//  there to give it (a silent sink, not the chunk, explains a missing ack, and
//  --timeout deals with it).
static bool s_attempt_timed_out (tl_window_t *self, const s_slot_t *slot, double now)
{
    return now - slot->attempt_at >= s_resend_after (self, false) && self->heard &&
           self->heard_at > slot->attempt_at;
}

//  Whether sending slot's chunk at time now opens a new attempt: its first send, a send
//  after a worker left while it was out, or a send after its attempt timed out. Any
//  other send, the tail's backup copies above all, belongs to the attempt that runs.
static bool s_new_attempt (tl_window_t *self, const s_slot_t *slot, double now)
{
    return slot->sends == 0 || slot->suspect || slot->stale ||
           s_attempt_timed_out (self, slot, now);
}

//  Whether slot's chunk has had every attempt it may take and its next send, at time
//  now, would open one more.
static bool s_exhausted (tl_window_t *self, const s_slot_t *slot, double now)
{
    return slot->attempts >= self->max_attempts && s_new_attempt (self, slot, now);
}

//  The sent chunk overdue at time now that has waited longest, among those whose
//  attempts are used up (exhausted) or among the others; NULL when there is none.
static s_slot_t *s_oldest_overdue (tl_window_t *self, double now, bool last_cut, bool exhausted)
{
    double after = s_resend_after (self, last_cut && self->unsent == 0);
    //  A chunk out since before a worker left goes again as soon as a live worker
    //  would have answered it: a lost worker costs a moment, not a timeout.
    double suspect_after = fmax (0.25, 3 * self->latency);
    s_slot_t *oldest = NULL;
    for (size_t i = 0; i < self->capacity; i++) {
        s_slot_t *slot = &self->slots[i];
        if (!slot->used || slot->sends == 0) continue;
        if ((slot->stale || now - slot->sent_at >= (slot->suspect ? suspect_after : after)) &&
            s_exhausted (self, slot, now) == exhausted &&
            (!oldest || slot->sent_at < oldest->sent_at))
            oldest = slot;
    }
    return oldest;
}

const tl_window_slot_t *tl_window_due (tl_window_t *self, double now, bool last_cut)
{
    assert (self);
    s_slot_t *oldest = s_oldest_overdue (self, now, last_cut, false);
    if (oldest) return &oldest->pub;
    s_slot_t *first = NULL;  //  Never sent, cut first
    for (size_t i = 0; i < self->capacity; i++) {
        s_slot_t *slot = &self->slots[i];
        if (slot->used && slot->sends == 0 && (!first || slot->pub.id < first->pub.id))
            first = slot;
    }
    return first ? &first->pub : NULL;
}

const tl_window_slot_t *tl_window_failed (tl_window_t *self, double now, bool last_cut)
{
    assert (self);
    s_slot_t *slot = s_oldest_overdue (self, now, last_cut, true);
    return slot ? &slot->pub : NULL;
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
    if (s_new_attempt (self, slot, now)) {
        slot->attempts++;
        slot->attempt_at = now;
    }
    if (slot->sends++)
        self->resent++;
    else
        self->unsent--;
    slot->sent_at = now;
    slot->suspect = false;
    slot->stale = false;
}

int tl_window_ack (tl_window_t *self, uint64_t id, double now)
{
    assert (self);
    tl_window_heard (self, now);
    for (size_t i = 0; i < self->capacity; i++) {
        s_slot_t *slot = &self->slots[i];
        if (!slot->used || slot->pub.id != id) continue;
        if (slot->sends == 1 && !slot->stale) {
            double sample = now - slot->sent_at;
            self->latency = self->latency ? 0.9 * self->latency + 0.1 * sample : sample;
        }
        if (slot->sends == 0) self->unsent--;
        if (slot->attempts > self->most_attempts) self->most_attempts = slot->attempts;
        self->acked++;
        self->acked_bytes += slot->pub.chunk.size;
        tl_buf_release (slot->pub.chunk.buf);
        memset (slot, 0, sizeof *slot);
        self->inflight--;
        return 0;
    }
    return -1;
}

void tl_window_undelivered (tl_window_t *self, const tl_window_slot_t *pub, double now)
{
    assert (self && pub);
    s_slot_t *slot = s_slot_of (self, pub);
    if (slot->sends == 0 || slot->attempts >= self->max_attempts ||
        !s_attempt_timed_out (self, slot, now))
        return;
    //  A suspect chunk stays suspect: a worker that comes back gets it at once
    slot->attempts++;
    slot->attempt_at = now;
}

void tl_window_heard (tl_window_t *self, double now)
{
    assert (self);
    self->heard = true;
    self->heard_at = now;
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

uint32_t tl_window_attempts (tl_window_t *self, const tl_window_slot_t *pub)
{
    assert (self && pub);
    return s_slot_of (self, pub)->attempts;
}

uint32_t tl_window_sends (tl_window_t *self, const tl_window_slot_t *pub)
{
    assert (self && pub);
    return s_slot_of (self, pub)->sends;
}

uint32_t tl_window_most_attempts (tl_window_t *self)
{
    assert (self);
    return self->most_attempts;
}

double tl_window_latency (tl_window_t *self)
{
    assert (self);
    return self->latency;
}
