/*  tl_jobfile: what a ventilator needs to take its job up again after it was killed.

    `tally-ventilator --job-file FILE` writes FILE before it opens a job: the job's id
    and secret, the options that decide the chunks and the totals, and every input
    file's name, size and modification time. Started again with the same FILE, inputs
    and options, it opens the same job at the sink, which says which chunks it holds,
    and sends only the rest. The file is written whole (temporary file, fsync, rename)
    with mode 0600: its secret steers the job. Text, one field per line:

        tally-ventilator job 1
        id 0123456789abcdef
        secret 00112233445566778899aabbccddeeff
        spec format=auto chunk=1048576 max_line=16777216 ...
        files 2
        SIZE MTIME_SECONDS MTIME_NANOSECONDS NAME
        ...                                                                           */

#ifndef TL_JOBFILE_H_INCLUDED
#define TL_JOBFILE_H_INCLUDED

#include "tl_proto.h"
#include "tl_source.h"

typedef struct {
    uint64_t id;                     //  Job id
    uint8_t secret[TL_SECRET_SIZE];  //  Job secret
    char *spec;                      //  The options that decide chunks and totals, as text
    size_t nfiles;                   //  Input files
    char **names;                    //  Their names
    tl_file_id_t *ids;               //  Their sizes and modification times
} tl_jobfile_t;

//  Reads path into *job. Returns 1, 0 when path does not exist, or -1 with a reason in
//  error (size bytes) when it cannot be read or is not a job file.
int tl_jobfile_read (const char *path, tl_jobfile_t *job, char *error, size_t size);

//  Writes *job to path, whole or not at all. Returns 0, or -1 with a reason in error.
//  A name holding a line feed cannot be written (-1).
int tl_jobfile_write (const char *path, const tl_jobfile_t *job, char *error, size_t size);

//  Frees what tl_jobfile_read allocated and zeroes *job.
void tl_jobfile_free (tl_jobfile_t *job);

#endif
