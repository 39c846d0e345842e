/*  tl_replace: a file replaced whole, or not at all, surviving a power loss.

    The new content goes to a temporary file made beside the target by mkostemp
    (O_EXCL, so never through a planted symbolic link; a name nobody can guess;
    O_CLOEXEC), is fsynced, renamed over the target, and the folder is fsynced so
    that the rename itself is on disk. A reader sees the old file or the whole new
    one; any step that fails removes the temporary file.                           */

#ifndef TL_REPLACE_H_INCLUDED
#define TL_REPLACE_H_INCLUDED

#include <stdio.h>
#include <sys/types.h>

typedef struct _tl_replace_t tl_replace_t;

//  Creates a temporary file "PATH.tmp.XXXXXX" beside path, with permissions mode
//  (umask applied). Returns NULL with errno set when it cannot be created.
tl_replace_t *tl_replace_new (const char *path, mode_t mode);

//  Abandons the new content: closes and removes the temporary file; sets *self_p to
//  NULL. Harmless on NULL.
void tl_replace_destroy (tl_replace_t **self_p);

//  The stream to write the new content to. Owned by self.
FILE *tl_replace_file (tl_replace_t *self);

//  Flushes and fsyncs the content, renames it over the path, fsyncs the folder, and
//  destroys self (sets *self_p to NULL) whatever happens. When read_fd is not NULL it
//  is set to a new read-only descriptor of the file written, at offset 0, which stays
//  valid after a later rename replaces the path (the caller closes it; -1 on failure).
//  Returns 0, or -1 with errno set: the temporary file is removed and the path is left
//  as it was, except when only the folder's fsync failed (then the new file is in
//  place, whole, but may not survive a power loss).
int tl_replace_commit (tl_replace_t **self_p, int *read_fd);

//  Whether a file could be created beside path now: creates a temporary file there
//  and removes it. Returns 0, or -1 with errno set (EISDIR when path is a folder).
int tl_replace_check (const char *path);

#endif
