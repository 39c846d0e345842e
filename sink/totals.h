/*  tl_totals: the totals file a finished job leaves, one "key TAB total" line per key
    in the order given. Replaced whole (tl_replace: a temporary file beside it,
    fsynced, renamed, the folder fsynced), so a totals file that exists is complete.

    The feed publishes the same file in numbered batches. They are cut here, by one
    rule for counting them (from the sorted entries, when the file is written) and
    for reading them back (from the file, while the feed sends them a few at a time),
    so that every batch says how many there are. Reading the file back rather than
    keeping the job's table lets the sink free the table as soon as the file exists,
    however long a slow subscriber takes.                                            */

#ifndef TL_TOTALS_H_INCLUDED
#define TL_TOTALS_H_INCLUDED

#include "tl_table.h"

//  Writes n entries to path through a temporary file "path.tmp.XXXXXX" (see
//  tl_replace). When read_fd is not NULL it is set to a read-only descriptor of the
//  file written, which a later replacement of path does not change (the caller closes
//  it). Returns 0, or -1 with errno set (the temporary file is removed and path left
//  as it was).
int tl_totals_write (const char *path, const tl_entry_t *entries, size_t n, int *read_fd);

//  Whether the totals file could be written to path now (its folder exists and takes
//  a new file; path is not a folder). Returns 0, or -1 with errno set.
int tl_totals_check (const char *path);

//  The bytes an entry takes in a feed message's map: its key as msgpack bin and its
//  total as uint, each in the shortest encoding (as msgpack-c packs them).
size_t tl_totals_entry_bytes (const tl_entry_t *entry);

//  How many batches n entries make when each batch takes entries in order while it
//  holds fewer than max_keys and their tl_totals_entry_bytes stay within max_bytes,
//  and at least one. No entries make one (empty) batch.
uint64_t tl_totals_batches (const tl_entry_t *entries, size_t n, size_t max_keys, size_t max_bytes);

typedef struct _tl_totals_reader_t tl_totals_reader_t;

//  Creates a reader of the totals file open at fd, from its start, handing out the
//  batches tl_totals_batches counts; takes fd over (it is closed by destroy, or now
//  when NULL is returned). Returns NULL when memory is exhausted.
tl_totals_reader_t *tl_totals_reader_new (int fd, size_t max_keys, size_t max_bytes);

//  The same, reading from byte from of the file (a tl_totals_reader_offset of an earlier
//  reader): the batches it hands out are numbered on from there. NULL also when the
//  file cannot be positioned there.
tl_totals_reader_t *tl_totals_reader_new_at (int fd, uint64_t from, size_t max_keys,
                                             size_t max_bytes);

//  The file offset of the first line not handed out in a batch yet: where a reader made
//  by tl_totals_reader_new_at goes on with the next batch. At the end, the file's size.
uint64_t tl_totals_reader_offset (tl_totals_reader_t *self);

//  Closes the file and frees the reader; sets *self_p to NULL. Harmless on NULL.
void tl_totals_reader_destroy (tl_totals_reader_t **self_p);

//  Reads the next batch: sets *entries (the reader's own, valid until the next call)
//  and *n, 0 once the file is read. Returns 0, or -1 with errno set when the file
//  cannot be read or memory is exhausted. A line that is not "key TAB total" (a key
//  with a LF in it, which the file cannot hold) is skipped and counted.
int tl_totals_reader_next (tl_totals_reader_t *self, const tl_entry_t **entries, size_t *n);

//  Lines skipped so far as not "key TAB total".
uint64_t tl_totals_reader_skipped (tl_totals_reader_t *self);

#endif
