/*  tl_feed_merge: a job's feed across its sink shards (docs/PROTOCOL.md, section 4,
    "Combining the shards' feeds"). Each shard of a job publishes its own feed, every
    body naming its shard and the job's shards; a subscriber that follows all of them
    combines them into the job's view:

    - progress: the shards' latest summed, chunks_done the least, chunks_known,
      input_bytes and seconds the largest, chunks_final when every shard's is;
    - top: the shards' latest lists merged (their keys are disjoint), total descending
      then key bytewise, as many as the longest list;
    - totals: numbered per shard, so a gap is found per shard;
    - done: once every shard sent its own, the counts summed, seconds the largest;
    - failed: from any shard, the job failed.

    The tl_feed_merge_* functions combine what is given them; tl_feed_join_t keeps the
    shards' latest messages of a few jobs at a time and hands out the job's view after
    each message (tally-watch uses it).                                              */

#ifndef TL_FEED_MERGE_H_INCLUDED
#define TL_FEED_MERGE_H_INCLUDED

#include "tl_feed.h"

//  Combines n >= 1 shards' latest progress into the job's. job, shards: the first's;
//  shard 0.
void tl_feed_merge_progress (const tl_progress_t *shards, size_t n, tl_progress_t *job);

//  Sorts entries[0..n) (the shards' top lists, one after the other) as the totals file
//  is sorted and returns how many of them are the job's top: at most k.
size_t tl_feed_merge_top (tl_entry_t *entries, size_t n, size_t k);

//  Combines n >= 1 shards' done into the job's; output is left empty (each shard wrote
//  its own file).
void tl_feed_merge_done (const tl_done_body_t *shards, size_t n, tl_done_body_t *job);

//  ---------------------------------------------------------------------------------
//  The shards' messages of a few jobs, combined as they come.

typedef struct _tl_feed_join_t tl_feed_join_t;

//  The job's view after a message (tl_feed_join_add); what is set depends on the topic.
//  Pointers are valid until the next call.
typedef struct {
    tl_feed_topic_t topic;            //  The message's topic
    uint64_t job;                     //  Its job
    uint64_t shard;                   //  Its shard
    uint64_t shards;                  //  The job's shards
    uint64_t heard;                   //  Shards whose message of this topic is in the view
                                      //  (progress, top), or shards done so far (done)
    tl_progress_t progress;           //  progress: the job's
    const tl_entry_t *top;            //  top: the job's, largest first
    size_t ntop;                      //  How many
    uint64_t missed;                  //  totals: batches this shard skipped just
                                      //  before this one; done: batches this shard
                                      //  did not deliver (all when unseen)
    bool unseen;                      //  done: no totals batch came from this shard
    bool complete;                    //  done: every shard's done is in
    tl_done_body_t done;              //  done, complete: the job's (no output)
    tl_str_t outputs[TL_SHARDS_MAX];  //  done, complete: each shard's output
    bool failed_before;               //  failed: another shard had failed the job
} tl_feed_view_t;

//  Creates a joiner that keeps at most max_jobs jobs (the least recently heard of is
//  forgotten to make room); NULL when out of memory.
tl_feed_join_t *tl_feed_join_new (size_t max_jobs);

void tl_feed_join_destroy (tl_feed_join_t **self_p);

//  Adds a decoded message and fills view with its job's view after it. A job is
//  forgotten once complete. Returns 0; -1 when out of memory or when the message's
//  shards differ from what the job's earlier messages said (then nothing changed).
int tl_feed_join_add (tl_feed_join_t *self, const tl_feed_msg_t *msg, tl_feed_view_t *view);

#endif
