/*  tl_test_feed: one-topic shorthands for tl_feed_encode, for the tests that build feed
    bodies by hand. Each writes shard 0 of 1 (the sink itself encodes every topic through
    tl_feed_encode, with its shard). Header-only.                                      */

#ifndef TL_TEST_FEED_H_INCLUDED
#define TL_TEST_FEED_H_INCLUDED

#include "tl_feed.h"

#include <string.h>

//  {"job", "top": [[key bin, count], ...]} with n entries.
static inline int tl_feed_top (uint64_t job, const tl_entry_t *entries, size_t n,
                               msgpack_sbuffer *buf)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_TOP, .job = job};
    return tl_feed_encode (&msg, entries, n, buf);
}

//  {"job", "batch", "batches", "entries": {key bin: total}} for n entries.
static inline int tl_feed_totals (uint64_t job, uint64_t batch, uint64_t batches,
                                  const tl_entry_t *entries, size_t n, msgpack_sbuffer *buf)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_TOTALS, .job = job};
    msg.u.totals.batch = batch;
    msg.u.totals.batches = batches;
    return tl_feed_encode (&msg, entries, n, buf);
}

//  {"job", "keys", "sum", "lines", "bad_lines", "filtered", "seconds", "output"}.
static inline int tl_feed_done (uint64_t job, const tl_done_body_t *done, msgpack_sbuffer *buf)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_DONE, .job = job};
    msg.u.done = *done;
    return tl_feed_encode (&msg, NULL, 0, buf);
}

//  {"job", "reason"}.
static inline int tl_feed_failed (uint64_t job, const char *reason, msgpack_sbuffer *buf)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_FAILED, .job = job};
    msg.u.reason = (tl_str_t){reason, strlen (reason)};
    return tl_feed_encode (&msg, NULL, 0, buf);
}

#endif
