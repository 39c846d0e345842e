/*  tally-watch's live view: on a terminal, the state of the jobs the feeds tell of,
    redrawn in place as `top` does (the terminal's alternate screen): per job a
    progress bar with rate and ETA, one line per sink shard, the top keys as a table;
    the sinks' own counters; finished jobs' summaries. When it ends, the screen is
    given back and each finished job's summary is printed as a line that stays.       */

#ifndef TL_WATCH_VIEW_H_INCLUDED
#define TL_WATCH_VIEW_H_INCLUDED

#include "tl_feed_merge.h"

#include <stdio.h>

typedef struct _tl_watch_view_t tl_watch_view_t;

//  Creates the view, drawing on out (a terminal), titled with the feeds followed.
//  NULL when out of memory.
tl_watch_view_t *tl_watch_view_new (FILE *out, const char *title);

//  Gives the terminal back (the screen as it was, the cursor shown), prints a line
//  per finished job, and frees the view; sets *self_p to NULL. Harmless on NULL.
void tl_watch_view_destroy (tl_watch_view_t **self_p);

//  Takes a decoded message and, for a job's message, its job's view after it
//  (tl_feed_join_add; NULL when it was not combined). from_snapshot: it came from a
//  snapshot reply (the state before the view started).
void tl_watch_view_add (tl_watch_view_t *self, const tl_feed_msg_t *msg, const tl_feed_view_t *view,
                        bool from_snapshot);

//  Redraws when something changed and the last drawing is older than a quarter
//  second, or when force; at time now.
void tl_watch_view_draw (tl_watch_view_t *self, double now, bool force);

#endif
