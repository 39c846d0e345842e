/*  tl_totals: the totals file a finished job leaves, one "key TAB total" line per key
    in the order given. Replaced whole (tl_replace: a temporary file beside it,
    fsynced, renamed, the folder fsynced), so a totals file that exists is complete. */

#ifndef TL_TOTALS_H_INCLUDED
#define TL_TOTALS_H_INCLUDED

#include "tl_table.h"

//  Writes n entries to path through a temporary file "path.tmp.XXXXXX" (see
//  tl_replace). Returns 0, or -1 with errno set (the temporary file is removed and
//  path left as it was).
int tl_totals_write (const char *path, const tl_entry_t *entries, size_t n);

//  Whether the totals file could be written to path now (its folder exists and takes
//  a new file; path is not a folder). Returns 0, or -1 with errno set.
int tl_totals_check (const char *path);

#endif
