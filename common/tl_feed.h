/*  tl_feed: what the sink publishes on its PUB socket, [topic, body] with the body a
    msgpack map with str keys (docs/PROTOCOL.md, section 4). The sink encodes with the
    tl_feed_* encoders; a subscriber (tally-watch) decodes with tl_feed_decode into a
    typed message.

    Each topic's keys are spelled once, in a table that the encoders and the decoder
    both walk: renaming a key changes what is written and what is read together.
    The decoder takes keys in any order and ignores keys it does not know (another
    language's encoder orders a map freely; a later sink may add keys), and treats the
    body as hostile as tl_proto does its frames.

    Every body about a job names the sink shard that sent it: `shard` of `shards` (a
    job's keys may be split over several sinks, each with its own feed). The encoders
    always write both; the decoder takes a body without them as shard 0 of 1 (a sink
    before shards). The sink's own stats, and the snapshot service's replies that are
    not a job's (tl_snapshot.h), have neither.                                      */

#ifndef TL_FEED_H_INCLUDED
#define TL_FEED_H_INCLUDED

#include "tl_proto.h"

//  Topic names: frame 0 of a feed message. No topic is a prefix of another, so a SUB
//  socket can subscribe to each alone.
#define TL_FEED_TOPIC_PROGRESS "progress"
#define TL_FEED_TOPIC_TOP      "top"
#define TL_FEED_TOPIC_TOTALS   "totals"
#define TL_FEED_TOPIC_DONE     "done"
#define TL_FEED_TOPIC_FAILED   "failed"
#define TL_FEED_TOPIC_STATS    "stats"
//  Only in replies of the snapshot service (tl_snapshot.h), never on the feed:
#define TL_FEED_TOPIC_SNAPSHOT "snapshot"
#define TL_FEED_TOPIC_ERROR    "error"

typedef enum {
    TL_FEED_INVALID = 0,
    TL_FEED_PROGRESS,  //  Periodically while a job runs: counters
    TL_FEED_TOP,       //  Periodically while a job runs: the largest totals so far
    TL_FEED_TOTALS,    //  Once the totals file is written: one batch of it
    TL_FEED_DONE,      //  After the last totals batch
    TL_FEED_FAILED,    //  The job failed or was cancelled
    TL_FEED_STATS,     //  Periodically: the sink's own counters (no job)
    TL_FEED_SNAPSHOT,  //  Snapshot service: the last message of a state reply
    TL_FEED_ERROR,     //  Snapshot service: a request it could not answer
    TL_FEED_COUNT_
} tl_feed_topic_t;

//  The topic's name for frame 0 ("progress", ...); "" for TL_FEED_INVALID.
const char *tl_feed_topic_name (tl_feed_topic_t topic);

//  Parses frame 0 (exact bytes). TL_FEED_INVALID for anything else.
tl_feed_topic_t tl_feed_topic_parse (const void *data, size_t size);

typedef struct {
    uint64_t job;           //  Job id
    uint64_t chunks_done;   //  Chunks merged
    uint64_t chunks_known;  //  Chunks known to exist (total once END arrived)
    bool chunks_final;      //  chunks_known is the job's total
    uint64_t bytes;         //  Payload bytes merged
    uint64_t input_bytes;   //  Input size announced in JOB
    uint64_t lines;         //  Lines merged
    uint64_t bad_lines;     //  Malformed lines so far
    uint64_t keys;          //  Distinct keys so far
    double rate;            //  Bytes per second, recent
    double seconds;         //  Since the job started
    uint64_t shard;         //  Sink shard that counted these, 0 .. shards-1
    uint64_t shards;        //  Sink shards of the job (0 is taken as 1)
} tl_progress_t;

//  The entries of a decoded top or totals body, read in place from the frame: nothing
//  is copied or allocated, and the decoder has checked every entry, so walking them
//  cannot fail. Valid while the frame is. Copy the struct to walk the list again.
typedef struct {
    const uint8_t *pos;  //  Next entry's first byte in the frame
    const uint8_t *end;  //  One past the frame's last byte
    uint32_t count;      //  Entries in the list
    uint32_t left;       //  Entries not handed out yet
    bool pairs;          //  [key, total] arrays (top), not map entries (totals)
} tl_feed_entries_t;

//  Hands out the next entry: its key bytes (pointing into the frame) and total.
//  Returns false when every entry has been handed out.
bool tl_feed_entries_next (tl_feed_entries_t *self, tl_str_t *key, uint64_t *total);

typedef struct {
    uint64_t batch;             //  This batch's number, 0 .. batches-1
    uint64_t batches;           //  Batches the job's totals take
    tl_feed_entries_t entries;  //  {key: total}, the next part of the totals file
    uint64_t next;              //  Snapshot replies only: cursor of the next batch (0: none)
} tl_feed_totals_t;

//  The sink's own counters since the process started (stats): every job's together.
typedef struct {
    uint64_t incarnation;  //  Random id of the sink process (a new one: counters restart)
    double uptime;         //  Seconds since it started
    uint64_t jobs_open;    //  Jobs open now
    uint64_t jobs_done;    //  Jobs done since it started
    uint64_t jobs_failed;  //  Jobs failed or cancelled since it started
    uint64_t partials;     //  PARTIALs merged
    uint64_t duplicates;   //  PARTIALs of chunks merged already (resent chunks)
    uint64_t junk;         //  Messages refused
    uint64_t disconnects;  //  Connections of workers and ventilators that closed
    uint64_t bytes;        //  Payload bytes merged
    uint64_t lines;        //  Lines merged
    double rate;           //  Payload bytes merged per second, recently
} tl_feed_stats_t;

//  The end of a snapshot state reply: how many jobs it described.
typedef struct {
    uint64_t open;      //  Open jobs (a progress and a top each)
    uint64_t finished;  //  Finished jobs (a done or failed each)
} tl_feed_snapshot_t;

typedef struct {
    tl_feed_topic_t topic;  //  Which body is set
    uint64_t job;           //  Job id (every topic has one)
    uint64_t shard;         //  Sink shard that sent it, 0 .. shards-1 (every topic)
    uint64_t shards;        //  Sink shards of the job (encoding: 0 is taken as 1)
    union {
        tl_progress_t progress;       //  progress (its job is set too)
        tl_feed_entries_t top;        //  top: the largest totals, largest first
        tl_feed_totals_t totals;      //  totals
        tl_done_body_t done;          //  done (as in DONE; output points into the frame)
        tl_str_t reason;              //  failed, error: why, for humans
        tl_feed_stats_t stats;        //  stats (job is 0)
        tl_feed_snapshot_t snapshot;  //  snapshot (job is 0)
    } u;
} tl_feed_msg_t;

//  Encoders: each appends a body to buf. Returns 0, or -1 when out of memory, a key is
//  longer than TL_KEY_MAX or the shard is not below the shards (at most
//  TL_SHARDS_MAX); then buf is as it was: never half a body. Every job's body ends
//  with "shard" and "shards"; a totals body has "next" only when it is not 0.

//  Any topic: msg's fields (msg->u.progress for progress, whose job, shard and shards
//  are not read: msg's are), the entries of top and totals from entries[0..n).
int tl_feed_encode (const tl_feed_msg_t *msg, const tl_entry_t *entries, size_t n,
                    msgpack_sbuffer *buf);

//  progress alone, shard and shards from progress's own fields:
//  {"job", "chunks_done", "chunks_known", "chunks_final", "bytes", "input_bytes",
//   "lines", "bad_lines", "keys", "rate", "seconds"}.
int tl_feed_progress (const tl_progress_t *progress, msgpack_sbuffer *buf);

//  Decodes a feed message: frame 0 (topic) and frame 1 (body). Every key the topic
//  defines must be there exactly once with its type (uint: any non-negative integer
//  encoding; float: float32, float64 or a non-negative integer; bool: true/false; str:
//  str or bin; keys in top and totals at most TL_KEY_MAX bytes), in any order; keys the
//  topic does not define are skipped whatever their value (nested at most 32 deep).
//  "shard" and "shards" are optional (absent: 0 and 1); shards must be 1 to
//  TL_SHARDS_MAX and shard below it. Refused: an unknown topic, a body that is not
//  one map with str keys, a missing or repeated key, a wrong type, a shard out of range,
//  truncation, trailing bytes. A progress body's job, shard and shards are also set in
//  msg->u.progress.
//  Returns 0, or -1 (then msg is zeroed). Strings and entries point into body, which
//  must outlive msg; msg owns nothing and needs no freeing.
int tl_feed_decode (const void *topic, size_t topic_size, const void *body, size_t size,
                    tl_feed_msg_t *msg);

#endif
