/*  tally-sink: reduces the workers' partial dictionaries into exact totals.

    One inbound ROUTER socket takes PARTIALs from workers and job control from
    ventilators (JOB, END, PING, CANCEL), which get ACCEPT, ACK, PONG, DONE or FAIL
    back. This file is the loop: it finds the job a message is for, hands the message
    to the job (job.c decides: merge, acknowledge, junk, fail, complete), and does what
    the job decided: replies, the totals file (totals.c), the feed (publisher.c, which
    sends at its subscribers' pace). Open jobs are checkpointed every
    --checkpoint-interval seconds by a forked child, which writes the copy-on-write
    image of the tables while the loop goes on merging (as Redis's background save
    does), and on shutdown; a sink started again restores them (checkpoint.c) and tells
    each job's ventilator which chunks it holds (HAVE), so that it sends the rest
    again. A job whose ventilator has gone silent is failed (--job-timeout). Job after
    job, no restart.
    A second ROUTER, the snapshot service (tl_snapshot.h), answers subscribers that
    join late with the state the feed has published so far, and hands out the last
    finished jobs' totals batch by batch, from descriptors of their totals files kept
    open (a later job's file replaces the path, not those).                           */

#include "tl_opts.h"
#include "tl_bar.h"
#include "tl_clock.h"
#include "tl_feed.h"
#include "tl_snapshot.h"
#include "tl_sock.h"
#include "checkpoint.h"
#include "job.h"
#include "publisher.h"
#include "totals.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_IDENTITY_MAX 256  //  ROUTER identities libzmq makes are 5 bytes
#define S_JOBS_MAX     64   //  Jobs open at once
#define S_FINISHED_MAX 16   //  Finished jobs remembered (to answer a late PING)
#define S_FETCHABLE    4    //  The last finished jobs whose totals can be fetched

//  An open job and what the loop keeps for talking to its ventilator.
typedef struct {
    tl_job_t *job;                  //  The job's state; NULL when the slot is free
    uint8_t owner[S_IDENTITY_MAX];  //  Ventilator's ROUTER identity
    size_t owner_size;              //  Its length (0 for a restored job until it speaks)
    double heard_at;                //  Last JOB, END, PING or CANCEL taken for the job
} s_open_t;

typedef struct {
    uint64_t id;                     //  Job id
    uint8_t secret[TL_SECRET_SIZE];  //  The job's secret: only its holder hears how it ended
    uint8_t owner[S_IDENTITY_MAX];   //  Ventilator identity
    size_t owner_size;               //  Its length
    bool failed;                     //  Failed rather than done
    tl_done_body_t done;             //  What DONE said (output points at s_sink_t.output)
    uint32_t shard, shards;          //  Which shard of the job this sink was
    char reason[TL_JOB_REASON_MAX];  //  Why it failed
    uint64_t batches;                //  Totals batches on the feed
    int totals;                      //  Its totals file, open (-1: not kept)
} s_finished_t;

//  The background checkpoint: a child writing the open jobs as they were at fork.
typedef struct {
    pid_t pid;                 //  The child, 0 when none runs
    int pipe;                  //  Read end: the child's report
    double started;            //  When it was forked
    double pause;              //  Seconds fork() held the loop
    uint64_t ids[S_JOBS_MAX];  //  Jobs it writes
    int nids;                  //  How many
} s_saver_t;

//  What the child reports through the pipe when it is done.
typedef struct {
    uint64_t bytes;  //  Bytes written
    int saved;       //  Jobs written
    int failed;      //  Jobs that could not be
} s_saver_report_t;

typedef struct {
    const char *bind;                       //  Inbound endpoint
    const char *publish;                    //  Feed endpoint
    const char *output;                     //  Totals file
    const char *state_dir;                  //  Folder of the checkpoints (the sink's own)
    long top_k;                             //  Keys in "top"
    long batch;                             //  Keys per "totals" message
    double interval;                        //  Seconds between progress messages
    double job_timeout;                     //  Seconds a job's ventilator may be silent
    double ckpt_interval;                   //  Seconds between checkpoints (0: none)
    double ckpt_due;                        //  When the next checkpoint starts
    s_saver_t saver;                        //  The checkpoint being written, if any
    uint64_t incarnation;                   //  Random id of this sink process
    size_t max_msg;                         //  Largest inbound frame
    bool quiet;                             //  --quiet
    tl_curve_t curve;                       //  CURVE keys
    zsock_t *router;                        //  Inbound
    tl_publisher_t *feed;                   //  The feed's socket and queue
    s_open_t open[S_JOBS_MAX];              //  Open jobs
    s_finished_t finished[S_FINISHED_MAX];  //  Recently finished, a ring
    size_t nfinished;                       //  Entries written to the ring
    const char *snapshot;                   //  Snapshot service endpoint
    zsock_t *snap;                          //  Its ROUTER
    zsock_t *monitor;                       //  PAIR end of the inbound socket's monitor
    int handshakes_failed;                  //  Failed handshakes whose close is not a disconnect
    tl_feed_stats_t stats;                  //  Counters since start (stats on the feed)
    double started;                         //  When the sink started
    uint64_t rate_bytes;                    //  stats.bytes at rate_at
    double rate_at;                         //  When the rate was last taken
    uint64_t junk;                          //  Malformed or unexpected messages dropped
    double junk_logged_at;                  //  Rate limit for the junk log
    double published_at;                    //  Last progress publication
    double top_due;                         //  When "top" is published next
} s_sink_t;

static void s_junk (s_sink_t *self, const char *what)
{
    self->junk++;
    double now = tl_now ();
    if (now - self->junk_logged_at >= 1.0) {
        zsys_warning ("dropped a message: %s (%llu dropped so far)", what,
                      (unsigned long long)self->junk);
        self->junk_logged_at = now;
    }
}

static s_open_t *s_open_find (s_sink_t *self, uint64_t id)
{
    for (int i = 0; i < S_JOBS_MAX; i++)
        if (self->open[i].job && tl_job_id (self->open[i].job) == id) return &self->open[i];
    return NULL;
}

static s_open_t *s_open_free (s_sink_t *self)
{
    for (int i = 0; i < S_JOBS_MAX; i++)
        if (!self->open[i].job) return &self->open[i];
    return NULL;
}

static s_finished_t *s_finished_find (s_sink_t *self, uint64_t id)
{
    size_t n = self->nfinished < S_FINISHED_MAX ? self->nfinished : S_FINISHED_MAX;
    for (size_t i = 0; i < n; i++)
        if (self->finished[i].id == id) return &self->finished[i];
    return NULL;
}

static void s_reply (s_sink_t *self, const uint8_t *owner, size_t owner_size, tl_msg_t *msg)
{
    tl_send (zsock_resolve (self->router), owner, owner_size, msg, NULL, ZMQ_DONTWAIT);
}

static void s_reply_fail (s_sink_t *self, const uint8_t *owner, size_t owner_size, uint64_t job,
                          const char *reason)
{
    tl_msg_t msg = {.cmd = TL_CMD_FAIL, .job = job};
    msg.u.reason = (tl_str_t){reason, strlen (reason)};
    s_reply (self, owner, owner_size, &msg);
}

//  A feed message of job's, from this sink: shard of shards (0 of 1 for a job that
//  is not open, whose shard is not known).
static tl_feed_msg_t s_feed_msg (tl_feed_topic_t topic, uint64_t job, tl_job_t *open)
{
    tl_feed_msg_t msg = {.topic = topic, .job = job, .shard = 0, .shards = 1};
    if (open) {
        uint32_t shard, shards;
        tl_job_shard (open, &shard, &shards);
        msg.shard = shard;
        msg.shards = shards;
    }
    return msg;
}

static void s_publish_failed (s_sink_t *self, uint64_t job, tl_job_t *open, const char *reason)
{
    tl_feed_msg_t msg = s_feed_msg (TL_FEED_FAILED, job, open);
    msg.u.reason = (tl_str_t){reason, strlen (reason)};
    tl_publisher_failed (self->feed, &msg);
}

static void s_close_totals (s_finished_t *finished)
{
    if (finished->totals >= 0) close (finished->totals);
    finished->totals = -1;
}

//  Remembers how an open job ended: done (done set; totals the file's descriptor and
//  batches its batch count, or -1 and 0) or failed (reason). Only the last
//  S_FETCHABLE jobs keep their totals file open: a replaced file's space is freed.
static void s_remember (s_sink_t *self, s_open_t *open, const tl_done_body_t *done, int totals,
                        uint64_t batches, const char *reason)
{
    s_finished_t *slot = &self->finished[self->nfinished % S_FINISHED_MAX];
    if (self->nfinished >= S_FINISHED_MAX) s_close_totals (slot);
    if (self->nfinished >= S_FETCHABLE)
        s_close_totals (&self->finished[(self->nfinished - S_FETCHABLE) % S_FINISHED_MAX]);
    self->nfinished++;
    memset (slot, 0, sizeof *slot);
    slot->id = tl_job_id (open->job);
    memcpy (slot->secret, tl_job_secret (open->job), TL_SECRET_SIZE);
    memcpy (slot->owner, open->owner, open->owner_size);
    slot->owner_size = open->owner_size;
    slot->failed = !done;
    if (done) slot->done = *done;
    tl_job_shard (open->job, &slot->shard, &slot->shards);
    snprintf (slot->reason, sizeof slot->reason, "%s", reason ? reason : "");
    slot->totals = totals;
    slot->batches = batches;
    if (done)
        self->stats.jobs_done++;
    else
        self->stats.jobs_failed++;
}

//  Tells the ventilator and the feed that the job failed.
static void s_report_failure (s_sink_t *self, s_open_t *open, const char *reason)
{
    uint64_t id = tl_job_id (open->job);
    zsys_error ("job %016llx failed: %s", (unsigned long long)id, reason);
    s_reply_fail (self, open->owner, open->owner_size, id, reason);
    s_publish_failed (self, id, open->job, reason);
}

//  Acknowledges a merged (or duplicate) chunk at once. ACKs used to be gathered, up
//  to 64, until the sink had read all it had been sent: a sink slower than its
//  workers then let the ventilator's window of 64 chunks run dry before it heard of
//  any, and the workers and the sink took turns waiting for each other (on 46 M keys
//  the sink's main thread was busy only 64% of the merge, with CPU idle). An ACK is a
//  few dozen bytes, and a chunk takes milliseconds to merge.
static void s_ack (s_sink_t *self, s_open_t *open, uint64_t chunk)
{
    tl_msg_t msg = {.cmd = TL_CMD_ACK, .job = tl_job_id (open->job)};
    msg.u.ack.count = 1;
    msg.u.ack.chunk[0] = chunk;
    s_reply (self, open->owner, open->owner_size, &msg);
}

//  Encodes the job's progress body into body. Returns 0 or -1.
static int s_progress_body (s_open_t *open, msgpack_sbuffer *body)
{
    tl_progress_t progress;
    tl_job_progress (open->job, tl_now (), &progress);
    return tl_feed_progress (&progress, body);
}

//  Encodes the job's top body into body: its k largest totals, the first of sorted (the
//  job's total sorted entries) when given, or else found in its table. Returns 0 or -1.
static int s_top_body (s_sink_t *self, s_open_t *open, const tl_entry_t *sorted, size_t total,
                       msgpack_sbuffer *body)
{
    size_t k = (size_t)self->top_k;
    size_t n = total < k ? total : k;
    tl_entry_t *top = NULL;
    if (!sorted) {
        top = calloc (k ? k : 1, sizeof *top);
        if (!top) return -1;
        n = tl_table_top (tl_job_totals (open->job), k, top);
        sorted = top;
    }
    n = tl_publisher_top_fit (sorted, n);  //  Long keys make a shorter list
    tl_feed_msg_t msg = s_feed_msg (TL_FEED_TOP, tl_job_id (open->job), open->job);
    int rc = tl_feed_encode (&msg, sorted, n, body);
    free (top);
    return rc;
}

static void s_publish_progress (s_sink_t *self, s_open_t *open)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    if (s_progress_body (open, &body) == 0)
        tl_publisher_send (self->feed, TL_FEED_TOPIC_PROGRESS, tl_job_id (open->job), &body);
    msgpack_sbuffer_destroy (&body);
}

static void s_publish_top (s_sink_t *self, s_open_t *open, const tl_entry_t *sorted, size_t n)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    if (s_top_body (self, open, sorted, n, &body) == 0)
        tl_publisher_send (self->feed, TL_FEED_TOPIC_TOP, tl_job_id (open->job), &body);
    msgpack_sbuffer_destroy (&body);
}

//  The stats body at time now (the rate since the last one is taken when take_rate).
static tl_feed_msg_t s_stats (s_sink_t *self, double now, bool take_rate)
{
    self->stats.uptime = now - self->started;
    self->stats.junk = self->junk;
    self->stats.jobs_open = 0;
    for (int i = 0; i < S_JOBS_MAX; i++)
        self->stats.jobs_open += self->open[i].job != NULL;
    if (take_rate && now - self->rate_at >= 0.5) {
        self->stats.rate = (double)(self->stats.bytes - self->rate_bytes) / (now - self->rate_at);
        self->rate_bytes = self->stats.bytes;
        self->rate_at = now;
    }
    tl_feed_msg_t msg = {.topic = TL_FEED_STATS, .shards = 1};
    msg.u.stats = self->stats;
    return msg;
}

static void s_publish_stats (s_sink_t *self, double now)
{
    tl_feed_msg_t msg = s_stats (self, now, true);
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    if (tl_feed_encode (&msg, NULL, 0, &body) == 0)
        tl_publisher_send (self->feed, TL_FEED_TOPIC_STATS, 0, &body);
    msgpack_sbuffer_destroy (&body);
}

//  Another descriptor of the file open at fd, with a read position of its own (a dup
//  would share fd's: the snapshot service must not move the publisher's). -1 on error.
static int s_reopen (int fd)
{
    char path[64];
    snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    return open (path, O_RDONLY | O_CLOEXEC);
}

//  Says why the totals file cannot be written, from errno.
static void s_cannot_write (s_sink_t *self, char *reason, size_t size)
{
    snprintf (reason, size, "cannot write totals to %s: %s", self->output, strerror (errno));
}

//  Writes the totals file, tells the ventilator DONE and queues the totals for the
//  feed (which reads them back from the file as subscribers take them, so neither the
//  file nor DONE waits for the feed); sets *done to what DONE said. Returns 0, or -1
//  when the job failed instead (reported).
static int s_complete (s_sink_t *self, s_open_t *open, tl_done_body_t *done, int *totals_fd,
                       uint64_t *batches, char reason[TL_JOB_REASON_MAX])
{
    tl_job_t *job = open->job;
    tl_table_t *totals = tl_job_totals (job);
    size_t n = 0;
    double sort_at = tl_now ();
    //  Sorted in the table's own slots: it is destroyed with the job just after
    tl_entry_t *entries = tl_table_sorted_take (totals, &n);
    double write_at = tl_now ();
    if (!entries && tl_table_size (totals) > 0) {
        snprintf (reason, TL_JOB_REASON_MAX, "sink out of memory sorting the totals");
        s_report_failure (self, open, reason);
        return -1;
    }
    int written;
    if (tl_totals_write (self->output, entries, n, &written) != 0) {
        s_cannot_write (self, reason, TL_JOB_REASON_MAX);
        tl_table_entries_free (entries);
        s_report_failure (self, open, reason);
        return -1;
    }
    double written_at = tl_now ();
    const tl_job_counters_t *c = tl_job_counters (job);
    *done = (tl_done_body_t){.keys = tl_table_size (totals),
                             .sum = tl_table_sum (totals),
                             .lines = c->lines,
                             .bad_lines = c->bad_lines,
                             .filtered = c->filtered,
                             .seconds = tl_job_seconds (job, tl_now ()),
                             .output = {self->output, strlen (self->output)},
                             .chunks = c->chunks_done,
                             .bytes = c->bytes};
    s_publish_progress (self, open);
    s_publish_top (self, open, entries, n);
    tl_feed_msg_t msg_done = s_feed_msg (TL_FEED_DONE, tl_job_id (job), job);
    msg_done.u.done = *done;
    *totals_fd = s_reopen (written);
    *batches = tl_publisher_totals (self->feed, &msg_done, written, entries, n);
    if (*batches == 0 && *totals_fd >= 0) {
        close (*totals_fd);
        *totals_fd = -1;
    }
    tl_table_entries_free (entries);
    tl_msg_t msg = {.cmd = TL_CMD_DONE, .job = tl_job_id (job)};
    msg.u.done = *done;
    s_reply (self, open->owner, open->owner_size, &msg);
    if (!self->quiet)
        zsys_info ("job %016llx done: %llu chunks (%llu duplicates), %llu lines, %llu bad, "
                   "%llu keys, sum %llu, %.2f s (sort %.2f s, write %.2f s) -> %s",
                   (unsigned long long)tl_job_id (job), (unsigned long long)c->chunks_done,
                   (unsigned long long)c->duplicates, (unsigned long long)c->lines,
                   (unsigned long long)c->bad_lines, (unsigned long long)done->keys,
                   (unsigned long long)done->sum, done->seconds, write_at - sort_at,
                   written_at - write_at, self->output);
    if (c->overflows)
        zsys_warning ("job %016llx: %llu totals passed 2^64-1 and were capped",
                      (unsigned long long)tl_job_id (job), (unsigned long long)c->overflows);
    return 0;
}

//  Does what a job decided. The one place an open job is destroyed: nothing holds the
//  job across this call, since it is the last thing done with each message.
static void s_settle (s_sink_t *self, s_open_t *open, const tl_job_outcome_t *out)
{
    if (out->ack) s_ack (self, open, out->chunk);
    tl_done_body_t done;
    bool failed = true;
    int totals_fd = -1;
    uint64_t batches = 0;
    char reason[TL_JOB_REASON_MAX];
    snprintf (reason, sizeof reason, "%s", out->reason);
    switch (out->verdict) {
    case TL_JOB_NONE:
        return;
    case TL_JOB_JUNK:
        s_junk (self, out->reason);
        return;
    case TL_JOB_FAIL:
        s_report_failure (self, open, out->reason);
        break;
    case TL_JOB_COMPLETE:
        failed = s_complete (self, open, &done, &totals_fd, &batches, reason) != 0;
        break;
    case TL_JOB_CANCELLED:
        s_publish_failed (self, tl_job_id (open->job), open->job, out->reason);
        break;
    }
    s_remember (self, open, failed ? NULL : &done, totals_fd, batches, reason);
    //  Its checkpoint would bring an ended job back after a restart. One the saver
    //  is writing now is removed when it is done (s_saver_reap).
    tl_checkpoint_remove (self->state_dir, tl_job_id (open->job));
    tl_job_destroy (&open->job);
}

//  The sink took a JOB, END, PING or CANCEL for an open job: its ventilator is alive.
//  Every message that proves it goes through here.
static void s_heard (s_open_t *open, double now)
{
    open->heard_at = now;
}

//  Fails every job whose ventilator has been silent for --job-timeout (it PINGs every
//  second while it lives): one that was SIGKILLed, OOM-killed or lost with its host
//  cannot finish its job, which would otherwise hold its table and its slot for good,
//  and be checkpointed and restored again at every restart. Called only when the loop
//  has handled every message that arrived, so that a sink that fell behind does not
//  count its own delay as the ventilator's silence.
static void s_expire_silent (s_sink_t *self, double now)
{
    for (int i = 0; i < S_JOBS_MAX; i++) {
        s_open_t *open = &self->open[i];
        if (!open->job || now - open->heard_at < self->job_timeout) continue;
        tl_job_outcome_t out = {.verdict = TL_JOB_FAIL};
        snprintf (out.reason, sizeof out.reason,
                  "no word from the ventilator for %.0f s (--job-timeout): job abandoned",
                  now - open->heard_at);
        s_settle (self, open, &out);
    }
}

//  Tells the job's ventilator which chunks are merged (HAVE, in pieces, only those
//  that hold any), then ACCEPT with their count, which the HAVEs' bits add up to.
static void s_accept (s_sink_t *self, s_open_t *open)
{
    uint64_t id = tl_job_id (open->job);
    const tl_job_counters_t *c = tl_job_counters (open->job);
    if (c->chunks_done > 0) {
        size_t size;
        uint8_t *bits = tl_job_merged_bitmap (open->job, &size);
        if (!bits) {
            zsys_error ("job %016llx: out of memory listing its merged chunks",
                        (unsigned long long)id);
            return;  //  The ventilator asks again
        }
        for (size_t at = 0; at < size; at += TL_HAVE_MAX) {
            size_t len = size - at < TL_HAVE_MAX ? size - at : TL_HAVE_MAX;
            bool any = false;
            for (size_t i = 0; i < len && !any; i++)
                any = bits[at + i] != 0;
            if (!any) continue;
            tl_msg_t have = {.cmd = TL_CMD_HAVE, .job = id};
            have.u.have =
                (tl_have_body_t){.first = (uint64_t)at * 8, .bits = {(const char *)bits + at, len}};
            s_reply (self, open->owner, open->owner_size, &have);
        }
        free (bits);
    }
    tl_msg_t accept = {.cmd = TL_CMD_ACCEPT, .job = id};
    accept.u.state = (tl_state_body_t){
        .incarnation = self->incarnation, .merged = c->chunks_done, .known = true};
    s_reply (self, open->owner, open->owner_size, &accept);
}

static void s_on_job (s_sink_t *self, const uint8_t *owner, size_t owner_size, tl_msg_t *msg)
{
    const tl_job_body_t *body = &msg->u.job;
    s_open_t *open = s_open_find (self, msg->job);
    s_finished_t *finished = s_finished_find (self, msg->job);
    if ((open && !tl_job_owned_by (open->job, msg->secret)) ||
        (finished && !tl_secret_equal (finished->secret, msg->secret))) {
        s_junk (self, "JOB with the id of another job");
        return;
    }
    if (open) {
        uint32_t shard, shards;
        tl_job_shard (open->job, &shard, &shards);
        if (body->version == TL_PROTO_VERSION && (body->shard != shard || body->shards != shards)) {
            //  The job's ventilator, started again with another --sink list: merging on
            //  would mix two ways of splitting the keys.
            char reason[160];
            snprintf (reason, sizeof reason,
                      "this sink is shard %u of %u of the job, not shard %u of %u: give the "
                      "ventilator the job's --sink list",
                      shard, shards, body->shard, body->shards);
            zsys_error ("job %016llx: %s", (unsigned long long)msg->job, reason);
            s_reply_fail (self, owner, owner_size, msg->job, reason);
            return;
        }
        //  The ventilator did not hear our ACCEPT yet, or it started again (--job-file),
        //  or this sink did (restored from a checkpoint): either way it learns which
        //  chunks are merged here, and is answered at its identity from now on.
        if (owner_size <= S_IDENTITY_MAX) {
            memcpy (open->owner, owner, owner_size);
            open->owner_size = owner_size;
        }
        s_heard (open, tl_now ());
        s_accept (self, open);
        return;
    }
    if (finished) {
        //  Its ventilator was started again (--job-file) after the job ended: say how
        if (finished->failed) {
            s_reply_fail (self, owner, owner_size, msg->job, "job failed");
            return;
        }
        tl_msg_t done = {.cmd = TL_CMD_DONE, .job = msg->job};
        done.u.done = finished->done;
        done.u.done.output = (tl_str_t){self->output, strlen (self->output)};
        s_reply (self, owner, owner_size, &done);
        return;
    }
    if (body->version != TL_PROTO_VERSION) {
        char reason[96];
        snprintf (reason, sizeof reason, "protocol version %u; this sink speaks %d", body->version,
                  TL_PROTO_VERSION);
        s_reply_fail (self, owner, owner_size, msg->job, reason);
        return;
    }
    open = s_open_free (self);
    if (!open || owner_size > S_IDENTITY_MAX) {
        s_reply_fail (self, owner, owner_size, msg->job, "sink busy: too many open jobs");
        return;
    }
    //  Found now rather than after the whole job is merged for nothing.
    if (tl_totals_check (self->output) != 0) {
        char reason[TL_JOB_REASON_MAX];
        s_cannot_write (self, reason, sizeof reason);
        zsys_error ("job %016llx refused: %s", (unsigned long long)msg->job, reason);
        s_reply_fail (self, owner, owner_size, msg->job, reason);
        s_publish_failed (self, msg->job, NULL, reason);
        return;
    }
    open->job = tl_job_new (msg->job, msg->secret, body, tl_now ());
    if (!open->job) {
        s_reply_fail (self, owner, owner_size, msg->job, "sink out of memory");
        return;
    }
    memcpy (open->owner, owner, owner_size);
    open->owner_size = owner_size;
    s_heard (open, tl_now ());
    if (!self->quiet) {
        char shard[48] = "";
        if (body->shards > 1)
            snprintf (shard, sizeof shard, "; this sink is shard %u of %u", body->shard,
                      body->shards);
        zsys_info ("job %016llx opened: %u files, %llu bytes%s", (unsigned long long)msg->job,
                   body->nfiles, (unsigned long long)body->input_bytes, shard);
    }
    s_accept (self, open);
}

static void s_on_partial (s_sink_t *self, tl_frames_t *in, tl_msg_t *msg)
{
    s_open_t *open = s_open_find (self, msg->job);
    if (!open) {
        //  A late copy of a chunk of a finished job is normal; anything else is not.
        if (!s_finished_find (self, msg->job)) s_junk (self, "PARTIAL for an unknown job");
        return;
    }
    size_t size;
    const void *map = tl_frames_data (in, 3, &size);
    tl_job_outcome_t out;
    tl_job_counters_t before = *tl_job_counters (open->job);
    tl_job_partial (open->job, &msg->u.partial, map, size, &out);
    const tl_job_counters_t *after = tl_job_counters (open->job);
    self->stats.partials += after->chunks_done - before.chunks_done;
    self->stats.duplicates += after->duplicates - before.duplicates;
    self->stats.bytes += after->bytes - before.bytes;
    self->stats.lines += after->lines - before.lines;
    s_settle (self, open, &out);
}

//  END, PING or CANCEL for a job that is no longer open: say how it ended.
static void s_on_control_closed (s_sink_t *self, const uint8_t *owner, size_t owner_size,
                                 tl_msg_t *msg)
{
    s_finished_t *finished = s_finished_find (self, msg->job);
    if (finished && !tl_secret_equal (finished->secret, msg->secret)) {
        s_junk (self, "job control without the job's secret");
        return;
    }
    if (msg->cmd == TL_CMD_CANCEL) return;
    if (!finished) {
        //  This sink does not have the job: it restarted before the job's first
        //  checkpoint, or lost it. The ventilator opens it again and sends it all.
        tl_msg_t pong = {.cmd = TL_CMD_PONG, .job = msg->job};
        pong.u.state = (tl_state_body_t){.incarnation = self->incarnation, .known = false};
        s_reply (self, owner, owner_size, &pong);
    } else if (!finished->failed) {
        tl_msg_t done = {.cmd = TL_CMD_DONE, .job = msg->job};
        done.u.done = finished->done;
        done.u.done.output = (tl_str_t){self->output, strlen (self->output)};
        s_reply (self, owner, owner_size, &done);
    } else
        s_reply_fail (self, owner, owner_size, msg->job, "job failed");
}

static void s_on_control (s_sink_t *self, const uint8_t *owner, size_t owner_size, tl_msg_t *msg)
{
    s_open_t *open = s_open_find (self, msg->job);
    if (!open) {
        s_on_control_closed (self, owner, owner_size, msg);
        return;
    }
    if (!tl_job_owned_by (open->job, msg->secret)) {
        //  The feed publishes job ids: knowing one steers nothing.
        s_junk (self, "job control without the job's secret");
        return;
    }
    if (owner_size != open->owner_size || memcmp (owner, open->owner, owner_size) != 0) {
        //  The ventilator reconnected (new identity; it holds the secret): answer it
        //  there from now on.
        memcpy (open->owner, owner, owner_size);
        open->owner_size = owner_size;
    }
    s_heard (open, tl_now ());
    if (msg->cmd == TL_CMD_PING) {
        tl_msg_t pong = {.cmd = TL_CMD_PONG, .job = msg->job};
        pong.u.state = (tl_state_body_t){.incarnation = self->incarnation,
                                         .merged = tl_job_counters (open->job)->chunks_done,
                                         .known = true};
        s_reply (self, owner, owner_size, &pong);
        return;
    }
    tl_job_outcome_t out;
    if (msg->cmd == TL_CMD_END)
        tl_job_end (open->job, &msg->u.end, &out);
    else {
        zsys_warning ("job %016llx cancelled: %.*s", (unsigned long long)msg->job,
                      (int)msg->u.reason.len, msg->u.reason.ptr);
        tl_job_cancel (open->job, &out);
    }
    s_settle (self, open, &out);
}

static void s_on_message (s_sink_t *self, tl_frames_t *in)
{
    size_t owner_size;
    const uint8_t *owner = tl_frames_data (in, 0, &owner_size);
    tl_msg_t msg;
    tl_cmd_t cmd = in->extra ? TL_CMD_INVALID : tl_frames_decode (in, 1, &msg);
    if (cmd == TL_CMD_INVALID) {
        s_junk (self, "not a well-formed Tally message");
        return;
    }
    int expected = cmd == TL_CMD_PARTIAL ? 4 : 3;
    if (in->nframes != expected)
        s_junk (self, "wrong number of frames");
    else if (cmd == TL_CMD_JOB)
        s_on_job (self, owner, owner_size, &msg);
    else if (cmd == TL_CMD_PARTIAL)
        s_on_partial (self, in, &msg);
    else if (cmd == TL_CMD_END || cmd == TL_CMD_PING || cmd == TL_CMD_CANCEL)
        s_on_control (self, owner, owner_size, &msg);
    else
        s_junk (self, "a command the sink does not take");
    tl_msg_reset (&msg);
}

static void s_tick (s_sink_t *self)
{
    double now = tl_now ();
    bool progress = now - self->published_at >= self->interval;
    //  Top-K is a pass over every table, made only for a subscriber to "top" (one that
    //  comes later gets one at once with its snapshot): tally run has none, and on 46 M
    //  keys the pass took the merge's main thread 5% of its time.
    bool top = now >= self->top_due && tl_publisher_wanted (self->feed, TL_FEED_TOPIC_TOP);
    for (int i = 0; i < S_JOBS_MAX; i++) {
        s_open_t *open = &self->open[i];
        if (!open->job) continue;
        if (progress) s_publish_progress (self, open);
        if (top) s_publish_top (self, open, NULL, 0);
    }
    if (top) {
        //  Top-K is a pass over every table: once a second, but never more than 5% of
        //  the sink's time however many keys the jobs hold.
        double took = tl_now () - now;
        self->top_due = now + (took * 20 > 1.0 ? took * 20 : 1.0);
    }
    if (progress) {
        s_publish_stats (self, now);
        self->published_at = now;
    }
}

//  ---------------------------------------------------------------------------------
//  The snapshot service

#define S_SNAP_PER_TURN 8  //  Requests answered per turn of the loop, at most
#define S_NOT_A_BATCH   "\"from\" is not where a batch starts (give 0, then each reply's \"next\")"

//  Sends [identity, topic, body] to a snapshot client. Returns false when it could not
//  (its queue is full or it is gone: the client asks again).
static bool s_snap_reply (s_sink_t *self, const void *id, size_t id_size, const char *topic,
                          const msgpack_sbuffer *body)
{
    void *sock = zsock_resolve (self->snap);
    return zmq_send (sock, id, id_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)id_size &&
           zmq_send (sock, topic, strlen (topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
           zmq_send (sock, body->data, body->size, ZMQ_DONTWAIT) >= 0;
}

//  Encodes msg (entries[0..n) for top and totals) and sends it. Returns false when it
//  could not.
static bool s_snap_send (s_sink_t *self, const void *id, size_t id_size, const tl_feed_msg_t *msg,
                         const tl_entry_t *entries, size_t n)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    bool sent = tl_feed_encode (msg, entries, n, &body) == 0 &&
                s_snap_reply (self, id, id_size, tl_feed_topic_name (msg->topic), &body);
    msgpack_sbuffer_destroy (&body);
    return sent;
}

static void s_snap_error (s_sink_t *self, const void *id, size_t id_size, uint64_t job,
                          const char *reason)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_ERROR, .job = job, .shards = 1};
    msg.u.reason = (tl_str_t){reason, strlen (reason)};
    s_snap_send (self, id, id_size, &msg, NULL, 0);
}

//  What the feed would have told a subscriber that was there from the start, in the
//  order it would have: each open job's progress and top, the finished jobs' done or
//  failed, oldest first, the sink's stats, and the end.
static void s_snap_state (s_sink_t *self, const void *id, size_t id_size)
{
    bool sent = true;
    tl_feed_msg_t end = {.topic = TL_FEED_SNAPSHOT, .shards = 1};
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    for (int i = 0; i < S_JOBS_MAX && sent; i++) {
        s_open_t *open = &self->open[i];
        if (!open->job) continue;
        body.size = 0;
        sent = s_progress_body (open, &body) == 0 &&
               s_snap_reply (self, id, id_size, TL_FEED_TOPIC_PROGRESS, &body);
        body.size = 0;
        sent = sent && s_top_body (self, open, NULL, 0, &body) == 0 &&
               s_snap_reply (self, id, id_size, TL_FEED_TOPIC_TOP, &body);
        end.u.snapshot.open++;
    }
    msgpack_sbuffer_destroy (&body);
    size_t kept = self->nfinished < S_FINISHED_MAX ? self->nfinished : S_FINISHED_MAX;
    for (size_t k = 0; k < kept && sent; k++) {
        s_finished_t *finished = &self->finished[(self->nfinished - kept + k) % S_FINISHED_MAX];
        tl_feed_msg_t msg = {.topic = finished->failed ? TL_FEED_FAILED : TL_FEED_DONE,
                             .job = finished->id,
                             .shard = finished->shard,
                             .shards = finished->shards};
        if (finished->failed)
            msg.u.reason = (tl_str_t){finished->reason, strlen (finished->reason)};
        else
            msg.u.done = finished->done;
        sent = s_snap_send (self, id, id_size, &msg, NULL, 0);
        end.u.snapshot.finished++;
    }
    tl_feed_msg_t stats = s_stats (self, tl_now (), false);
    sent = sent && s_snap_send (self, id, id_size, &stats, NULL, 0) &&
           s_snap_send (self, id, id_size, &end, NULL, 0);
    if (!sent) zsys_warning ("snapshot: a reply could not be sent whole; its client asks again");
}

//  Whether from is where a line of the file at fd starts.
static bool s_line_start (int fd, uint64_t from)
{
    char before;
    return from == 0 ||
           (from <= INT64_MAX && pread (fd, &before, 1, (off_t)from - 1) == 1 && before == '\n');
}

//  One batch of a finished job's totals, from the reader's cursor.
static void s_snap_totals (s_sink_t *self, const void *id, size_t id_size,
                           const tl_snapshot_request_t *request)
{
    s_finished_t *finished = s_finished_find (self, request->job);
    const char *why = NULL;
    if (!finished)
        why = "this sink does not know the job (it keeps the last 16 finished jobs)";
    else if (finished->failed)
        why = "the job failed: it has no totals";
    else if (finished->totals < 0)
        why = "the job's totals are no longer kept (the last 4 finished jobs' are)";
    else if (request->batch >= finished->batches)
        why = "the job's totals have no such batch";
    else if (!s_line_start (finished->totals, request->from))
        why = S_NOT_A_BATCH;
    if (why) {
        s_snap_error (self, id, id_size, request->job, why);
        return;
    }
    int fd = dup (finished->totals);
    tl_totals_reader_t *reader =
        fd < 0 ? NULL
               : tl_totals_reader_new_at (fd, request->from, (size_t)self->batch,
                                          TL_PUBLISHER_BATCH_BYTES);
    const tl_entry_t *entries;
    size_t n;
    if (!reader || tl_totals_reader_next (reader, &entries, &n) != 0) {
        char reason[160];
        snprintf (reason, sizeof reason, "cannot read the job's totals file: %s", strerror (errno));
        s_snap_error (self, id, id_size, request->job, reason);
    } else if (n == 0 && request->from != 0)
        //  The end of the file: only an empty job's one batch has no entries.
        s_snap_error (self, id, id_size, request->job, S_NOT_A_BATCH);
    else {
        tl_feed_msg_t msg = {.topic = TL_FEED_TOTALS,
                             .job = finished->id,
                             .shard = finished->shard,
                             .shards = finished->shards};
        msg.u.totals.batch = request->batch;
        msg.u.totals.batches = finished->batches;
        if (request->batch + 1 < finished->batches)
            msg.u.totals.next = tl_totals_reader_offset (reader);
        s_snap_send (self, id, id_size, &msg, entries, n);
    }
    tl_totals_reader_destroy (&reader);
}

//  Answers the requests waiting, a few per turn so that the merge goes on.
static void s_on_snapshot (s_sink_t *self)
{
    for (int i = 0; i < S_SNAP_PER_TURN; i++) {
        tl_frames_t in;
        if (tl_frames_recv (zsock_resolve (self->snap), &in, ZMQ_DONTWAIT) < 0) return;
        size_t id_size, size;
        const void *id = tl_frames_data (&in, 0, &id_size);
        const void *data = tl_frames_data (&in, 1, &size);
        tl_snapshot_request_t request;
        if (in.nframes != 2 || in.extra || tl_snapshot_request_decode (data, size, &request) != 0)
            s_snap_error (self, id, id_size, 0, "not a snapshot request");
        else if (request.get == TL_SNAPSHOT_STATE)
            s_snap_state (self, id, id_size);
        else
            s_snap_totals (self, id, id_size, &request);
        tl_frames_close (&in);
    }
}

//  Counts the inbound socket's closed connections. A connection whose handshake
//  failed (a port scan, wrong CURVE keys) reports that just before its close, from
//  the same thread: such a close is not a peer that left.
static void s_on_monitor (s_sink_t *self)
{
    uint16_t id;
    while ((id = tl_monitor_event (self->monitor)) != 0) {
        if (id == ZMQ_EVENT_DISCONNECTED) {
            if (self->handshakes_failed > 0)
                self->handshakes_failed--;
            else
                self->stats.disconnects++;
        } else if (id != ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            self->handshakes_failed++;
    }
}

//  Takes a job restored from a checkpoint into a free slot. Its ventilator's identity
//  is learnt from its next PING or END.
static int s_take_restored (void *arg, tl_job_t *job)
{
    s_sink_t *self = arg;
    s_open_t *open = s_open_free (self);
    if (!open) return -1;
    //  Its ventilator gets --job-timeout from now to be heard again.
    *open = (s_open_t){.job = job, .heard_at = tl_now ()};
    return 0;
}

//  Writes every open job's checkpoint as of time now, and says how it went.
static s_saver_report_t s_saver_write (s_sink_t *self, double now)
{
    s_saver_report_t report = {0};
    for (int i = 0; i < S_JOBS_MAX; i++) {
        if (!self->open[i].job) continue;
        uint64_t bytes = 0;
        if (tl_checkpoint_write (self->state_dir, self->open[i].job, now, &bytes) == 0) {
            report.saved++;
            report.bytes += bytes;
        } else
            report.failed++;
    }
    return report;
}

//  The saver's child: writes every open job as it was at fork, reports, and exits
//  without running the parent's exit handlers (CZMQ's would touch sockets it shares).
static void s_saver_child (s_sink_t *self, int report_fd, pid_t parent, double now)
{
    //  Dies with the sink: a checkpoint half-written is a temporary file, and the whole
    //  one before it stays in place.
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    if (getppid () != parent) _exit (1);
    //  Lets go of the sink's sockets at once, its listening ones above all: a sink
    //  started again must find its ports free.
    if (dup2 (report_fd, 3) != 3) _exit (1);
    report_fd = 3;
    close_range (4, ~0u, 0);
    s_saver_report_t report = s_saver_write (self, now);
    ssize_t rc = write (report_fd, &report, sizeof report);
    _exit (rc == (ssize_t)sizeof report && report.failed == 0 ? 0 : 1);
}

//  AddressSanitizer's allocator has no fork handlers (gcc 12's libasan): a child that
//  allocates deadlocks when another thread held its lock at the fork. Its builds (the
//  tests') write checkpoints in the loop instead; glibc's malloc is safe in a child.
#if defined(__SANITIZE_ADDRESS__)
#define S_FORK_CHECKPOINTS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_FORK_CHECKPOINTS 0
#endif
#endif
#ifndef S_FORK_CHECKPOINTS
#define S_FORK_CHECKPOINTS 1
#endif

static void s_saver_log (s_sink_t *self, const s_saver_report_t *report, double took, double pause)
{
    if (self->quiet) return;
    char size[32], rate[32];
    tl_human_bytes ((double)report->bytes, size, sizeof size);
    tl_human_bytes (took > 0 ? (double)report->bytes / took : 0, rate, sizeof rate);
    zsys_info ("checkpoint: %d job(s), %s in %.2f s (%s/s); the merge paused %.1f ms",
               report->saved, size, took, rate, pause * 1000);
}

//  Writes every open job in the loop (builds that cannot fork safely).
static void s_saver_inline (s_sink_t *self, double now)
{
    double before = tl_now ();
    s_saver_report_t report = s_saver_write (self, now);
    double took = tl_now () - before;
    if (report.failed)
        zsys_error ("checkpoint failed for %d job(s)", report.failed);
    else if (report.saved)
        s_saver_log (self, &report, took, took);
}

//  Starts a background checkpoint of the open jobs when one is due and none runs.
static void s_saver_start (s_sink_t *self, double now)
{
    if (self->ckpt_interval <= 0 || self->saver.pid || now < self->ckpt_due) return;
    self->ckpt_due = now + self->ckpt_interval;
    if (!S_FORK_CHECKPOINTS) {
        s_saver_inline (self, now);
        return;
    }
    s_saver_t *saver = &self->saver;
    saver->nids = 0;
    for (int i = 0; i < S_JOBS_MAX; i++)
        if (self->open[i].job) saver->ids[saver->nids++] = tl_job_id (self->open[i].job);
    if (saver->nids == 0) return;
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC) != 0) {
        zsys_error ("no checkpoint: %s", strerror (errno));
        return;
    }
    pid_t parent = getpid ();
    double before = tl_now ();
    pid_t pid = fork ();
    if (pid == 0) {
        close (fds[0]);
        s_saver_child (self, fds[1], parent, now);
    }
    saver->pause = tl_now () - before;
    close (fds[1]);
    if (pid < 0) {
        zsys_error ("no checkpoint: cannot fork: %s", strerror (errno));
        close (fds[0]);
        return;
    }
    saver->pid = pid;
    saver->pipe = fds[0];
    saver->started = before;
}

//  Collects the background checkpoint when it has ended (or waits for it, when block).
//  Removes the checkpoints it wrote of jobs that ended meanwhile.
static void s_saver_reap (s_sink_t *self, bool block)
{
    s_saver_t *saver = &self->saver;
    if (!saver->pid) return;
    int status;
    pid_t rc;
    do
        rc = waitpid (saver->pid, &status, block ? 0 : WNOHANG);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) return;
    double took = tl_now () - saver->started;
    s_saver_report_t report = {0};
    bool reported = read (saver->pipe, &report, sizeof report) == (ssize_t)sizeof report;
    close (saver->pipe);
    saver->pid = 0;
    for (int i = 0; i < saver->nids; i++)
        if (!s_open_find (self, saver->ids[i]))
            tl_checkpoint_remove (self->state_dir, saver->ids[i]);
    if (!reported || report.failed || rc < 0 || !WIFEXITED (status) || WEXITSTATUS (status)) {
        zsys_error ("checkpoint failed (%d of %d jobs written): the jobs go on, and a restart "
                    "would take them back from their previous checkpoint",
                    reported ? report.saved : 0, saver->nids);
        return;
    }
    s_saver_log (self, &report, took, saver->pause);
}

//  Checkpoints the jobs still open and destroys them. Returns how many were lost.
static int s_save_open (s_sink_t *self)
{
    s_saver_reap (self, true);  //  Its rename must not land after ours
    int lost = 0;
    for (int i = 0; i < S_JOBS_MAX; i++)
        if (self->open[i].job) {
            lost += tl_checkpoint_save (self->state_dir, self->open[i].job, tl_now ()) != 0;
            tl_job_destroy (&self->open[i].job);
        }
    return lost;
}

//  The state folder when none is given: ".tally-sink" beside the totals file, a
//  folder of the sink's own rather than the output's folder, which others may write.
//  Returns a new string (the caller frees it), or NULL when memory is exhausted.
static char *s_default_state_dir (const char *output)
{
    char *copy = strdup (output), *dir = NULL;
    if (copy && asprintf (&dir, "%s/.tally-sink", dirname (copy)) < 0) dir = NULL;
    free (copy);
    return dir;
}

int main (int argc, char **argv)
{
    s_sink_t self = {.bind = "tcp://*:5558",
                     .publish = "tcp://*:5559",
                     .output = "totals.tsv",
                     .top_k = 10,
                     .batch = 10000,
                     .interval = 0.25,
                     .job_timeout = 120,
                     .ckpt_interval = 30,
                     .max_msg = TL_MAXMSG_DEFAULT};
    tl_opt_t opts[] = {
        TL_OPT ("bind", 'b', "TALLY_BIND", TL_OPT_STR, &self.bind, "ENDPOINT",
                "Where workers and ventilators connect (default tcp://*:5558)", 0, 0),
        TL_OPT ("publish", 'p', "TALLY_PUBLISH", TL_OPT_STR, &self.publish, "ENDPOINT",
                "Where the feed is published (default tcp://*:5559)", 0, 0),
        TL_OPT ("snapshot", 0, "TALLY_SNAPSHOT", TL_OPT_STR, &self.snapshot, "ENDPOINT",
                "Where late subscribers get the state so far and finished jobs' totals "
                "(default: the feed's port + 1, tcp://*:5560; for ipc://PATH, PATH.snapshot)",
                0, 0),
        TL_OPT ("output", 'o', "TALLY_OUTPUT", TL_OPT_STR, &self.output, "FILE",
                "Totals file written when a job completes (default totals.tsv)", 0, 0),
        TL_OPT ("top", 0, "TALLY_TOP", TL_OPT_INT, &self.top_k, "K",
                "Keys in the feed's top list (default 10)", 1, 10000),
        TL_OPT ("batch", 0, "TALLY_BATCH", TL_OPT_INT, &self.batch, "N",
                "Keys per totals message on the feed, at most (default 10000; a message also "
                "ends at 256 KiB)",
                1, 1000000),
        TL_OPT_MAX_MESSAGE (self.max_msg, "Largest inbound frame accepted (default 256M)"),
        TL_OPT ("interval", 0, "TALLY_INTERVAL", TL_OPT_REAL, &self.interval, "SECONDS",
                "Time between progress messages (default 0.25)", 0, 0),
        TL_OPT ("job-timeout", 0, "TALLY_JOB_TIMEOUT", TL_OPT_REAL, &self.job_timeout, "SECONDS",
                "Fail a job whose ventilator has been silent this long (default 120)", 0, 0),
        TL_OPT ("state-dir", 0, "TALLY_STATE_DIR", TL_OPT_STR, &self.state_dir, "DIR",
                "The sink's own folder, where open jobs are checkpointed (default: .tally-sink "
                "beside the output)",
                0, 0),
        TL_OPT ("checkpoint-interval", 0, "TALLY_CHECKPOINT_INTERVAL", TL_OPT_REAL,
                &self.ckpt_interval, "SECONDS",
                "Checkpoint open jobs this often, so that a sink killed and started again "
                "redoes about this much work and one checkpoint's write (default 30; 0: only on "
                "shutdown)",
                0, 0),
        TL_OPT_QUIET (self.quiet),
        TL_OPTS_CURVE_SERVER (self.curve),
    };
    tl_cli_t cli = {.program = "tally-sink",
                    .usage = "[OPTIONS]",
                    .summary = "Merges partial results from tally-worker processes into exact "
                               "totals, writes the totals file\nand publishes progress and totals.",
                    TL_CLI_OPTS (opts)};
    tl_sock_start (&cli, argc, argv, &self.curve);
    if (!*self.output) tl_cli_usage_error (&cli, "--output is empty");
    char *default_snapshot = NULL;
    if (!self.snapshot || !*self.snapshot) {
        default_snapshot = tl_snapshot_endpoint (self.publish);
        if (!default_snapshot)
            tl_cli_usage_error (&cli, "give --snapshot: the feed's endpoint has no port + 1 "
                                      "(tcp://HOST:PORT) or path (ipc://PATH) to derive it from");
        self.snapshot = default_snapshot;
    }
    char *default_state = NULL;
    if (!self.state_dir || !*self.state_dir) {
        default_state = s_default_state_dir (self.output);
        if (!default_state) {
            fprintf (stderr, "tally-sink: out of memory\n");
            return 1;
        }
        self.state_dir = default_state;
    }
    if (self.interval < 0.01 || self.interval > 3600)
        tl_cli_usage_error (&cli, "--interval must be from 0.01 to 3600 seconds");
    //  The ventilator PINGs every second: less than a few seconds would fail live jobs.
    if (!(self.job_timeout >= 3))
        tl_cli_usage_error (&cli, "--job-timeout must be at least 3 seconds");
    if (!(self.ckpt_interval >= 0 && self.ckpt_interval <= 86400))
        tl_cli_usage_error (&cli, "--checkpoint-interval must be from 0 to 86400 seconds");
    char lock_why[256];
    int lock = tl_checkpoint_lock (self.state_dir, lock_why, sizeof lock_why);
    if (lock == -2) {
        //  Two sinks in one folder (say two shards writing their parts side by side)
        //  would take each other's checkpoints for their own.
        fprintf (stderr,
                 "tally-sink: another tally-sink uses the state folder %s; give each sink its "
                 "own (--state-dir, or --output in another folder)\n",
                 self.state_dir);
        free (default_state);
        free (default_snapshot);
        return 1;
    }
    if (lock < 0)
        zsys_warning ("state folder %s: %s: open jobs cannot be checkpointed", self.state_dir,
                      lock_why);
    if (getrandom (&self.incarnation, sizeof self.incarnation, 0) != sizeof self.incarnation)
        self.incarnation = (uint64_t)(tl_now () * 1e6) ^ ((uint64_t)getpid () << 40);
    const char *why;
    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = (int64_t)self.max_msg;
    cfg.rcvhwm = 10000;
    cfg.sndhwm = 10000;
    self.router = tl_sock_new (ZMQ_ROUTER, self.bind, true, true, &cfg, &why);
    self.feed = self.router ? tl_publisher_new (self.publish, (size_t)self.batch, &why) : NULL;
    tl_sock_cfg_t snap_cfg = tl_sock_cfg_default ();
    snap_cfg.maxmsgsize = 4096;         //  Requests are small
    snap_cfg.sndhwm = 1000;             //  A state reply is a few messages a job
    snap_cfg.zap_domain = TL_ZAP_FEED;  //  Whoever may read the feed may read this
    self.snap =
        self.feed ? tl_sock_new (ZMQ_ROUTER, self.snapshot, true, true, &snap_cfg, &why) : NULL;
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://tally-sink-monitor-%p", (void *)&self);
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                 ZMQ_EVENT_DISCONNECTED;
    if (self.snap) {
        zsock_set_router_mandatory (self.snap, 1);
        if (zmq_socket_monitor (zsock_resolve (self.router), monitor_ep, events) != 0 ||
            !(self.monitor = zsock_new_pair (monitor_ep))) {
            why = "cannot monitor the inbound socket";
            zsock_destroy (&self.snap);
        }
    }
    if (!self.router || !self.feed || !self.snap) {
        fprintf (stderr, "tally-sink: %s\n", why);
        zsock_destroy (&self.router);
        tl_publisher_destroy (&self.feed);
        free (default_state);
        free (default_snapshot);
        return 1;
    }
    self.started = self.rate_at = tl_now ();
    self.stats.incarnation = self.incarnation;
    if (!self.quiet)
        zsys_info ("listening on %s, publishing on %s (snapshots on %s), totals to %s", self.bind,
                   self.publish, self.snapshot, self.output);
    tl_checkpoint_load_all (self.state_dir, tl_now (), s_take_restored, &self);
    self.ckpt_due = tl_now () + self.ckpt_interval;

    long feed_wait = -1;  //  Milliseconds the feed may wait for its next turn (-1: idle)
    while (!zsys_interrupted) {
        long timeout = (long)(self.interval * 1000 / 2);
        if (feed_wait >= 0 && feed_wait < timeout) timeout = feed_wait;
        zmq_pollitem_t items[] = {{zsock_resolve (self.router), 0, ZMQ_POLLIN, 0},
                                  {zsock_resolve (self.snap), 0, ZMQ_POLLIN, 0},
                                  {zsock_resolve (self.monitor), 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll (items, 3, timeout);
        if (rc == -1 && errno != EINTR) break;
        if (items[2].revents & ZMQ_POLLIN) s_on_monitor (&self);
        if (items[1].revents & ZMQ_POLLIN) s_on_snapshot (&self);
        //  Drain what is there, but come back to the clock now and then.
        bool caught_up = false;
        for (int n = 0; n < 1000 && !zsys_interrupted; n++) {
            tl_frames_t in;
            if (tl_frames_recv (zsock_resolve (self.router), &in, ZMQ_DONTWAIT) < 0) {
                caught_up = true;
                break;
            }
            s_on_message (&self, &in);
            tl_frames_close (&in);
        }
        s_tick (&self);
        if (caught_up) s_expire_silent (&self, tl_now ());
        s_saver_reap (&self, false);
        s_saver_start (&self, tl_now ());
        feed_wait = tl_publisher_pump (self.feed, tl_now ());
    }
    int lost = s_save_open (&self);
    if (lost)
        zsys_warning ("stopped with %d job(s) open that could not be saved", lost);
    else if (!self.quiet)
        zsys_info ("stopped");
    free (default_state);
    free (default_snapshot);
    for (size_t i = 0; i < S_FINISHED_MAX; i++)
        if (i < self.nfinished) s_close_totals (&self.finished[i]);
    zmq_socket_monitor (zsock_resolve (self.router), NULL, 0);
    zsock_destroy (&self.monitor);
    zsock_destroy (&self.snap);
    zsock_destroy (&self.router);
    tl_publisher_destroy (&self.feed);
    if (lock >= 0) close (lock);
    return 0;
}
