/*  tally-sink: reduces the workers' partial dictionaries into exact totals.

    One inbound ROUTER socket takes PARTIALs from workers and job control from
    ventilators (JOB, END, PING, CANCEL), which get ACCEPT, ACK, PONG, DONE or FAIL
    back. Each chunk id of a job is merged once however many copies arrive (the
    ventilator sends again what it has not seen acknowledged). When every chunk of a job
    is merged the totals file is written atomically (temporary file, then rename: a file
    that exists is complete) and published on the feed. Job after job, no restart.    */

#include "tl_opts.h"
#include "tl_bar.h"
#include "tl_feed.h"
#include "tl_sock.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_IDENTITY_MAX 256  //  ROUTER identities libzmq makes are 5 bytes
#define S_JOBS_MAX     64   //  Jobs open at once
#define S_FINISHED_MAX 16   //  Finished jobs remembered (to answer a late PING)

typedef struct {
    uint64_t id;                                 //  Job id
    uint8_t owner[S_IDENTITY_MAX];               //  Ventilator's ROUTER identity
    size_t owner_size;                           //  Its length
    char **files;                                //  Input names (for bad line messages)
    uint32_t nfiles;                             //  How many
    uint64_t input_bytes;                        //  Announced input size
    tl_table_t *totals;                          //  key -> total
    tl_table_t *merged;                          //  Chunk ids merged (8-byte keys)
    uint64_t chunks_done;                        //  Chunks merged
    uint64_t chunks_seen;                        //  Highest chunk id seen + 1
    uint64_t chunks_total;                       //  From END, valid when ended
    bool ended;                                  //  END arrived
    bool strict;                                 //  Malformed lines fail the job
    uint64_t bytes, lines, bad_lines, filtered;  //  Counters over merged chunks
    uint64_t duplicates;                         //  Copies of merged chunks
    uint64_t overflows;                          //  Totals that saturated
    uint64_t bad_logged;                         //  Bad line positions logged
    uint64_t ack[TL_ACK_MAX];                    //  Chunk ids to acknowledge
    uint32_t nack;                               //  How many
    double started;                              //  JOB arrival
    double rate_at;                              //  Rate sample time
    uint64_t rate_bytes;                         //  Bytes at rate_at
    double rate;                                 //  Bytes per second, recent
} s_job_t;

typedef struct {
    uint64_t id;                    //  Job id
    uint8_t owner[S_IDENTITY_MAX];  //  Ventilator identity
    size_t owner_size;              //  Its length
    bool failed;                    //  Failed rather than done
    tl_done_body_t done;            //  What DONE said (output points at s_sink_t.output)
} s_finished_t;

typedef struct {
    const char *bind;                       //  Inbound endpoint
    const char *publish;                    //  Feed endpoint
    const char *output;                     //  Totals file
    const char *state_dir;                  //  Where open jobs are checkpointed on shutdown
    long top_k;                             //  Keys in "top"
    long batch;                             //  Keys per "totals" message
    double interval;                        //  Seconds between progress messages
    size_t max_msg;                         //  Largest inbound frame
    bool quiet;                             //  --quiet
    tl_curve_t curve;                       //  CURVE keys
    zsock_t *router;                        //  Inbound
    zsock_t *pub;                           //  Feed
    s_job_t *jobs[S_JOBS_MAX];              //  Open jobs
    s_finished_t finished[S_FINISHED_MAX];  //  Recently finished, a ring
    size_t nfinished;                       //  Entries written to the ring
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

static s_job_t *s_job_find (s_sink_t *self, uint64_t id)
{
    for (int i = 0; i < S_JOBS_MAX; i++)
        if (self->jobs[i] && self->jobs[i]->id == id) return self->jobs[i];
    return NULL;
}

static s_finished_t *s_finished_find (s_sink_t *self, uint64_t id)
{
    size_t n = self->nfinished < S_FINISHED_MAX ? self->nfinished : S_FINISHED_MAX;
    for (size_t i = 0; i < n; i++)
        if (self->finished[i].id == id) return &self->finished[i];
    return NULL;
}

static void s_job_destroy (s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (!job) return;
    for (uint32_t i = 0; i < job->nfiles; i++)
        free (job->files[i]);
    free (job->files);
    tl_table_destroy (&job->totals);
    tl_table_destroy (&job->merged);
    free (job);
    *job_p = NULL;
}

static void s_remove_job (s_sink_t *self, s_job_t *job)
{
    for (int i = 0; i < S_JOBS_MAX; i++)
        if (self->jobs[i] == job) s_job_destroy (&self->jobs[i]);
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

static void s_publish_failed (s_sink_t *self, uint64_t job, const char *reason)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    if (tl_feed_failed (job, reason, &body) == 0)
        tl_publish (zsock_resolve (self->pub), "failed", &body);
    msgpack_sbuffer_destroy (&body);
}

static void s_remember (s_sink_t *self, s_job_t *job, bool failed, const tl_done_body_t *done)
{
    s_finished_t *slot = &self->finished[self->nfinished++ % S_FINISHED_MAX];
    memset (slot, 0, sizeof *slot);
    slot->id = job->id;
    memcpy (slot->owner, job->owner, job->owner_size);
    slot->owner_size = job->owner_size;
    slot->failed = failed;
    if (done) slot->done = *done;
}

static void s_fail_job (s_sink_t *self, s_job_t *job, const char *reason)
{
    zsys_error ("job %016llx failed: %s", (unsigned long long)job->id, reason);
    s_reply_fail (self, job->owner, job->owner_size, job->id, reason);
    s_publish_failed (self, job->id, reason);
    s_remember (self, job, true, NULL);
    s_remove_job (self, job);
}

static void s_flush_acks (s_sink_t *self, s_job_t *job)
{
    if (!job->nack) return;
    tl_msg_t msg = {.cmd = TL_CMD_ACK, .job = job->id};
    msg.u.ack.count = job->nack;
    memcpy (msg.u.ack.chunk, job->ack, job->nack * sizeof *job->ack);
    s_reply (self, job->owner, job->owner_size, &msg);
    job->nack = 0;
}

static void s_queue_ack (s_sink_t *self, s_job_t *job, uint64_t chunk)
{
    if (job->nack == TL_ACK_MAX) s_flush_acks (self, job);
    job->ack[job->nack++] = chunk;
}

//  --- Checkpoints -------------------------------------------------------------
//  On SIGTERM or SIGINT (docker stop, a restart) the sink writes each open job to
//  STATE_DIR/tally-sink-JOB.checkpoint and, started again, takes it back and deletes
//  the file: the ventilator's next PING finds the job, and chunks it had not seen
//  acknowledged are merged once as usual, so the totals stay exact. A sink that dies
//  without its shutdown (SIGKILL, a crash) leaves no checkpoint, and the ventilator's
//  PING gets "unknown job": the job fails with that message rather than going wrong.
//
//  File: "TLYCKP02", then four parts, each a little-endian uint64 length and bytes:
//  the job as a JOB frame 1; a msgpack array of the counters; the merged chunk ids
//  and the totals, each as a PARTIAL-style map (ids as 8-byte keys). 02: the JOB frame
//  of protocol version 2; a TLYCKP01 file is ignored as malformed.

#define S_CKP_MAGIC "TLYCKP02"

static int s_ckp_part (FILE *file, const void *data, size_t size)
{
    uint64_t len = size;
    return fwrite (&len, sizeof len, 1, file) == 1 && fwrite (data, 1, size, file) == size ? 0 : -1;
}

static int s_ckp_save (s_sink_t *self, s_job_t *job)
{
    char path[4096], temp[4200];
    snprintf (path, sizeof path, "%s/tally-sink-%016llx.checkpoint", self->state_dir,
              (unsigned long long)job->id);
    snprintf (temp, sizeof temp, "%s.tmp", path);
    tl_msg_t msg = {.cmd = TL_CMD_JOB, .job = job->id};
    tl_str_t *names = calloc (job->nfiles ? job->nfiles : 1, sizeof *names);
    if (!names) return -1;
    for (uint32_t i = 0; i < job->nfiles; i++)
        names[i] = (tl_str_t){job->files[i], strlen (job->files[i])};
    msg.u.job = (tl_job_body_t){.version = TL_PROTO_VERSION,
                                .input_bytes = job->input_bytes,
                                .nfiles = job->nfiles,
                                .files = names};
    msgpack_sbuffer parts[4];
    for (int i = 0; i < 4; i++)
        msgpack_sbuffer_init (&parts[i]);
    int rc = tl_msg_encode (&msg, &parts[0]);
    free (names);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &parts[1], msgpack_sbuffer_write);
    uint64_t counters[] = {job->chunks_done, job->chunks_seen, job->chunks_total, job->ended,
                           job->bytes,       job->lines,       job->bad_lines,    job->filtered,
                           job->duplicates,  job->overflows,   job->bad_logged,   job->strict};
    msgpack_pack_array (&pk, sizeof counters / sizeof *counters + 1);
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++)
        msgpack_pack_uint64 (&pk, counters[i]);
    msgpack_pack_double (&pk, tl_now () - job->started);
    if (rc == 0) rc = tl_map_encode (job->merged, &parts[2]);
    if (rc == 0) rc = tl_map_encode (job->totals, &parts[3]);
    FILE *file = rc == 0 ? fopen (temp, "w") : NULL;
    if (file) {
        rc = fwrite (S_CKP_MAGIC, 8, 1, file) == 1 ? 0 : -1;
        for (int i = 0; i < 4 && rc == 0; i++)
            rc = s_ckp_part (file, parts[i].data, parts[i].size);
        rc = rc == 0 && fflush (file) == 0 && fsync (fileno (file)) == 0 ? 0 : -1;
        rc = fclose (file) == 0 && rc == 0 ? 0 : -1;
        if (rc == 0) rc = rename (temp, path);
        if (rc != 0) unlink (temp);
    } else
        rc = -1;
    for (int i = 0; i < 4; i++)
        msgpack_sbuffer_destroy (&parts[i]);
    if (rc == 0)
        zsys_info ("job %016llx checkpointed to %s (%llu chunks merged)",
                   (unsigned long long)job->id, path, (unsigned long long)job->chunks_done);
    else
        zsys_error ("job %016llx: cannot write checkpoint %s: %s", (unsigned long long)job->id,
                    path, strerror (errno));
    return rc;
}

//  Reads part i of a checkpoint; returns its bytes or NULL when the file is cut.
static const char *s_ckp_next (const char **cursor, const char *end, size_t *size)
{
    uint64_t len;
    if ((size_t)(end - *cursor) < sizeof len) return NULL;
    memcpy (&len, *cursor, sizeof len);
    *cursor += sizeof len;
    if (len > (uint64_t)(end - *cursor)) return NULL;
    const char *part = *cursor;
    *cursor += len;
    *size = len;
    return part;
}

static s_job_t *s_job_new (uint64_t id, const tl_job_body_t *body);

//  Restores one job from a mapped checkpoint. Returns the job, or NULL if malformed.
static s_job_t *s_ckp_restore (const char *data, size_t size)
{
    if (size < 8 || memcmp (data, S_CKP_MAGIC, 8) != 0) return NULL;
    const char *cursor = data + 8, *end = data + size;
    size_t sizes[4];
    const char *parts[4];
    for (int i = 0; i < 4; i++)
        if (!(parts[i] = s_ckp_next (&cursor, end, &sizes[i]))) return NULL;
    tl_msg_t msg;
    if (tl_msg_decode (TL_CMD_JOB, parts[0], sizes[0], &msg) != 0) return NULL;
    s_job_t *job = s_job_new (msg.job, &msg.u.job);
    tl_msg_reset (&msg);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object counters;
    bool ok =
        job && tl_msgpack_check (parts[1], sizes[1]) == 0 &&
        msgpack_unpack (parts[1], sizes[1], NULL, &zone, &counters) == MSGPACK_UNPACK_SUCCESS &&
        counters.type == MSGPACK_OBJECT_ARRAY && counters.via.array.size == 13;
    for (uint32_t i = 0; ok && i < 12; i++)
        ok = counters.via.array.ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    if (ok) {
        uint64_t c[12];
        for (int i = 0; i < 12; i++)
            c[i] = counters.via.array.ptr[i].via.u64;
        job->chunks_done = c[0], job->chunks_seen = c[1], job->chunks_total = c[2];
        job->ended = c[3], job->bytes = c[4], job->lines = c[5], job->bad_lines = c[6];
        job->filtered = c[7], job->duplicates = c[8], job->overflows = c[9];
        job->bad_logged = c[10], job->strict = c[11];
        const msgpack_object *elapsed = &counters.via.array.ptr[12];
        if (elapsed->type == MSGPACK_OBJECT_FLOAT64 || elapsed->type == MSGPACK_OBJECT_FLOAT32)
            job->started = tl_now () - elapsed->via.f64;
    }
    msgpack_zone_destroy (&zone);
    uint64_t entries;
    ok = ok && tl_map_merge (parts[2], sizes[2], job->merged, &entries) == 0 &&
         tl_map_merge (parts[3], sizes[3], job->totals, &entries) >= 0 &&
         tl_table_size (job->merged) == job->chunks_done;
    if (!ok) s_job_destroy (&job);
    return job;
}

static void s_ckp_load_all (s_sink_t *self)
{
    DIR *dir = opendir (self->state_dir);
    if (!dir) return;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        unsigned long long id;
        int used = 0;
        if (sscanf (entry->d_name, "tally-sink-%16llx.checkpoint%n", &id, &used) != 1 ||
            entry->d_name[used] != 0)
            continue;
        char path[4200];
        snprintf (path, sizeof path, "%s/%s", self->state_dir, entry->d_name);
        int fd = open (path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        s_job_t *job = NULL;
        if (fd >= 0 && fstat (fd, &st) == 0 && st.st_size > 0) {
            void *data = mmap (NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (data != MAP_FAILED) {
                job = s_ckp_restore (data, (size_t)st.st_size);
                munmap (data, (size_t)st.st_size);
            }
        }
        if (fd >= 0) close (fd);
        int slot = -1;
        for (int i = 0; i < S_JOBS_MAX && slot < 0; i++)
            if (!self->jobs[i]) slot = i;
        if (job && slot >= 0) {
            self->jobs[slot] = job;
            zsys_info ("job %016llx restored from %s: %llu chunks merged, %zu keys", id, path,
                       (unsigned long long)job->chunks_done, tl_table_size (job->totals));
        } else {
            zsys_error ("ignored checkpoint %s: %s", path,
                        job ? "too many open jobs" : "malformed");
            s_job_destroy (&job);
        }
        //  Taken (or refused): a later crash must not bring this state back stale.
        unlink (path);
    }
    closedir (dir);
}

//  Creates an empty job from a JOB body. Returns NULL when memory is exhausted.
static s_job_t *s_job_new (uint64_t id, const tl_job_body_t *body)
{
    s_job_t *job = calloc (1, sizeof *job);
    if (!job) return NULL;
    job->totals = tl_table_new (1 << 16);
    job->merged = tl_table_new (1024);
    job->files = calloc (body->nfiles ? body->nfiles : 1, sizeof *job->files);
    if (!job->totals || !job->merged || !job->files) {
        s_job_destroy (&job);
        return NULL;
    }
    job->id = id;
    job->input_bytes = body->input_bytes;
    job->strict = body->strict;
    job->nfiles = body->nfiles;
    for (uint32_t i = 0; i < body->nfiles; i++)
        if (!(job->files[i] = strndup (body->files[i].ptr, body->files[i].len))) {
            s_job_destroy (&job);
            return NULL;
        }
    job->started = job->rate_at = tl_now ();
    return job;
}

static void s_on_job (s_sink_t *self, const uint8_t *owner, size_t owner_size, tl_msg_t *msg)
{
    const tl_job_body_t *body = &msg->u.job;
    s_job_t *job = s_job_find (self, msg->job);
    if (job) {  //  The ventilator did not hear our ACCEPT yet
        tl_msg_t accept = {.cmd = TL_CMD_ACCEPT, .job = job->id};
        s_reply (self, owner, owner_size, &accept);
        return;
    }
    s_finished_t *finished = s_finished_find (self, msg->job);
    if (finished) {
        s_reply_fail (self, owner, owner_size, msg->job, "job already finished");
        return;
    }
    if (body->version != TL_PROTO_VERSION) {
        char reason[96];
        snprintf (reason, sizeof reason, "protocol version %u; this sink speaks %d", body->version,
                  TL_PROTO_VERSION);
        s_reply_fail (self, owner, owner_size, msg->job, reason);
        return;
    }
    int free_slot = -1;
    for (int i = 0; i < S_JOBS_MAX && free_slot < 0; i++)
        if (!self->jobs[i]) free_slot = i;
    if (free_slot < 0 || owner_size > S_IDENTITY_MAX) {
        s_reply_fail (self, owner, owner_size, msg->job, "sink busy: too many open jobs");
        return;
    }
    job = s_job_new (msg->job, body);
    if (!job) {
        s_reply_fail (self, owner, owner_size, msg->job, "sink out of memory");
        return;
    }
    memcpy (job->owner, owner, owner_size);
    job->owner_size = owner_size;
    self->jobs[free_slot] = job;
    if (!self->quiet)
        zsys_info ("job %016llx opened: %u files, %llu bytes", (unsigned long long)job->id,
                   body->nfiles, (unsigned long long)body->input_bytes);
    tl_msg_t accept = {.cmd = TL_CMD_ACCEPT, .job = job->id};
    s_reply (self, owner, owner_size, &accept);
}

static void s_log_bad_lines (s_job_t *job, const tl_partial_body_t *partial)
{
    const char *file =
        partial->file < job->nfiles && job->files[partial->file] ? job->files[partial->file] : "?";
    for (uint32_t i = 0; i < partial->bad_samples && job->bad_logged < 10; i++, job->bad_logged++)
        zsys_warning ("%s: malformed line at byte %llu skipped%s", file,
                      (unsigned long long)partial->bad_offset[i],
                      job->bad_logged == 9 ? " (no more are logged for this job)" : "");
}

static void s_on_partial (s_sink_t *self, tl_frames_t *in, tl_msg_t *msg)
{
    s_job_t *job = s_job_find (self, msg->job);
    if (!job) {
        //  A late copy of a chunk of a finished job is normal; anything else is not.
        if (!s_finished_find (self, msg->job)) s_junk (self, "PARTIAL for an unknown job");
        return;
    }
    const tl_partial_body_t *partial = &msg->u.partial;
    uint64_t id = partial->chunk;
    uint64_t seen;
    if (tl_table_get (job->merged, &id, sizeof id, &seen)) {
        job->duplicates++;
        s_queue_ack (self, job, id);
        return;
    }
    if (job->ended && id >= job->chunks_total) {
        s_junk (self, "PARTIAL with a chunk id beyond the job's end");
        return;
    }
    size_t size;
    const void *map = tl_frames_data (in, 3, &size);
    uint64_t entries;
    size_t keys_before = tl_table_size (job->totals);
    uint64_t sum_before = tl_table_sum (job->totals);
    int rc = tl_map_merge (map, size, job->totals, &entries);
    if (rc < 0 &&
        (tl_table_size (job->totals) != keys_before || tl_table_sum (job->totals) != sum_before)) {
        //  The frame was valid but memory ran out half-way: part of it is merged, so a
        //  resent copy would count that part twice. Only failing the job keeps it exact.
        s_fail_job (self, job, "sink out of memory merging a partial");
        return;
    }
    if (rc < 0) {
        s_junk (self, "PARTIAL whose map is malformed");
        return;
    }
    if (rc > 0) job->overflows++;
    //  Checked once the map proved well-formed: junk must not fail a strict job.
    if (job->strict && partial->bad_lines) {
        const char *file = partial->file < job->nfiles ? job->files[partial->file] : "?";
        char reason[4400];
        snprintf (reason, sizeof reason, "%s: malformed line at byte %llu (--strict)", file,
                  (unsigned long long)(partial->bad_samples ? partial->bad_offset[0] : 0));
        s_fail_job (self, job, reason);
        return;
    }
    if (tl_table_add (job->merged, &id, sizeof id, 1) < 0) {
        s_fail_job (self, job, "sink out of memory");
        return;
    }
    job->chunks_done++;
    if (id + 1 > job->chunks_seen) job->chunks_seen = id + 1;
    job->bytes += partial->bytes;
    job->lines += partial->lines;
    job->bad_lines += partial->bad_lines;
    job->filtered += partial->filtered;
    if (partial->bad_samples) s_log_bad_lines (job, partial);
    s_queue_ack (self, job, id);
}

static void s_progress_of (s_job_t *job, tl_progress_t *progress)
{
    double now = tl_now ();
    if (now - job->rate_at >= 0.5) {
        double sample = (double)(job->bytes - job->rate_bytes) / (now - job->rate_at);
        job->rate = job->rate ? 0.7 * job->rate + 0.3 * sample : sample;
        job->rate_at = now;
        job->rate_bytes = job->bytes;
    }
    *progress = (tl_progress_t){.job = job->id,
                                .chunks_done = job->chunks_done,
                                .chunks_known = job->ended ? job->chunks_total : job->chunks_seen,
                                .chunks_final = job->ended,
                                .bytes = job->bytes,
                                .input_bytes = job->input_bytes,
                                .lines = job->lines,
                                .bad_lines = job->bad_lines,
                                .keys = tl_table_size (job->totals),
                                .rate = job->rate,
                                .seconds = now - job->started};
}

static void s_publish_progress (s_sink_t *self, s_job_t *job)
{
    tl_progress_t progress;
    s_progress_of (job, &progress);
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    if (tl_feed_progress (&progress, &body) == 0)
        tl_publish (zsock_resolve (self->pub), "progress", &body);
    msgpack_sbuffer_destroy (&body);
}

static void s_publish_top (s_sink_t *self, s_job_t *job)
{
    size_t k = (size_t)self->top_k;
    tl_entry_t *top = calloc (k ? k : 1, sizeof *top);
    if (!top) return;
    size_t n = tl_table_top (job->totals, k, top);
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    if (tl_feed_top (job->id, top, n, &body) == 0)
        tl_publish (zsock_resolve (self->pub), "top", &body);
    msgpack_sbuffer_destroy (&body);
    free (top);
}

//  Writes the sorted totals to a temporary file beside the output, then renames it:
//  a totals file that exists is complete. Returns 0, or -1 with errno set.
static int s_write_totals (s_sink_t *self, const tl_entry_t *entries, size_t n)
{
    char *temp;
    if (asprintf (&temp, "%s.tmp.%d", self->output, (int)getpid ()) < 0) return -1;
    FILE *file = fopen (temp, "w");
    if (!file) {
        free (temp);
        return -1;
    }
    static char buffer[1 << 20];
    setvbuf (file, buffer, _IOFBF, sizeof buffer);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        ok = fwrite (entries[i].key, 1, entries[i].len, file) == entries[i].len &&
             fprintf (file, "\t%llu\n", (unsigned long long)entries[i].count) > 0;
    }
    ok = ok && fflush (file) == 0 && fsync (fileno (file)) == 0;
    int saved = errno;
    ok = fclose (file) == 0 && ok;
    if (ok && rename (temp, self->output) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) unlink (temp);
    free (temp);
    errno = saved;
    return ok ? 0 : -1;
}

static void s_publish_totals (s_sink_t *self, s_job_t *job, const tl_entry_t *entries, size_t n)
{
    size_t batch = (size_t)self->batch;
    //  A job without keys still publishes one (empty) batch: "totals" always precede "done".
    uint64_t batches = n ? (n + batch - 1) / batch : 1;
    for (uint64_t b = 0; b < batches; b++) {
        size_t from = b * batch;
        size_t count = n - from < batch ? n - from : batch;
        msgpack_sbuffer body;
        msgpack_sbuffer_init (&body);
        if (tl_feed_totals (job->id, b, batches, entries + from, count, &body) == 0)
            tl_publish (zsock_resolve (self->pub), "totals", &body);
        msgpack_sbuffer_destroy (&body);
    }
}

static void s_complete (s_sink_t *self, s_job_t *job)
{
    s_flush_acks (self, job);
    size_t n = 0;
    tl_entry_t *entries = tl_table_sorted (job->totals, &n);
    if (!entries && tl_table_size (job->totals) > 0) {
        s_fail_job (self, job, "sink out of memory sorting the totals");
        return;
    }
    if (s_write_totals (self, entries, n) != 0) {
        char reason[512];
        snprintf (reason, sizeof reason, "cannot write %s: %s", self->output, strerror (errno));
        free (entries);
        s_fail_job (self, job, reason);
        return;
    }
    s_publish_progress (self, job);
    s_publish_top (self, job);
    s_publish_totals (self, job, entries, n);
    free (entries);

    tl_done_body_t done = {.keys = tl_table_size (job->totals),
                           .sum = tl_table_sum (job->totals),
                           .lines = job->lines,
                           .bad_lines = job->bad_lines,
                           .filtered = job->filtered,
                           .seconds = tl_now () - job->started,
                           .output = {self->output, strlen (self->output)}};
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    if (tl_feed_done (job->id, &done, &body) == 0)
        tl_publish (zsock_resolve (self->pub), "done", &body);
    msgpack_sbuffer_destroy (&body);
    tl_msg_t msg = {.cmd = TL_CMD_DONE, .job = job->id};
    msg.u.done = done;
    s_reply (self, job->owner, job->owner_size, &msg);
    if (!self->quiet)
        zsys_info ("job %016llx done: %llu chunks (%llu duplicates), %llu lines, %llu bad, "
                   "%llu keys, sum %llu, %.2f s -> %s",
                   (unsigned long long)job->id, (unsigned long long)job->chunks_done,
                   (unsigned long long)job->duplicates, (unsigned long long)job->lines,
                   (unsigned long long)job->bad_lines, (unsigned long long)done.keys,
                   (unsigned long long)done.sum, done.seconds, self->output);
    if (job->overflows)
        zsys_warning ("job %016llx: %llu totals passed 2^64-1 and were capped",
                      (unsigned long long)job->id, (unsigned long long)job->overflows);
    s_remember (self, job, false, &done);
    s_remove_job (self, job);
}

static void s_check_complete (s_sink_t *self, s_job_t *job)
{
    if (job->ended && job->chunks_done == job->chunks_total) s_complete (self, job);
}

static void s_on_control (s_sink_t *self, const uint8_t *owner, size_t owner_size, tl_msg_t *msg)
{
    s_job_t *job = s_job_find (self, msg->job);
    if (!job) {
        s_finished_t *finished = s_finished_find (self, msg->job);
        if (finished && !finished->failed && msg->cmd != TL_CMD_CANCEL) {
            tl_msg_t done = {.cmd = TL_CMD_DONE, .job = msg->job};
            done.u.done = finished->done;
            done.u.done.output = (tl_str_t){self->output, strlen (self->output)};
            s_reply (self, owner, owner_size, &done);
        } else if (msg->cmd != TL_CMD_CANCEL)
            s_reply_fail (self, owner, owner_size, msg->job,
                          finished ? "job failed" : "unknown job (did the sink restart?)");
        return;
    }
    if (owner_size != job->owner_size || memcmp (owner, job->owner, owner_size) != 0) {
        //  The ventilator reconnected (new identity): answer it there from now on.
        memcpy (job->owner, owner, owner_size);
        job->owner_size = owner_size;
    }
    if (msg->cmd == TL_CMD_PING) {
        tl_msg_t pong = {.cmd = TL_CMD_PONG, .job = job->id};
        pong.u.merged = job->chunks_done;
        s_reply (self, owner, owner_size, &pong);
    } else if (msg->cmd == TL_CMD_END) {
        if (msg->u.end.chunks < job->chunks_seen) {
            s_fail_job (self, job, "END counts fewer chunks than were merged");
            return;
        }
        if (job->ended && msg->u.end.chunks != job->chunks_total) {
            s_fail_job (self, job, "two ENDs disagree on the chunk count");
            return;
        }
        if (job->strict && msg->u.end.bad_lines) {
            s_fail_job (self, job, "lines longer than --max-line (--strict)");
            return;
        }
        if (!job->ended)  //  The ventilator repeats END until DONE: count it once
            job->bad_lines += msg->u.end.bad_lines;
        job->ended = true;
        job->chunks_total = msg->u.end.chunks;
        s_check_complete (self, job);
    } else if (msg->cmd == TL_CMD_CANCEL) {
        zsys_warning ("job %016llx cancelled: %.*s", (unsigned long long)job->id,
                      (int)msg->u.reason.len, msg->u.reason.ptr);
        s_publish_failed (self, job->id, "cancelled by the ventilator");
        s_remember (self, job, true, NULL);
        s_remove_job (self, job);
    }
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
    else if (cmd == TL_CMD_PARTIAL) {
        s_job_t *job = s_job_find (self, msg.job);
        s_on_partial (self, in, &msg);
        if (job && s_job_find (self, msg.job)) s_check_complete (self, job);
    } else if (cmd == TL_CMD_END || cmd == TL_CMD_PING || cmd == TL_CMD_CANCEL)
        s_on_control (self, owner, owner_size, &msg);
    else
        s_junk (self, "a command the sink does not take");
    tl_msg_reset (&msg);
}

static void s_tick (s_sink_t *self)
{
    double now = tl_now ();
    bool progress = now - self->published_at >= self->interval;
    bool top = now >= self->top_due;
    for (int i = 0; i < S_JOBS_MAX; i++) {
        s_job_t *job = self->jobs[i];
        if (!job) continue;
        s_flush_acks (self, job);
        if (progress) s_publish_progress (self, job);
        if (top) s_publish_top (self, job);
    }
    if (top) {
        //  Top-K is a pass over every table: once a second, but never more than 5% of
        //  the sink's time however many keys the jobs hold.
        double took = tl_now () - now;
        self->top_due = now + (took * 20 > 1.0 ? took * 20 : 1.0);
    }
    if (progress) self->published_at = now;
}

int main (int argc, char **argv)
{
    s_sink_t self = {.bind = "tcp://*:5558",
                     .publish = "tcp://*:5559",
                     .output = "totals.tsv",
                     .top_k = 10,
                     .batch = 10000,
                     .interval = 0.25,
                     .max_msg = TL_MAXMSG_DEFAULT};
    tl_opt_t opts[] = {
        {"bind", 'b', "TALLY_BIND", TL_OPT_STR, &self.bind, "ENDPOINT",
         "Where workers and ventilators connect (default tcp://*:5558)", 0, 0},
        {"publish", 'p', "TALLY_PUBLISH", TL_OPT_STR, &self.publish, "ENDPOINT",
         "Where the feed is published (default tcp://*:5559)", 0, 0},
        {"output", 'o', "TALLY_OUTPUT", TL_OPT_STR, &self.output, "FILE",
         "Totals file written when a job completes (default totals.tsv)", 0, 0},
        {"top", 0, "TALLY_TOP", TL_OPT_INT, &self.top_k, "K",
         "Keys in the feed's top list (default 10)", 1, 10000},
        {"batch", 0, "TALLY_BATCH", TL_OPT_INT, &self.batch, "N",
         "Keys per totals message on the feed (default 10000)", 1, 1000000},
        {"interval", 0, "TALLY_INTERVAL", TL_OPT_REAL, &self.interval, "SECONDS",
         "Time between progress messages (default 0.25)", 0, 0},
        {"max-message", 0, "TALLY_MAX_MESSAGE", TL_OPT_SIZE, &self.max_msg, "BYTES",
         "Largest inbound frame accepted (default 256M)", 0, 0},
        {"state-dir", 0, "TALLY_STATE_DIR", TL_OPT_STR, &self.state_dir, "DIR",
         "Where open jobs are checkpointed on shutdown and restored at start (default: the "
         "output's folder)",
         0, 0},
        {"quiet", 'q', "TALLY_QUIET", TL_OPT_FLAG, &self.quiet, NULL, "Print only errors", 0, 0},
        TL_OPT_CURVE_SECRET (self.curve),
        TL_OPT_CURVE_ALLOW (self.curve),
    };
    tl_cli_t cli = {.program = "tally-sink",
                    .usage = "[OPTIONS]",
                    .summary = "Merges partial results from tally-worker processes into exact "
                               "totals, writes the totals file\nand publishes progress and totals.",
                    .opts = opts,
                    .nopts = sizeof opts / sizeof *opts,
                    .min_args = 0,
                    .max_args = 0};
    tl_cli_parse (&cli, argc, argv);
    if (!*self.output) tl_cli_usage_error (&cli, "--output is empty");
    char *output_copy = strdup (self.output);
    if (!self.state_dir || !*self.state_dir)
        self.state_dir = output_copy ? dirname (output_copy) : ".";
    if (self.interval < 0.01 || self.interval > 3600)
        tl_cli_usage_error (&cli, "--interval must be from 0.01 to 3600 seconds");
    if (self.max_msg < 4096 || self.max_msg > INT32_MAX)
        tl_cli_usage_error (&cli, "--max-message must be from 4K to 2G");

    zsys_init ();
    zsys_set_logstream (stderr);  //  Logs on stderr: stdout is for results
    zsys_set_logident ("tally-sink");
    if (tl_curve_setup (&self.curve, cli.program) != 0) return 2;
    const char *why;
    tl_sock_cfg_t cfg = tl_sock_cfg_default ();
    cfg.maxmsgsize = (int64_t)self.max_msg;
    cfg.rcvhwm = 10000;
    cfg.sndhwm = 10000;
    self.router = tl_sock_new (ZMQ_ROUTER, self.bind, true, true, &cfg, &why);
    cfg = tl_sock_cfg_default ();
    //  Totals go out in batches; room for a whole large job's worth before a slow
    //  subscriber starts losing messages (numbered batches let it tell).
    cfg.sndhwm = 100000;
    cfg.maxmsgsize = 4096;
    self.pub = self.router ? tl_sock_new (ZMQ_PUB, self.publish, true, true, &cfg, &why) : NULL;
    if (!self.router || !self.pub) {
        fprintf (stderr, "tally-sink: %s\n", why);
        zsock_destroy (&self.router);
        return 1;
    }
    if (!self.quiet)
        zsys_info ("listening on %s, publishing on %s, totals to %s", self.bind, self.publish,
                   self.output);
    s_ckp_load_all (&self);

    while (!zsys_interrupted) {
        zmq_pollitem_t item = {zsock_resolve (self.router), 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll (&item, 1, (long)(self.interval * 1000 / 2));
        if (rc == -1 && errno != EINTR) break;
        //  Drain what is there, but come back to the clock now and then.
        for (int n = 0; n < 1000 && !zsys_interrupted; n++) {
            tl_frames_t in;
            if (tl_frames_recv (zsock_resolve (self.router), &in, ZMQ_DONTWAIT) < 0) break;
            s_on_message (&self, &in);
            tl_frames_close (&in);
        }
        s_tick (&self);
    }
    int lost = 0;
    for (int i = 0; i < S_JOBS_MAX; i++)
        if (self.jobs[i]) {
            lost += s_ckp_save (&self, self.jobs[i]) != 0;
            s_job_destroy (&self.jobs[i]);
        }
    if (lost)
        zsys_warning ("stopped with %d job(s) open that could not be saved", lost);
    else if (!self.quiet)
        zsys_info ("stopped");
    free (output_copy);
    zsock_destroy (&self.router);
    zsock_destroy (&self.pub);
    return 0;
}
