/*  test_totals: the totals file (sink/totals.c) and the file replacement it is
    written through (sink/replace.c). It holds "key TAB total" lines in the order
    given, replaces an older file whole, and when it cannot be written leaves neither
    a temporary file nor a changed target behind. Temporary names cannot be guessed,
    and a symbolic link planted where one was expected is never followed. Read back in
    the feed's batches, the file gives its entries in order, in as many batches as
    were counted from the entries, each within its key count and byte limit.        */

#include "tl_replace.h"
#include "tl_feed.h"
#include "totals.h"
#include "tl_test.h"
#include "tl_test_feed.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[] = "/tmp/test_totals.XXXXXX";

static void s_setup (void)
{
    cr_assert_not_null (mkdtemp (s_dir));
}

//  Asserts that s_dir holds expected entries (other than . and ..).
static void s_expect_files (int expected)
{
    DIR *folder = opendir (s_dir);
    cr_assert_not_null (folder);
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir (folder)))
        n += strcmp (entry->d_name, ".") && strcmp (entry->d_name, "..");
    closedir (folder);
    cr_assert_eq (n, expected, "%s holds %d entries, not %d", s_dir, n, expected);
}

//  Each test runs in a process of its own, so s_dir is made afresh for each.
static void s_teardown (void)
{
    char command[256];
    snprintf (command, sizeof command, "rm -rf '%s'", s_dir);
    cr_assert_eq (system (command), 0);
}

TestSuite (totals, .init = s_setup, .fini = s_teardown);

Test (totals, writes_the_entries_in_order_and_replaces_the_old_file)
{
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    FILE *old = fopen (path, "w");
    cr_assert_not_null (old);
    fputs ("stale\t1\nlines\t2\n", old);
    fclose (old);
    tl_entry_t entries[] = {{"the", 3, UINT64_MAX}, {"a b", 3, 7}, {"", 0, 0}, {"tab\there", 8, 1}};
    cr_assert_eq (tl_totals_write (path, entries, 4, NULL), 0);
    size_t size;
    char *data = tl_test_read_file (path, &size);
    const char expected[] = "the\t18446744073709551615\na b\t7\n\t0\ntab\there\t1\n";
    cr_assert_eq (size, sizeof expected - 1);
    cr_assert (memcmp (data, expected, size) == 0, "%.*s", (int)size, data);
    free (data);
    s_expect_files (1);

    cr_assert_eq (tl_totals_write (path, NULL, 0, NULL), 0, "a job without keys");
    data = tl_test_read_file (path, &size);
    cr_assert_eq (size, 0);
    free (data);
    s_expect_files (1);
}

//  n lines of short keys, with keys as long as TL_KEY_MAX among them, written and
//  checked against the same lines formatted with sprintf.
static void s_check_long_file (size_t lines)
{
    tl_entry_t *entries = calloc (lines + 3, sizeof *entries);
    char *big = malloc (TL_KEY_MAX);
    cr_assert (entries && big);
    memset (big, 'k', TL_KEY_MAX);
    char (*keys)[12] = malloc (lines * sizeof *keys);
    cr_assert_not_null (keys);
    size_t n = 0;
    for (size_t i = 0; i < lines; i++) {
        if (i == 1000 || i == lines * 7 / 20) entries[n++] = (tl_entry_t){big, TL_KEY_MAX, i};
        if (i == lines * 3 / 4) entries[n++] = (tl_entry_t){big, TL_KEY_MAX - 21, UINT64_MAX};
        int len = snprintf (keys[i], sizeof keys[i], "w%zu", i * 2654435761u % 1000003);
        entries[n++] = (tl_entry_t){keys[i], (uint32_t)len, (uint64_t)i * 9973 % 100003};
    }
    size_t want_size = 0;
    for (size_t i = 0; i < n; i++)
        want_size += entries[i].len + 22;
    char *want = malloc (want_size), *at = want;
    cr_assert_not_null (want);
    for (size_t i = 0; i < n; i++) {
        memcpy (at, entries[i].key, entries[i].len);
        at += entries[i].len;
        at += sprintf (at, "\t%llu\n", (unsigned long long)entries[i].count);
    }
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    cr_assert_eq (tl_totals_write (path, entries, n, NULL), 0);
    size_t size;
    char *data = tl_test_read_file (path, &size);
    cr_assert_eq (size, (size_t)(at - want), "%zu bytes written, %zu expected", size,
                  (size_t)(at - want));
    cr_assert (memcmp (data, want, size) == 0, "the file differs from the lines expected");
    free (data);
    free (want);
    free (big);
    free (keys);
    free (entries);
}

//  200,000 lines: formatted on several threads, each block written at its offset.
Test (totals, long_files_and_the_longest_keys_are_written_whole, .timeout = 60)
{
    s_check_long_file (200000);
}

//  Fewer lines than threads are started for: the blocks on this thread, some longer
//  than 1 MiB for the longest keys.
Test (totals, short_lists_with_the_longest_keys_are_written_whole, .timeout = 60)
{
    s_check_long_file (30000);
}

Test (totals, a_missing_folder_fails_with_errno)
{
    char path[256];
    snprintf (path, sizeof path, "%s/missing/totals.tsv", s_dir);
    tl_entry_t entry = {"a", 1, 1};
    errno = 0;
    cr_assert_eq (tl_totals_write (path, &entry, 1, NULL), -1);
    cr_assert_eq (errno, ENOENT);
    s_expect_files (0);
}

Test (totals, a_failed_rename_leaves_no_temporary_file)
{
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    cr_assert_eq (mkdir (path, 0700), 0);  //  A folder where the file should go
    tl_entry_t entry = {"a", 1, 1};
    errno = 0;
    cr_assert_eq (tl_totals_write (path, &entry, 1, NULL), -1);
    cr_assert_eq (errno, EISDIR);
    s_expect_files (1);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0);
    cr_assert (S_ISDIR (st.st_mode), "the folder is still there");
}

Test (totals, the_file_is_readable_as_the_umask_allows)
{
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    mode_t old = umask (027);
    tl_entry_t entry = {"a", 1, 1};
    cr_assert_eq (tl_totals_write (path, &entry, 1, NULL), 0);
    umask (old);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);
}

//  ---------------------------------------------------------------------------------
//  Temporary files

//  The one entry of s_dir other than path's own name, in a static buffer; fails the
//  test unless there is exactly one.
static const char *s_other_entry (const char *name)
{
    static char found[256];
    int n = 0;
    DIR *folder = opendir (s_dir);
    cr_assert_not_null (folder);
    struct dirent *entry;
    while ((entry = readdir (folder)))
        if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, "..") &&
            strcmp (entry->d_name, name)) {
            snprintf (found, sizeof found, "%s", entry->d_name);
            n++;
        }
    closedir (folder);
    cr_assert_eq (n, 1, "%d other entries", n);
    return found;
}

Test (totals, temporary_names_differ_and_cannot_be_guessed)
{
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    tl_replace_t *one = tl_replace_new (path, 0666);
    cr_assert_not_null (one);
    char first[256];
    snprintf (first, sizeof first, "%s", s_other_entry ("totals.tsv"));
    tl_replace_t *two = tl_replace_new (path, 0666);
    cr_assert_not_null (two, "a second writer of the same file gets a name of its own");
    s_expect_files (2);
    tl_replace_destroy (&one);
    const char *second = s_other_entry ("totals.tsv");
    cr_assert_str_neq (first, second);
    char pid_name[64];
    snprintf (pid_name, sizeof pid_name, "totals.tsv.tmp.%d", (int)getpid ());
    cr_assert_str_neq (first, pid_name, "the name is not made of the pid");
    cr_assert_str_neq (second, pid_name);
    cr_assert_eq (strncmp (first, "totals.tsv.tmp.", 15), 0, "%s", first);
    cr_assert_eq (strlen (first), strlen ("totals.tsv.tmp.") + 6, "%s", first);
    tl_replace_destroy (&two);
    cr_assert_null (two);
    s_expect_files (0);

    tl_entry_t entry = {"a", 1, 1};
    cr_assert_eq (tl_totals_write (path, &entry, 1, NULL), 0);
    cr_assert_eq (tl_totals_write (path, &entry, 1, NULL), 0);
    s_expect_files (1);  //  Two writes leave only the totals behind
}

Test (totals, a_symbolic_link_at_the_old_temporary_name_is_not_followed)
{
    char path[256], victim[256], link[300];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    snprintf (victim, sizeof victim, "%s/victim", s_dir);
    snprintf (link, sizeof link, "%s.tmp.%d", path, (int)getpid ());
    FILE *file = fopen (victim, "w");
    cr_assert_not_null (file);
    fputs ("precious\n", file);
    fclose (file);
    cr_assert_eq (symlink (victim, link), 0);

    tl_entry_t entry = {"key", 3, 42};
    cr_assert_eq (tl_totals_write (path, &entry, 1, NULL), 0);
    size_t size;
    char *data = tl_test_read_file (victim, &size);
    cr_assert_eq (size, 9);
    cr_assert (memcmp (data, "precious\n", 9) == 0, "the link's target is untouched");
    free (data);
    data = tl_test_read_file (path, &size);
    cr_assert_eq (size, 7);
    cr_assert (memcmp (data, "key\t42\n", 7) == 0);
    free (data);
    struct stat st;
    cr_assert_eq (lstat (link, &st), 0);
    cr_assert (S_ISLNK (st.st_mode), "the planted link is left alone");
    s_expect_files (3);
}

Test (totals, a_symbolic_link_at_the_totals_name_is_replaced_not_followed)
{
    char path[256], victim[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    snprintf (victim, sizeof victim, "%s/victim", s_dir);
    FILE *file = fopen (victim, "w");
    cr_assert_not_null (file);
    fputs ("precious\n", file);
    fclose (file);
    cr_assert_eq (symlink (victim, path), 0);
    tl_entry_t entry = {"key", 3, 42};
    cr_assert_eq (tl_totals_write (path, &entry, 1, NULL), 0);
    struct stat st;
    cr_assert_eq (lstat (path, &st), 0);
    cr_assert (S_ISREG (st.st_mode), "the totals are a file of their own");
    size_t size;
    char *data = tl_test_read_file (victim, &size);
    cr_assert (size == 9 && memcmp (data, "precious\n", 9) == 0, "the link's target is untouched");
    free (data);
}

Test (totals, the_reader_a_commit_returns_outlives_a_later_replacement)
{
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    tl_replace_t *replace = tl_replace_new (path, 0666);
    cr_assert_not_null (replace);
    fputs ("first\t1\n", tl_replace_file (replace));
    int fd;
    cr_assert_eq (tl_replace_commit (&replace, &fd), 0);
    cr_assert_null (replace);
    cr_assert_geq (fd, 0);
    tl_entry_t entry = {"second", 6, 2};
    cr_assert_eq (tl_totals_write (path, &entry, 1, NULL), 0);
    char buffer[64] = "";
    cr_assert_eq (read (fd, buffer, sizeof buffer), 8);
    cr_assert (memcmp (buffer, "first\t1\n", 8) == 0, "%s", buffer);
    close (fd);
    s_expect_files (1);
}

Test (totals, check_says_whether_the_file_could_be_written)
{
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    cr_assert_eq (tl_totals_check (path), 0);
    s_expect_files (0);  //  The file it tried is gone
    snprintf (path, sizeof path, "%s/missing/totals.tsv", s_dir);
    errno = 0;
    cr_assert_eq (tl_totals_check (path), -1);
    cr_assert_eq (errno, ENOENT);
    snprintf (path, sizeof path, "%s", s_dir);
    errno = 0;
    cr_assert_eq (tl_totals_check (path), -1, "the path is a folder");
    cr_assert_eq (errno, EISDIR);
    if (geteuid () != 0) {  //  Root writes into any folder
        cr_assert_eq (chmod (s_dir, 0500), 0);
        snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
        errno = 0;
        cr_assert_eq (tl_totals_check (path), -1);
        cr_assert_eq (errno, EACCES);
        cr_assert_eq (chmod (s_dir, 0700), 0);
    }
}

//  ---------------------------------------------------------------------------------
//  Batches read back

//  Writes entries to s_dir/totals.tsv and reads them back in batches of max_keys and
//  max_bytes; checks them against the entries and the count tl_totals_batches gives.
static void s_expect_batches (const tl_entry_t *entries, size_t n, size_t max_keys,
                              size_t max_bytes)
{
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    int fd;
    cr_assert_eq (tl_totals_write (path, entries, n, &fd), 0);
    uint64_t expected = tl_totals_batches (entries, n, max_keys, max_bytes);
    tl_totals_reader_t *reader = tl_totals_reader_new (fd, max_keys, max_bytes);
    cr_assert_not_null (reader);
    uint64_t batches = 0;
    size_t at = 0;
    while (true) {
        const tl_entry_t *batch;
        size_t count;
        cr_assert_eq (tl_totals_reader_next (reader, &batch, &count), 0);
        if (count == 0 && (batches > 0 || n > 0)) break;
        batches++;
        size_t bytes = 0;
        for (size_t i = 0; i < count; i++, at++) {
            cr_assert_lt (at, n);
            cr_assert_eq (batch[i].len, entries[at].len, "entry %zu", at);
            cr_assert (memcmp (batch[i].key, entries[at].key, batch[i].len) == 0, "entry %zu", at);
            cr_assert_eq (batch[i].count, entries[at].count, "entry %zu", at);
            bytes += tl_totals_entry_bytes (&batch[i]);
        }
        cr_assert_leq (count, max_keys);
        cr_assert (count == 1 || bytes <= max_bytes, "%zu entries of %zu bytes", count, bytes);
        if (count == 0) break;  //  The one empty batch of a job without keys
    }
    cr_assert_eq (at, n, "every entry, once");
    cr_assert_eq (batches, expected, "%llu batches read, %llu counted", (unsigned long long)batches,
                  (unsigned long long)expected);
    cr_assert_eq (tl_totals_reader_skipped (reader), 0);
    tl_totals_reader_destroy (&reader);
    cr_assert_null (reader);
}

Test (totals, batches_are_cut_at_the_key_count_or_the_byte_limit)
{
    //  Keys of 0 to 2999 bytes, a few holding a TAB, and one longer than a whole batch.
    enum { N = 500 };
    static char text[N][3000];
    static tl_entry_t entries[N];
    for (size_t i = 0; i < N; i++) {
        size_t len = (i * 7919) % 3000;
        if (i == 123) len = 2999;
        memset (text[i], 'a' + (int)(i % 26), len);
        if (len > 2 && i % 10 == 0) text[i][1] = '\t';
        entries[i] = (tl_entry_t){text[i], (uint32_t)len, (uint64_t)(N - i) * 1000003u};
    }
    entries[7].count = UINT64_MAX;
    s_expect_batches (entries, N, 10000, 256 * 1024);  //  Cut by bytes
    s_expect_batches (entries, N, 7, 256 * 1024);      //  Cut by keys
    s_expect_batches (entries, N, 50, 20000);          //  By either
    s_expect_batches (entries, N, 1, 1);               //  One entry a batch
    s_expect_batches (entries, N, 1000, 2000);         //  Longer keys alone in theirs
    s_expect_batches (entries, 1, 10, 10);
    cr_assert_eq (tl_totals_batches (entries, N, 1, 1), N);
    cr_assert_eq (tl_totals_batches (entries, N, N, SIZE_MAX), 1);
}

Test (totals, no_entries_make_one_empty_batch)
{
    cr_assert_eq (tl_totals_batches (NULL, 0, 10, 100), 1);
    s_expect_batches (NULL, 0, 10, 100);
}

Test (totals, a_line_that_is_not_key_tab_total_is_skipped)
{
    char path[256];
    snprintf (path, sizeof path, "%s/odd.tsv", s_dir);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fputs ("a\t1\nno tab\nb\t2\n\t3\nc\tx\nd\t\ne\t18446744073709551616\nf\t4", file);
    fclose (file);
    int fd = open (path, O_RDONLY);
    cr_assert_geq (fd, 0);
    tl_totals_reader_t *reader = tl_totals_reader_new (fd, 100, 1000);
    cr_assert_not_null (reader);
    const tl_entry_t *batch;
    size_t count;
    cr_assert_eq (tl_totals_reader_next (reader, &batch, &count), 0);
    cr_assert_eq (count, 4);
    const char *keys[] = {"a", "b", "", "f"};
    uint64_t totals[] = {1, 2, 3, 4};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq (batch[i].len, strlen (keys[i]));
        cr_assert (memcmp (batch[i].key, keys[i], batch[i].len) == 0);
        cr_assert_eq (batch[i].count, totals[i]);
    }
    cr_assert_eq (tl_totals_reader_skipped (reader), 4, "no TAB, not digits, none, too large");
    cr_assert_eq (tl_totals_reader_next (reader, &batch, &count), 0);
    cr_assert_eq (count, 0);
    tl_totals_reader_destroy (&reader);
}

Test (totals, entry_bytes_are_what_an_entry_takes_in_a_totals_message)
{
    static char key[65537];
    uint32_t lens[] = {0, 1, 255, 256, 65535, 65536};
    uint64_t counts[] = {0, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, 1ull << 32, UINT64_MAX};
    msgpack_sbuffer none;
    msgpack_sbuffer_init (&none);
    cr_assert_eq (tl_feed_totals (1, 0, 1, NULL, 0, &none), 0);
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++)
        for (size_t j = 0; j < sizeof counts / sizeof *counts; j++) {
            tl_entry_t entry = {key, lens[i], counts[j]};
            msgpack_sbuffer one;
            msgpack_sbuffer_init (&one);
            cr_assert_eq (tl_feed_totals (1, 0, 1, &entry, 1, &one), 0);
            //  A map of 0 or 1 entries has the same one-byte header.
            cr_assert_eq (tl_totals_entry_bytes (&entry), one.size - none.size,
                          "key of %u bytes, total %llu", lens[i], (unsigned long long)counts[j]);
            msgpack_sbuffer_destroy (&one);
        }
    msgpack_sbuffer_destroy (&none);
}

//  ---------------------------------------------------------------------------------
//  Reading on from an offset (the snapshot service: a fresh reader per batch)

//  A batch as text, "key TAB total LF" an entry, into a new string; sets *count.
static char *s_batch_text (const tl_entry_t *batch, size_t count)
{
    size_t size = 1;
    for (size_t i = 0; i < count; i++)
        size += batch[i].len + 22;
    char *text = malloc (size);
    cr_assert_not_null (text);
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        memcpy (text + at, batch[i].key, batch[i].len);
        at += batch[i].len;
        at +=
            (size_t)snprintf (text + at, size - at, "\t%llu\n", (unsigned long long)batch[i].count);
    }
    text[at] = 0;
    return text;
}

#define S_BATCHES_MAX 4096

//  Reads the file at path with one reader, then batch by batch with a fresh reader per
//  batch from the previous one's offset: both give the same batches, in the same count,
//  and skip the same lines between them; each fresh reader's offset after its batch is
//  where the next batch starts, and at the end the file's size. Returns the batches.
static size_t s_expect_offsets (const char *path, size_t max_keys, size_t max_bytes,
                                uint64_t want_skipped)
{
    struct stat st;
    cr_assert_eq (stat (path, &st), 0);
    static char *batches[S_BATCHES_MAX];
    size_t n = 0;
    int fd = open (path, O_RDONLY);
    cr_assert_geq (fd, 0);
    tl_totals_reader_t *reader = tl_totals_reader_new (fd, max_keys, max_bytes);
    cr_assert_not_null (reader);
    cr_assert_eq (tl_totals_reader_offset (reader), 0);
    while (true) {
        const tl_entry_t *batch;
        size_t count;
        cr_assert_eq (tl_totals_reader_next (reader, &batch, &count), 0);
        if (count == 0 && n > 0) break;
        cr_assert_lt (n, S_BATCHES_MAX);
        batches[n++] = s_batch_text (batch, count);
        if (count == 0) break;  //  A file without entries: one empty batch
    }
    uint64_t skipped = tl_totals_reader_skipped (reader);
    cr_assert_eq (skipped, want_skipped, "%s: %llu lines skipped, not %llu", path,
                  (unsigned long long)skipped, (unsigned long long)want_skipped);
    cr_assert_eq (tl_totals_reader_offset (reader), (uint64_t)st.st_size,
                  "a whole reader ends at the file's size");
    tl_totals_reader_destroy (&reader);

    uint64_t from = 0, fresh_skipped = 0;
    size_t got = 0;
    while (true) {
        fd = open (path, O_RDONLY);
        cr_assert_geq (fd, 0);
        reader = tl_totals_reader_new_at (fd, from, max_keys, max_bytes);
        cr_assert_not_null (reader);
        cr_assert_eq (tl_totals_reader_offset (reader), from);
        const tl_entry_t *batch;
        size_t count;
        cr_assert_eq (tl_totals_reader_next (reader, &batch, &count), 0);
        fresh_skipped += tl_totals_reader_skipped (reader);
        uint64_t next = tl_totals_reader_offset (reader);
        if (count == 0 && got > 0) {
            //  Past the last batch: nothing, and the offset stays at the end.
            cr_assert_eq (from, (uint64_t)st.st_size, "the batches ended before the file did");
            cr_assert_eq (next, from);
            tl_totals_reader_destroy (&reader);
            break;
        }
        cr_assert_lt (got, n, "a fresh reader found batch %zu of %zu", got + 1, n);
        char *text = s_batch_text (batch, count);
        cr_assert_str_eq (text, batches[got], "batch %zu from offset %llu", got,
                          (unsigned long long)from);
        free (text);
        tl_totals_reader_destroy (&reader);
        got++;
        cr_assert (next > from || count == 0, "offset %llu after a batch read from %llu",
                   (unsigned long long)next, (unsigned long long)from);
        cr_assert_leq (next, (uint64_t)st.st_size);
        //  The offset is where a line starts: the file's start or after a LF.
        if (next > 0 && next < (uint64_t)st.st_size) {
            char before;
            fd = open (path, O_RDONLY);
            cr_assert_eq (pread (fd, &before, 1, (off_t)next - 1), 1);
            close (fd);
            cr_assert_eq (before, '\n', "offset %llu is inside a line", (unsigned long long)next);
        }
        from = next;
        if (count == 0) break;  //  The one empty batch of a file without entries
    }
    cr_assert_eq (got, n, "%zu batches batch by batch, %zu with one reader", got, n);
    cr_assert_eq (from, (uint64_t)st.st_size, "the last offset is the file's size");
    cr_assert_eq (fresh_skipped, skipped, "skipped %llu batch by batch, %llu with one reader",
                  (unsigned long long)fresh_skipped, (unsigned long long)skipped);
    for (size_t i = 0; i < n; i++)
        free (batches[i]);
    return n;
}

static void s_write_text (const char *path, const char *text, size_t size)
{
    FILE *file = fopen (path, "wb");
    cr_assert_not_null (file);
    cr_assert_eq (fwrite (text, 1, size, file), size);
    cr_assert_eq (fclose (file), 0);
}

Test (totals, a_fresh_reader_per_batch_from_the_last_offset_reads_the_same_batches)
{
    char path[256];
    snprintf (path, sizeof path, "%s/odd.tsv", s_dir);
    //  Malformed lines first, in the middle (several in a row, where a batch may be cut)
    //  and last; a key holding a TAB; no LF at the end.
    static const char text[] = "no tab\na\t1\nb\t2\nc\tx\n\t3\nd\t\n\ne\t18446744073709551616\n"
                               "f\t4\ng\th\t5\nh\t6\nbad\nworse\t-1\ni\t7\nj\t8\nk\t9\nend";
    s_write_text (path, text, sizeof text - 1);
    //  Skipped: "no tab", "c x", "d ", "", "e 2^64", "bad", "worse -1", "end"; 9 entries.
    for (size_t keys = 1; keys <= 12; keys++)
        s_expect_offsets (path, keys, SIZE_MAX, 8);
    cr_assert_eq (s_expect_offsets (path, 1, SIZE_MAX, 8), 9);
    cr_assert_eq (s_expect_offsets (path, 3, SIZE_MAX, 8), 3);
    cr_assert_eq (s_expect_offsets (path, 100, SIZE_MAX, 8), 1);
    //  Cut by bytes: an entry here takes 4 to 6 bytes in a message.
    for (size_t bytes = 1; bytes <= 40; bytes++)
        s_expect_offsets (path, 100, bytes, 8);
    cr_assert_eq (s_expect_offsets (path, 100, 1, 8), 9);

    //  The same with a final LF, and with the last line a good one without it.
    static const char lf[] = "a\t1\nno\nb\t2\n";
    s_write_text (path, lf, sizeof lf - 1);
    cr_assert_eq (s_expect_offsets (path, 1, SIZE_MAX, 1), 2);
    static const char no_lf[] = "a\t1\nno\nb\t2\nc\t3";
    s_write_text (path, no_lf, sizeof no_lf - 1);
    cr_assert_eq (s_expect_offsets (path, 1, SIZE_MAX, 1), 3);
    cr_assert_eq (s_expect_offsets (path, 2, SIZE_MAX, 1), 2);

    //  Nothing but malformed lines, and an empty file: one empty batch, offset at the end.
    static const char junk[] = "x\ny\n\n";
    s_write_text (path, junk, sizeof junk - 1);
    cr_assert_eq (s_expect_offsets (path, 5, SIZE_MAX, 3), 1);
    s_write_text (path, "", 0);
    cr_assert_eq (s_expect_offsets (path, 5, SIZE_MAX, 0), 1);
    cr_assert_eq (s_expect_offsets (path, 1, 1, 0), 1);
}

Test (totals, offsets_of_a_written_totals_file_with_long_keys)
{
    //  Keys of 0 to 2999 bytes (some with a TAB), as in the batch test, written by
    //  tl_totals_write; batch counts as tl_totals_batches counts them.
    enum { N = 300 };
    static char text[N][3000];
    static tl_entry_t entries[N];
    for (size_t i = 0; i < N; i++) {
        size_t len = (i * 7919) % 3000;
        memset (text[i], 'a' + (int)(i % 26), len);
        if (len > 2 && i % 10 == 0) text[i][1] = '\t';
        entries[i] = (tl_entry_t){text[i], (uint32_t)len, (uint64_t)(N - i) * 1000003u};
    }
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    int fd;
    cr_assert_eq (tl_totals_write (path, entries, N, &fd), 0);
    close (fd);
    static const size_t limits[][2] = {{10000, 256 * 1024}, {7, 256 * 1024}, {50, 20000}, {1, 1},
                                       {1000, 2000},        {N, SIZE_MAX}};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        cr_assert_eq (s_expect_offsets (path, limits[i][0], limits[i][1], 0),
                      tl_totals_batches (entries, N, limits[i][0], limits[i][1]), "limits %zu", i);
}

//  Random files of good and malformed lines, random limits.
Test (totals, offsets_of_random_files, .timeout = 60)
{
    char path[256];
    snprintf (path, sizeof path, "%s/random.tsv", s_dir);
    static char text[64 * 1024];
    for (int round = 0; round < 200; round++) {
        size_t at = 0;
        uint64_t bad = 0;
        size_t lines = tl_test_random () % 200;
        for (size_t i = 0; i < lines && at + 200 < sizeof text; i++) {
            size_t len = tl_test_random () % 40;
            for (size_t j = 0; j < len; j++)
                text[at++] = "ab\tc d"[tl_test_random () % 6];
            if (tl_test_random () % 5 == 0) {
                //  Malformed: no total after the last TAB (or no TAB at all).
                text[at++] = '\t';
                text[at++] = 'x';
                bad++;
            } else
                at += (size_t)sprintf (text + at, "\t%llu", (unsigned long long)tl_test_random ());
            if (i + 1 < lines || tl_test_random () % 2) text[at++] = '\n';
        }
        s_write_text (path, text, at);
        size_t keys = 1 + tl_test_random () % 20;
        size_t bytes = tl_test_random () % 3 ? 1 + tl_test_random () % 300 : SIZE_MAX;
        s_expect_offsets (path, keys, bytes, bad);
    }
}

Test (totals, a_reader_cannot_start_past_int64_max)
{
    char path[256];
    snprintf (path, sizeof path, "%s/totals.tsv", s_dir);
    s_write_text (path, "a\t1\n", 4);
    int fd = open (path, O_RDONLY);
    cr_assert_geq (fd, 0);
    cr_assert_null (tl_totals_reader_new_at (fd, UINT64_MAX, 10, 100));
    errno = 0;
    cr_assert_eq (fcntl (fd, F_GETFD), -1, "the descriptor is closed on failure too");
    cr_assert_eq (errno, EBADF);
    //  Past the end (but positionable): no entries.
    fd = open (path, O_RDONLY);
    tl_totals_reader_t *reader = tl_totals_reader_new_at (fd, 100, 10, 100);
    cr_assert_not_null (reader);
    const tl_entry_t *batch;
    size_t count;
    cr_assert_eq (tl_totals_reader_next (reader, &batch, &count), 0);
    cr_assert_eq (count, 0);
    tl_totals_reader_destroy (&reader);
}
