/*  tl_window: the ventilator's window of chunks cut and not yet acknowledged by the sink,
    and the rules that decide which of them goes out next.

    Delivery is at-least-once: a chunk stays here until its id is acknowledged and is sent
    again when its answer is late, sooner at the tail of the job and sooner still when a
    worker left while it was out. A chunk that keeps failing is not sent forever: after
    max_attempts failed attempts it is reported (tl_window_failed) and the job can fail.
    No sockets and no clock: every call that needs the time is given it, so the policy
    runs the same under a test's fake clock.                                             */

#ifndef TL_WINDOW_H_INCLUDED
#define TL_WINDOW_H_INCLUDED

#include "tl_source.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _tl_window_t tl_window_t;

//  A chunk in the window, as its sender sees it. Read-only outside the window, and valid
//  until the chunk is acknowledged or the window destroyed.
typedef struct {
    uint64_t id;       //  Chunk id: cut order, from 0
    tl_chunk_t chunk;  //  Lines; the window holds one reference to chunk.buf
} tl_window_slot_t;

//  A window of at most capacity chunks (> 0). A chunk not acknowledged retry seconds
//  after its last send may go out again (later when acks are slow: see tl_window_due),
//  in at most max_attempts attempts (> 0: see tl_window_sent). Returns NULL when out of
//  memory.
tl_window_t *tl_window_new (size_t capacity, double retry, uint32_t max_attempts);

//  Releases the buffer of every chunk still held, frees the window and sets *self_p to
//  NULL; harmless on NULL.
void tl_window_destroy (tl_window_t **self_p);

//  Whether another chunk fits.
bool tl_window_has_room (tl_window_t *self);

//  Takes a chunk just cut, with the caller's reference to its buffer: the window releases
//  it when the chunk is acknowledged or the window destroyed. The window must have room.
//  Returns the chunk's slot, id the next in cut order (0, 1, 2...).
const tl_window_slot_t *tl_window_add (tl_window_t *self, const tl_chunk_t *chunk);

//  Takes a chunk produced again (after the sink lost it) under its own id, which is
//  below tl_window_added and not in the window; as tl_window_add otherwise.
const tl_window_slot_t *tl_window_add_id (tl_window_t *self, const tl_chunk_t *chunk, uint64_t id);

//  Counts the next chunk in cut order, of size bytes, as cut and acknowledged without
//  sending it (the sink holds it already). Returns its id.
uint64_t tl_window_skip (tl_window_t *self, size_t size);

//  Whether chunk id is in the window.
bool tl_window_holds (tl_window_t *self, uint64_t id);

//  The sink restarted at time now: every chunk sent and not acknowledged goes out again
//  at once, as a new first attempt (the old ones were lost with the sink, not failed by
//  the chunk; a whole streaming interval from now passes before a chunk that no worker
//  takes loses an attempt). An ack that comes before it went out again gives no latency
//  sample: it cannot say which copy was answered.
void tl_window_restart (tl_window_t *self, double now);

//  Sets the count and bytes of chunks acknowledged (the sink's own, after a restart).
void tl_window_set_acked (tl_window_t *self, uint64_t chunks, uint64_t bytes);

//  The chunk to send next at time now, or NULL when none is due: first the longest-waiting
//  of those sent and overdue, else the first cut of those never sent. A chunk sent once is
//  overdue after max(retry, 10 x latency); at the tail (last_cut: no more chunks will be
//  added, and each has gone out) after max(retry / 4, 4 x latency), as backup tasks for
//  the stragglers that decide the finish; when a worker left since it went out, after
//  max(0.25, 3 x latency). Before an ack has measured the latency, the first two rules
//  take it as 0.5 s and the third waits 0.25 s. A chunk whose next send would open an
//  attempt beyond max_attempts is never returned: tl_window_failed reports it instead.
const tl_window_slot_t *tl_window_due (tl_window_t *self, double now, bool last_cut);

//  A chunk that has failed max_attempts attempts and is due for one more at time now (the
//  one that has waited longest), or NULL. Such a chunk stays in the window, never sent
//  again: the job cannot complete without it.
const tl_window_slot_t *tl_window_failed (tl_window_t *self, double now, bool last_cut);

//  Records that slot's chunk went out at time now. The send opens a new attempt when it
//  is the chunk's first, or a worker left while the chunk was out, or a whole streaming
//  interval, max(retry, 10 x latency), has passed since the last attempt opened and the
//  sink has answered since (tl_window_heard): the chunk's answer was due and the sink
//  was there to give it. Any other send (a backup at the tail, a copy while the sink is
//  silent) belongs to the attempt that is running.
void tl_window_sent (tl_window_t *self, const tl_window_slot_t *slot, double now);

//  slot's chunk was due at time now, but no worker was connected to take it. Once a
//  whole streaming interval has passed since its last attempt opened (with the sink
//  answering), one more attempt counts as made and failed, up to max_attempts: a chunk
//  whose worker left with it must not wait forever for workers that never come (a
//  worker that dropped it for being over its --max-message never reconnects). Within
//  the interval nothing counts, so a worker restarted in a moment gets the chunk at once
//  as its next attempt. A chunk never sent is not affected: before its first send,
//  waiting for workers is normal.
void tl_window_undelivered (tl_window_t *self, const tl_window_slot_t *slot, double now);

//  The sink acknowledged chunk id at time now: releases the chunk and frees its slot.
//  A chunk acknowledged after its first send gives a latency sample (a resent one cannot
//  say which copy was answered). An ack also tells that the sink answered at time now.
//  Returns 0, or -1 when id is not in the window (never cut, or acknowledged already) and
//  no chunk changed.
int tl_window_ack (tl_window_t *self, uint64_t id, double now);

//  The sink answered at time now (any message of the job): it is up, so from now on a
//  missing ack is the chunk's attempt failing, not the sink's silence.
void tl_window_heard (tl_window_t *self, double now);

//  A worker's connection closed: every chunk out at this moment may be lost with it.
//  Chunks not yet sent are not affected.
void tl_window_disconnected (tl_window_t *self);

//  Chunks in the window (cut, not acknowledged).
size_t tl_window_inflight (tl_window_t *self);

//  Whether every chunk in the window has been sent at least once.
bool tl_window_all_sent (tl_window_t *self);

//  Chunks added so far: the id the next one gets.
uint64_t tl_window_added (tl_window_t *self);

//  Chunks acknowledged, and their payload bytes.
uint64_t tl_window_acked (tl_window_t *self);
uint64_t tl_window_acked_bytes (tl_window_t *self);

//  Sends after a chunk's first.
uint64_t tl_window_resent (tl_window_t *self);

//  Attempts slot's chunk has opened, and times it was sent.
uint32_t tl_window_attempts (tl_window_t *self, const tl_window_slot_t *slot);
uint32_t tl_window_sends (tl_window_t *self, const tl_window_slot_t *slot);

//  Most attempts a chunk took before its ack, so far.
uint32_t tl_window_most_attempts (tl_window_t *self);

//  Smoothed send-to-ack seconds, 0 until the first sample.
double tl_window_latency (tl_window_t *self);

#endif
