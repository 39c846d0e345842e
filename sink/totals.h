/*  tl_totals: the totals file a finished job leaves, one "key TAB total" line per key
    in the order given. Written beside its final name and renamed into place, so a
    totals file that exists is complete.                                             */

#ifndef TL_TOTALS_H_INCLUDED
#define TL_TOTALS_H_INCLUDED

#include "tl_table.h"

//  Writes n entries to path: to "path.tmp.PID" first, flushed and fsynced, then
//  renamed over path. Returns 0, or -1 with errno set (the temporary file is removed
//  and path left as it was).
int tl_totals_write (const char *path, const tl_entry_t *entries, size_t n);

#endif
