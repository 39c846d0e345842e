/*  tally-watch's live view (see watch_view.h). The model is what the feed told: a few
    jobs (the most recently heard of), each with the job's progress and each shard's,
    the job's top keys, and how it ended; and each sink's stats (told apart by their
    incarnation). Drawing writes the whole screen from the top left, each line cut to
    the terminal's width and cleared to its end, then clears below: no flicker, and a
    resized terminal is redrawn right on the next frame.                             */

#include "watch_view.h"
#include "tl_bar.h"

#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define S_JOBS_MAX  8     //  Jobs shown (the most recently heard of)
#define S_SINKS_MAX 16    //  Sinks whose stats are shown
#define S_TOP_MAX   20    //  Top keys shown for the newest running job, at most
#define S_KEY_SHOWN 40    //  Characters of a key shown
#define S_REDRAW    0.25  //  Seconds between drawings, at least

typedef enum { S_RUNNING, S_DONE, S_FAILED } s_state_t;

typedef struct {
    uint64_t id;                                    //  Job id (0: the slot is free)
    uint64_t shards;                                //  The job's sink shards
    s_state_t state;                                //  Running, done or failed
    bool before;                                    //  Ended before the view started (snapshot)
    tl_progress_t progress;                         //  The job's (the shards' combined)
    tl_progress_t shard[TL_SHARDS_MAX];             //  Each shard's latest
    bool heard[TL_SHARDS_MAX];                      //  Whose progress came
    bool shard_done[TL_SHARDS_MAX];                 //  Whose done came
    tl_entry_t top[S_TOP_MAX];                      //  The job's top keys (keys in top_keys)
    size_t ntop;                                    //  How many
    char top_keys[S_TOP_MAX][S_KEY_SHOWN * 4 + 1];  //  Their bytes, cut short
    tl_done_body_t done;                            //  The job's, once every shard's came
    char output[256];  //  The first shard's totals file (+ how many more)
    char reason[256];  //  Why it failed
    double heard_at;   //  When last heard of
} s_job_t;

struct _tl_watch_view_t {
    FILE *out;                           //  The terminal
    char *title;                         //  The feeds followed
    s_job_t jobs[S_JOBS_MAX];            //  Jobs, unordered
    tl_feed_stats_t sinks[S_SINKS_MAX];  //  Each sink's latest stats
    size_t nsinks;                       //  How many
    bool changed;                        //  Something to draw
    double drawn_at;                     //  Last drawing
    char *frame;                         //  The frame being built
    size_t frame_size, frame_used;       //  Its allocation and length
    int rows, cols;                      //  Terminal size for this frame
    int row;                             //  Lines in the frame so far
};

tl_watch_view_t *tl_watch_view_new (FILE *out, const char *title)
{
    assert (out);
    tl_watch_view_t *self = calloc (1, sizeof *self);
    if (!self || !(self->title = strdup (title ? title : ""))) {
        free (self);
        return NULL;
    }
    self->out = out;
    self->changed = true;
    //  The alternate screen, cursor hidden: what was on the terminal comes back at the end.
    fputs ("\033[?1049h\033[?25l", out);
    fflush (out);
    return self;
}

static void s_print_summary (FILE *out, const s_job_t *job)
{
    char label[48] = "";
    if (job->shards > 1)
        snprintf (label, sizeof label, " (%llu shards)", (unsigned long long)job->shards);
    if (job->state == S_DONE)
        fprintf (
            out,
            "%016llx done%s: %llu keys, sum %llu, %llu lines, %llu bad, %.2f s, totals in %s\n",
            (unsigned long long)job->id, label, (unsigned long long)job->done.keys,
            (unsigned long long)job->done.sum, (unsigned long long)job->done.lines,
            (unsigned long long)job->done.bad_lines, job->done.seconds, job->output);
    else if (job->state == S_FAILED)
        fprintf (out, "%016llx failed%s: %s\n", (unsigned long long)job->id, label, job->reason);
}

void tl_watch_view_destroy (tl_watch_view_t **self_p)
{
    assert (self_p);
    tl_watch_view_t *self = *self_p;
    if (!self) return;
    fputs ("\033[?25h\033[?1049l", self->out);
    //  What ended while the view was up stays on the terminal, oldest first.
    while (true) {
        s_job_t *oldest = NULL;
        for (int i = 0; i < S_JOBS_MAX; i++) {
            s_job_t *job = &self->jobs[i];
            if (job->id && job->state != S_RUNNING && !job->before &&
                (!oldest || job->heard_at < oldest->heard_at))
                oldest = job;
        }
        if (!oldest) break;
        s_print_summary (self->out, oldest);
        oldest->id = 0;
    }
    fflush (self->out);
    free (self->frame);
    free (self->title);
    free (self);
    *self_p = NULL;
}

//  The job's slot: its own, or a free one, or the least recently heard of.
static s_job_t *s_job (tl_watch_view_t *self, uint64_t id, uint64_t shards, double now)
{
    s_job_t *slot = NULL;
    for (int i = 0; i < S_JOBS_MAX; i++)
        if (self->jobs[i].id == id) {
            slot = &self->jobs[i];
            break;
        }
    if (!slot) {
        for (int i = 0; i < S_JOBS_MAX; i++)
            if (!slot || !self->jobs[i].id || (slot->id && self->jobs[i].heard_at < slot->heard_at))
                slot = &self->jobs[i];
        memset (slot, 0, sizeof *slot);
        slot->id = id;
        slot->state = S_RUNNING;
    }
    if (shards >= 1 && shards <= TL_SHARDS_MAX) slot->shards = shards;
    slot->heard_at = now;
    return slot;
}

static void s_copy_top (s_job_t *job, const tl_entry_t *top, size_t n)
{
    job->ntop = n < S_TOP_MAX ? n : S_TOP_MAX;
    for (size_t i = 0; i < job->ntop; i++) {
        size_t len =
            top[i].len < sizeof job->top_keys[i] - 1 ? top[i].len : sizeof job->top_keys[i] - 1;
        memcpy (job->top_keys[i], top[i].key, len);
        job->top_keys[i][len] = 0;
        job->top[i] = (tl_entry_t){job->top_keys[i], (uint32_t)len, top[i].count};
    }
}

void tl_watch_view_add (tl_watch_view_t *self, const tl_feed_msg_t *msg, const tl_feed_view_t *view,
                        bool from_snapshot)
{
    assert (self && msg);
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    if (msg->topic == TL_FEED_STATS) {
        size_t i = 0;
        while (i < self->nsinks && self->sinks[i].incarnation != msg->u.stats.incarnation)
            i++;
        if (i == S_SINKS_MAX) return;
        if (i == self->nsinks) self->nsinks++;
        self->sinks[i] = msg->u.stats;
        self->changed = true;
        return;
    }
    if (msg->topic != TL_FEED_PROGRESS && msg->topic != TL_FEED_TOP && msg->topic != TL_FEED_DONE &&
        msg->topic != TL_FEED_FAILED)
        return;
    s_job_t *job = s_job (self, msg->job, msg->shards, now);
    uint64_t shard = msg->shard < TL_SHARDS_MAX ? msg->shard : 0;
    self->changed = true;
    switch (msg->topic) {
    case TL_FEED_PROGRESS:
        job->shard[shard] = msg->u.progress;
        job->heard[shard] = true;
        job->progress = view ? view->progress : msg->u.progress;
        break;
    case TL_FEED_TOP:
        if (view)
            s_copy_top (job, view->top, view->ntop);
        else {
            tl_entry_t top[S_TOP_MAX];
            tl_feed_entries_t it = msg->u.top;
            tl_str_t key;
            uint64_t total;
            size_t n = 0;
            while (n < S_TOP_MAX && tl_feed_entries_next (&it, &key, &total))
                top[n++] = (tl_entry_t){key.ptr, (uint32_t)key.len, total};
            s_copy_top (job, top, n);
        }
        break;
    case TL_FEED_DONE:
        job->shard_done[shard] = true;
        if (job->state == S_FAILED) break;
        if (!view || view->complete || job->shards <= 1) {
            job->state = S_DONE;
            job->before = from_snapshot;
            job->done = view && view->complete ? view->done : msg->u.done;
            const tl_str_t *first =
                view && view->complete ? &view->outputs[0] : &msg->u.done.output;
            snprintf (job->output, sizeof job->output, "%.*s%s", (int)first->len, first->ptr,
                      job->shards > 1 ? " and the other shards' parts" : "");
        }
        break;
    case TL_FEED_FAILED:
        job->state = S_FAILED;
        job->before = from_snapshot;
        snprintf (job->reason, sizeof job->reason, "%.*s", (int)msg->u.reason.len,
                  msg->u.reason.ptr);
        break;
    default:
        break;
    }
}

//  ---------------------------------------------------------------------------------
//  Drawing

//  Appends a line to the frame, cut to the terminal's width (UTF-8 characters counted
//  as one column each), unless the screen is full.
static void s_line (tl_watch_view_t *self, const char *format, ...)
{
    if (self->row >= self->rows - 1) return;
    char text[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    size_t len = 0;
    int columns = 0;
    for (; text[len] && columns < self->cols; len++)
        if (((unsigned char)text[len] & 0xC0) != 0x80) {
            if (columns + 1 > self->cols) break;
            columns++;
        }
    while (((unsigned char)text[len] & 0xC0) == 0x80)
        len++;  //  The rest of the last character
    size_t need = self->frame_used + len + 8;
    if (need > self->frame_size) {
        size_t size = need * 2;
        char *frame = realloc (self->frame, size);
        if (!frame) return;
        self->frame = frame;
        self->frame_size = size;
    }
    memcpy (self->frame + self->frame_used, text, len);
    self->frame_used += len;
    memcpy (self->frame + self->frame_used, "\033[K\n", 4);
    self->frame_used += 4;
    self->row++;
}

//  A key for the screen: control bytes as '?', at most S_KEY_SHOWN characters.
static void s_key_text (const tl_entry_t *entry, char *buf, size_t size)
{
    size_t j = 0;
    int chars = 0;
    for (size_t i = 0; i < entry->len && j + 5 < size; i++) {
        unsigned char c = (unsigned char)entry->key[i];
        if ((c & 0xC0) != 0x80 && ++chars > S_KEY_SHOWN) break;
        buf[j++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    buf[j] = 0;
}

static void s_bar (double fraction, int width, char *buf)
{
    int full = (int)(fraction * width + 0.5);
    if (full > width) full = width;
    if (full < 0) full = 0;
    for (int i = 0; i < width; i++)
        buf[i] = i < full ? '#' : '.';
    buf[width] = 0;
}

//  Done fraction of a progress: chunks once their number is final, else bytes of the
//  input's size (compressed input runs ahead of it, so it is capped); -1 unknown.
static double s_fraction (const tl_progress_t *p)
{
    if (p->chunks_final && p->chunks_known) return (double)p->chunks_done / (double)p->chunks_known;
    if (p->input_bytes) {
        double f = (double)p->bytes / (double)p->input_bytes;
        return f < 0.99 ? f : 0.99;
    }
    return -1;
}

static void s_eta (const tl_progress_t *p, double fraction, char *buf, size_t size)
{
    if (fraction <= 0 || fraction >= 1 || p->seconds <= 0) {
        snprintf (buf, size, "%s", fraction >= 1 ? "merged" : "-");
        return;
    }
    double left = p->seconds * (1 - fraction) / fraction;
    if (left < 120)
        snprintf (buf, size, "ETA %.0f s", left);
    else if (left < 7200)
        snprintf (buf, size, "ETA %.0f min", left / 60);
    else
        snprintf (buf, size, "ETA %.1f h", left / 3600);
}

static void s_draw_progress (tl_watch_view_t *self, const char *indent, const char *label,
                             const tl_progress_t *p)
{
    char bar[64], bytes[32], input[32], rate[32], eta[32];
    double fraction = s_fraction (p);
    int width = self->cols >= 100 ? 30 : 20;
    s_bar (fraction < 0 ? 0 : fraction, width, bar);
    s_eta (p, fraction, eta, sizeof eta);
    char percent[16] = "  ?";
    if (fraction >= 0) snprintf (percent, sizeof percent, "%5.1f%%", fraction * 100);
    s_line (self,
            "%s%s[%s] %s  %s of %s  %s/s  %s  %llu/%llu%s chunks  %llu keys  %llu lines  %llu bad",
            indent, label, bar, percent, tl_human_bytes ((double)p->bytes, bytes, sizeof bytes),
            tl_human_bytes ((double)p->input_bytes, input, sizeof input),
            tl_human_bytes (p->rate, rate, sizeof rate), eta, (unsigned long long)p->chunks_done,
            (unsigned long long)p->chunks_known, p->chunks_final ? "" : "+",
            (unsigned long long)p->keys, (unsigned long long)p->lines,
            (unsigned long long)p->bad_lines);
}

static void s_draw_top (tl_watch_view_t *self, const s_job_t *job)
{
    if (!job->ntop) return;
    int room = self->rows - 1 - self->row - 2;
    size_t shown =
        job->ntop < (size_t)(room > 0 ? room : 0) ? job->ntop : (size_t)(room > 0 ? room : 0);
    if (!shown) return;
    s_line (self, "    %-4s %-*s %20s", "#", S_KEY_SHOWN, "key", "total");
    uint64_t largest = job->top[0].count ? job->top[0].count : 1;
    int bar_width = self->cols - 4 - 5 - S_KEY_SHOWN - 1 - 20 - 2;
    if (bar_width > 40) bar_width = 40;
    for (size_t i = 0; i < shown; i++) {
        char key[S_KEY_SHOWN * 4 + 8], bar[48] = "";
        s_key_text (&job->top[i], key, sizeof key);
        int chars = 0;
        for (const char *c = key; *c; c++)
            chars += ((unsigned char)*c & 0xC0) != 0x80;
        if (bar_width > 0) {
            int n = (int)((double)job->top[i].count / (double)largest * bar_width + 0.5);
            for (int b = 0; b < n && b < (int)sizeof bar - 1; b++)
                bar[b] = '=';
            bar[n < (int)sizeof bar - 1 ? n : (int)sizeof bar - 1] = 0;
        }
        s_line (self, "    %-4zu %s%*s %20llu  %s", i + 1, key, S_KEY_SHOWN - chars, "",
                (unsigned long long)job->top[i].count, bar);
    }
}

static void s_draw_job (tl_watch_view_t *self, const s_job_t *job, bool with_top)
{
    char shards[48] = "";
    if (job->shards > 1)
        snprintf (shards, sizeof shards, ", %llu sink shards", (unsigned long long)job->shards);
    if (job->state == S_RUNNING) {
        s_line (self, "job %016llx  running%s, %.1f s", (unsigned long long)job->id, shards,
                job->progress.seconds);
        s_draw_progress (self, "  ", "", &job->progress);
        if (job->shards > 1)
            for (uint64_t i = 0; i < job->shards; i++) {
                char label[64];
                snprintf (label, sizeof label, "shard %llu/%llu %s", (unsigned long long)i + 1,
                          (unsigned long long)job->shards, job->shard_done[i] ? "done " : "");
                if (job->heard[i])
                    s_draw_progress (self, "    ", label, &job->shard[i]);
                else
                    s_line (self, "    %s(not heard from yet)", label);
            }
        if (with_top) s_draw_top (self, job);
    } else if (job->state == S_DONE)
        s_line (self,
                "job %016llx  done%s%s: %llu keys, sum %llu, %llu lines, %llu bad, %.2f s -> %s",
                (unsigned long long)job->id, job->before ? " (before this view)" : "", shards,
                (unsigned long long)job->done.keys, (unsigned long long)job->done.sum,
                (unsigned long long)job->done.lines, (unsigned long long)job->done.bad_lines,
                job->done.seconds, job->output);
    else
        s_line (self, "job %016llx  FAILED%s%s: %s", (unsigned long long)job->id,
                job->before ? " (before this view)" : "", shards, job->reason);
}

static int s_by_heard (const void *a, const void *b)
{
    const s_job_t *x = *(const s_job_t *const *)a, *y = *(const s_job_t *const *)b;
    return (x->heard_at < y->heard_at) - (x->heard_at > y->heard_at);
}

void tl_watch_view_draw (tl_watch_view_t *self, double now, bool force)
{
    assert (self);
    if (!force && (!self->changed || now - self->drawn_at < S_REDRAW)) return;
    struct winsize ws;
    self->rows = 24;
    self->cols = 80;
    if (ioctl (fileno (self->out), TIOCGWINSZ, &ws) == 0 && ws.ws_row > 2 && ws.ws_col > 20) {
        self->rows = ws.ws_row;
        self->cols = ws.ws_col;
    }
    self->frame_used = 0;
    self->row = 0;
    time_t t = time (NULL);
    char clock[16];
    strftime (clock, sizeof clock, "%H:%M:%S", localtime (&t));
    s_line (self, "tally-watch  %s  %s  (Ctrl-C to quit)", self->title, clock);
    for (size_t i = 0; i < self->nsinks; i++) {
        const tl_feed_stats_t *s = &self->sinks[i];
        char rate[32], bytes[32];
        s_line (self,
                "sink %04llx: up %.0f s, jobs %llu open %llu done %llu failed, %llu partials "
                "(%llu duplicates), %s merged at %s/s, %llu junk, %llu disconnects",
                (unsigned long long)(s->incarnation & 0xffff), s->uptime,
                (unsigned long long)s->jobs_open, (unsigned long long)s->jobs_done,
                (unsigned long long)s->jobs_failed, (unsigned long long)s->partials,
                (unsigned long long)s->duplicates,
                tl_human_bytes ((double)s->bytes, bytes, sizeof bytes),
                tl_human_bytes (s->rate, rate, sizeof rate), (unsigned long long)s->junk,
                (unsigned long long)s->disconnects);
    }
    s_line (self, "%s", "");
    const s_job_t *order[S_JOBS_MAX];
    size_t n = 0;
    for (int i = 0; i < S_JOBS_MAX; i++)
        if (self->jobs[i].id) order[n++] = &self->jobs[i];
    qsort (order, n, sizeof *order, s_by_heard);
    bool top_shown = false;
    for (size_t i = 0; i < n; i++) {
        //  The top table for the most recently heard of running job only: the rest
        //  of the screen is for the other jobs' lines.
        bool with_top = !top_shown && order[i]->state == S_RUNNING;
        top_shown |= with_top;
        s_draw_job (self, order[i], with_top);
    }
    if (!n) s_line (self, "no job yet: waiting for the feed");
    fputs ("\033[H", self->out);
    fwrite (self->frame, 1, self->frame_used, self->out);
    fputs ("\033[J", self->out);
    fflush (self->out);
    self->drawn_at = now;
    self->changed = false;
}
