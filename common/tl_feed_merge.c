/*  tl_feed_merge: combines a job's sink shards' feeds.

    A job's state holds each shard's latest progress, a copy of its latest top list
    (the frame it came in is gone by the next message), where its totals batches are
    and its done (output copied). Shards are at most TL_SHARDS_MAX (64), so a
    uint64_t bit mask says which shards a topic has been heard from.                */

#include "tl_feed_merge.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_add (uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static double s_max (double a, double b)
{
    return a > b ? a : b;
}

void tl_feed_merge_progress (const tl_progress_t *shards, size_t n, tl_progress_t *job)
{
    assert (shards && n >= 1 && job);
    tl_progress_t sum = shards[0];
    sum.shard = 0;
    for (size_t i = 1; i < n; i++) {
        const tl_progress_t *p = &shards[i];
        //  Every shard merges a part of every chunk: the job has merged the chunks that
        //  the slowest shard has.
        if (p->chunks_done < sum.chunks_done) sum.chunks_done = p->chunks_done;
        if (p->chunks_known > sum.chunks_known) sum.chunks_known = p->chunks_known;
        if (p->input_bytes > sum.input_bytes) sum.input_bytes = p->input_bytes;
        sum.chunks_final = sum.chunks_final && p->chunks_final;
        sum.bytes = s_add (sum.bytes, p->bytes);
        sum.lines = s_add (sum.lines, p->lines);
        sum.bad_lines = s_add (sum.bad_lines, p->bad_lines);
        sum.keys = s_add (sum.keys, p->keys);
        sum.rate += p->rate;
        sum.seconds = s_max (sum.seconds, p->seconds);
    }
    *job = sum;
}

size_t tl_feed_merge_top (tl_entry_t *entries, size_t n, size_t k)
{
    assert (entries || n == 0);
    if (n > 1) qsort (entries, n, sizeof *entries, tl_entry_compare);
    return n < k ? n : k;
}

void tl_feed_merge_done (const tl_done_body_t *shards, size_t n, tl_done_body_t *job)
{
    assert (shards && n >= 1 && job);
    tl_done_body_t sum = shards[0];
    for (size_t i = 1; i < n; i++) {
        const tl_done_body_t *d = &shards[i];
        sum.keys = s_add (sum.keys, d->keys);
        sum.sum = s_add (sum.sum, d->sum);
        sum.lines = s_add (sum.lines, d->lines);
        sum.bad_lines = s_add (sum.bad_lines, d->bad_lines);
        sum.filtered = s_add (sum.filtered, d->filtered);
        sum.chunks = s_add (sum.chunks, d->chunks);
        sum.bytes = s_add (sum.bytes, d->bytes);
        sum.seconds = s_max (sum.seconds, d->seconds);
    }
    sum.output = (tl_str_t){"", 0};
    *job = sum;
}

//  ---------------------------------------------------------------------------------
//  The joiner

//  A shard's latest top list: its entries and, after them, their keys' bytes.
typedef struct {
    tl_entry_t *entries;  //  One block with the key bytes; NULL: none yet
    size_t n;             //  Entries
} s_top_t;

typedef struct {
    uint64_t next;     //  The batch expected next
    uint64_t batches;  //  As the last batch said
    uint64_t missed;   //  Batches skipped so far
} s_totals_t;

typedef struct {
    uint64_t id;          //  Job id
    uint64_t shards;      //  As its first message said
    uint64_t heard;       //  Last heard of (the joiner's clock), to forget the oldest
    uint64_t progressed;  //  Bit s: shard s's progress is in progress[s]
    uint64_t topped;      //  Bit s: shard s's top is in top[s]
    uint64_t totalled;    //  Bit s: a totals batch came from shard s
    uint64_t finished;    //  Bit s: shard s's done is in done[s]
    bool failed;          //  A shard failed the job
    tl_progress_t progress[TL_SHARDS_MAX];
    s_top_t top[TL_SHARDS_MAX];
    s_totals_t totals[TL_SHARDS_MAX];
    tl_done_body_t done[TL_SHARDS_MAX];  //  output points into output[s]
    char *output[TL_SHARDS_MAX];
} s_job_t;

struct _tl_feed_join_t {
    s_job_t **jobs;      //  max_jobs slots, NULL when free
    size_t max_jobs;     //  Slots
    uint64_t clock;      //  Ticks once per message
    tl_entry_t *merged;  //  The last view's top (entries point into the jobs' lists)
    size_t merged_size;  //  Entries it has room for
    s_job_t *spent;      //  The job the last view completed: kept until the next call
};

static void s_job_destroy (s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (!job) return;
    for (size_t s = 0; s < TL_SHARDS_MAX; s++) {
        free (job->top[s].entries);
        free (job->output[s]);
    }
    free (job);
    *job_p = NULL;
}

tl_feed_join_t *tl_feed_join_new (size_t max_jobs)
{
    assert (max_jobs >= 1);
    tl_feed_join_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    self->jobs = calloc (max_jobs, sizeof *self->jobs);
    if (!self->jobs) {
        free (self);
        return NULL;
    }
    self->max_jobs = max_jobs;
    return self;
}

void tl_feed_join_destroy (tl_feed_join_t **self_p)
{
    assert (self_p);
    tl_feed_join_t *self = *self_p;
    if (!self) return;
    for (size_t i = 0; i < self->max_jobs; i++)
        s_job_destroy (&self->jobs[i]);
    free (self->jobs);
    s_job_destroy (&self->spent);
    free (self->merged);
    free (self);
    *self_p = NULL;
}

//  The job's slot: the one it has, or a new one (the least recently heard of job's
//  when all are taken). NULL when out of memory.
static s_job_t **s_job_slot (tl_feed_join_t *self, uint64_t id, uint64_t shards)
{
    s_job_t **free_slot = NULL, **oldest = NULL;
    for (size_t i = 0; i < self->max_jobs; i++) {
        s_job_t **slot = &self->jobs[i];
        if (*slot && (*slot)->id == id) return slot;
        if (!*slot && !free_slot) free_slot = slot;
        if (*slot && (!oldest || (*slot)->heard < (*oldest)->heard)) oldest = slot;
    }
    s_job_t **slot = free_slot ? free_slot : oldest;
    s_job_t *job = calloc (1, sizeof *job);
    if (!job) return NULL;
    s_job_destroy (slot);
    job->id = id;
    job->shards = shards;
    *slot = job;
    return slot;
}

static int s_popcount (uint64_t bits)
{
    return __builtin_popcountll (bits);
}

static uint64_t s_all (uint64_t shards)
{
    return shards >= 64 ? UINT64_MAX : (1ull << shards) - 1;
}

//  Copies a top list out of its frame.
static int s_top_copy (s_top_t *top, tl_feed_entries_t list)
{
    size_t bytes = list.count * sizeof (tl_entry_t);
    tl_feed_entries_t walk = list;
    tl_str_t key;
    uint64_t total;
    while (tl_feed_entries_next (&walk, &key, &total))
        bytes += key.len;
    tl_entry_t *entries = malloc (bytes ? bytes : 1);
    if (!entries) return -1;
    char *keys = (char *)(entries + list.count);
    size_t n = 0;
    while (tl_feed_entries_next (&list, &key, &total)) {
        if (key.len) memcpy (keys, key.ptr, key.len);
        entries[n++] = (tl_entry_t){keys, (uint32_t)key.len, total};
        keys += key.len;
    }
    free (top->entries);
    top->entries = entries;
    top->n = n;
    return 0;
}

static int s_add_progress (s_job_t *job, const tl_feed_msg_t *msg, tl_feed_view_t *view)
{
    job->progress[msg->shard] = msg->u.progress;
    job->progressed |= 1ull << msg->shard;
    tl_progress_t heard[TL_SHARDS_MAX];
    size_t n = 0;
    for (uint64_t s = 0; s < job->shards; s++)
        if (job->progressed & (1ull << s)) heard[n++] = job->progress[s];
    tl_feed_merge_progress (heard, n, &view->progress);
    //  Until every shard has been heard of, the job's chunks are not all known.
    if (n < job->shards) view->progress.chunks_final = false;
    view->progress.shards = job->shards;
    view->heard = n;
    return 0;
}

static int s_add_top (tl_feed_join_t *self, s_job_t *job, const tl_feed_msg_t *msg,
                      tl_feed_view_t *view)
{
    if (s_top_copy (&job->top[msg->shard], msg->u.top) == -1) return -1;
    job->topped |= 1ull << msg->shard;
    size_t n = 0, k = 0;
    for (uint64_t s = 0; s < job->shards; s++) {
        n += job->top[s].n;
        if (job->top[s].n > k) k = job->top[s].n;
    }
    if (n > self->merged_size) {
        tl_entry_t *merged = realloc (self->merged, n * sizeof *merged);
        if (!merged) return -1;
        self->merged = merged;
        self->merged_size = n;
    }
    n = 0;
    for (uint64_t s = 0; s < job->shards; s++)
        for (size_t i = 0; i < job->top[s].n; i++)
            self->merged[n++] = job->top[s].entries[i];
    view->top = self->merged;
    view->ntop = tl_feed_merge_top (self->merged, n, k);
    view->heard = (uint64_t)s_popcount (job->topped);
    return 0;
}

static void s_add_totals (s_job_t *job, const tl_feed_msg_t *msg, tl_feed_view_t *view)
{
    s_totals_t *totals = &job->totals[msg->shard];
    uint64_t batch = msg->u.totals.batch;
    view->missed = batch > totals->next ? batch - totals->next : 0;
    totals->missed = s_add (totals->missed, view->missed);
    totals->next = batch + 1;
    totals->batches = msg->u.totals.batches;
    job->totalled |= 1ull << msg->shard;
}

static int s_add_done (tl_feed_join_t *self, s_job_t **slot, const tl_feed_msg_t *msg,
                       tl_feed_view_t *view)
{
    s_job_t *job = *slot;
    uint64_t s = msg->shard;
    char *output = malloc (msg->u.done.output.len + 1);
    if (!output) return -1;
    if (msg->u.done.output.len) memcpy (output, msg->u.done.output.ptr, msg->u.done.output.len);
    output[msg->u.done.output.len] = 0;
    free (job->output[s]);
    job->output[s] = output;
    job->done[s] = msg->u.done;
    job->done[s].output = (tl_str_t){output, msg->u.done.output.len};
    job->finished |= 1ull << s;

    //  What the shard's totals lacked: the batches after the last one seen, or all.
    const s_totals_t *totals = &job->totals[s];
    view->unseen = !(job->totalled & (1ull << s));
    view->missed =
        view->unseen ? 0
                     : s_add (totals->missed,
                              totals->batches > totals->next ? totals->batches - totals->next : 0);
    view->heard = (uint64_t)s_popcount (job->finished);
    view->complete = job->finished == s_all (job->shards);
    if (view->complete) {
        tl_feed_merge_done (job->done, job->shards, &view->done);
        for (uint64_t i = 0; i < job->shards; i++)
            view->outputs[i] = job->done[i].output;
        //  The job is over: its slot is free, its state goes at the next call.
        self->spent = job;
        *slot = NULL;
    }
    return 0;
}

int tl_feed_join_add (tl_feed_join_t *self, const tl_feed_msg_t *msg, tl_feed_view_t *view)
{
    assert (self && msg && view);
    assert (msg->topic > TL_FEED_INVALID && msg->topic < TL_FEED_COUNT_);
    assert (msg->shards >= 1 && msg->shards <= TL_SHARDS_MAX && msg->shard < msg->shards);
    memset (view, 0, sizeof *view);
    //  What the last view pointed to is no longer needed.
    s_job_destroy (&self->spent);
    s_job_t **slot = s_job_slot (self, msg->job, msg->shards);
    if (!slot) return -1;
    s_job_t *job = *slot;
    if (job->shards != msg->shards) return -1;
    job->heard = ++self->clock;
    view->topic = msg->topic;
    view->job = msg->job;
    view->shard = msg->shard;
    view->shards = job->shards;
    int rc = 0;
    switch (msg->topic) {
    case TL_FEED_PROGRESS:
        rc = s_add_progress (job, msg, view);
        break;
    case TL_FEED_TOP:
        rc = s_add_top (self, job, msg, view);
        break;
    case TL_FEED_TOTALS:
        s_add_totals (job, msg, view);
        break;
    case TL_FEED_DONE:
        rc = s_add_done (self, slot, msg, view);
        break;
    case TL_FEED_FAILED:
        view->failed_before = job->failed;
        job->failed = true;
        break;
    default:
        break;
    }
    return rc;
}
