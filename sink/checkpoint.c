/*  tl_checkpoint: the checkpoint file format, written and read back (see checkpoint.h).

    File: "TLYCKP03", then four parts, each a little-endian uint64 length and bytes:
    the job as a JOB frame 1 (protocol version 4, which names the sink's shard; a file
    of an earlier version is refused as malformed); a msgpack array of the counters; the merged
   chunk ids and the totals, each as a PARTIAL-style map (ids as 8-byte keys). The format only has
   to be read by the sink that wrote it (or the next version of it): its parts are the protocol's
   own encodings, so one set of hostile-input checks covers both. */

#include "checkpoint.h"
#include "tl_replace.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAGIC "TLYCKP03"

//  Counters in the msgpack array, in this order, then the job's age as a float.
#define S_COUNTERS 13

static int s_write_part (FILE *file, const void *data, size_t size)
{
    uint64_t len = size;
    return fwrite (&len, sizeof len, 1, file) == 1 && fwrite (data, 1, size, file) == size ? 0 : -1;
}

//  Appends the JOB frame 1 that the job was opened with (as far as the job keeps it).
static int s_encode_job (tl_job_t *job, msgpack_sbuffer *buf)
{
    uint32_t nfiles = tl_job_nfiles (job);
    tl_str_t *names = calloc (nfiles ? nfiles : 1, sizeof *names);
    if (!names) return -1;
    for (uint32_t i = 0; i < nfiles; i++) {
        const char *name = tl_job_file (job, i);
        names[i] = (tl_str_t){name, strlen (name)};
    }
    tl_msg_t msg = {.cmd = TL_CMD_JOB, .job = tl_job_id (job)};
    memcpy (msg.secret, tl_job_secret (job), TL_SECRET_SIZE);
    uint32_t shard, shards;
    tl_job_shard (job, &shard, &shards);
    msg.u.job = (tl_job_body_t){.version = TL_PROTO_VERSION,
                                .input_bytes = tl_job_input_bytes (job),
                                .shard = shard,
                                .shards = shards,
                                .nfiles = nfiles,
                                .files = names};
    int rc = tl_msg_encode (&msg, buf);
    free (names);
    return rc;
}

static void s_encode_counters (const tl_job_snapshot_t *snap, msgpack_sbuffer *buf)
{
    const tl_job_counters_t *c = &snap->counters;
    uint64_t counters[S_COUNTERS] = {c->chunks_done, c->chunks_seen, c->chunks_total, c->ended,
                                     c->bytes,       c->lines,       c->bad_lines,    c->filtered,
                                     c->duplicates,  c->overflows,   c->bad_logged,   snap->strict,
                                     c->bytes_sent};
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, S_COUNTERS + 1);
    for (size_t i = 0; i < S_COUNTERS; i++)
        msgpack_pack_uint64 (&pk, counters[i]);
    msgpack_pack_double (&pk, snap->seconds);
}

//  A msgpack packer's sink that writes to a FILE and counts the bytes.
typedef struct {
    FILE *file;      //  Where the bytes go
    uint64_t bytes;  //  How many went
} s_counted_t;

static int s_counted_write (void *data, const char *buf, size_t len)
{
    s_counted_t *out = data;
    if (len && fwrite (buf, 1, len, out->file) != len) return -1;
    out->bytes += len;
    return 0;
}

//  Writes the totals map as the last part, straight from the table to the file (a
//  length in front, patched once known): a checkpoint of millions of keys needs no copy
//  of them in memory. Returns 0 or -1.
static int s_write_totals (FILE *file, tl_table_t *totals)
{
    long at = ftell (file);
    uint64_t len = 0;
    if (at < 0 || fwrite (&len, sizeof len, 1, file) != 1) return -1;
    s_counted_t out = {.file = file};
    msgpack_packer pk;
    msgpack_packer_init (&pk, &out, s_counted_write);
    if (tl_map_pack (totals, &pk) != 0) return -1;
    len = out.bytes;
    if (fseek (file, at, SEEK_SET) != 0 || fwrite (&len, sizeof len, 1, file) != 1 ||
        fseek (file, 0, SEEK_END) != 0)
        return -1;
    return 0;
}

//  Writes the first three parts and the totals to path through a temporary file beside
//  it (tl_replace), readable by the sink's user only. Sets *size to the file's size.
static int s_write_file (const char *path, msgpack_sbuffer *parts, tl_table_t *totals,
                         uint64_t *size)
{
    tl_replace_t *replace = tl_replace_new (path, 0600);
    if (!replace) return -1;
    FILE *file = tl_replace_file (replace);
    int rc = fwrite (S_MAGIC, 8, 1, file) == 1 ? 0 : -1;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = s_write_part (file, parts[i].data, parts[i].size);
    if (rc == 0) rc = s_write_totals (file, totals);
    long end = rc == 0 ? ftell (file) : -1;
    if (end < 0) {
        tl_replace_destroy (&replace);
        return -1;
    }
    *size = (uint64_t)end;
    return tl_replace_commit (&replace, NULL);
}

//  Whether the folder open at fd may hold the sink's checkpoints: owned by the sink's
//  user and writable by nobody else, so that nobody else can plant, swap or remove
//  one. Returns 0, or -1 with why (of size bytes) saying what is wrong.
static int s_folder_trusted (int fd, char *why, size_t size)
{
    struct stat st;
    if (fstat (fd, &st) != 0)
        snprintf (why, size, "%s", strerror (errno));
    else if (st.st_uid != geteuid ())
        snprintf (why, size, "owned by uid %u, not by this user (uid %u)", (unsigned)st.st_uid,
                  (unsigned)geteuid ());
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        snprintf (why, size, "writable by group or others (mode %04o)",
                  (unsigned)(st.st_mode & 07777));
    else
        return 0;
    return -1;
}

//  Makes dir (mode 0700) unless it exists and checks that it is the sink's own. Returns
//  0, or -1 with why set.
static int s_prepare_folder (const char *dir, char *why, size_t size)
{
    int fd = -1;
    if (mkdir (dir, 0700) == 0 || errno == EEXIST)
        fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf (why, size, "%s", strerror (errno));
        return -1;
    }
    int rc = s_folder_trusted (fd, why, size);
    close (fd);
    return rc;
}

int tl_checkpoint_write (const char *dir, tl_job_t *job, double now, uint64_t *bytes)
{
    assert (dir);
    assert (job);
    char why[128];
    if (s_prepare_folder (dir, why, sizeof why) != 0) {
        zsys_error ("job %016llx: no checkpoint written in %s: %s",
                    (unsigned long long)tl_job_id (job), dir, why);
        return -1;
    }
    char path[4096];
    snprintf (path, sizeof path, "%s/tally-sink-%016llx.checkpoint", dir,
              (unsigned long long)tl_job_id (job));
    tl_job_snapshot_t snap;
    tl_job_snapshot (job, now, &snap);
    msgpack_sbuffer parts[3];
    for (int i = 0; i < 3; i++)
        msgpack_sbuffer_init (&parts[i]);
    int rc = s_encode_job (job, &parts[0]);
    s_encode_counters (&snap, &parts[1]);
    if (rc == 0) rc = tl_map_encode (snap.merged, &parts[2]);
    uint64_t size = 0;
    if (rc == 0) rc = s_write_file (path, parts, snap.totals, &size);
    for (int i = 0; i < 3; i++)
        msgpack_sbuffer_destroy (&parts[i]);
    if (rc != 0)
        zsys_error ("job %016llx: cannot write checkpoint %s: %s",
                    (unsigned long long)tl_job_id (job), path, strerror (errno));
    else if (bytes)
        *bytes = size;
    return rc;
}

int tl_checkpoint_save (const char *dir, tl_job_t *job, double now)
{
    int rc = tl_checkpoint_write (dir, job, now, NULL);
    if (rc == 0)
        zsys_info ("job %016llx checkpointed to %s/tally-sink-%016llx.checkpoint (%llu chunks "
                   "merged)",
                   (unsigned long long)tl_job_id (job), dir, (unsigned long long)tl_job_id (job),
                   (unsigned long long)tl_job_counters (job)->chunks_done);
    return rc;
}

void tl_checkpoint_remove (const char *dir, uint64_t id)
{
    assert (dir);
    char path[4096];
    snprintf (path, sizeof path, "%s/tally-sink-%016llx.checkpoint", dir, (unsigned long long)id);
    if (unlink (path) != 0 && errno != ENOENT)
        zsys_warning ("cannot remove checkpoint %s: %s", path, strerror (errno));
}

//  Reads the next part of a checkpoint; returns its bytes or NULL when the file is cut.
static const char *s_next_part (const char **cursor, const char *end, size_t *size)
{
    uint64_t len;
    if ((size_t)(end - *cursor) < sizeof len) return NULL;
    memcpy (&len, *cursor, sizeof len);
    *cursor += sizeof len;
    if (len > (uint64_t)(end - *cursor)) return NULL;
    const char *part = *cursor;
    *cursor += len;
    *size = len;
    return part;
}

//  Reads the counters part into *snap. Returns 0, or -1 when it is malformed.
static int s_decode_counters (const char *data, size_t size, tl_job_snapshot_t *snap)
{
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object counters;
    bool ok = tl_msgpack_check (data, size) == 0 &&
              msgpack_unpack (data, size, NULL, &zone, &counters) == MSGPACK_UNPACK_SUCCESS &&
              counters.type == MSGPACK_OBJECT_ARRAY && counters.via.array.size == S_COUNTERS + 1;
    for (uint32_t i = 0; ok && i < S_COUNTERS; i++)
        ok = counters.via.array.ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    if (ok) {
        uint64_t c[S_COUNTERS];
        for (int i = 0; i < S_COUNTERS; i++)
            c[i] = counters.via.array.ptr[i].via.u64;
        snap->counters = (tl_job_counters_t){.chunks_done = c[0],
                                             .chunks_seen = c[1],
                                             .chunks_total = c[2],
                                             .ended = c[3],
                                             .bytes = c[4],
                                             .lines = c[5],
                                             .bad_lines = c[6],
                                             .filtered = c[7],
                                             .duplicates = c[8],
                                             .overflows = c[9],
                                             .bad_logged = c[10],
                                             .bytes_sent = c[12]};
        snap->strict = c[11];
        //  A checkpoint without the age restarts the job's clock.
        const msgpack_object *elapsed = &counters.via.array.ptr[S_COUNTERS];
        bool is_float =
            elapsed->type == MSGPACK_OBJECT_FLOAT64 || elapsed->type == MSGPACK_OBJECT_FLOAT32;
        snap->seconds = is_float ? elapsed->via.f64 : 0;
    }
    msgpack_zone_destroy (&zone);
    return ok ? 0 : -1;
}

tl_job_t *tl_checkpoint_restore (const void *data, size_t size, double now)
{
    assert (data || size == 0);
    if (size < 8 || memcmp (data, S_MAGIC, 8) != 0) return NULL;
    const char *cursor = (const char *)data + 8, *end = (const char *)data + size;
    size_t sizes[4];
    const char *parts[4];
    for (int i = 0; i < 4; i++)
        if (!(parts[i] = s_next_part (&cursor, end, &sizes[i]))) return NULL;
    tl_msg_t msg;
    if (tl_msg_decode (TL_CMD_JOB, parts[0], sizes[0], &msg) != 0) return NULL;
    tl_job_snapshot_t snap = {.merged = tl_table_new (1024), .totals = tl_table_new (1 << 16)};
    uint64_t entries;
    bool ok = snap.merged && snap.totals && s_decode_counters (parts[1], sizes[1], &snap) == 0 &&
              tl_map_merge (parts[2], sizes[2], snap.merged, &entries) == 0 &&
              tl_map_merge (parts[3], sizes[3], snap.totals, &entries) >= 0;
    tl_job_t *job = NULL;
    if (ok)
        job = tl_job_restore (msg.job, msg.secret, &msg.u.job, &snap, now);  //  Takes the tables
    tl_table_destroy (&snap.merged);
    tl_table_destroy (&snap.totals);
    tl_msg_reset (&msg);
    return job;
}

//  Opens the checkpoint name in the folder open at dir_fd, unless it is anything but a
//  regular file of the sink's user (a link is not followed). Returns the descriptor
//  and sets *size, or returns -1 with why set.
static int s_open_checkpoint (int dir_fd, const char *name, size_t *size, char *why,
                              size_t why_size)
{
    //  O_NONBLOCK: a FIFO planted under a checkpoint's name must not block the start.
    int fd = openat (dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        snprintf (why, why_size, "%s", errno == ELOOP ? "a symbolic link" : strerror (errno));
    else if (fstat (fd, &st) != 0)
        snprintf (why, why_size, "%s", strerror (errno));
    else if (!S_ISREG (st.st_mode))
        snprintf (why, why_size, "not a regular file");
    else if (st.st_uid != geteuid ())
        snprintf (why, why_size, "owned by uid %u, not by this user (uid %u)", (unsigned)st.st_uid,
                  (unsigned)geteuid ());
    else {
        *size = (size_t)st.st_size;
        return fd;
    }
    if (fd >= 0) close (fd);
    return -1;
}

//  Restores the checkpoint of size bytes open at fd. Returns the job or NULL.
static tl_job_t *s_load (int fd, size_t size, double now)
{
    tl_job_t *job = NULL;
    void *data = size ? mmap (NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (data != MAP_FAILED) {
        job = tl_checkpoint_restore (data, size, now);
        munmap (data, size);
    }
    return job;
}

void tl_checkpoint_load_all (const char *dir, double now, tl_checkpoint_take_fn *take, void *arg)
{
    assert (dir);
    assert (take);
    int dir_fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        if (errno != ENOENT)
            zsys_error ("cannot read checkpoints in %s: %s", dir, strerror (errno));
        return;
    }
    char why[128];
    DIR *folder = NULL;
    if (s_folder_trusted (dir_fd, why, sizeof why) != 0)
        zsys_error ("not loading checkpoints from %s: it is %s", dir, why);
    else if (!(folder = fdopendir (dir_fd)))
        zsys_error ("cannot read checkpoints in %s: %s", dir, strerror (errno));
    if (!folder) {
        close (dir_fd);
        return;
    }
    struct dirent *entry;
    while ((entry = readdir (folder))) {
        unsigned long long id;
        int used = 0;
        if (sscanf (entry->d_name, "tally-sink-%16llx.checkpoint%n", &id, &used) != 1) continue;
        if (strncmp (entry->d_name + used, ".tmp.", 5) == 0) {
            //  A checkpoint whose writer was killed half-way: the whole one before it
            //  is still in place.
            unlinkat (dir_fd, entry->d_name, 0);
            continue;
        }
        if (entry->d_name[used] != 0) continue;
        char path[4200];
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        size_t size;
        int fd = s_open_checkpoint (dir_fd, entry->d_name, &size, why, sizeof why);
        if (fd < 0) {
            //  Not the sink's own: left where it is, for whoever made it.
            zsys_error ("ignored checkpoint %s: %s", path, why);
            continue;
        }
        tl_job_t *job = s_load (fd, size, now);
        close (fd);
        uint64_t merged = job ? tl_job_counters (job)->chunks_done : 0;
        size_t keys = job ? tl_table_size (tl_job_totals (job)) : 0;
        if (job && take (arg, job) == 0) {
            //  Kept: until the job's next checkpoint replaces it, it is the state a
            //  sink killed again comes back to.
            zsys_info ("job %016llx restored from %s: %llu chunks merged, %zu keys", id, path,
                       (unsigned long long)merged, keys);
            continue;
        }
        zsys_error ("ignored checkpoint %s: %s", path, job ? "too many open jobs" : "malformed");
        tl_job_destroy (&job);
        unlinkat (dir_fd, entry->d_name, 0);
    }
    closedir (folder);  //  Closes dir_fd too
}
