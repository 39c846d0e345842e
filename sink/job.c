/*  tl_job: one job's exactly-once merge: dedup by chunk id, END checks, --strict,
    completion and failure, decided without sockets or a clock (see job.h).

    Each chunk id is merged once however many copies arrive: the ventilator sends
    again whatever it has not seen acknowledged, and a worker may be slow rather than
    dead. Every rule that keeps the totals exact is here, and nothing else is.      */

#include "job.h"

#include <assert.h>
#include <czmq.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _tl_job_t {
    uint64_t id;                     //  Job id
    uint8_t secret[TL_SECRET_SIZE];  //  The ventilator's secret: who may steer the job
    char **files;                    //  Input names (for bad line messages)
    uint32_t nfiles;                 //  How many
    uint64_t input_bytes;            //  Announced input size
    bool strict;                     //  Malformed lines fail the job
    uint32_t shard, shards;          //  Which sink shard of how many this sink is
    tl_table_t *totals;              //  key -> total
    tl_table_t *merged;              //  Chunk ids merged (8-byte keys)
    tl_job_counters_t counters;      //  What the job has counted
    double started;                  //  JOB arrival
    double rate_at;                  //  Rate sample time
    uint64_t rate_bytes;             //  Bytes at rate_at
    double rate;                     //  Bytes per second, recent
    uint64_t mark_bytes;             //  Bytes merged at the last growth mark
    size_t mark_keys;                //  Keys then
    double growth;                   //  Keys ~ bytes^growth, from the last two marks
};

tl_job_t *tl_job_new (uint64_t id, const uint8_t secret[TL_SECRET_SIZE], const tl_job_body_t *body,
                      double now)
{
    assert (secret);
    assert (body);
    tl_job_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    self->totals = tl_table_new (1 << 16);
    self->merged = tl_table_new (1024);
    self->files = calloc (body->nfiles ? body->nfiles : 1, sizeof *self->files);
    if (!self->totals || !self->merged || !self->files) {
        tl_job_destroy (&self);
        return NULL;
    }
    self->id = id;
    memcpy (self->secret, secret, TL_SECRET_SIZE);
    self->input_bytes = body->input_bytes;
    self->strict = body->strict;
    self->shards = body->shards ? body->shards : 1;
    self->shard = body->shard < self->shards ? body->shard : 0;
    self->nfiles = body->nfiles;
    for (uint32_t i = 0; i < body->nfiles; i++)
        if (!(self->files[i] = strndup (body->files[i].ptr, body->files[i].len))) {
            tl_job_destroy (&self);
            return NULL;
        }
    self->started = self->rate_at = now;
    self->growth = 1;  //  Until two marks tell
    return self;
}

void tl_job_destroy (tl_job_t **self_p)
{
    assert (self_p);
    tl_job_t *self = *self_p;
    if (!self) return;
    if (self->files)
        for (uint32_t i = 0; i < self->nfiles; i++)
            free (self->files[i]);
    free (self->files);
    tl_table_destroy (&self->totals);
    tl_table_destroy (&self->merged);
    free (self);
    *self_p = NULL;
}

static void s_outcome (tl_job_outcome_t *out, tl_job_verdict_t verdict, const char *reason)
{
    out->verdict = verdict;
    out->ack = false;
    out->chunk = 0;
    snprintf (out->reason, sizeof out->reason, "%s", reason ? reason : "");
}

//  Every chunk merged, once END said how many there are, and the bytes merged are the
//  bytes sent: otherwise the totals are not those of the input, and the job fails.
static void s_check_complete (tl_job_t *self, tl_job_outcome_t *out)
{
    const tl_job_counters_t *c = &self->counters;
    if (!c->ended || c->chunks_done != c->chunks_total) return;
    if (c->bytes != c->bytes_sent) {
        bool ack = out->ack;
        uint64_t chunk = out->chunk;
        s_outcome (out, TL_JOB_FAIL, NULL);
        snprintf (out->reason, sizeof out->reason,
                  "every chunk is merged, but they hold %llu bytes where the ventilator sent %llu",
                  (unsigned long long)c->bytes, (unsigned long long)c->bytes_sent);
        out->ack = ack, out->chunk = chunk;
        return;
    }
    out->verdict = TL_JOB_COMPLETE;
}

static void s_log_bad_lines (tl_job_t *self, const tl_partial_body_t *partial)
{
    const char *file = tl_job_file (self, partial->file);
    uint64_t *logged = &self->counters.bad_logged;
    for (uint32_t i = 0; i < partial->bad_samples && *logged < TL_JOB_BAD_LOGGED_MAX;
         i++, (*logged)++)
        zsys_warning ("%s: malformed line at byte %llu skipped%s", file,
                      (unsigned long long)partial->bad_offset[i],
                      *logged == TL_JOB_BAD_LOGGED_MAX - 1 ? " (no more are logged for this job)"
                                                           : "");
}

//  Tells the totals table how many keys the whole input will likely bring (see
//  tl_table_expect): the keys so far, grown to the input's size as they grew from the
//  last mark (when half as many bytes were merged) to now, keys ~ bytes^k with k from
//  those two points, between 0 and 1. n-grams sorted by key (as Google's files are)
//  bring new keys all along (k near 1); text brings fewer and fewer (k well below 1),
//  so that its table is not grown for a doubling that never comes.
static void s_expect_keys (tl_job_t *self)
{
    const tl_job_counters_t *c = &self->counters;
    size_t keys = tl_table_size (self->totals);
    if (c->bytes == 0 || self->input_bytes <= c->bytes) return;
    if (self->mark_bytes == 0 || c->bytes >= 2 * self->mark_bytes) {
        if (self->mark_bytes > 0 && self->mark_keys > 0 && keys > self->mark_keys)
            self->growth = log ((double)keys / (double)self->mark_keys) /
                           log ((double)c->bytes / (double)self->mark_bytes);
        else if (self->mark_bytes > 0)
            self->growth = 0;
        self->mark_bytes = c->bytes;
        self->mark_keys = keys;
    }
    double k = self->growth < 0 ? 0 : self->growth > 1 ? 1 : self->growth;
    tl_table_expect (self->totals, (size_t)((double)keys *
                                            pow ((double)self->input_bytes / (double)c->bytes, k)));
}

//  Merges a chunk the job has not merged yet and counts it. Returns 0, or -1 with *out
//  set (JUNK or FAIL) when it is not merged.
static int s_merge (tl_job_t *self, const tl_partial_body_t *partial, const void *map,
                    size_t map_size, tl_job_outcome_t *out)
{
    tl_job_counters_t *c = &self->counters;
    uint64_t entries;
    size_t keys_before = tl_table_size (self->totals);
    uint64_t sum_before = tl_table_sum (self->totals);
    int rc = tl_map_merge (map, map_size, self->totals, &entries);
    if (rc < 0 && (tl_table_size (self->totals) != keys_before ||
                   tl_table_sum (self->totals) != sum_before)) {
        //  The frame was valid but memory ran out half-way: part of it is merged, so a
        //  resent copy would count that part twice. Only failing the job keeps it exact.
        s_outcome (out, TL_JOB_FAIL, "sink out of memory merging a partial");
        return -1;
    }
    if (rc < 0) {
        s_outcome (out, TL_JOB_JUNK, "PARTIAL whose map is malformed");
        return -1;
    }
    if (rc > 0) c->overflows++;
    //  Checked once the map proved well-formed: junk must not fail a strict job.
    if (self->strict && partial->bad_lines) {
        s_outcome (out, TL_JOB_FAIL, NULL);
        snprintf (out->reason, sizeof out->reason, "%s: malformed line at byte %llu (--strict)",
                  tl_job_file (self, partial->file),
                  (unsigned long long)(partial->bad_samples ? partial->bad_offset[0] : 0));
        return -1;
    }
    uint64_t id = partial->chunk;
    if (tl_table_add (self->merged, &id, sizeof id, 1) < 0) {
        s_outcome (out, TL_JOB_FAIL, "sink out of memory");
        return -1;
    }
    c->chunks_done++;
    if (id + 1 > c->chunks_seen) c->chunks_seen = id + 1;
    c->bytes += partial->bytes;
    s_expect_keys (self);
    c->lines += partial->lines;
    c->bad_lines += partial->bad_lines;
    c->filtered += partial->filtered;
    if (partial->bad_samples) s_log_bad_lines (self, partial);
    return 0;
}

void tl_job_partial (tl_job_t *self, const tl_partial_body_t *partial, const void *map,
                     size_t map_size, tl_job_outcome_t *out)
{
    assert (self);
    assert (partial);
    assert (out);
    uint64_t id = partial->chunk;
    if (partial->tag != tl_chunk_tag (self->secret, self->id, id)) {
        s_outcome (out, TL_JOB_JUNK, "PARTIAL without its chunk's tag (not from this job)");
        return;
    }
    if (partial->shard != self->shard) {
        s_outcome (out, TL_JOB_JUNK, NULL);
        snprintf (out->reason, sizeof out->reason,
                  "PARTIAL of job %016llx for shard %u, but this sink is shard %u of %u: a "
                  "worker's --sink list names the shards in another order than the ventilator's",
                  (unsigned long long)self->id, partial->shard, self->shard, self->shards);
        return;
    }
    if (tl_job_merged (self, id))
        //  The ventilator did not hear the first ACK: say it again, merge nothing.
        self->counters.duplicates++;
    else if (self->counters.ended && id >= self->counters.chunks_total) {
        s_outcome (out, TL_JOB_JUNK, "PARTIAL with a chunk id beyond the job's end");
        return;
    } else if (s_merge (self, partial, map, map_size, out) != 0)
        return;
    s_outcome (out, TL_JOB_NONE, NULL);
    out->ack = true;
    out->chunk = id;
    s_check_complete (self, out);
}

void tl_job_end (tl_job_t *self, const tl_end_body_t *end, tl_job_outcome_t *out)
{
    assert (self);
    assert (end);
    assert (out);
    tl_job_counters_t *c = &self->counters;
    if (end->chunks < c->chunks_seen)
        s_outcome (out, TL_JOB_FAIL, "END counts fewer chunks than were merged");
    else if (c->ended && (end->chunks != c->chunks_total || end->bytes != c->bytes_sent))
        s_outcome (out, TL_JOB_FAIL, "two ENDs disagree on the chunk or byte count");
    else if (self->strict && end->bad_lines)
        s_outcome (out, TL_JOB_FAIL, "lines longer than --max-line (--strict)");
    else {
        if (!c->ended)  //  The ventilator repeats END until DONE: count it once
            c->bad_lines += end->bad_lines;
        c->ended = true;
        c->chunks_total = end->chunks;
        c->bytes_sent = end->bytes;
        s_outcome (out, TL_JOB_NONE, NULL);
        s_check_complete (self, out);
    }
}

void tl_job_cancel (tl_job_t *self, tl_job_outcome_t *out)
{
    (void)self;  //  Read by the asserts only: unused where NDEBUG drops them
    assert (self);
    assert (out);
    s_outcome (out, TL_JOB_CANCELLED, "cancelled by the ventilator");
}

uint64_t tl_job_id (tl_job_t *self)
{
    assert (self);
    return self->id;
}

bool tl_job_owned_by (tl_job_t *self, const uint8_t secret[TL_SECRET_SIZE])
{
    assert (self);
    return tl_secret_equal (self->secret, secret);
}

const uint8_t *tl_job_secret (tl_job_t *self)
{
    assert (self);
    return self->secret;
}

const tl_job_counters_t *tl_job_counters (tl_job_t *self)
{
    assert (self);
    return &self->counters;
}

bool tl_job_merged (tl_job_t *self, uint64_t chunk)
{
    assert (self);
    uint64_t seen;
    return tl_table_get (self->merged, &chunk, sizeof chunk, &seen);
}

uint8_t *tl_job_merged_bitmap (tl_job_t *self, size_t *size)
{
    assert (self && size);
    *size = (size_t)((self->counters.chunks_seen + 7) / 8);
    uint8_t *bits = calloc (*size ? *size : 1, 1);
    if (!bits) return NULL;
    size_t cursor = 0;
    tl_entry_t entry;
    while (tl_table_next (self->merged, &cursor, &entry)) {
        uint64_t id;
        assert (entry.len == sizeof id);
        memcpy (&id, entry.key, sizeof id);
        assert (id < self->counters.chunks_seen);
        bits[id / 8] |= (uint8_t)(1u << (id % 8));
    }
    return bits;
}

tl_table_t *tl_job_totals (tl_job_t *self)
{
    assert (self);
    return self->totals;
}

double tl_job_seconds (tl_job_t *self, double now)
{
    assert (self);
    return now - self->started;
}

void tl_job_progress (tl_job_t *self, double now, tl_progress_t *progress)
{
    assert (self);
    assert (progress);
    const tl_job_counters_t *c = &self->counters;
    if (now - self->rate_at >= 0.5) {
        double sample = (double)(c->bytes - self->rate_bytes) / (now - self->rate_at);
        self->rate = self->rate ? 0.7 * self->rate + 0.3 * sample : sample;
        self->rate_at = now;
        self->rate_bytes = c->bytes;
    }
    *progress = (tl_progress_t){.job = self->id,
                                .chunks_done = c->chunks_done,
                                .chunks_known = c->ended ? c->chunks_total : c->chunks_seen,
                                .chunks_final = c->ended,
                                .bytes = c->bytes,
                                .input_bytes = self->input_bytes,
                                .lines = c->lines,
                                .bad_lines = c->bad_lines,
                                .keys = tl_table_size (self->totals),
                                .rate = self->rate,
                                .seconds = now - self->started,
                                .shard = self->shard,
                                .shards = self->shards};
}

uint64_t tl_job_input_bytes (tl_job_t *self)
{
    assert (self);
    return self->input_bytes;
}

void tl_job_shard (tl_job_t *self, uint32_t *shard, uint32_t *shards)
{
    assert (self);
    *shard = self->shard;
    *shards = self->shards;
}

uint32_t tl_job_nfiles (tl_job_t *self)
{
    assert (self);
    return self->nfiles;
}

const char *tl_job_file (tl_job_t *self, uint32_t index)
{
    assert (self);
    return index < self->nfiles && self->files[index] ? self->files[index] : "?";
}

void tl_job_snapshot (tl_job_t *self, double now, tl_job_snapshot_t *snapshot)
{
    assert (self);
    assert (snapshot);
    *snapshot = (tl_job_snapshot_t){.counters = self->counters,
                                    .strict = self->strict,
                                    .seconds = now - self->started,
                                    .merged = self->merged,
                                    .totals = self->totals};
}

//  Whether every merged id is an 8-byte chunk id below chunks_seen (and below END's
//  count once it came): what a job's own merges leave, and what tl_job_merged_bitmap
//  and the completion rule count on.
static bool s_merged_ids_valid (tl_table_t *merged, const tl_job_counters_t *c)
{
    if (c->chunks_seen > TL_CHUNK_ID_MAX || (c->ended && c->chunks_seen > c->chunks_total))
        return false;
    size_t cursor = 0;
    tl_entry_t entry;
    while (tl_table_next (merged, &cursor, &entry)) {
        uint64_t chunk;
        if (entry.len != sizeof chunk) return false;
        memcpy (&chunk, entry.key, sizeof chunk);
        if (chunk >= c->chunks_seen) return false;
    }
    return true;
}

tl_job_t *tl_job_restore (uint64_t id, const uint8_t secret[TL_SECRET_SIZE],
                          const tl_job_body_t *body, tl_job_snapshot_t *snapshot, double now)
{
    assert (snapshot);
    tl_table_t *merged = snapshot->merged, *totals = snapshot->totals;
    snapshot->merged = snapshot->totals = NULL;
    tl_job_t *self = merged && totals ? tl_job_new (id, secret, body, now) : NULL;
    if (self && tl_table_size (merged) == snapshot->counters.chunks_done &&
        s_merged_ids_valid (merged, &snapshot->counters)) {
        tl_table_destroy (&self->merged);
        tl_table_destroy (&self->totals);
        self->merged = merged;
        self->totals = totals;
        merged = totals = NULL;
        self->counters = snapshot->counters;
        self->strict = snapshot->strict;
        self->started = now - snapshot->seconds;
    } else
        tl_job_destroy (&self);
    tl_table_destroy (&merged);
    tl_table_destroy (&totals);
    return self;
}
