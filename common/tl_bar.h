/*  tl_bar: a progress bar on stderr for long work (bytes, chunks, rate, ETA)
    when stderr is a terminal; off a terminal, a log line every few seconds.          */

#ifndef TL_BAR_H_INCLUDED
#define TL_BAR_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TL_BAR_AUTO = 0,  //  Bar on a terminal, log lines otherwise
    TL_BAR_BAR,       //  Always the bar
    TL_BAR_LOG,       //  Always log lines
    TL_BAR_NONE       //  Nothing
} tl_bar_mode_t;

typedef struct _tl_bar_t tl_bar_t;

//  total: bytes the job will read (0 when unknown: no percentage, no ETA).
tl_bar_t *tl_bar_new (const char *label, uint64_t total, tl_bar_mode_t mode);

void tl_bar_destroy (tl_bar_t **self_p);

//  Reports position: done bytes of total read, payload bytes merged (for the rate),
//  chunks merged of chunks known (final once the count is known). Draws at most
//  ten times a second (log lines every five seconds).
void tl_bar_update (tl_bar_t *self, uint64_t done, uint64_t payload, uint64_t chunks,
                    uint64_t chunks_known, bool chunks_final);

//  Names what the counts of tl_bar_update count ("chunks" unless set; unit is static).
void tl_bar_set_unit (tl_bar_t *self, const char *unit);

//  Says what the work is doing when the counts stand still (the sink writing the
//  totals once every chunk is merged): shown with its own clock in place of the rate
//  and ETA, until set to NULL (a new text keeps the clock). The text is copied.
void tl_bar_set_status (tl_bar_t *self, const char *status);

//  Draws a last time and ends the bar's line.
void tl_bar_finish (tl_bar_t *self);

//  Erases the bar's line, if one is on screen, so that a message can take its place;
//  the next tl_bar_update draws the bar again below it. Log lines need no erasing.
void tl_bar_clear (tl_bar_t *self);

//  Parses "auto", "bar", "log", "none". Returns 0 or -1.
int tl_bar_mode_parse (const char *text, tl_bar_mode_t *mode);

//  Formats a byte count as "1.23 GB" (decimal units) into buf. Returns buf.
char *tl_human_bytes (double bytes, char *buf, size_t size);

#endif
