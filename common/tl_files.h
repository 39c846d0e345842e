/*  tl_files: the input file list of a job. Expands folders into the regular files
    they hold (sorted, hidden files left out) and checks that every file can be read
    before any work starts, so a typo is named at once, not an hour into a job.       */

#ifndef TL_FILES_H_INCLUDED
#define TL_FILES_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char **names;    //  File names, owned
    size_t count;    //  Number of files
    uint64_t bytes;  //  Sum of their sizes on disk
} tl_files_t;

//  Fills files from paths (files or folders). Returns 0, or -1 with a one-line reason
//  naming the path in error (size bytes).
int tl_files_expand (tl_files_t *files, char *const *paths, size_t npaths, char *error,
                     size_t size);

void tl_files_free (tl_files_t *files);

#endif
