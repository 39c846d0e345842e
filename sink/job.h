/*  tl_job: one job's exactly-once merge, the rules that decide whether it is right.

    A job takes PARTIALs and ENDs and says what they mean: merged (acknowledge it), a
    copy of a merged chunk (acknowledge it again), junk (drop it), the job failed, or
    the job is complete. No sockets and no clock: the sink's loop does what an outcome
    says, and is the only one that destroys a job, after acting on its last outcome.
    So the rules run in unit tests as they run in the sink.                          */

#ifndef TL_JOB_H_INCLUDED
#define TL_JOB_H_INCLUDED

#include "tl_feed.h"
#include "tl_proto.h"

typedef struct _tl_job_t tl_job_t;

//  Longest reason an outcome carries: a file name of TL_TEXT_MAX bytes and some words.
#define TL_JOB_REASON_MAX (TL_TEXT_MAX + 256)

//  Bad line positions logged per job; the rest are only counted.
#define TL_JOB_BAD_LOGGED_MAX 10

typedef enum {
    TL_JOB_NONE = 0,   //  Nothing to do beyond the acknowledgement, if any
    TL_JOB_JUNK,       //  The message was not acceptable: drop it, count it (reason)
    TL_JOB_FAIL,       //  The job failed (reason): tell the ventilator, destroy the job
    TL_JOB_COMPLETE,   //  Every chunk is merged: write the totals, DONE, destroy the job
    TL_JOB_CANCELLED,  //  The ventilator gave the job up: destroy it, no totals
} tl_job_verdict_t;

//  What a message did to a job, for the caller to act on. A merge that completes the
//  job sets both ack and TL_JOB_COMPLETE: acknowledge first, then complete.
typedef struct {
    tl_job_verdict_t verdict;        //  What the caller does next
    bool ack;                        //  Acknowledge chunk (merged now, or earlier)
    uint64_t chunk;                  //  The chunk id to acknowledge, when ack
    char reason[TL_JOB_REASON_MAX];  //  Why, for JUNK and FAIL
} tl_job_outcome_t;

//  What a job has counted. Counters cover merged chunks only: a copy or a junk
//  PARTIAL adds nothing to bytes, lines and the like.
typedef struct {
    uint64_t chunks_done;   //  Chunks merged
    uint64_t chunks_seen;   //  Highest chunk id merged + 1
    uint64_t chunks_total;  //  From END, valid when ended
    uint64_t bytes_sent;    //  From END: payload bytes the ventilator sent, when ended
    bool ended;             //  END arrived
    uint64_t bytes;         //  Payload bytes merged
    uint64_t lines;         //  Lines merged
    uint64_t bad_lines;     //  Malformed lines: merged chunks' and END's (once)
    uint64_t filtered;      //  Lines left out by filters
    uint64_t duplicates;    //  Copies of merged chunks received
    uint64_t overflows;     //  Merges in which a total saturated at 2^64-1
    uint64_t bad_logged;    //  Bad line positions logged so far
} tl_job_counters_t;

//  A job's state as a checkpoint keeps it (besides its JOB body).
typedef struct {
    tl_job_counters_t counters;  //  Every counter
    bool strict;                 //  Malformed lines fail the job
    double seconds;              //  Time since the job started
    tl_table_t *merged;          //  Chunk ids merged, as 8-byte keys with count 1
    tl_table_t *totals;          //  key -> total
} tl_job_snapshot_t;

//  Creates an empty job from a JOB message's id, secret and body (copying what it
//  keeps) at time now. Returns NULL when memory is exhausted.
tl_job_t *tl_job_new (uint64_t id, const uint8_t secret[TL_SECRET_SIZE], const tl_job_body_t *body,
                      double now);

//  Frees the job; sets *self_p to NULL. Harmless on NULL.
void tl_job_destroy (tl_job_t **self_p);

//  Takes one PARTIAL: its body and its map frame (key -> count, as tl_map_encode
//  writes it, not yet validated). Merges it unless its chunk is merged already, and
//  sets *out. A PARTIAL without its chunk's tag (tl_chunk_tag) is junk: it does not
//  come from a CHUNK of this job. A malformed map merges nothing and is junk; a valid
//  one that runs out of memory half-way fails the job, since a resent copy would count
//  that part twice.
void tl_job_partial (tl_job_t *self, const tl_partial_body_t *partial, const void *map,
                     size_t map_size, tl_job_outcome_t *out);

//  Takes an END (the ventilator repeats it until DONE). Sets *out: FAIL when it
//  contradicts what was merged or an earlier END, COMPLETE once every chunk is merged.
//  A job whose every chunk is merged but whose bytes differ from END's fails: the
//  totals would not be those of what the ventilator read.
void tl_job_end (tl_job_t *self, const tl_end_body_t *end, tl_job_outcome_t *out);

//  Takes a CANCEL: sets *out to TL_JOB_CANCELLED.
void tl_job_cancel (tl_job_t *self, tl_job_outcome_t *out);

//  The job id from JOB.
uint64_t tl_job_id (tl_job_t *self);

//  True when secret is the job's: the sender may steer it (END, PING, CANCEL, JOB).
bool tl_job_owned_by (tl_job_t *self, const uint8_t secret[TL_SECRET_SIZE]);

//  The job's secret (for its checkpoint): TL_SECRET_SIZE bytes, the job's own.
const uint8_t *tl_job_secret (tl_job_t *self);

//  The counters; the struct is the job's own, valid until it is destroyed.
const tl_job_counters_t *tl_job_counters (tl_job_t *self);

//  True when chunk is merged.
bool tl_job_merged (tl_job_t *self, uint64_t chunk);

//  The merged chunk ids as a bitmap (bit i of byte i / 8, least significant first, for
//  chunk i) of *size bytes, enough for chunks_seen ids. The caller frees it. NULL when
//  memory is exhausted.
uint8_t *tl_job_merged_bitmap (tl_job_t *self, size_t *size);

//  The totals so far (key -> total). The table is the job's own: read it, do not
//  change it. Valid until the job is destroyed.
tl_table_t *tl_job_totals (tl_job_t *self);

//  Seconds from the job's start to now.
double tl_job_seconds (tl_job_t *self, double now);

//  Fills *progress for the feed at time now, taking a new rate sample when the last
//  one is half a second old.
void tl_job_progress (tl_job_t *self, double now, tl_progress_t *progress);

//  Input size and files from JOB. tl_job_file returns the name of file index, or "?"
//  past the end.
uint64_t tl_job_input_bytes (tl_job_t *self);
uint32_t tl_job_nfiles (tl_job_t *self);

//  Which sink shard of the job this sink is, and of how many (from JOB).
void tl_job_shard (tl_job_t *self, uint32_t *shard, uint32_t *shards);
const char *tl_job_file (tl_job_t *self, uint32_t index);

//  Fills *snapshot with the job's state at time now. Its tables are the job's own:
//  valid, and not to be changed, until the job is destroyed.
void tl_job_snapshot (tl_job_t *self, double now, tl_job_snapshot_t *snapshot);

//  Creates a job from a JOB body and a snapshot (a checkpoint read back) at time now,
//  taking over the snapshot's tables: snapshot->merged and ->totals are set to NULL,
//  whatever the result. Returns NULL when the state does not hold together (as many
//  merged ids as chunks_done, each an 8-byte id below chunks_seen, itself no more than
//  END's count) or memory is exhausted.
tl_job_t *tl_job_restore (uint64_t id, const uint8_t secret[TL_SECRET_SIZE],
                          const tl_job_body_t *body, tl_job_snapshot_t *snapshot, double now);

#endif
