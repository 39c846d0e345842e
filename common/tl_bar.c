/*  tl_bar: a progress bar on stderr for long work (bytes, chunks, rate, ETA)
    when stderr is a terminal; off a terminal, a log line every few seconds.          */

#include "tl_bar.h"
#include "tl_clock.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

//  The rate is measured over the last S_SAMPLES quarter seconds: quick to follow a
//  change, steady enough to read.
#define S_SAMPLES 8

struct _tl_bar_t {
    char *label;                         //  Shown before the bar
    uint64_t total;                      //  Bytes to read, 0 if unknown
    bool bar;                            //  Draw a bar (else log lines)
    bool quiet;                          //  Draw nothing
    double started;                      //  When the work began
    double last_draw;                    //  When we last drew
    double rate;                         //  Payload bytes per second over the last seconds
    double sample_at[S_SAMPLES];         //  Times of recent samples, a ring
    uint64_t sample_payload[S_SAMPLES];  //  Payload at those times
    unsigned samples;                    //  Samples taken
    uint64_t done;                       //  Last reported position
    uint64_t payload;                    //  Last reported payload
    uint64_t chunks;                     //  Last reported chunks merged
    uint64_t known;                      //  Last reported chunks known
    const char *unit;                    //  What the counts count ("chunks")
    bool final;                          //  known is the total
    bool drawn;                          //  A bar line is on screen
    char status[96];                     //  What the work does now, instead of rate and ETA
    double status_at;                    //  Since when
};

char *tl_human_bytes (double bytes, char *buf, size_t size)
{
    static const char *units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    size_t unit = 0;
    while (bytes >= 1000 && unit + 1 < sizeof units / sizeof *units) {
        bytes /= 1000;
        unit++;
    }
    snprintf (buf, size, unit ? "%.1f %s" : "%.0f %s", bytes, units[unit]);
    return buf;
}

int tl_bar_mode_parse (const char *text, tl_bar_mode_t *mode)
{
    static const char *names[] = {"auto", "bar", "log", "none"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp (text, names[i]) == 0) {
            *mode = (tl_bar_mode_t)i;
            return 0;
        }
    return -1;
}

tl_bar_t *tl_bar_new (const char *label, uint64_t total, tl_bar_mode_t mode)
{
    tl_bar_t *self = calloc (1, sizeof *self);
    if (!self) return NULL;
    self->label = strdup (label ? label : "");
    self->total = total;
    self->bar = mode == TL_BAR_BAR || (mode == TL_BAR_AUTO && isatty (STDERR_FILENO));
    self->quiet = mode == TL_BAR_NONE;
    self->started = tl_now ();
    //  The first log line comes after one period: a short job logs nothing.
    self->last_draw = self->bar ? 0 : self->started;
    return self;
}

void tl_bar_destroy (tl_bar_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->label);
        free (*self_p);
        *self_p = NULL;
    }
}

static void s_format_eta (double seconds, char *buf, size_t size)
{
    if (seconds < 0 || seconds > 99 * 3600)
        snprintf (buf, size, "--:--");
    else if (seconds >= 3600)
        snprintf (buf, size, "%d:%02d:%02d", (int)seconds / 3600, (int)seconds / 60 % 60,
                  (int)seconds % 60);
    else
        snprintf (buf, size, "%02d:%02d", (int)seconds / 60, (int)seconds % 60);
}

static void s_draw (tl_bar_t *self, double now)
{
    char done[32], total[32], rate[32], eta[32], chunks[48];
    double fraction = self->total ? (double)self->done / (double)self->total : 0;
    if (fraction > 1) fraction = 1;
    double elapsed = now - self->started;
    tl_human_bytes ((double)self->done, done, sizeof done);
    tl_human_bytes ((double)self->total, total, sizeof total);
    tl_human_bytes (self->rate, rate, sizeof rate);
    s_format_eta (fraction > 0.001 ? elapsed / fraction - elapsed : -1, eta, sizeof eta);
    snprintf (chunks, sizeof chunks, "%llu/%llu%s %s", (unsigned long long)self->chunks,
              (unsigned long long)self->known, self->final ? "" : "+",
              self->unit ? self->unit : "chunks");
    //  How the work goes: rate and ETA, or, when the counts stand still, what goes on and
    //  for how long (not a rate of 0).
    char pace[160];
    if (self->status[0]) {
        s_format_eta (now - self->status_at, eta, sizeof eta);
        snprintf (pace, sizeof pace, "%s for %s", self->status, eta);
    } else
        snprintf (pace, sizeof pace, "%s/s, ETA %s", rate, eta);
    if (self->bar) {
        char bar[31];
        int filled = (int)(fraction * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < filled ? '#' : '-';
        bar[30] = 0;
        fprintf (stderr, "\r%s [%s] %3.0f%% %s/%s  %s  %s\033[K", self->label, bar, fraction * 100,
                 done, total, chunks, pace);
        self->drawn = true;
    } else
        fprintf (stderr, "%s: %.0f%% %s of %s, %s, %s, %.0f s elapsed\n", self->label,
                 fraction * 100, done, total, chunks, pace, elapsed);
    fflush (stderr);
    self->last_draw = now;
}

void tl_bar_update (tl_bar_t *self, uint64_t done, uint64_t payload, uint64_t chunks,
                    uint64_t chunks_known, bool chunks_final)
{
    if (!self || self->quiet) return;
    double now = tl_now ();
    self->done = done;
    self->payload = payload;
    self->chunks = chunks;
    self->known = chunks_known;
    self->final = chunks_final;
    unsigned last = (self->samples + S_SAMPLES - 1) % S_SAMPLES;
    if (!self->samples || now - self->sample_at[last] >= 0.25) {
        unsigned slot = self->samples++ % S_SAMPLES;
        self->sample_at[slot] = now;
        self->sample_payload[slot] = payload;
        //  The oldest sample still in the ring (the first one until the ring is full).
        unsigned oldest = self->samples < S_SAMPLES ? 0 : self->samples % S_SAMPLES;
        double span = now - self->sample_at[oldest];
        if (span > 0) self->rate = (double)(payload - self->sample_payload[oldest]) / span;
    }
    double every = self->bar ? 0.1 : 5.0;
    if (now - self->last_draw >= every) s_draw (self, now);
}

void tl_bar_finish (tl_bar_t *self)
{
    if (!self || self->quiet) return;
    double now = tl_now ();
    double elapsed = now - self->started;
    if (elapsed > 0) self->rate = (double)self->payload / elapsed;
    if (self->bar || now - self->started >= 5.0) s_draw (self, now);
    if (self->drawn) fputc ('\n', stderr);
    self->drawn = false;
}

void tl_bar_set_status (tl_bar_t *self, const char *status)
{
    if (!self) return;
    if (!status) {
        self->status[0] = 0;
        return;
    }
    if (!self->status[0]) self->status_at = tl_now ();  //  The clock runs from the first
    snprintf (self->status, sizeof self->status, "%s", status);
}

void tl_bar_set_unit (tl_bar_t *self, const char *unit)
{
    if (self) self->unit = unit;
}

void tl_bar_clear (tl_bar_t *self)
{
    if (!self || !self->drawn) return;
    fputs ("\r\033[K", stderr);
    fflush (stderr);
    self->drawn = false;
    self->last_draw = 0;  //  Back at once under the message
}
