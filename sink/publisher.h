/*  tl_publisher: the sink's feed (docs/PROTOCOL.md, section 4), sent at the pace of its
    subscribers, with a bound on what one subscriber can hold in the sink.

    Every message is at most TL_PUBLISHER_MESSAGE_MAX bytes (a totals batch or a top
    list is cut short to stay within it; only a single key longer than that makes a
    longer one), and the socket queues at most TL_PUBLISHER_HWM messages for each
    subscriber: one that stops reading holds at most 256 x 256 KiB = 64 MiB.

    Nothing is sent to anyone before every subscriber it is for has room for it (XPUB
    with ZMQ_XPUB_NODROP): a subscriber that reads slowly gets every message, at its
    pace, and the others wait for it. A finished job's totals batches, then its done
    (or a job's failed), go through a queue, in order, a few at a time from the sink's
    loop, so that the merge of other jobs never waits for the feed, nor do the totals
    file and DONE. The latest progress and top of each job go before the queue. A
    subscriber that has taken nothing for TL_PUBLISHER_GRACE seconds is no longer
    waited for: it misses what is published until it reads again (the numbered
    batches tell it so). The totals are read back from the totals file as they go
    out, so the job's table is freed once the file is written.                      */

#ifndef TL_PUBLISHER_H_INCLUDED
#define TL_PUBLISHER_H_INCLUDED

#include "tl_feed.h"

typedef struct _tl_publisher_t tl_publisher_t;

#define TL_PUBLISHER_MESSAGE_MAX (256 * 1024)  //  Bytes of a feed message (but one long key)
#define TL_PUBLISHER_HWM         256           //  Messages queued for a subscriber
#define TL_PUBLISHER_GRACE       10.0          //  Seconds a subscriber may take nothing
//  Bytes of a totals batch's entries, at most (but one long key): a message less the
//  room kept for job, batch, batches, next and the headers.
#define TL_PUBLISHER_BATCH_BYTES (TL_PUBLISHER_MESSAGE_MAX - 128)

//  Binds the feed's socket to endpoint; totals batches will hold at most batch_keys
//  keys. Returns NULL with a message in *error (static storage) on failure.
tl_publisher_t *tl_publisher_new (const char *endpoint, size_t batch_keys, const char **error);

//  Drops what is still queued and closes the socket; sets *self_p to NULL. Harmless
//  on NULL.
void tl_publisher_destroy (tl_publisher_t **self_p);

//  Publishes [topic, body] for job (progress, top) as soon as every subscriber has
//  room, before the queue; a newer one of the same topic and job replaces it while it
//  waits (only the latest counts).
void tl_publisher_send (tl_publisher_t *self, const char *topic, uint64_t job,
                        const msgpack_sbuffer *body);

//  Whether some subscriber now takes messages of topic (subscriptions that came in
//  are read first).
bool tl_publisher_wanted (tl_publisher_t *self, const char *topic);

//  Queues a finished job's totals: the n sorted entries as written to the totals file
//  open at fd (taken over), which the batches are read back from, then done. The
//  entries are only counted (into batches), not kept.
//  done is the done message (job, shard of shards, and u.done); every message of the
//  job says that shard. Returns the number of batches (0 when out of memory: then
//  nothing is queued).
uint64_t tl_publisher_totals (tl_publisher_t *self, const tl_feed_msg_t *done, int fd,
                              const tl_entry_t *entries, size_t n);

//  Queues a failed for job, with reason.
//  Queues a failed: failed->job, ->shard, ->shards and ->u.reason (copied).
void tl_publisher_failed (tl_publisher_t *self, const tl_feed_msg_t *failed);

//  Sends what is queued while the subscribers have room, a few messages (or a few
//  milliseconds) at a time, at time now. Returns how many milliseconds may pass before
//  it is called again: 0 when more could go now, a few when it waits for room, -1 when
//  nothing is queued.
long tl_publisher_pump (tl_publisher_t *self, double now);

//  The largest number of entries from the start of entries (sorted, for "top") that
//  fit one message; at least one when n > 0.
size_t tl_publisher_top_fit (const tl_entry_t *entries, size_t n);

#endif
