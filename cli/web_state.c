/*  tally web's state: the jobs and sinks as the feeds told them, rendered as JSON for
    the page and as Prometheus text for /metrics.

    The feed reader (main thread) adds messages; the HTTP threads render. One mutex
    guards it all: messages are small and rendering takes microseconds, so nobody waits
    long. The JSON is made at most a few times a second (tl_web_publish, called by the
    reader's loop) and kept: each SSE stream copies it rather than rendering its own.

    A message of a job already finished is dropped: the snapshot service repeats what
    the live feed said (every reconnection asks for it), and a late progress must not
    bring a finished job back.                                                          */

#include "web.h"

#include "tl_clock.h"
#include "tl_format.h"
#include "tl_table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------------
//  Text buffer

static bool s_reserve (tl_web_buf_t *self, size_t more)
{
    if (self->failed) return false;
    if (self->len + more + 1 <= self->cap) return true;
    size_t cap = self->cap ? self->cap : 4096;
    while (cap < self->len + more + 1)
        cap *= 2;
    char *data = realloc (self->data, cap);
    if (!data) {
        self->failed = true;
        return false;
    }
    self->data = data;
    self->cap = cap;
    return true;
}

void tl_web_buf_add (tl_web_buf_t *self, const void *data, size_t len)
{
    if (!s_reserve (self, len)) return;
    memcpy (self->data + self->len, data, len);
    self->len += len;
    self->data[self->len] = 0;
}

void tl_web_buf_printf (tl_web_buf_t *self, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    char small[256];
    int n = vsnprintf (small, sizeof small, fmt, args);
    va_end (args);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        tl_web_buf_add (self, small, (size_t)n);
        return;
    }
    if (!s_reserve (self, (size_t)n)) return;
    va_start (args, fmt);
    vsnprintf (self->data + self->len, (size_t)n + 1, fmt, args);
    va_end (args);
    self->len += (size_t)n;
}

void tl_web_buf_json_string (tl_web_buf_t *self, const char *data, size_t len)
{
    bool utf8 = tl_utf8_valid ((const unsigned char *)data, len);
    tl_web_buf_add (self, "\"", 1);
    size_t plain = 0;  //  Start of the run of bytes that need no escape
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        //  < and > too, so that no key can close a <script> should the JSON ever be
        //  inlined in HTML; U+2028/9 pass (JSON allows them, JSON.parse takes them).
        if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != 0x7f &&
            (c < 0x80 || utf8))
            continue;
        tl_web_buf_add (self, data + plain, i - plain);
        if (c == '"' || c == '\\')
            tl_web_buf_printf (self, "\\%c", c);
        else if (c == '\n')
            tl_web_buf_add (self, "\\n", 2);
        else if (c == '\t')
            tl_web_buf_add (self, "\\t", 2);
        else
            tl_web_buf_printf (self, "\\u%04x", c);
        plain = i + 1;
    }
    tl_web_buf_add (self, data + plain, len - plain);
    tl_web_buf_add (self, "\"", 1);
}

void tl_web_buf_json_number (tl_web_buf_t *self, double value)
{
    if (isfinite (value))
        tl_web_buf_printf (self, "%.17g", value);
    else
        tl_web_buf_add (self, "null", 4);
}

void tl_web_buf_label (tl_web_buf_t *self, const char *data, size_t len)
{
    tl_web_buf_add (self, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\\' || data[i] == '"')
            tl_web_buf_printf (self, "\\%c", data[i]);
        else if (data[i] == '\n')
            tl_web_buf_add (self, "\\n", 2);
        else
            tl_web_buf_add (self, data + i, 1);
    }
    tl_web_buf_add (self, "\"", 1);
}

void tl_web_buf_free (tl_web_buf_t *self)
{
    free (self->data);
    *self = (tl_web_buf_t){0};
}

//  ---------------------------------------------------------------------------------
//  Jobs

static void s_job_destroy (tl_web_job_t **job_p)
{
    tl_web_job_t *job = *job_p;
    if (!job) return;
    free (job->top);
    free (job->reason);
    free (job);
    *job_p = NULL;
}

static tl_web_job_t *s_job_find (tl_web_t *self, uint64_t id)
{
    for (size_t i = 0; i < self->njobs; i++)
        if (self->jobs[i]->id == id) return self->jobs[i];
    return NULL;
}

//  Makes room for one more job: forgets the least recently heard of finished job, or
//  when every job runs, the least recently heard of one.
static void s_job_evict (tl_web_t *self)
{
    size_t victim = self->njobs;
    for (int finished = 1; finished >= 0 && victim == self->njobs; finished--)
        for (size_t i = 0; i < self->njobs; i++) {
            bool is_finished = self->jobs[i]->status != TL_WEB_RUNNING;
            if (is_finished != (bool)finished) continue;
            if (victim == self->njobs || self->jobs[i]->last_heard < self->jobs[victim]->last_heard)
                victim = i;
        }
    s_job_destroy (&self->jobs[victim]);
    self->jobs[victim] = self->jobs[--self->njobs];
}

static tl_web_job_t *s_job_add (tl_web_t *self, uint64_t id, uint64_t shards, double now)
{
    if (self->njobs == TL_WEB_JOBS_MAX) s_job_evict (self);
    tl_web_job_t *job = calloc (1, sizeof *job);
    if (!job) return NULL;
    job->id = id;
    job->shards = shards ? shards : 1;
    job->first_heard = now;
    self->jobs[self->njobs++] = job;
    return job;
}

//  Copies the job's top (entries pointing into the joiner's lists) into one block.
static void s_job_set_top (tl_web_job_t *job, const tl_entry_t *top, size_t n)
{
    size_t bytes = n * sizeof *top;
    for (size_t i = 0; i < n; i++)
        bytes += top[i].len;
    tl_entry_t *copy = malloc (bytes ? bytes : 1);
    if (!copy) return;
    char *keys = (char *)(copy + n);
    for (size_t i = 0; i < n; i++) {
        copy[i] = top[i];
        memcpy (keys, top[i].key, top[i].len);
        copy[i].key = keys;
        keys += top[i].len;
    }
    free (job->top);
    job->top = copy;
    job->ntop = n;
}

int tl_web_add (tl_web_t *self, size_t feed_index, const void *topic, size_t topic_size,
                const void *body, size_t body_size)
{
    double now = tl_now ();
    pthread_mutex_lock (&self->lock);
    tl_web_feed_t *feed = &self->feeds[feed_index];
    feed->messages++;
    int rc = 0;
    tl_feed_msg_t msg;
    if (tl_feed_decode (topic, topic_size, body, body_size, &msg) != 0) {
        feed->undecodable++;
        rc = -1;
        goto out;
    }
    if (msg.topic == TL_FEED_STATS) {
        feed->stats = msg.u.stats;
        feed->has_stats = true;
        feed->stats_heard = now;
        self->dirty = true;
        goto out;
    }
    //  Totals are downloaded from the sinks instead; snapshot and error end or refuse
    //  a snapshot request, which is asked again at the next connection.
    if (msg.topic != TL_FEED_PROGRESS && msg.topic != TL_FEED_TOP && msg.topic != TL_FEED_DONE &&
        msg.topic != TL_FEED_FAILED)
        goto out;
    tl_web_job_t *job = s_job_find (self, msg.job);
    if (job && job->status != TL_WEB_RUNNING) goto out;  //  Finished: a repeat
    tl_feed_view_t view;
    if (tl_feed_join_add (self->join, &msg, &view) != 0) {
        feed->undecodable++;  //  Its shard count differs from the job's earlier messages
        rc = -1;
        goto out;
    }
    if (!job) job = s_job_add (self, msg.job, msg.shards, now);
    if (!job) goto out;
    job->last_heard = now;
    job->shards = view.shards;
    self->dirty = true;
    uint64_t bit = (uint64_t)1 << msg.shard;
    switch (msg.topic) {
    case TL_FEED_PROGRESS:
        job->shard[msg.shard] = msg.u.progress;
        job->shard_heard |= bit;
        job->progress = view.progress;
        job->has_progress = true;
        break;
    case TL_FEED_TOP:
        s_job_set_top (job, view.top, view.ntop);
        break;
    case TL_FEED_DONE:
        job->shard_done[msg.shard] = msg.u.done;
        job->shard_done[msg.shard].output = (tl_str_t){"", 0};
        job->done_heard |= bit;
        if (view.complete) {
            job->done = view.done;
            job->status = TL_WEB_DONE;
        }
        break;
    case TL_FEED_FAILED:
        job->status = TL_WEB_FAILED;
        free (job->reason);
        job->reason = strndup (msg.u.reason.ptr, msg.u.reason.len);
        break;
    default:
        break;
    }
out:
    pthread_mutex_unlock (&self->lock);
    return rc;
}

//  ---------------------------------------------------------------------------------
//  Throughput

static double s_running_rate (tl_web_t *self)
{
    double rate = 0;
    for (size_t i = 0; i < self->njobs; i++)
        if (self->jobs[i]->status == TL_WEB_RUNNING && self->jobs[i]->has_progress)
            rate += self->jobs[i]->progress.rate;
    return rate;
}

void tl_web_sample (tl_web_t *self, double now)
{
    pthread_mutex_lock (&self->lock);
    double rate = s_running_rate (self);
    bool running = false;
    for (size_t i = 0; i < self->njobs; i++)
        running = running || self->jobs[i]->status == TL_WEB_RUNNING;
    size_t last = (self->history_next + TL_WEB_HISTORY - 1) % TL_WEB_HISTORY;
    //  An idle page need not be sent again each second for a flat line; a running job's
    //  (its chart, how long it has been quiet) is.
    if (running || rate > 0 || (self->nhistory && self->history_rate[last] > 0)) self->dirty = true;
    self->history_t[self->history_next] = now;
    self->history_rate[self->history_next] = rate;
    self->history_next = (self->history_next + 1) % TL_WEB_HISTORY;
    if (self->nhistory < TL_WEB_HISTORY) self->nhistory++;
    pthread_mutex_unlock (&self->lock);
}

//  ---------------------------------------------------------------------------------
//  JSON

//  How far the job is, 0 to 1: the chunks merged of the job's once their count is
//  final, else the bytes merged of the input's size (at most 0.99: compressed input
//  makes more bytes than it has, and the count is not final yet).
static double s_fraction (const tl_web_job_t *job)
{
    if (job->status == TL_WEB_DONE) return 1;
    if (!job->has_progress) return 0;
    const tl_progress_t *p = &job->progress;
    if (p->chunks_final && p->chunks_known) return (double)p->chunks_done / (double)p->chunks_known;
    if (p->input_bytes) {
        double f = (double)p->bytes / (double)p->input_bytes;
        return f < 0.99 ? f : 0.99;
    }
    return 0;
}

static void s_json_progress (tl_web_buf_t *out, const tl_progress_t *p)
{
    tl_web_buf_printf (out,
                       "\"chunks_done\":%llu,\"chunks_known\":%llu,\"chunks_final\":%s,"
                       "\"bytes\":%llu,\"input_bytes\":%llu,\"lines\":%llu,\"bad_lines\":%llu,"
                       "\"keys\":%llu,\"rate\":",
                       (unsigned long long)p->chunks_done, (unsigned long long)p->chunks_known,
                       p->chunks_final ? "true" : "false", (unsigned long long)p->bytes,
                       (unsigned long long)p->input_bytes, (unsigned long long)p->lines,
                       (unsigned long long)p->bad_lines, (unsigned long long)p->keys);
    tl_web_buf_json_number (out, p->rate);
    tl_web_buf_add (out, ",\"seconds\":", 11);
    tl_web_buf_json_number (out, p->seconds);
}

static void s_json_done (tl_web_buf_t *out, const tl_done_body_t *d)
{
    tl_web_buf_printf (out,
                       "\"keys\":%llu,\"sum\":%llu,\"lines\":%llu,\"bad_lines\":%llu,"
                       "\"filtered\":%llu,\"seconds\":",
                       (unsigned long long)d->keys, (unsigned long long)d->sum,
                       (unsigned long long)d->lines, (unsigned long long)d->bad_lines,
                       (unsigned long long)d->filtered);
    tl_web_buf_json_number (out, d->seconds);
}

static const char *s_status_name (tl_web_status_t status)
{
    return status == TL_WEB_RUNNING ? "running" : status == TL_WEB_DONE ? "done" : "failed";
}

static int s_popcount (uint64_t bits)
{
    return __builtin_popcountll (bits);
}

static void s_json_job (tl_web_buf_t *out, const tl_web_job_t *job)
{
    tl_web_buf_printf (out, "{\"id\":\"%016llx\",\"status\":\"%s\",\"shards\":%llu,",
                       (unsigned long long)job->id, s_status_name (job->status),
                       (unsigned long long)job->shards);
    tl_web_buf_printf (out, "\"shards_heard\":%d,\"shards_done\":%d,\"first_heard\":",
                       s_popcount (job->shard_heard), s_popcount (job->done_heard));
    tl_web_buf_json_number (out, job->first_heard);
    double fraction = s_fraction (job);
    //  A running job that has gone quiet (its sink lost it, or the failed message was
    //  missed) says so, rather than look alive.
    tl_web_buf_add (out, ",\"quiet\":", 9);
    tl_web_buf_json_number (out, tl_now () - job->last_heard);
    tl_web_buf_add (out, ",\"fraction\":", 12);
    tl_web_buf_json_number (out, fraction);
    //  ETA from the pace so far: seconds per fraction done.
    tl_web_buf_add (out, ",\"eta\":", 7);
    if (job->status == TL_WEB_RUNNING && job->has_progress && fraction > 0.001)
        tl_web_buf_json_number (out, job->progress.seconds * (1 - fraction) / fraction);
    else
        tl_web_buf_add (out, "null", 4);
    tl_web_buf_add (out, ",\"progress\":", 12);
    if (job->has_progress) {
        tl_web_buf_add (out, "{", 1);
        s_json_progress (out, &job->progress);
        tl_web_buf_add (out, "}", 1);
    } else
        tl_web_buf_add (out, "null", 4);
    tl_web_buf_add (out, ",\"shard_progress\":[", 19);
    bool first = true;
    for (uint64_t s = 0; s < job->shards && s < TL_SHARDS_MAX; s++) {
        if (!(job->shard_heard & ((uint64_t)1 << s))) continue;
        tl_web_buf_printf (out, "%s{\"shard\":%llu,\"done\":%s,", first ? "" : ",",
                           (unsigned long long)s,
                           job->done_heard & ((uint64_t)1 << s) ? "true" : "false");
        s_json_progress (out, &job->shard[s]);
        tl_web_buf_add (out, "}", 1);
        first = false;
    }
    tl_web_buf_add (out, "],\"top\":[", 9);
    for (size_t i = 0; i < job->ntop; i++) {
        tl_web_buf_add (out, i ? ",[" : "[", i ? 2 : 1);
        tl_web_buf_json_string (out, job->top[i].key, job->top[i].len);
        tl_web_buf_printf (out, ",%llu]", (unsigned long long)job->top[i].count);
    }
    tl_web_buf_add (out, "],\"done\":", 9);
    if (job->status == TL_WEB_DONE) {
        tl_web_buf_add (out, "{", 1);
        s_json_done (out, &job->done);
        tl_web_buf_add (out, "}", 1);
    } else
        tl_web_buf_add (out, "null", 4);
    tl_web_buf_add (out, ",\"reason\":", 10);
    if (job->reason)
        tl_web_buf_json_string (out, job->reason, strlen (job->reason));
    else
        tl_web_buf_add (out, "null", 4);
    tl_web_buf_printf (out, ",\"totals\":\"jobs/%016llx/totals\"}", (unsigned long long)job->id);
}

static void s_json_feed (tl_web_buf_t *out, const tl_web_feed_t *feed, double now)
{
    tl_web_buf_add (out, "{\"endpoint\":", 12);
    tl_web_buf_json_string (out, feed->endpoint, strlen (feed->endpoint));
    tl_web_buf_add (out, ",\"snapshot\":", 12);
    if (feed->snapshot)
        tl_web_buf_json_string (out, feed->snapshot, strlen (feed->snapshot));
    else
        tl_web_buf_add (out, "null", 4);
    tl_web_buf_printf (out, ",\"connected\":%s,\"messages\":%llu,\"undecodable\":%llu,\"stats\":",
                       feed->connected ? "true" : "false", (unsigned long long)feed->messages,
                       (unsigned long long)feed->undecodable);
    if (!feed->has_stats) {
        tl_web_buf_add (out, "null}", 5);
        return;
    }
    const tl_feed_stats_t *s = &feed->stats;
    tl_web_buf_printf (out,
                       "{\"jobs_open\":%llu,\"jobs_done\":%llu,\"jobs_failed\":%llu,"
                       "\"partials\":%llu,\"duplicates\":%llu,\"junk\":%llu,\"disconnects\":%llu,"
                       "\"bytes\":%llu,\"lines\":%llu,\"rate\":",
                       (unsigned long long)s->jobs_open, (unsigned long long)s->jobs_done,
                       (unsigned long long)s->jobs_failed, (unsigned long long)s->partials,
                       (unsigned long long)s->duplicates, (unsigned long long)s->junk,
                       (unsigned long long)s->disconnects, (unsigned long long)s->bytes,
                       (unsigned long long)s->lines);
    tl_web_buf_json_number (out, s->rate);
    tl_web_buf_add (out, ",\"uptime\":", 10);
    tl_web_buf_json_number (out, s->uptime);
    tl_web_buf_add (out, ",\"age\":", 7);
    tl_web_buf_json_number (out, now - feed->stats_heard);
    tl_web_buf_add (out, "}}", 2);
}

void tl_web_render_json (tl_web_t *self, tl_web_buf_t *out)
{
    double now = tl_now ();
    tl_web_buf_add (out, "{\"now\":", 7);
    tl_web_buf_json_number (out, now);
    tl_web_buf_add (out, ",\"started\":", 11);
    tl_web_buf_json_number (out, self->started);
    tl_web_buf_add (out, ",\"feeds\":[", 10);
    for (size_t i = 0; i < self->nfeeds; i++) {
        if (i) tl_web_buf_add (out, ",", 1);
        s_json_feed (out, &self->feeds[i], now);
    }
    //  Jobs in the order they were first heard of.
    tl_web_job_t *jobs[TL_WEB_JOBS_MAX];
    size_t n = self->njobs;
    memcpy (jobs, self->jobs, n * sizeof *jobs);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && jobs[j - 1]->first_heard > jobs[j]->first_heard; j--) {
            tl_web_job_t *swap = jobs[j];
            jobs[j] = jobs[j - 1];
            jobs[j - 1] = swap;
        }
    tl_web_buf_add (out, "],\"jobs\":[", 10);
    for (size_t i = 0; i < n; i++) {
        if (i) tl_web_buf_add (out, ",", 1);
        s_json_job (out, jobs[i]);
    }
    tl_web_buf_add (out, "],\"throughput\":[", 16);
    for (size_t i = 0; i < self->nhistory; i++) {
        size_t slot = (self->history_next + TL_WEB_HISTORY - self->nhistory + i) % TL_WEB_HISTORY;
        tl_web_buf_add (out, i ? ",[" : "[", i ? 2 : 1);
        tl_web_buf_printf (out, "%.3f,", self->history_t[slot]);
        tl_web_buf_json_number (out, self->history_rate[slot]);
        tl_web_buf_add (out, "]", 1);
    }
    tl_web_buf_add (out, "]}", 2);
}

void tl_web_publish (tl_web_t *self)
{
    pthread_mutex_lock (&self->lock);
    if (self->dirty || !self->json) {
        tl_web_buf_t out = {0};
        tl_web_render_json (self, &out);
        if (!out.failed) {
            free (self->json);
            self->json = out.data;
            self->json_len = out.len;
            self->version++;
            self->dirty = false;
            pthread_cond_broadcast (&self->changed);
        } else
            tl_web_buf_free (&out);
    }
    pthread_mutex_unlock (&self->lock);
}

//  ---------------------------------------------------------------------------------
//  Prometheus text format 0.0.4

static void s_metric_head (tl_web_buf_t *out, const char *name, const char *type, const char *help)
{
    tl_web_buf_printf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_label_job (tl_web_buf_t *out, const char *name, const tl_web_job_t *job, int shard)
{
    tl_web_buf_printf (out, "%s{job=\"%016llx\"", name, (unsigned long long)job->id);
    if (shard >= 0) tl_web_buf_printf (out, ",shard=\"%d\"", shard);
    tl_web_buf_add (out, "} ", 2);
}

static void s_label_feed (tl_web_buf_t *out, const char *name, const tl_web_feed_t *feed)
{
    tl_web_buf_printf (out, "%s{feed=", name);
    tl_web_buf_label (out, feed->endpoint, strlen (feed->endpoint));
    tl_web_buf_add (out, "} ", 2);
}

//  The per job and shard metrics: each a field of the shard's latest progress, or of
//  its done once it is in (the exact final counts).
typedef enum {
    S_CHUNKS_DONE,
    S_CHUNKS_KNOWN,
    S_BYTES,
    S_INPUT_BYTES,
    S_LINES,
    S_BAD_LINES,
    S_KEYS,
    S_RATE,
    S_SECONDS
} s_field_t;

static const struct {
    const char *name, *type, *help;
    s_field_t field;
} s_job_metrics[] = {
    {"tally_job_chunks_done_total", "counter", "Chunks merged by the shard", S_CHUNKS_DONE},
    {"tally_job_chunks_known", "gauge",
     "Chunks known to exist (the job's total once the ventilator sent END)", S_CHUNKS_KNOWN},
    {"tally_job_bytes_total", "counter", "Payload bytes merged by the shard", S_BYTES},
    {"tally_job_input_bytes", "gauge", "Input size announced by the ventilator", S_INPUT_BYTES},
    {"tally_job_lines_total", "counter", "Lines counted by the shard", S_LINES},
    {"tally_job_bad_lines_total", "counter", "Malformed lines skipped, counted by the shard",
     S_BAD_LINES},
    {"tally_job_keys", "gauge", "Distinct keys held by the shard", S_KEYS},
    {"tally_job_rate_bytes_per_second", "gauge", "Payload bytes merged per second, recently",
     S_RATE},
    {"tally_job_seconds", "gauge", "Seconds since the job started (at its end: its duration)",
     S_SECONDS},
};

static double s_job_field (const tl_web_job_t *job, int s, s_field_t field)
{
    const tl_progress_t *p = &job->shard[s];
    bool done = job->done_heard & ((uint64_t)1 << s);
    const tl_done_body_t *d = &job->shard_done[s];
    switch (field) {
    case S_CHUNKS_DONE:
        return (double)p->chunks_done;
    case S_CHUNKS_KNOWN:
        return (double)p->chunks_known;
    case S_BYTES:
        return (double)p->bytes;
    case S_INPUT_BYTES:
        return (double)p->input_bytes;
    case S_LINES:
        return (double)(done ? d->lines : p->lines);
    case S_BAD_LINES:
        return (double)(done ? d->bad_lines : p->bad_lines);
    case S_KEYS:
        return (double)(done ? d->keys : p->keys);
    case S_RATE:
        return done ? 0 : p->rate;
    case S_SECONDS:
        return done ? d->seconds : p->seconds;
    }
    return 0;
}

static void s_value (tl_web_buf_t *out, double value)
{
    //  Integers up to 2^53 print exactly; the format takes floats in any notation.
    if (isfinite (value) && value == floor (value) && fabs (value) < 9007199254740992.0)
        tl_web_buf_printf (out, "%.0f\n", value);
    else if (isfinite (value))
        tl_web_buf_printf (out, "%.17g\n", value);
    else
        tl_web_buf_add (out, "NaN\n", 4);
}

static void s_metrics_jobs (tl_web_t *self, tl_web_buf_t *out)
{
    static const tl_web_status_t statuses[] = {TL_WEB_RUNNING, TL_WEB_DONE, TL_WEB_FAILED};
    s_metric_head (out, "tally_jobs", "gauge", "Jobs this page knows of (the last 32), by status");
    for (size_t k = 0; k < 3; k++) {
        size_t n = 0;
        for (size_t i = 0; i < self->njobs; i++)
            n += self->jobs[i]->status == statuses[k];
        tl_web_buf_printf (out, "tally_jobs{status=\"%s\"} %zu\n", s_status_name (statuses[k]), n);
    }
    s_metric_head (out, "tally_job_status", "gauge",
                   "1 for the job's status (running, done, failed), 0 for the others");
    for (size_t i = 0; i < self->njobs; i++)
        for (size_t k = 0; k < 3; k++)
            tl_web_buf_printf (out, "tally_job_status{job=\"%016llx\",status=\"%s\"} %d\n",
                               (unsigned long long)self->jobs[i]->id, s_status_name (statuses[k]),
                               self->jobs[i]->status == statuses[k]);
    s_metric_head (out, "tally_job_shards", "gauge", "Sink shards of the job");
    for (size_t i = 0; i < self->njobs; i++) {
        s_label_job (out, "tally_job_shards", self->jobs[i], -1);
        s_value (out, (double)self->jobs[i]->shards);
    }
    for (size_t m = 0; m < sizeof s_job_metrics / sizeof *s_job_metrics; m++) {
        s_metric_head (out, s_job_metrics[m].name, s_job_metrics[m].type, s_job_metrics[m].help);
        for (size_t i = 0; i < self->njobs; i++) {
            const tl_web_job_t *job = self->jobs[i];
            for (int s = 0; s < (int)job->shards && s < TL_SHARDS_MAX; s++) {
                uint64_t bit = (uint64_t)1 << s;
                if (!(job->shard_heard & bit) && !(job->done_heard & bit)) continue;
                s_label_job (out, s_job_metrics[m].name, job, s);
                s_value (out, s_job_field (job, s, s_job_metrics[m].field));
            }
        }
    }
    s_metric_head (out, "tally_job_sum", "gauge", "Sum of the job's totals (finished jobs)");
    for (size_t i = 0; i < self->njobs; i++) {
        const tl_web_job_t *job = self->jobs[i];
        for (int s = 0; s < (int)job->shards && s < TL_SHARDS_MAX; s++)
            if (job->done_heard & ((uint64_t)1 << s)) {
                s_label_job (out, "tally_job_sum", job, s);
                s_value (out, (double)job->shard_done[s].sum);
            }
    }
}

static const struct {
    const char *name, *type, *help;
    size_t offset;
    bool real;
} s_sink_metrics[] = {
    {"tally_sink_partials_total", "counter", "PARTIALs merged since the sink started",
     offsetof (tl_feed_stats_t, partials), false},
    {"tally_sink_duplicates_total", "counter",
     "Partials of chunks already merged (resends whose first attempt also arrived)",
     offsetof (tl_feed_stats_t, duplicates), false},
    {"tally_sink_junk_total", "counter", "Frames the sink refused",
     offsetof (tl_feed_stats_t, junk), false},
    {"tally_sink_disconnects_total", "counter",
     "Peers (workers, ventilators) whose connection to the sink closed",
     offsetof (tl_feed_stats_t, disconnects), false},
    {"tally_sink_bytes_total", "counter", "Payload bytes merged since the sink started",
     offsetof (tl_feed_stats_t, bytes), false},
    {"tally_sink_lines_total", "counter", "Lines merged since the sink started",
     offsetof (tl_feed_stats_t, lines), false},
    {"tally_sink_rate_bytes_per_second", "gauge", "Payload bytes merged per second, recently",
     offsetof (tl_feed_stats_t, rate), true},
    {"tally_sink_uptime_seconds", "gauge", "Seconds since the sink started",
     offsetof (tl_feed_stats_t, uptime), true},
    {"tally_sink_jobs_open", "gauge", "Jobs open at the sink",
     offsetof (tl_feed_stats_t, jobs_open), false},
    {"tally_sink_jobs_done_total", "counter", "Jobs the sink finished since it started",
     offsetof (tl_feed_stats_t, jobs_done), false},
    {"tally_sink_jobs_failed_total", "counter", "Jobs that failed at the sink since it started",
     offsetof (tl_feed_stats_t, jobs_failed), false},
};

static void s_metrics_sinks (tl_web_t *self, tl_web_buf_t *out)
{
    for (size_t m = 0; m < sizeof s_sink_metrics / sizeof *s_sink_metrics; m++) {
        s_metric_head (out, s_sink_metrics[m].name, s_sink_metrics[m].type, s_sink_metrics[m].help);
        for (size_t i = 0; i < self->nfeeds; i++) {
            const tl_web_feed_t *feed = &self->feeds[i];
            if (!feed->has_stats) continue;
            const char *field = (const char *)&feed->stats + s_sink_metrics[m].offset;
            double value;
            if (s_sink_metrics[m].real)
                memcpy (&value, field, sizeof value);
            else {
                uint64_t integer;
                memcpy (&integer, field, sizeof integer);
                value = (double)integer;
            }
            s_label_feed (out, s_sink_metrics[m].name, feed);
            s_value (out, value);
        }
    }
    s_metric_head (out, "tally_sink_stats_age_seconds", "gauge",
                   "Seconds since the sink's last stats message");
    double now = tl_now ();
    for (size_t i = 0; i < self->nfeeds; i++)
        if (self->feeds[i].has_stats) {
            s_label_feed (out, "tally_sink_stats_age_seconds", &self->feeds[i]);
            s_value (out, now - self->feeds[i].stats_heard);
        }
}

static void s_metrics_own (tl_web_t *self, tl_web_buf_t *out)
{
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } own[] = {
        {"tally_web_feed_messages_total", "counter",
         "Feed and snapshot messages received from the feed's sink",
         offsetof (tl_web_feed_t, messages)},
        {"tally_web_feed_undecodable_total", "counter",
         "Messages that could not be decoded (or combined with their job's)",
         offsetof (tl_web_feed_t, undecodable)},
        {"tally_web_feed_connects_total", "counter",
         "Connections made to the feed (the first, then each reconnection)",
         offsetof (tl_web_feed_t, connects)},
        {"tally_web_snapshot_requests_total", "counter",
         "State snapshots asked of the sink's snapshot service",
         offsetof (tl_web_feed_t, snapshot_asks)},
        {"tally_web_snapshot_replies_total", "counter",
         "Messages received from the sink's snapshot service", offsetof (tl_web_feed_t, replies)},
    };
    for (size_t m = 0; m < sizeof own / sizeof *own; m++) {
        s_metric_head (out, own[m].name, own[m].type, own[m].help);
        for (size_t i = 0; i < self->nfeeds; i++) {
            uint64_t value;
            memcpy (&value, (const char *)&self->feeds[i] + own[m].offset, sizeof value);
            s_label_feed (out, own[m].name, &self->feeds[i]);
            s_value (out, (double)value);
        }
    }
    s_metric_head (out, "tally_web_feed_connected", "gauge", "1 while the feed's connection is up");
    for (size_t i = 0; i < self->nfeeds; i++) {
        s_label_feed (out, "tally_web_feed_connected", &self->feeds[i]);
        s_value (out, self->feeds[i].connected);
    }
    s_metric_head (out, "tally_web_uptime_seconds", "gauge", "Seconds since tally web started");
    tl_web_buf_add (out, "tally_web_uptime_seconds ", 25);
    s_value (out, tl_now () - self->started);
}

void tl_web_render_metrics (tl_web_t *self, tl_web_buf_t *out)
{
    s_metrics_jobs (self, out);
    s_metrics_sinks (self, out);
    s_metrics_own (self, out);
}

//  ---------------------------------------------------------------------------------

int tl_web_init (tl_web_t *self, char **feeds, size_t nfeeds)
{
    *self = (tl_web_t){0};
    pthread_mutex_init (&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->changed, &attr);
    pthread_condattr_destroy (&attr);
    self->started = tl_now ();
    self->join = tl_feed_join_new (TL_WEB_JOBS_MAX);
    self->nfeeds = nfeeds;
    for (size_t i = 0; i < nfeeds; i++)
        self->feeds[i].endpoint = feeds[i];
    return self->join ? 0 : -1;
}

void tl_web_destroy (tl_web_t *self)
{
    for (size_t i = 0; i < self->njobs; i++)
        s_job_destroy (&self->jobs[i]);
    tl_feed_join_destroy (&self->join);
    free (self->json);
    pthread_cond_destroy (&self->changed);
    pthread_mutex_destroy (&self->lock);
}
