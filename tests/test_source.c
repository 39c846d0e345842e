/*  test_source: tl_source turns files into chunks of whole lines, the same way with
    both backends (io_uring and read(2)) and both inflaters (zlib and isa-l).

    Every case runs against every backend. What the chunks should hold comes from a
    small python3 script (its own gzip decoder and line splitter), never from tl_source:
    the chunks of a file, concatenated, must equal the file (decompressed, minus lines
    longer than max_line, a line counted with its LF), and each chunk's bytes must sit at
    chunk.offset in the decompressed file. io_uring runs fail, not skip, when io_uring
    is unavailable. tl_replay gives every chunk again, byte for byte, from its (file,
    offset, size), in any order, and refuses a file that changed or is gone.           */

#include <criterion/criterion.h>
#include "tl_test.h"
#include <criterion/parameterized.h>

#include "tl_source.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define S_MAX_FILES 400

//  Under AddressSanitizer, fails when memory leaked so far (a lost tl_buf reference).
static void s_assert_no_leaks (void)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_assert_eq (__lsan_do_recoverable_leak_check (), 0, "memory leaked (see the report)");
#endif
}

//  --------------------------------------------------------------------------
//  Scratch files

static char s_dir[64];  //  This test's scratch directory

//  Decodes each file the way tl_source should (gzip by magic bytes, members
//  concatenated), writes file i's decoded bytes to DIR/dec.i and its lines no longer
//  than max_line (LF included) to DIR/keep.i, and prints how many lines it dropped.
//  Usage: expect.py MAX_LINE DIR FILE...
static const char *s_expect_py =
    "import sys, gzip\n"
    "max_line, out = int(sys.argv[1]), sys.argv[2]\n"
    "for i, src in enumerate(sys.argv[3:]):\n"
    "    d = open(src, 'rb').read()\n"
    "    if d[:2] == b'\\x1f\\x8b':\n"
    "        d = gzip.decompress(d)\n"
    "    parts = d.split(b'\\n')\n"
    "    lines = [p + b'\\n' for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])\n"
    "    keep = [l for l in lines if len(l) <= max_line]\n"
    "    open('%s/dec.%d' % (out, i), 'wb').write(d)\n"
    "    open('%s/keep.%d' % (out, i), 'wb').write(b''.join(keep))\n"
    "    print(len(lines) - len(keep))\n";

static void s_write_file (const char *path, const void *data, size_t size)
{
    FILE *f = fopen (path, "wb");
    cr_assert_not_null (f, "%s: %s", path, strerror (errno));
    cr_assert_eq (fwrite (data, 1, size, f), size);
    cr_assert_eq (fclose (f), 0);
}

static void s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/test_source_XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/expect.py", s_dir);
    s_write_file (path, s_expect_py, strlen (s_expect_py));
}

static void s_teardown (void)
{
    char cmd[PATH_MAX + 16];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (s_dir[0] && system (cmd) != 0) fprintf (stderr, "could not remove %s\n", s_dir);
}

typedef struct {
    char *names[S_MAX_FILES];  //  Full paths
    size_t n;                  //  Entries in names
} s_files_t;

static void s_files_free (s_files_t *files)
{
    for (size_t i = 0; i < files->n; i++)
        free (files->names[i]);
    files->n = 0;
}

static char *s_scratch (const char *name)
{
    char *path = malloc (PATH_MAX);
    snprintf (path, PATH_MAX, "%s/%s", s_dir, name);
    return path;
}

static void s_add (s_files_t *files, char *path)
{
    cr_assert_lt (files->n, S_MAX_FILES);
    files->names[files->n++] = path;
}

//  Writes a scratch file and adds it to the list.
static void s_add_data (s_files_t *files, const char *name, const void *data, size_t size)
{
    char *path = s_scratch (name);
    s_write_file (path, data, size);
    s_add (files, path);
}

static void s_add_text (s_files_t *files, const char *name, const char *text)
{
    s_add_data (files, name, text, strlen (text));
}

static void s_run (const char *cmd)
{
    int rc = system (cmd);
    cr_assert_eq (rc, 0, "command failed (%d): %s", rc, cmd);
}

//  Gzips scratch file src into scratch file dst with gzip(1); returns dst's path.
static char *s_gzip (const char *src, const char *dst)
{
    char cmd[3 * PATH_MAX];
    char *path = s_scratch (dst);
    snprintf (cmd, sizeof cmd, "gzip -c '%s/%s' > '%s'", s_dir, src, path);
    s_run (cmd);
    return path;
}

static const char *s_sample (char letter)
{
    static char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/data/sample/googlebooks-eng-all-1gram-20120701-%c.head10k.tsv",
              tl_test_source_dir (), letter);
    return path;
}

//  Copies a sample file into the scratch dir as name (for gzip and cat).
static void s_copy_sample (char letter, const char *name)
{
    char cmd[3 * PATH_MAX];
    snprintf (cmd, sizeof cmd, "cp '%s' '%s/%s'", s_sample (letter), s_dir, name);
    s_run (cmd);
}

//  Scratch file of lines with the given lengths (LF included; a last negative length
//  means a last line of that many bytes without LF).
static void s_make_lines (const char *name, const long *lengths, size_t count)
{
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += (size_t)labs (lengths[i]);
    char *data = malloc (total + 1), *at = data;
    for (size_t i = 0; i < count; i++) {
        size_t len = (size_t)labs (lengths[i]);
        for (size_t j = 0; j < len; j++)
            at[j] = (char)('a' + (i + j) % 26);
        if (lengths[i] > 0) at[len - 1] = '\n';
        at += len;
    }
    char *path = s_scratch (name);
    s_write_file (path, data, total);
    free (path);
    free (data);
}

//  --------------------------------------------------------------------------
//  Draining a source

typedef struct {
    uint32_t file;     //  chunk.file
    uint64_t offset;   //  chunk.offset
    bool first;        //  chunk.first
    size_t size;       //  chunk.size
    char *copy;        //  Copy of the bytes taken when the chunk came
    const char *data;  //  chunk.data while held
    tl_buf_t *buf;     //  Held reference, or NULL once released
} s_rec_t;

typedef struct {
    s_rec_t *recs;        //  Chunks in order
    size_t n;             //  Entries in recs
    int rc;               //  What tl_source_next returned last
    char error[1024];     //  tl_source_error at the end
    uint64_t bytes_read;  //  tl_source_bytes_read at the end
    uint64_t skipped;     //  tl_source_skipped_lines at the end
    char backend[16];     //  tl_source_backend
} s_drain_t;

//  Criterion hands parameters to a new process, so they hold no pointers.
typedef enum { S_INFLATE_DEFAULT, S_ZLIB, S_ISAL } s_inflate_t;

typedef struct {
    tl_io_t io;           //  Backend
    s_inflate_t inflate;  //  TALLY_INFLATE value
} s_mode_t;

static const char *s_inflate_name (s_inflate_t inflate)
{
    return inflate == S_ZLIB ? "zlib" : inflate == S_ISAL ? "isal" : NULL;
}

static const char *s_io_name (tl_io_t io)
{
    return io == TL_IO_URING ? "io_uring" : io == TL_IO_SYNC ? "sync" : "auto";
}

static tl_source_t *s_open (const s_files_t *files, tl_source_opts_t opts, s_mode_t mode)
{
    if (mode.inflate != S_INFLATE_DEFAULT)
        setenv ("TALLY_INFLATE", s_inflate_name (mode.inflate), 1);
    else
        unsetenv ("TALLY_INFLATE");
    opts.io = mode.io;
    const char *error = NULL;
    tl_source_t *source =
        tl_source_new ((const char *const *)files->names, files->n, &opts, &error);
    cr_assert_not_null (source, "tl_source_new (%s) failed: %s", s_io_name (mode.io),
                        error ? error : "(no reason)");
    if (mode.io != TL_IO_AUTO) cr_assert_str_eq (tl_source_backend (source), s_io_name (mode.io));
    return source;
}

//  Drains a source. With hold, keeps every chunk's reference until the end and then
//  checks its bytes were not overwritten meanwhile (buffers must not be reused early).
static s_drain_t s_drain (const s_files_t *files, tl_source_opts_t opts, s_mode_t mode, bool hold)
{
    s_drain_t d = {0};
    tl_source_t *source = s_open (files, opts, mode);
    snprintf (d.backend, sizeof d.backend, "%s", tl_source_backend (source));
    size_t cap = 0;
    tl_chunk_t chunk;
    while ((d.rc = tl_source_next (source, &chunk)) == 1) {
        cr_assert_lt (d.n, 10000000, "runaway source");
        if (d.n == cap) d.recs = realloc (d.recs, (cap = cap ? 2 * cap : 64) * sizeof *d.recs);
        s_rec_t *rec = &d.recs[d.n++];
        *rec = (s_rec_t){.file = chunk.file,
                         .offset = chunk.offset,
                         .first = chunk.first,
                         .size = chunk.size,
                         .copy = malloc (chunk.size ? chunk.size : 1),
                         .data = chunk.data};
        cr_assert_not_null (chunk.buf);
        memcpy (rec->copy, chunk.data, chunk.size);
        if (hold)
            rec->buf = chunk.buf;
        else
            tl_buf_release (chunk.buf);
    }
    snprintf (d.error, sizeof d.error, "%s", tl_source_error (source));
    d.bytes_read = tl_source_bytes_read (source);
    d.skipped = tl_source_skipped_lines (source);
    if (d.rc == -1) {
        //  The source is finished after an error
        cr_assert_eq (tl_source_next (source, &chunk), -1);
    }
    tl_source_destroy (&source);
    cr_assert_null (source);
    for (size_t i = 0; i < d.n; i++)
        if (d.recs[i].buf) {
            cr_assert_eq (memcmp (d.recs[i].data, d.recs[i].copy, d.recs[i].size), 0,
                          "held chunk %zu was overwritten", i);
            tl_buf_release (d.recs[i].buf);
            d.recs[i].buf = NULL;
        }
    return d;
}

static void s_drain_free (s_drain_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free (d->recs[i].copy);
    free (d->recs);
    d->recs = NULL;
    d->n = 0;
}

//  What python says file should give.
typedef struct {
    char *decoded;       //  The whole (decompressed) file
    size_t decoded_len;  //  Bytes in decoded
    char *kept;          //  Its lines no longer than max_line, concatenated
    size_t kept_len;     //  Bytes in kept
    uint64_t skipped;    //  Lines dropped
} s_expect_t;

//  Runs expect.py over all files (python starts slowly, so once).
static s_expect_t *s_expect (const s_files_t *files, size_t max_line)
{
    size_t len = 0, cap = 256;
    char *cmd = malloc (cap);
    len += (size_t)snprintf (cmd, cap, "python3 '%s/expect.py' %zu '%s'", s_dir, max_line, s_dir);
    for (size_t i = 0; i < files->n; i++) {
        size_t need = len + strlen (files->names[i]) + 4;
        if (need > cap) cmd = realloc (cmd, cap = 2 * need);
        len += (size_t)snprintf (cmd + len, cap - len, " '%s'", files->names[i]);
    }
    FILE *p = popen (cmd, "r");
    cr_assert_not_null (p);
    s_expect_t *e = calloc (files->n + 1, sizeof *e);
    for (size_t i = 0; i < files->n; i++) {
        unsigned long long skipped = 0;
        cr_assert_eq (fscanf (p, "%llu", &skipped), 1, "python failed on %s", files->names[i]);
        e[i].skipped = skipped;
    }
    cr_assert_eq (pclose (p), 0, "python failed: %s", cmd);
    free (cmd);
    for (size_t i = 0; i < files->n; i++) {
        char path[PATH_MAX];
        snprintf (path, sizeof path, "%s/dec.%zu", s_dir, i);
        e[i].decoded = tl_test_read_file (path, &e[i].decoded_len);
        snprintf (path, sizeof path, "%s/keep.%zu", s_dir, i);
        e[i].kept = tl_test_read_file (path, &e[i].kept_len);
    }
    return e;
}

static uint64_t s_disk_size (const char *path)
{
    struct stat st;
    cr_assert_eq (stat (path, &st), 0);
    return (uint64_t)st.st_size;
}

static size_t s_count_lf (const char *data, size_t size)
{
    size_t n = 0;
    for (const char *at = data; (at = memchr (at, '\n', size - (size_t)(at - data))); at++)
        n++;
    return n;
}

//  Longest line in data (LF included).
static size_t s_longest_line (const char *data, size_t size)
{
    size_t longest = 0, start = 0;
    for (size_t i = 0; i < size; i++)
        if (data[i] == '\n') {
            if (i + 1 - start > longest) longest = i + 1 - start;
            start = i + 1;
        }
    return size - start > longest ? size - start : longest;
}

//  Checks a successful drain against python's view of every file.
static void s_check_drain (const s_files_t *files, const tl_source_opts_t *opts, const s_drain_t *d)
{
    size_t chunk_size = opts->chunk_size ? opts->chunk_size : 1 << 20;
    size_t max_line = opts->max_line ? opts->max_line : 16 << 20;
    cr_assert_eq (d->rc, 0, "drain ended with %d: %s", d->rc, d->error);
    cr_assert_str_empty (d->error);
    uint64_t disk = 0, skipped = 0;
    size_t r = 0;
    s_expect_t *expect = s_expect (files, max_line);
    for (size_t f = 0; f < files->n; f++) {
        const char *name = files->names[f];
        s_expect_t e = expect[f];
        disk += s_disk_size (name);
        skipped += e.skipped;
        size_t joined = 0;  //  Bytes of kept matched so far
        uint64_t end = 0;   //  Where the previous chunk of this file ended
        for (size_t k = 0; r < d->n && d->recs[r].file == f; r++, k++) {
            const s_rec_t *c = &d->recs[r];
            cr_assert_gt (c->size, 0);
            cr_assert_eq (c->first, k == 0, "%s chunk %zu: first=%d", name, k, c->first);
            if (e.skipped == 0)
                cr_assert_eq (c->offset, end, "%s chunk %zu: offset %llu, expected %llu", name, k,
                              (unsigned long long)c->offset, (unsigned long long)end);
            else
                cr_assert_geq (c->offset, end, "%s chunk %zu: offset goes back", name, k);
            cr_assert_leq (c->offset + c->size, e.decoded_len, "%s chunk %zu past the end", name,
                           k);
            cr_assert_eq (memcmp (e.decoded + c->offset, c->copy, c->size), 0,
                          "%s chunk %zu: bytes differ from the file at its offset", name, k);
            cr_assert_leq (joined + c->size, e.kept_len, "%s: more bytes than the file", name);
            cr_assert_eq (memcmp (e.kept + joined, c->copy, c->size), 0,
                          "%s chunk %zu: concatenation differs from the file", name, k);
            joined += c->size;
            end = c->offset + c->size;
            bool last_of_file = r + 1 == d->n || d->recs[r + 1].file != f;
            if (c->copy[c->size - 1] != '\n')
                cr_assert (last_of_file && end == e.decoded_len,
                           "%s chunk %zu does not end with LF but is not the file's end", name, k);
            cr_assert_leq (s_longest_line (c->copy, c->size), max_line,
                           "%s chunk %zu holds a line longer than max_line", name, k);
            //  "About chunk_size": a chunk well over it is one line of its own
            if (c->size > chunk_size + chunk_size / 8)
                cr_assert_leq (s_count_lf (c->copy, c->size), 1,
                               "%s chunk %zu: %zu bytes of several lines", name, k, c->size);
        }
        cr_assert_eq (joined, e.kept_len, "%s: chunks hold %zu bytes, file has %zu", name, joined,
                      e.kept_len);
        free (e.decoded);
        free (e.kept);
    }
    free (expect);
    cr_assert_eq (r, d->n, "chunk %zu has file %u out of order or range", r,
                  r < d->n ? d->recs[r].file : 0);
    cr_assert_eq (d->skipped, skipped, "skipped %llu lines, python says %llu",
                  (unsigned long long)d->skipped, (unsigned long long)skipped);
    cr_assert_eq (d->bytes_read, disk, "bytes_read %llu, files hold %llu",
                  (unsigned long long)d->bytes_read, (unsigned long long)disk);
}

//  --------------------------------------------------------------------------
//  The cases

static void s_make_samples (s_files_t *files)
{
    for (char c = 'a'; c <= 'z'; c++) {
        char *path = strdup (s_sample (c));
        cr_assert_eq (access (path, R_OK), 0, "%s missing", path);
        s_add (files, path);
    }
}

static void s_make_two_samples (s_files_t *files)
{
    s_add (files, strdup (s_sample ('a')));
    s_add (files, strdup (s_sample ('q')));
}

static void s_make_no_final_lf (s_files_t *files)
{
    s_add_text (files, "short", "alpha\t1\nbeta\t2\ngamma\t3");
    //  A big one whose unterminated last line crosses reads
    size_t size;
    char *data = tl_test_read_file (s_sample ('b'), &size);
    s_add_data (files, "big", data, size - 1);
    free (data);
}

static void s_make_empty (s_files_t *files)
{
    s_add_text (files, "empty", "");
}

static void s_make_only_lf (s_files_t *files)
{
    s_add_text (files, "lf", "\n");
    s_add_text (files, "lfs", "\n\n\n");
}

static const long s_long_lines[] = {10, 200, 10, 5000, 70000, 10, 300000, 10, 65, 64, 63, -100000};

static void s_make_long_lines (s_files_t *files)
{
    s_make_lines ("long", s_long_lines, sizeof s_long_lines / sizeof *s_long_lines);
    s_add (files, s_scratch ("long"));
}

//  With max_line 1000: lines at, just over and far over it, first, last, in a row.
static void s_make_overlong (s_files_t *files)
{
    static const long starts_long[] = {5000, 10, 999, 1000, 1001, 20, 100000, 30};
    static const long in_a_row[] = {10, 1001, 1001, 2000, 10, 1000, 200000, 300000, 10};
    static const long ends_long[] = {10, 20, 1000, -1001};
    static const long ends_short[] = {10, 20, 100000, -1000};
    s_make_lines ("starts_long", starts_long, sizeof starts_long / sizeof *starts_long);
    s_make_lines ("in_a_row", in_a_row, sizeof in_a_row / sizeof *in_a_row);
    s_make_lines ("ends_long", ends_long, sizeof ends_long / sizeof *ends_long);
    s_make_lines ("ends_short", ends_short, sizeof ends_short / sizeof *ends_short);
    s_add (files, s_scratch ("starts_long"));
    s_add (files, s_scratch ("in_a_row"));
    s_add (files, s_scratch ("ends_long"));
    s_add (files, s_scratch ("ends_short"));
}

static void s_make_several (s_files_t *files)
{
    s_add (files, strdup (s_sample ('c')));
    s_add_text (files, "empty", "");
    s_add_text (files, "nolf", "x\t1\ny\t2");
    s_add_text (files, "lf", "\n");
    s_add (files, strdup (s_sample ('d')));
    s_add_text (files, "one", "one line\n");
}

static void s_make_gz_single (s_files_t *files)
{
    s_copy_sample ('a', "a");
    s_add (files, s_gzip ("a", "a.gz"));
}

//  cat of members: a sample, an empty file, a line cut between members, another sample.
static void s_make_gz_multi (s_files_t *files)
{
    s_copy_sample ('e', "e");
    s_copy_sample ('f', "f");
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/empty", s_dir);
    s_write_file (path, "", 0);
    snprintf (path, sizeof path, "%s/cut1", s_dir);
    s_write_file (path, "split li", 8);
    snprintf (path, sizeof path, "%s/cut2", s_dir);
    s_write_file (path, "ne\tjoined\n", 10);
    free (s_gzip ("e", "e.gz"));
    free (s_gzip ("empty", "empty.gz"));
    free (s_gzip ("cut1", "cut1.gz"));
    free (s_gzip ("cut2", "cut2.gz"));
    free (s_gzip ("f", "f.gz"));
    char cmd[4 * PATH_MAX];
    snprintf (cmd, sizeof cmd, "cd '%s' && cat e.gz empty.gz cut1.gz cut2.gz f.gz > multi.gz",
              s_dir);
    s_run (cmd);
    s_add (files, s_scratch ("multi.gz"));
}

static void s_make_gz_empty (s_files_t *files)
{
    char *path = s_scratch ("empty");
    s_write_file (path, "", 0);
    free (path);
    s_add (files, s_gzip ("empty", "empty.gz"));
}

static void s_make_fake_gz (s_files_t *files)
{
    s_add_text (files, "plain.gz", "not\tgzip\nat all\n");
}

static void s_make_mix (s_files_t *files)
{
    s_copy_sample ('g', "g");
    s_copy_sample ('h', "h");
    s_add (files, s_gzip ("g", "g.gz"));
    s_add (files, strdup (s_sample ('i')));
    s_add_text (files, "fake.gz", "plain\t1\n");
    s_make_gz_empty (files);
    s_add (files, s_gzip ("h", "h.gz"));
    s_add_text (files, "tail", "last\t2\n");
}

static void s_make_gz_overlong (s_files_t *files)
{
    s_files_t plain = {0};
    s_make_overlong (&plain);
    s_files_free (&plain);
    s_add (files, s_gzip ("in_a_row", "in_a_row.gz"));
    s_add (files, s_gzip ("ends_long", "ends_long.gz"));
}

//  5 MB of samples in one gzip -1 file: many full inflated blocks.
static void s_make_gz_big (s_files_t *files)
{
    char cmd[4 * PATH_MAX];
    snprintf (cmd, sizeof cmd, "cat '%s'/data/sample/*.tsv | gzip -1 -c > '%s/all.gz'",
              tl_test_source_dir (), s_dir);
    s_run (cmd);
    s_add (files, s_scratch ("all.gz"));
}

//  One gzip member of data whose header has an extra field (FEXTRA) of extra_len
//  bytes (0: none, else >= 4), to place the next member anywhere.
static char *s_gz_member (const char *data, size_t size, size_t extra_len, size_t *len)
{
    z_stream zs = {0};
    cr_assert_eq (deflateInit2 (&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    unsigned char *extra = calloc (1, extra_len + 4);
    gz_header head = {.os = 3, .extra = extra, .extra_len = (uInt)extra_len};
    if (extra_len) {
        cr_assert_geq (extra_len, 4);
        //  One subfield "TL" with its little-endian length, as RFC 1952 has it
        size_t sub = extra_len - 4;
        memcpy (extra, "TL", 2);
        extra[2] = (unsigned char)(sub & 0xff);
        extra[3] = (unsigned char)(sub >> 8);
        memset (extra + 4, 'x', sub);
        cr_assert_eq (deflateSetHeader (&zs, &head), Z_OK);
    }
    size_t cap = deflateBound (&zs, size) + extra_len + 64;
    char *out = malloc (cap);
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)size;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)cap;
    cr_assert_eq (deflate (&zs, Z_FINISH), Z_STREAM_END);
    *len = zs.total_out;
    deflateEnd (&zs);
    free (extra);
    return out;
}

//  Two-member files whose member boundary falls just before, on and after the edge of
//  a 4096-byte read, so trailers and headers straddle reads; one header spans reads.
static void s_make_gz_edges (s_files_t *files)
{
    size_t a_len, b_len, len;
    char *a = tl_test_read_file (s_sample ('r'), &a_len);
    char *b = tl_test_read_file (s_sample ('s'), &b_len);
    a_len = 6000;
    b_len = 3000;
    char *member = s_gz_member (a, a_len, 4, &len);
    size_t base = len - 4;  //  Member length without its extra field
    free (member);
    cr_assert_lt (base + 4 + 30, 4096);
    size_t second_len;
    char *second = s_gz_member (b, b_len, 0, &second_len);
    for (long edge = -30; edge <= 12; edge++) {
        size_t extra = 4096 + (size_t)edge - base;
        if (edge == 12) extra += 6000;  //  A header longer than a read
        char *first = s_gz_member (a, a_len, extra, &len);
        cr_assert_eq (len, base + extra);
        char *both = malloc (len + second_len);
        memcpy (both, first, len);
        memcpy (both + len, second, second_len);
        char name[32];
        snprintf (name, sizeof name, "edge%+ld.gz", edge);
        s_add_data (files, name, both, len + second_len);
        free (both);
        free (first);
    }
    free (second);
    free (a);
    free (b);
}

typedef struct {
    const char *name;            //  What it covers
    void (*make) (s_files_t *);  //  Creates the files
    size_t chunk_size;           //  opts.chunk_size
    size_t max_line;             //  opts.max_line
    bool gz;                     //  Has gzip files: run with both inflaters
} s_case_t;

static const s_case_t s_cases[] = {
    {"samples", s_make_samples, 0, 0, false},
    {"samples chunk 64", s_make_two_samples, 64, 0, false},
    {"samples chunk 5000", s_make_two_samples, 5000, 0, false},
    {"samples chunk 1 GiB", s_make_samples, 1 << 30, 0, false},
    {"no final LF", s_make_no_final_lf, 0, 0, false},
    {"no final LF chunk 64", s_make_no_final_lf, 64, 0, false},
    {"empty file", s_make_empty, 0, 0, false},
    {"only LF", s_make_only_lf, 0, 0, false},
    {"long lines chunk 64", s_make_long_lines, 64, 0, false},
    {"long lines chunk 4096", s_make_long_lines, 4096, 0, false},
    {"long lines chunk 256K", s_make_long_lines, 256 << 10, 0, false},
    {"overlong chunk 64", s_make_overlong, 64, 1000, false},
    {"overlong chunk 4096", s_make_overlong, 4096, 1000, false},
    {"overlong chunk 1M", s_make_overlong, 1 << 20, 1000, false},
    {"long lines max_line 70000", s_make_long_lines, 4096, 70000, false},
    {"several files", s_make_several, 0, 0, false},
    {"several files chunk 64", s_make_several, 64, 0, false},
    {"plain file named .gz", s_make_fake_gz, 0, 0, false},
    {"gz single member", s_make_gz_single, 0, 0, true},
    {"gz multi-member", s_make_gz_multi, 0, 0, true},
    {"gz multi-member chunk 64", s_make_gz_multi, 64, 0, true},
    {"gz of empty file", s_make_gz_empty, 0, 0, true},
    {"gz and plain mixed", s_make_mix, 0, 0, true},
    {"gz and plain mixed chunk 100", s_make_mix, 100, 0, true},
    {"gz overlong", s_make_gz_overlong, 64, 1000, true},
    {"gz big", s_make_gz_big, 0, 0, true},
    {"gz member boundaries at read edges", s_make_gz_edges, 64, 0, true},
};
#define S_NCASES (sizeof s_cases / sizeof *s_cases)

static const s_mode_t s_plain_modes[] = {{TL_IO_SYNC, S_INFLATE_DEFAULT},
                                         {TL_IO_URING, S_INFLATE_DEFAULT}};
static const s_mode_t s_gz_modes[] = {
    {TL_IO_SYNC, S_ZLIB},
    {TL_IO_URING, S_ZLIB},
#ifdef TALLY_HAVE_ISAL
    {TL_IO_SYNC, S_ISAL},
    {TL_IO_URING, S_ISAL},
#endif
};

typedef struct {
    size_t c;       //  Index in s_cases
    s_mode_t mode;  //  Backend and inflater
} s_param_t;

ParameterizedTestParameters (source, chunks)
{
    static s_param_t params[S_NCASES * 4];
    size_t n = 0;
    for (size_t i = 0; i < S_NCASES; i++) {
        const s_mode_t *modes = s_cases[i].gz ? s_gz_modes : s_plain_modes;
        size_t nmodes = s_cases[i].gz ? sizeof s_gz_modes / sizeof *s_gz_modes : 2;
        for (size_t m = 0; m < nmodes; m++)
            params[n++] = (s_param_t){i, modes[m]};
    }
    return cr_make_param_array (s_param_t, params, n);
}

//  Chunks reproduce each file, at the right offsets, whole lines only.
ParameterizedTest (s_param_t *p, source, chunks, .init = s_setup, .fini = s_teardown)
{
    const s_case_t *c = &s_cases[p->c];
    cr_log_info ("case \"%s\", %s, inflate %s", c->name, s_io_name (p->mode.io),
                 p->mode.inflate ? s_inflate_name (p->mode.inflate) : "-");
    s_files_t files = {0};
    c->make (&files);
    tl_source_opts_t opts = {.chunk_size = c->chunk_size, .max_line = c->max_line};
    s_drain_t d = s_drain (&files, opts, p->mode, true);
    s_check_drain (&files, &opts, &d);
    s_drain_free (&d);
    s_files_free (&files);
    s_assert_no_leaks ();
}

ParameterizedTestParameters (source, identical)
{
    static size_t params[S_NCASES];
    for (size_t i = 0; i < S_NCASES; i++)
        params[i] = i;
    return cr_make_param_array (size_t, params, S_NCASES);
}

//  Every backend (and inflater) gives the very same chunk sequence.
ParameterizedTest (size_t *index, source, identical, .init = s_setup, .fini = s_teardown)
{
    const s_case_t *c = &s_cases[*index];
    cr_log_info ("case \"%s\"", c->name);
    s_files_t files = {0};
    c->make (&files);
    tl_source_opts_t opts = {.chunk_size = c->chunk_size, .max_line = c->max_line};
    const s_mode_t *modes = c->gz ? s_gz_modes : s_plain_modes;
    size_t nmodes = c->gz ? sizeof s_gz_modes / sizeof *s_gz_modes : 2;
    s_drain_t ref = s_drain (&files, opts, modes[0], false);
    cr_assert_eq (ref.rc, 0, "%s", ref.error);
    for (size_t m = 1; m < nmodes; m++) {
        s_drain_t d = s_drain (&files, opts, modes[m], false);
        const char *what = modes[m].inflate ? s_inflate_name (modes[m].inflate) : "";
        cr_assert_eq (d.rc, 0, "%s", d.error);
        cr_assert_eq (d.n, ref.n, "%s %s: %zu chunks, sync gave %zu", s_io_name (modes[m].io), what,
                      d.n, ref.n);
        for (size_t i = 0; i < d.n; i++) {
            const s_rec_t *a = &ref.recs[i], *b = &d.recs[i];
            cr_assert (a->file == b->file && a->offset == b->offset && a->first == b->first &&
                           a->size == b->size && memcmp (a->copy, b->copy, a->size) == 0,
                       "%s %s: chunk %zu differs", s_io_name (modes[m].io), what, i);
        }
        cr_assert_eq (d.skipped, ref.skipped);
        cr_assert_eq (d.bytes_read, ref.bytes_read);
        s_drain_free (&d);
    }
    s_drain_free (&ref);
    s_files_free (&files);
    s_assert_no_leaks ();
}

//  --------------------------------------------------------------------------
//  Errors

ParameterizedTestParameters (source, errors)
{
    static s_mode_t modes[sizeof s_gz_modes / sizeof *s_gz_modes];
    memcpy (modes, s_gz_modes, sizeof modes);
    return cr_make_param_array (s_mode_t, modes, sizeof modes / sizeof *modes);
}

//  Drains files expecting -1 with an error naming bad_file and saying why.
static void s_expect_error (const s_files_t *files, tl_source_opts_t opts, s_mode_t mode,
                            const char *bad_file, const char *why, const char *what)
{
    s_drain_t d = s_drain (files, opts, mode, false);
    cr_assert_eq (d.rc, -1, "%s: tl_source_next gave %d, not -1 (%zu chunks)", what, d.rc, d.n);
    cr_assert_not_null (strstr (d.error, bad_file), "%s: error \"%s\" does not name %s", what,
                        d.error, bad_file);
    if (why)
        cr_assert_not_null (strstr (d.error, why), "%s: error \"%s\" lacks \"%s\"", what, d.error,
                            why);
    s_drain_free (&d);
}

ParameterizedTest (s_mode_t *mode, source, errors, .init = s_setup, .fini = s_teardown)
{
    cr_log_info ("%s, inflate %s", s_io_name (mode->io), s_inflate_name (mode->inflate));
    tl_source_opts_t opts = {.chunk_size = 4096};

    //  A missing file in the middle: what comes before is delivered, then the error
    s_files_t files = {0};
    s_add (&files, strdup (s_sample ('j')));
    s_add (&files, s_scratch ("missing"));
    s_add (&files, strdup (s_sample ('k')));
    s_drain_t d = s_drain (&files, opts, *mode, false);
    cr_assert_eq (d.rc, -1);
    char want[PATH_MAX + 64];
    snprintf (want, sizeof want, "%s: %s", files.names[1], strerror (ENOENT));
    cr_assert_str_eq (d.error, want);
    size_t first_len;
    char *first = tl_test_read_file (s_sample ('j'), &first_len);
    size_t got = 0;
    for (size_t i = 0; i < d.n; i++) {
        cr_assert_eq (d.recs[i].file, 0, "chunk from a file after the missing one");
        cr_assert_eq (memcmp (first + got, d.recs[i].copy, d.recs[i].size), 0);
        got += d.recs[i].size;
    }
    cr_assert_eq (got, first_len, "the file before the missing one came incomplete");
    free (first);
    s_drain_free (&d);
    s_files_free (&files);

    //  A directory
    s_add (&files, s_scratch ("dir"));
    cr_assert_eq (mkdir (files.names[0], 0700), 0);
    s_expect_error (&files, opts, *mode, files.names[0], strerror (EISDIR), "directory");
    s_files_free (&files);
    s_assert_no_leaks ();
}

//  Writes the first cut bytes of data (or data with extra appended) as a file.
static void s_variant (s_files_t *files, const char *name, const char *data, size_t cut,
                       const void *extra, size_t extra_len)
{
    char *buf = malloc (cut + extra_len + 1);
    memcpy (buf, data, cut);
    if (extra_len) memcpy (buf + cut, extra, extra_len);
    s_add_data (files, name, buf, cut + extra_len);
    free (buf);
}

ParameterizedTestParameters (source, gz_truncated)
{
    static s_mode_t modes[sizeof s_gz_modes / sizeof *s_gz_modes];
    memcpy (modes, s_gz_modes, sizeof modes);
    return cr_make_param_array (s_mode_t, modes, sizeof modes / sizeof *modes);
}

//  A gzip file cut anywhere (header, deflate data, trailer, second member) fails.
ParameterizedTest (s_mode_t *mode, source, gz_truncated, .init = s_setup, .fini = s_teardown)
{
    cr_log_info ("%s, inflate %s", s_io_name (mode->io), s_inflate_name (mode->inflate));
    s_files_t files = {0};
    s_make_gz_multi (&files);  //  multi.gz: e.gz empty.gz cut1.gz cut2.gz f.gz
    size_t size, first_member;
    char *data = tl_test_read_file (files.names[0], &size);
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/e.gz", s_dir);
    free (tl_test_read_file (path, &first_member));
    s_files_free (&files);
    size_t cuts[] = {2,
                     3,
                     9,
                     10,
                     11,
                     first_member / 3,
                     first_member / 2,
                     first_member - 8,
                     first_member - 4,
                     first_member - 1,
                     first_member + 1,
                     first_member + 2,
                     first_member + 10,
                     first_member + 15,
                     size / 2,
                     size - 9,
                     size - 8,
                     size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        for (size_t chunk = 64; chunk <= 1 << 20; chunk <<= 14) {
            char name[64], what[128];
            snprintf (name, sizeof name, "cut%zu_%zu.gz", cuts[i], chunk);
            snprintf (what, sizeof what, "cut at %zu of %zu, chunk %zu", cuts[i], size, chunk);
            s_variant (&files, name, data, cuts[i], NULL, 0);
            tl_source_opts_t opts = {.chunk_size = chunk};
            s_expect_error (&files, opts, *mode, files.names[0], "truncated", what);
            s_files_free (&files);
        }
    }
    free (data);
    s_assert_no_leaks ();
}

ParameterizedTestParameters (source, gz_corrupt)
{
    static s_mode_t modes[sizeof s_gz_modes / sizeof *s_gz_modes];
    memcpy (modes, s_gz_modes, sizeof modes);
    return cr_make_param_array (s_mode_t, modes, sizeof modes / sizeof *modes);
}

//  Flipped bytes in deflate data or trailer, and bytes after the last member, fail.
ParameterizedTest (s_mode_t *mode, source, gz_corrupt, .init = s_setup, .fini = s_teardown)
{
    cr_log_info ("%s, inflate %s", s_io_name (mode->io), s_inflate_name (mode->inflate));
    s_files_t files = {0};
    s_make_gz_single (&files);
    size_t size;
    char *data = tl_test_read_file (files.names[0], &size);
    s_files_free (&files);
    tl_source_opts_t opts = {.chunk_size = 4096};

    //  Deflate data lies between the header (10 bytes and gzip's file name) and the
    //  8-byte trailer: CRC32 (size-8..size-5) and length (size-4..size-1)
    cr_assert (data[3] & 8, "gzip stored no file name");
    size_t hdr = (size_t)((char *)memchr (data + 10, 0, size - 10) + 1 - data);
    size_t spots[] = {hdr,       hdr + 1,  hdr + 2,  hdr + 10, 100,      size / 3, size / 2,
                      size - 20, size - 9, size - 8, size - 6, size - 4, size - 1};
    for (size_t i = 0; i < sizeof spots / sizeof *spots; i++) {
        char name[64], what[64];
        snprintf (name, sizeof name, "flip%zu.gz", spots[i]);
        snprintf (what, sizeof what, "byte %zu of %zu flipped", spots[i], size);
        data[spots[i]] ^= 0x55;
        s_variant (&files, name, data, size, NULL, 0);
        data[spots[i]] ^= 0x55;
        s_expect_error (&files, opts, *mode, files.names[0], "gzip", what);
        s_files_free (&files);
    }

    static const struct {
        const char *bytes;  //  Appended after the member
        size_t len;         //  Bytes in bytes
        const char *why;    //  Expected in the error
    } tails[] = {
        {"hello\n", 6, "trailing garbage"},
        {"\0\0\0\0", 4, "trailing garbage"},
        {"\x1f", 1, "truncated"},
        {"\x1f\x8b", 2, "truncated"},
        {"\x1f\x8bxxxxxxxxxxxxxxxxxxx", 21, "gzip"},
        {"\x1f\x9e", 2, "trailing garbage"},
    };
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        for (size_t chunk = 64; chunk <= 1 << 20; chunk <<= 14) {
            char name[64], what[64];
            snprintf (name, sizeof name, "tail%zu_%zu.gz", i, chunk);
            snprintf (what, sizeof what, "tail %zu, chunk %zu", i, chunk);
            s_variant (&files, name, data, size, tails[i].bytes, tails[i].len);
            opts.chunk_size = chunk;
            s_expect_error (&files, opts, *mode, files.names[0], tails[i].why, what);
            s_files_free (&files);
        }
    }
    free (data);
    s_assert_no_leaks ();
}

//  --------------------------------------------------------------------------
//  Resources

//  Input files (in the scratch dir) this process has open now.
static int s_open_inputs (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    cr_assert_not_null (dir);
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        char link[PATH_MAX + 32], target[PATH_MAX] = "";
        snprintf (link, sizeof link, "/proc/self/fd/%s", entry->d_name);
        ssize_t len = readlink (link, target, sizeof target - 1);
        if (len > 0 && strncmp (target, s_dir, strlen (s_dir)) == 0) n++;
    }
    closedir (dir);
    return n;
}

ParameterizedTestParameters (source, lazy_open)
{
    static s_mode_t modes[] = {{TL_IO_SYNC, S_INFLATE_DEFAULT}, {TL_IO_URING, S_INFLATE_DEFAULT}};
    return cr_make_param_array (s_mode_t, modes, 2);
}

//  Hundreds of files: only those being read are open, never all.
ParameterizedTest (s_mode_t *mode, source, lazy_open, .init = s_setup, .fini = s_teardown)
{
    s_files_t files = {0};
    for (int i = 0; i < 300; i++) {
        char name[32], text[64];
        snprintf (name, sizeof name, "f%03d", i);
        snprintf (text, sizeof text, "file\t%d\nline\t%d\n", i, i);
        s_add_text (&files, name, text);
    }
    tl_source_opts_t opts = {.depth = 4, .io = mode->io};
    tl_source_t *source = s_open (&files, opts, *mode);
    cr_assert_eq (s_open_inputs (), 0, "files opened before reading");
    int most = 0;
    size_t chunks = 0;
    tl_chunk_t chunk;
    while (tl_source_next (source, &chunk) == 1) {
        int now = s_open_inputs ();
        most = now > most ? now : most;
        tl_buf_release (chunk.buf);
        chunks++;
    }
    cr_assert_eq (chunks, 300);
    //  io_uring reads ahead over at most depth files (plus the cursor's)
    int limit = mode->io == TL_IO_URING ? 4 + 1 : 1;
    cr_assert_leq (most, limit, "%d input files open at once", most);
    cr_assert_eq (s_open_inputs (), 0, "files left open at the end");
    tl_source_destroy (&source);
    s_files_free (&files);
}

ParameterizedTestParameters (source, pipe)
{
    static s_mode_t modes[] = {{TL_IO_SYNC, S_INFLATE_DEFAULT}, {TL_IO_URING, S_INFLATE_DEFAULT}};
    return cr_make_param_array (s_mode_t, modes, 2);
}

//  A FIFO has no size: read until EOF, short reads and all; gzip through it too.
ParameterizedTest (s_mode_t *mode, source, pipe, .init = s_setup, .fini = s_teardown)
{
    s_files_t files = {0};
    s_add (&files, s_scratch ("plain.fifo"));
    s_add (&files, s_scratch ("gz.fifo"));
    s_add (&files, s_scratch ("empty.fifo"));
    for (size_t i = 0; i < files.n; i++)
        cr_assert_eq (mkfifo (files.names[i], 0600), 0);
    //  Writers block opening their FIFO until the source opens it for reading
    char *m = strdup (s_sample ('m')), *n = strdup (s_sample ('n'));
    char cmd[8 * PATH_MAX];
    snprintf (cmd, sizeof cmd,
              "cat '%s' > '%s' & gzip -c '%s' > '%s' & : > '%s' & "
              "cat '%s' > '%s/plain'; gzip -c '%s' > '%s/gz'; : > '%s/empty'; wait",
              m, files.names[0], n, files.names[1], files.names[2], m, s_dir, n, s_dir, s_dir);
    free (m);
    free (n);
    FILE *writers = popen (cmd, "r");
    cr_assert_not_null (writers);
    tl_source_opts_t opts = {.chunk_size = 4096};
    s_drain_t d = s_drain (&files, opts, *mode, true);
    cr_assert_eq (pclose (writers), 0);
    //  Check against regular copies of what went through the FIFOs
    s_files_t copies = {0};
    s_add (&copies, s_scratch ("plain"));
    s_add (&copies, s_scratch ("gz"));
    s_add (&copies, s_scratch ("empty"));
    d.bytes_read = 0;
    for (size_t i = 0; i < copies.n; i++)
        d.bytes_read += s_disk_size (copies.names[i]);
    s_check_drain (&copies, &opts, &d);
    s_drain_free (&d);
    s_files_free (&files);
    s_files_free (&copies);
    s_assert_no_leaks ();
}

//  Destroying the source cancels a read that would wait forever (a FIFO held open).
Test (source, destroy_cancels_reads, .init = s_setup, .fini = s_teardown, .timeout = 20.)
{
    s_files_t files = {0};
    s_add (&files, strdup (s_sample ('o')));
    s_add (&files, s_scratch ("stuck.fifo"));
    cr_assert_eq (mkfifo (files.names[1], 0600), 0);
    //  Read-write: opening does not block and the FIFO never reaches EOF
    int writer = open (files.names[1], O_RDWR | O_NONBLOCK);
    cr_assert_geq (writer, 0);
    cr_assert_eq (write (writer, "a\n", 2), 2);
    tl_source_opts_t opts = {.io = TL_IO_URING};
    tl_source_t *source = s_open (&files, opts, (s_mode_t){TL_IO_URING, S_INFLATE_DEFAULT});
    tl_chunk_t chunk;
    cr_assert_eq (tl_source_next (source, &chunk), 1);
    cr_assert_eq (chunk.file, 0);
    tl_buf_release (chunk.buf);
    struct timespec t0, t1;
    clock_gettime (CLOCK_MONOTONIC, &t0);
    tl_source_destroy (&source);
    clock_gettime (CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt (took, 1.0, "destroy waited %.1f s", took);
    close (writer);
    s_files_free (&files);
}

Test (source, backend_choice)
{
    const char *files[] = {s_sample ('a')};
    const char *error = NULL;
    tl_source_t *source = tl_source_new (files, 1, NULL, &error);
    cr_assert_not_null (source, "%s", error);
    //  This machine has io_uring, so AUTO must pick it
    cr_assert_str_eq (tl_source_backend (source), "io_uring");
    tl_source_destroy (&source);
    tl_source_opts_t opts = {.io = TL_IO_SYNC};
    source = tl_source_new (files, 1, &opts, &error);
    cr_assert_str_eq (tl_source_backend (source), "sync");
    tl_source_destroy (&source);
    tl_source_destroy (&source);  //  Harmless twice
}

//  Stands in for liburing's io_uring_queue_init (the executable's definition wins over
//  the shared library's) to play a kernel or seccomp profile that refuses io_uring.
static int s_refuse_uring;  //  -errno to fail with, 0 to call the real one

struct io_uring;
int io_uring_queue_init (unsigned entries, struct io_uring *ring, unsigned flags);
int io_uring_queue_init (unsigned entries, struct io_uring *ring, unsigned flags)
{
    if (s_refuse_uring) return s_refuse_uring;
    int (*real) (unsigned, struct io_uring *, unsigned) = dlsym (RTLD_NEXT, "io_uring_queue_init");
    cr_assert_not_null (real);
    return real (entries, ring, flags);
}

//  AUTO falls back to read(2) when io_uring is refused; URING fails then.
Test (source, uring_refused)
{
    static const int refusals[] = {-EPERM, -ENOSYS, -ENOMEM};
    const char *files[] = {s_sample ('p')};
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        s_refuse_uring = refusals[i];
        const char *error = NULL;
        tl_source_t *source = tl_source_new (files, 1, NULL, &error);
        cr_assert_not_null (source, "AUTO did not fall back on %d: %s", refusals[i], error);
        cr_assert_str_eq (tl_source_backend (source), "sync");
        tl_chunk_t chunk;
        cr_assert_eq (tl_source_next (source, &chunk), 1);
        tl_buf_release (chunk.buf);
        tl_source_destroy (&source);

        tl_source_opts_t opts = {.io = TL_IO_URING};
        error = NULL;
        source = tl_source_new (files, 1, &opts, &error);
        cr_assert_null (source, "URING succeeded though refused with %d", refusals[i]);
        cr_assert_not_null (error);
        cr_assert_not_null (strstr (error, "io_uring"), "error \"%s\"", error);
    }
    s_refuse_uring = 0;
    tl_source_t *source = tl_source_new (files, 1, NULL, NULL);
    cr_assert_str_eq (tl_source_backend (source), "io_uring");
    tl_source_destroy (&source);
}

Test (source, no_files)
{
    tl_source_t *source = tl_source_new (NULL, 0, NULL, NULL);
    cr_assert_not_null (source);
    tl_chunk_t chunk;
    cr_assert_eq (tl_source_next (source, &chunk), 0);
    cr_assert_eq (tl_source_next (source, &chunk), 0);
    cr_assert_str_empty (tl_source_error (source));
    cr_assert_eq (tl_source_bytes_read (source), 0);
    tl_source_destroy (&source);
}

//  --------------------------------------------------------------------------
//  tl_buf reference counts (run under ASan: a double free or a leak fails)

static tl_source_t *s_first_chunk (tl_chunk_t *chunk)
{
    const char *files[] = {s_sample ('a')};
    tl_source_opts_t opts = {.chunk_size = 4096};
    tl_source_t *source = tl_source_new (files, 1, &opts, NULL);
    cr_assert_not_null (source);
    cr_assert_eq (tl_source_next (source, chunk), 1);
    return source;
}

Test (source, buf_refcount)
{
    //  Ref twice, release three times: freed once, after the source is gone
    tl_chunk_t chunk;
    tl_source_t *source = s_first_chunk (&chunk);
    char copy[64];
    memcpy (copy, chunk.data, sizeof copy);
    tl_buf_ref (chunk.buf);
    tl_buf_ref (chunk.buf);
    tl_source_destroy (&source);
    tl_buf_release (chunk.buf);
    tl_buf_release (chunk.buf);
    cr_assert_eq (memcmp (chunk.data, copy, sizeof copy), 0, "freed too early");
    tl_buf_release (chunk.buf);

    //  The same while the source lives: the buffer goes back to its pool
    source = s_first_chunk (&chunk);
    tl_buf_ref (chunk.buf);
    tl_buf_ref (chunk.buf);
    for (int i = 0; i < 3; i++)
        tl_buf_release (chunk.buf);
    tl_chunk_t next;
    cr_assert_eq (tl_source_next (source, &next), 1);
    tl_buf_release (next.buf);
    tl_source_destroy (&source);
    s_assert_no_leaks ();
}

static void *s_release_thread (void *arg)
{
    tl_buf_release (arg);
    return NULL;
}

//  Releases from other threads (as ZeroMQ's I/O thread does) race with the source.
Test (source, buf_release_threads)
{
    for (int round = 0; round < 50; round++) {
        tl_chunk_t chunk;
        tl_source_t *source = s_first_chunk (&chunk);
        pthread_t threads[8];
        for (int i = 0; i < 8; i++)
            tl_buf_ref (chunk.buf);
        for (int i = 0; i < 8; i++)
            cr_assert_eq (pthread_create (&threads[i], NULL, s_release_thread, chunk.buf), 0);
        tl_buf_release (chunk.buf);
        if (round % 2) tl_source_destroy (&source);
        for (int i = 0; i < 8; i++)
            pthread_join (threads[i], NULL);
        tl_source_destroy (&source);
    }
    s_assert_no_leaks ();
}

//  --------------------------------------------------------------------------
//  Producing chunks again (tl_replay), as after a sink restart

//  Reads every file's identity now.
static tl_file_id_t *s_file_ids (const s_files_t *files)
{
    tl_file_id_t *ids = calloc (files->n + 1, sizeof *ids);
    for (size_t i = 0; i < files->n; i++)
        cr_assert_eq (tl_file_id (files->names[i], &ids[i]), 0, "%s: %s", files->names[i],
                      strerror (errno));
    return ids;
}

//  A replay over files, from names it must copy: the strings handed to it are wiped
//  before the caller sees the replay.
static tl_replay_t *s_replay_new (const s_files_t *files, const tl_file_id_t *ids,
                                  const tl_source_opts_t *opts)
{
    char **names = calloc (files->n + 1, sizeof *names);
    for (size_t i = 0; i < files->n; i++)
        names[i] = strdup (files->names[i]);
    tl_replay_t *replay = tl_replay_new ((const char *const *)names, ids, files->n, opts);
    cr_assert_not_null (replay);
    for (size_t i = 0; i < files->n; i++) {
        memset (names[i], 'X', strlen (names[i]));
        free (names[i]);
    }
    free (names);
    return replay;
}

//  Asks replay for rec's chunk again; it must be byte-identical. what says when.
static void s_replay_same (tl_replay_t *replay, const s_rec_t *rec, const char *what, size_t i)
{
    tl_chunk_t chunk;
    memset (&chunk, 0xA5, sizeof chunk);
    int rc = tl_replay_chunk (replay, rec->file, rec->offset, rec->size, &chunk);
    cr_assert_eq (rc, 0, "%s, chunk %zu (file %u at %llu, %zu bytes): %s", what, i, rec->file,
                  (unsigned long long)rec->offset, rec->size, tl_replay_error (replay));
    cr_assert_eq (chunk.file, rec->file, "%s, chunk %zu", what, i);
    cr_assert_eq (chunk.offset, rec->offset, "%s, chunk %zu", what, i);
    cr_assert_eq (chunk.size, rec->size, "%s, chunk %zu", what, i);
    cr_assert_not (chunk.first, "%s, chunk %zu: first is set", what, i);
    cr_assert_not_null (chunk.buf);
    cr_assert_eq (memcmp (chunk.data, rec->copy, rec->size), 0,
                  "%s, chunk %zu (file %u at %llu): bytes differ", what, i, rec->file,
                  (unsigned long long)rec->offset);
    tl_buf_release (chunk.buf);
}

//  Asks replay for a chunk expecting -1 with an error naming file (and holding why,
//  when not NULL).
static void s_replay_fails (tl_replay_t *replay, const s_files_t *files, const s_rec_t *rec,
                            const char *why, const char *what)
{
    tl_chunk_t chunk;
    int rc = tl_replay_chunk (replay, rec->file, rec->offset, rec->size, &chunk);
    cr_assert_eq (rc, -1, "%s: tl_replay_chunk gave %d", what, rc);
    const char *error = tl_replay_error (replay);
    cr_assert_not_null (strstr (error, files->names[rec->file]), "%s: \"%s\" does not name %s",
                        what, error, files->names[rec->file]);
    if (why) cr_assert_not_null (strstr (error, why), "%s: \"%s\" lacks \"%s\"", what, error, why);
}

//  Short lines with lines over 1000 bytes among them (some far over), in a plain file
//  and in a gzip file: many chunks with skipped lines between and inside them.
static void s_make_skips (s_files_t *files)
{
    long lengths[600];
    for (size_t i = 0; i < 600; i++)
        lengths[i] = i % 97 == 5 ? 70000 : i % 7 == 3 ? 1001 + (long)i : 10 + (long)(i % 40);
    s_make_lines ("skips", lengths, 600);
    s_add (files, s_scratch ("skips"));
    s_add (files, strdup (s_sample ('x')));
}

static void s_make_gz_skips (s_files_t *files)
{
    s_files_t plain = {0};
    s_make_skips (&plain);
    s_files_free (&plain);
    s_copy_sample ('y', "y");
    s_add (files, s_gzip ("skips", "skips.gz"));
    s_add (files, s_gzip ("y", "y.gz"));
}

static const s_case_t s_replay_cases[] = {
    {"two samples chunk 4096", s_make_two_samples, 4096, 0, false},
    {"several files chunk 64", s_make_several, 64, 0, false},
    {"long lines skipped, chunk 64", s_make_skips, 64, 1000, false},
    {"long lines skipped, chunk 4096", s_make_skips, 4096, 1000, false},
    {"gz multi-member chunk 4096", s_make_gz_multi, 4096, 0, true},
    {"gz long lines skipped, chunk 64", s_make_gz_skips, 64, 1000, true},
    {"gz long lines skipped, chunk 4096", s_make_gz_skips, 4096, 1000, true},
    {"gz and plain mixed chunk 100", s_make_mix, 100, 0, true},
    {"gz member boundaries at read edges", s_make_gz_edges, 64, 0, true},
};
#define S_NREPLAY (sizeof s_replay_cases / sizeof *s_replay_cases)

ParameterizedTestParameters (source, replay)
{
    static s_param_t params[S_NREPLAY * 4];
    size_t n = 0;
    for (size_t i = 0; i < S_NREPLAY; i++) {
        const s_mode_t *modes = s_replay_cases[i].gz ? s_gz_modes : s_plain_modes;
        size_t nmodes = s_replay_cases[i].gz ? sizeof s_gz_modes / sizeof *s_gz_modes : 2;
        for (size_t m = 0; m < nmodes; m++)
            params[n++] = (s_param_t){i, modes[m]};
    }
    return cr_make_param_array (s_param_t, params, n);
}

//  Every chunk a source gave, asked again by (file, offset, size), is the same: in cut
//  order, backwards, and in random order (going back within a gzip file restarts it).
ParameterizedTest (s_param_t *p, source, replay, .init = s_setup, .fini = s_teardown)
{
    const s_case_t *c = &s_replay_cases[p->c];
    cr_log_info ("case \"%s\", %s, inflate %s", c->name, s_io_name (p->mode.io),
                 p->mode.inflate ? s_inflate_name (p->mode.inflate) : "-");
    s_files_t files = {0};
    c->make (&files);
    tl_source_opts_t opts = {.chunk_size = c->chunk_size, .max_line = c->max_line};
    s_drain_t d = s_drain (&files, opts, p->mode, false);
    cr_assert_eq (d.rc, 0, "%s", d.error);
    cr_assert_gt (d.n, 20, "only %zu chunks", d.n);
    if (c->max_line) cr_assert_gt (d.skipped, 0, "no line was skipped");
    cr_log_info ("%zu chunks, %llu lines skipped", d.n, (unsigned long long)d.skipped);
    tl_file_id_t *ids = s_file_ids (&files);
    tl_replay_t *replay = s_replay_new (&files, ids, &opts);

    //  In cut order: one pass over each gzip file
    for (size_t i = 0; i < d.n; i++)
        s_replay_same (replay, &d.recs[i], "in order", i);
    //  Backwards (at most 60 chunks of each file: each step back in a gzip file
    //  inflates it again from its start)
    size_t step = d.n / 60 + 1;
    for (size_t i = d.n; i-- > 0;)
        if (i % step == 0 || i + 1 == d.n) s_replay_same (replay, &d.recs[i], "backwards", i);
    //  Random order, repeats included
    for (int k = 0; k < 150; k++) {
        size_t i = tl_test_random () % d.n;
        s_replay_same (replay, &d.recs[i], "random order", i);
    }
    //  The same chunk twice in a row
    s_replay_same (replay, &d.recs[d.n / 2], "twice", d.n / 2);
    s_replay_same (replay, &d.recs[d.n / 2], "twice", d.n / 2);
    //  And in order again after all that
    for (size_t i = 0; i < d.n; i++)
        s_replay_same (replay, &d.recs[i], "in order again", i);
    tl_replay_destroy (&replay);
    cr_assert_null (replay);
    tl_replay_destroy (&replay);  //  Harmless on NULL
    free (ids);
    s_drain_free (&d);
    s_files_free (&files);
    s_assert_no_leaks ();
}

//  Sets path's modification time to sec.nsec (its access time too).
static void s_set_mtime (const char *path, int64_t sec, int64_t nsec)
{
    struct timespec times[2] = {{.tv_sec = (time_t)sec, .tv_nsec = (long)nsec},
                                {.tv_sec = (time_t)sec, .tv_nsec = (long)nsec}};
    cr_assert_eq (utimensat (AT_FDCWD, path, times, 0), 0, "%s: %s", path, strerror (errno));
}

static void s_append_byte (const char *path)
{
    FILE *file = fopen (path, "ab");
    cr_assert_not_null (file);
    cr_assert_eq (fputc ('\n', file), '\n');
    cr_assert_eq (fclose (file), 0);
}

Test (source, file_id, .init = s_setup, .fini = s_teardown)
{
    s_files_t files = {0};
    s_add_text (&files, "a", "alpha\t1\nbeta\t2\n");
    s_add_text (&files, "empty", "");
    s_set_mtime (files.names[0], 1600000000, 123456789);
    s_set_mtime (files.names[1], -86400, 999999999);
    tl_file_id_t id;
    memset (&id, 0xA5, sizeof id);
    cr_assert_eq (tl_file_id (files.names[0], &id), 0);
    cr_assert_eq (id.size, 15);
    cr_assert_eq (id.mtime, 1600000000);
    cr_assert_eq (id.mtime_ns, 123456789);
    cr_assert_eq (tl_file_id (files.names[1], &id), 0);
    cr_assert_eq (id.size, 0);
    cr_assert_eq (id.mtime, -86400);
    cr_assert_eq (id.mtime_ns, 999999999);
    //  One byte more, one nanosecond later: both show
    s_append_byte (files.names[0]);
    s_set_mtime (files.names[0], 1600000000, 123456790);
    cr_assert_eq (tl_file_id (files.names[0], &id), 0);
    cr_assert_eq (id.size, 16);
    cr_assert_eq (id.mtime_ns, 123456790);
    //  A missing file
    char *missing = s_scratch ("missing");
    errno = 0;
    cr_assert_eq (tl_file_id (missing, &id), -1);
    cr_assert_eq (errno, ENOENT);
    free (missing);
    s_files_free (&files);
}

ParameterizedTestParameters (source, replay_changed)
{
    static s_mode_t modes[sizeof s_gz_modes / sizeof *s_gz_modes];
    memcpy (modes, s_gz_modes, sizeof modes);
    return cr_make_param_array (s_mode_t, modes, sizeof modes / sizeof *modes);
}

//  A file whose size or modification time changed since the job started, or that is
//  gone, gives no chunk: the error names it. Put back as it was, it gives them again.
ParameterizedTest (s_mode_t *mode, source, replay_changed, .init = s_setup, .fini = s_teardown)
{
    s_files_t files = {0};
    s_copy_sample ('t', "t");
    s_copy_sample ('u', "u");
    s_add (&files, s_scratch ("t"));
    s_add (&files, s_gzip ("u", "u.gz"));
    s_add_text (&files, "other", "x\t1\n");
    for (size_t i = 0; i < files.n; i++)
        s_set_mtime (files.names[i], 1500000000, 500000000);
    tl_source_opts_t opts = {.chunk_size = 4096};
    s_drain_t d = s_drain (&files, opts, *mode, false);
    cr_assert_eq (d.rc, 0, "%s", d.error);
    tl_file_id_t *ids = s_file_ids (&files);
    tl_replay_t *replay = s_replay_new (&files, ids, &opts);
    //  A chunk of each file, the plain file's, the gzip file's second (the gzip file is
    //  then being read), and the last file's
    size_t plain = 1, gz = 0, other = d.n - 1;
    while (d.recs[gz].file != 1)
        gz++;
    gz++;
    cr_assert_eq (d.recs[gz].file, 1);
    cr_assert_eq (d.recs[other].file, 2);
    s_replay_same (replay, &d.recs[plain], "before", plain);
    s_replay_same (replay, &d.recs[gz], "before", gz);
    s_replay_same (replay, &d.recs[other], "before", other);

    for (size_t which = 0; which < 2; which++) {
        const char *name = files.names[which];
        size_t r = which == 0 ? plain : gz + 1;
        char what[64];
        //  One nanosecond later, same size
        snprintf (what, sizeof what, "file %zu: mtime + 1 ns", which);
        s_set_mtime (name, 1500000000, 500000001);
        s_replay_fails (replay, &files, &d.recs[r], "changed", what);
        //  A whole second earlier
        snprintf (what, sizeof what, "file %zu: mtime - 1 s", which);
        s_set_mtime (name, 1499999999, 500000000);
        s_replay_fails (replay, &files, &d.recs[r], "changed", what);
        //  Put back: its chunks come again (the next one of the gzip file too)
        s_set_mtime (name, 1500000000, 500000000);
        snprintf (what, sizeof what, "file %zu put back", which);
        s_replay_same (replay, &d.recs[r], what, r);
        //  The others were never affected
        s_replay_same (replay, &d.recs[other], what, other);
    }

    //  A byte more at the end, the modification time put back as it was
    for (size_t which = 0; which < 2; which++) {
        const char *name = files.names[which];
        s_append_byte (name);
        s_set_mtime (name, 1500000000, 500000000);
        char what[64];
        snprintf (what, sizeof what, "file %zu: one byte more", which);
        s_replay_fails (replay, &files, &d.recs[which == 0 ? plain : gz], "changed", what);
        //  Its first chunk too, unchanged as its bytes are
        s_replay_fails (replay, &files, &d.recs[which == 0 ? 0 : gz - 1], "changed", what);
    }
    s_replay_same (replay, &d.recs[other], "after the others changed", other);

    //  Gone
    cr_assert_eq (unlink (files.names[2]), 0);
    s_replay_fails (replay, &files, &d.recs[other], strerror (ENOENT), "missing file");
    tl_replay_destroy (&replay);
    free (ids);
    s_drain_free (&d);
    s_files_free (&files);
    s_assert_no_leaks ();
}

ParameterizedTestParameters (source, replay_wrong_chunk)
{
    static s_mode_t modes[sizeof s_gz_modes / sizeof *s_gz_modes];
    memcpy (modes, s_gz_modes, sizeof modes);
    return cr_make_param_array (s_mode_t, modes, sizeof modes / sizeof *modes);
}

//  A gzip file cut again gives other chunks than asked for (not at that offset, or not
//  that long): refused with the file named, and the replay goes on working after it.
//  A plain file's chunk past its end is refused too.
ParameterizedTest (s_mode_t *mode, source, replay_wrong_chunk, .init = s_setup, .fini = s_teardown)
{
    s_files_t files = {0};
    s_copy_sample ('v', "v");
    s_add (&files, s_gzip ("v", "v.gz"));
    s_add (&files, strdup (s_sample ('w')));
    tl_source_opts_t opts = {.chunk_size = 4096};
    s_drain_t d = s_drain (&files, opts, *mode, false);
    cr_assert_eq (d.rc, 0, "%s", d.error);
    tl_file_id_t *ids = s_file_ids (&files);
    tl_replay_t *replay = s_replay_new (&files, ids, &opts);
    size_t r = 3;
    cr_assert_eq (d.recs[r].file, 0);
    s_rec_t wrong = d.recs[r];
    wrong.offset += 1;
    s_replay_fails (replay, &files, &wrong, NULL, "gzip chunk one byte later");
    s_replay_same (replay, &d.recs[r], "after a wrong offset", r);
    wrong = d.recs[r + 1];
    wrong.size -= 1;
    s_replay_fails (replay, &files, &wrong, NULL, "gzip chunk one byte short");
    s_replay_same (replay, &d.recs[r + 1], "after a wrong size", r + 1);
    wrong.offset = UINT64_MAX / 2;
    s_replay_fails (replay, &files, &wrong, NULL, "gzip chunk past the end");
    s_replay_same (replay, &d.recs[0], "after a chunk past the end", 0);

    //  Plain: a range past its end cannot be read
    size_t last = d.n - 1;
    cr_assert_eq (d.recs[last].file, 1);
    wrong = d.recs[last];
    wrong.offset += 10;
    s_replay_fails (replay, &files, &wrong, NULL, "plain chunk past the end");
    s_replay_same (replay, &d.recs[last], "after a plain chunk past the end", last);
    tl_replay_destroy (&replay);
    free (ids);
    s_drain_free (&d);
    s_files_free (&files);
    s_assert_no_leaks ();
}
