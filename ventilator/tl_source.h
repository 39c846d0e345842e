/*  tl_source: turns a list of files into chunks of whole lines for the ventilator.

    Reads through one of two backends behind one interface: io_uring (several reads in
    flight, buffers reused) or plain read(2) where io_uring is unavailable (Docker's
    default seccomp profile answers -EPERM). Inflates gzip files (detected by their magic
    bytes, multi-member included) on the way, cuts each buffer after its last LF and
    carries the tail over to the next chunk, so no line is ever cut in two. A chunk
    never spans two files. Both backends give byte-identical chunks.                   */

#ifndef TL_SOURCE_H_INCLUDED
#define TL_SOURCE_H_INCLUDED

#include "tl_jobspec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    tl_io_t io;         //  Backend choice
    size_t chunk_size;  //  Target payload bytes per chunk (0: 1 MiB)
    size_t max_line;    //  Longer lines are skipped and counted (0: 16 MiB)
    unsigned depth;     //  Reads in flight with io_uring (0: 8)
} tl_source_opts_t;

//  A reference-counted buffer that holds one chunk's bytes. The source hands each
//  chunk out with one reference; ZeroMQ's free callback may drop another from its
//  I/O thread, so the count is atomic.
typedef struct _tl_buf_t tl_buf_t;

void tl_buf_ref (tl_buf_t *buf);
//  Drops one reference; frees the buffer on the last.
void tl_buf_release (tl_buf_t *buf);

typedef struct {
    uint32_t file;     //  Index into the file list
    uint64_t offset;   //  Byte offset of data[0] in the (decompressed) file
    bool first;        //  First chunk of its file (format detection looks at it)
    const char *data;  //  Whole lines; the file's last may lack its LF
    size_t size;       //  Bytes in data (> 0)
    tl_buf_t *buf;     //  Holds data; one reference belongs to the caller
} tl_chunk_t;

typedef struct _tl_source_t tl_source_t;

//  Creates a source over files (names copied). Does not open them yet. Returns NULL
//  when the requested backend is unavailable or memory is exhausted; *error (if not
//  NULL) then says why in a static string.
tl_source_t *tl_source_new (const char *const *files, size_t nfiles, const tl_source_opts_t *opts,
                            const char **error);

void tl_source_destroy (tl_source_t **self_p);

//  Gives the next chunk. Returns 1 with *chunk set, 0 at the end of the last file, -1
//  on an error (unreadable file, truncated or corrupt .gz): tl_source_error says
//  which file and why, and the source is finished.
int tl_source_next (tl_source_t *self, tl_chunk_t *chunk);

//  Last error message, naming the file ("" when none).
const char *tl_source_error (tl_source_t *self);

//  "io_uring" or "sync".
const char *tl_source_backend (tl_source_t *self);

//  Why io_uring is not used although TL_IO_AUTO asked for it ("io_uring unavailable:
//  not permitted ..."), or NULL.
const char *tl_source_fallback (tl_source_t *self);

//  Bytes read from disk so far (compressed bytes for .gz): progress against file sizes.
uint64_t tl_source_bytes_read (tl_source_t *self);

//  Lines skipped because longer than max_line, so far.
uint64_t tl_source_skipped_lines (tl_source_t *self);

//  --------------------------------------------------------------------------
//  Producing a chunk again (crash recovery)

//  What identifies a file's content for a job: a file whose size or modification time
//  changed since the job started gives other chunks, so its chunks cannot be produced
//  again.
typedef struct {
    uint64_t size;     //  Bytes
    int64_t mtime;     //  Modification time, seconds
    int64_t mtime_ns;  //  and nanoseconds
} tl_file_id_t;

//  Reads path's identity. Returns 0, or -1 with errno set.
int tl_file_id (const char *path, tl_file_id_t *id);

//  Produces again chunks that a source over the same files and options cut before:
//  a plain file's chunk is read back from its range; a gzip file is inflated again
//  from its start up to the chunk (kept open, so chunks asked for in order cost one
//  pass per file).
typedef struct _tl_replay_t tl_replay_t;

//  A replay over files (names and ids copied: ids[i] is files[i]'s identity when the
//  job started), cut with opts. NULL when out of memory.
tl_replay_t *tl_replay_new (const char *const *files, const tl_file_id_t *ids, size_t nfiles,
                            const tl_source_opts_t *opts);

void tl_replay_destroy (tl_replay_t **self_p);

//  Produces the chunk of file index file that started at offset (decompressed) and
//  held size bytes. Returns 0 with *chunk set (its first is false), or -1 when the
//  file cannot be read or changed since the job started: tl_replay_error names it.
int tl_replay_chunk (tl_replay_t *self, uint32_t file, uint64_t offset, size_t size,
                     tl_chunk_t *chunk);

//  Why the last tl_replay_chunk failed, naming the file.
const char *tl_replay_error (tl_replay_t *self);

#endif
