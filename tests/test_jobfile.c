/*  test_jobfile: the ventilator's job file (ventilator/jobfile.c). A job written and
    read back is the same job: id, secret, options, and every input's name (spaces,
    tabs, UTF-8), size and modification time to the nanosecond. A missing file reads
    as "no job"; a file that is not one the ventilator wrote (another header, cut
    short, a bad field, more files announced than listed, anything after the last
    file, random mutations of a good file) reads as -1 with a message naming it, and
    never crashes. A name holding a line feed cannot be written; the file has mode
    0600 and is replaced whole.                                                       */

#include "jobfile.h"
#include "tl_test.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  ---------------------------------------------------------------------------------
//  Helpers

#define S_ERROR_MAX 8192

static char s_dir[64];  //  This test's scratch folder

static void s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/test_jobfile_XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
}

static void s_teardown (void)
{
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (s_dir[0] && system (cmd) != 0) fprintf (stderr, "could not remove %s\n", s_dir);
}

TestSuite (jobfile, .init = s_setup, .fini = s_teardown);

//  The path of name in the scratch folder, in one of a few static buffers.
static const char *s_path (const char *name)
{
    static char paths[4][PATH_MAX];
    static int next;
    char *path = paths[next++ % 4];
    snprintf (path, PATH_MAX, "%s/%s", s_dir, name);
    return path;
}

static void s_write_bytes (const char *path, const void *data, size_t size)
{
    FILE *file = fopen (path, "wb");
    cr_assert_not_null (file, "%s: %s", path, strerror (errno));
    cr_assert_eq (fwrite (data, 1, size, file), size);
    cr_assert_eq (fclose (file), 0);
}

static void s_write_text (const char *path, const char *text)
{
    s_write_bytes (path, text, strlen (text));
}

//  Entries in the scratch folder.
static int s_count_files (void)
{
    DIR *dir = opendir (s_dir);
    cr_assert_not_null (dir);
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        n += strcmp (entry->d_name, ".") != 0 && strcmp (entry->d_name, "..") != 0;
    closedir (dir);
    return n;
}

//  A job over names (the array is used as is: do not free the result).
static tl_jobfile_t s_job (uint64_t id, const char *spec, char **names, tl_file_id_t *ids, size_t n)
{
    tl_jobfile_t job = {.id = id, .spec = (char *)spec, .nfiles = n, .names = names, .ids = ids};
    for (size_t i = 0; i < TL_SECRET_SIZE; i++)
        job.secret[i] = (uint8_t)(0xf1 * i + 0x0f);  //  00-like and ff-like bytes both
    job.secret[0] = 0x00;
    job.secret[TL_SECRET_SIZE - 1] = 0xff;
    return job;
}

static void s_assert_job_eq (const tl_jobfile_t *a, const tl_jobfile_t *b)
{
    cr_assert_eq (a->id, b->id, "id %016llx, expected %016llx", (unsigned long long)a->id,
                  (unsigned long long)b->id);
    cr_assert_eq (memcmp (a->secret, b->secret, TL_SECRET_SIZE), 0, "secrets differ");
    cr_assert_not_null (a->spec);
    cr_assert_str_eq (a->spec, b->spec);
    cr_assert_eq (a->nfiles, b->nfiles);
    for (size_t i = 0; i < a->nfiles; i++) {
        cr_assert_str_eq (a->names[i], b->names[i], "file %zu: \"%s\", expected \"%s\"", i,
                          a->names[i], b->names[i]);
        cr_assert_eq (a->ids[i].size, b->ids[i].size, "file %zu size", i);
        cr_assert_eq (a->ids[i].mtime, b->ids[i].mtime, "file %zu mtime", i);
        cr_assert_eq (a->ids[i].mtime_ns, b->ids[i].mtime_ns, "file %zu mtime_ns", i);
    }
}

//  Writes job to path (which must work) and reads it back into *back.
static void s_round_trip (const char *path, const tl_jobfile_t *job, tl_jobfile_t *back)
{
    char error[S_ERROR_MAX] = "";
    cr_assert_eq (tl_jobfile_write (path, job, error, sizeof error), 0, "write: %s", error);
    cr_assert_eq (tl_jobfile_read (path, back, error, sizeof error), 1, "read: %s", error);
    s_assert_job_eq (back, job);
}

//  Reads path expecting -1 with a message naming it and an empty job; what says
//  which case it is. Fails the test but goes on, so that every case is reported.
static void s_expect_refused (const char *path, const char *what)
{
    char error[S_ERROR_MAX] = "";
    tl_jobfile_t job;
    memset (&job, 0x5a, sizeof job);
    int rc = tl_jobfile_read (path, &job, error, sizeof error);
    if (rc == 1) {
        cr_expect_eq (rc, -1, "%s: read as a job file", what);
        tl_jobfile_free (&job);
        return;
    }
    cr_expect_eq (rc, -1, "%s: read gave %d, not -1", what, rc);
    cr_expect_not_null (strstr (error, path), "%s: error \"%s\" does not name %s", what, error,
                        path);
    cr_expect (!job.spec && !job.names && !job.ids && job.nfiles == 0, "%s: job left filled in",
               what);
}

static const char *s_spec =
    "format=auto chunk=1048576 max_line=16777216 year_min=0 year_max=9999 skip_pos=0 strict=0";

//  A good file's text: two inputs.
static const char *s_good = "tally-ventilator job 1\n"
                            "id 0123456789abcdef\n"
                            "secret 00112233445566778899aabbccddeeff\n"
                            "spec format=auto chunk=64 max_line=100\n"
                            "files 2\n"
                            "12345 1700000000 123456789 /data/a b.tsv\n"
                            "0 -5 0 données.tsv.gz\n";

//  ---------------------------------------------------------------------------------
//  Round trip

Test (jobfile, round_trip)
{
    char *names[] = {
        "/data/plain.tsv", "name with  spaces .tsv",
        "tab\tinside",     "données/日本語/файл.tsv.gz",
        "trailing space ", "x",
    };
    tl_file_id_t ids[] = {
        {.size = 12345, .mtime = 1700000000, .mtime_ns = 123456789},
        {.size = 0, .mtime = 0, .mtime_ns = 0},
        {.size = UINT64_MAX, .mtime = INT64_MAX, .mtime_ns = 999999999},
        {.size = 1, .mtime = -1, .mtime_ns = 1},
        {.size = 4096, .mtime = INT64_MIN, .mtime_ns = 500000000},
        {.size = 7, .mtime = 1, .mtime_ns = 999999998},
    };
    tl_jobfile_t job = s_job (0x0123456789abcdefu, s_spec, names, ids, 6);
    tl_jobfile_t back;
    s_round_trip (s_path ("job"), &job, &back);
    tl_jobfile_free (&back);
    cr_assert_null (back.names, "free zeroes the job");
    cr_assert_eq (back.nfiles, 0);

    //  Ids at both ends, one file, an empty spec
    job = s_job (0, "", names, ids, 1);
    s_round_trip (s_path ("job"), &job, &back);
    tl_jobfile_free (&back);
    job = s_job (UINT64_MAX, s_spec, names + 5, ids + 5, 1);
    memset (job.secret, 0xff, TL_SECRET_SIZE);
    s_round_trip (s_path ("job"), &job, &back);
    tl_jobfile_free (&back);
    memset (job.secret, 0, TL_SECRET_SIZE);
    s_round_trip (s_path ("job"), &job, &back);
    tl_jobfile_free (&back);
}

Test (jobfile, round_trip_of_real_files)
{
    //  Identities as tl_file_id reads them, nanoseconds included
    const char *paths[] = {s_path ("one.tsv"), s_path ("two words.tsv")};
    s_write_text (paths[0], "a\t1\n");
    s_write_text (paths[1], "bb\t22\nccc\t333\n");
    struct timespec times[2] = {{.tv_sec = 1600000000, .tv_nsec = 987654321},
                                {.tv_sec = 1600000000, .tv_nsec = 987654321}};
    cr_assert_eq (utimensat (AT_FDCWD, paths[0], times, 0), 0);
    char *names[2];
    tl_file_id_t ids[2];
    for (int i = 0; i < 2; i++) {
        names[i] = (char *)paths[i];
        cr_assert_eq (tl_file_id (paths[i], &ids[i]), 0);
    }
    cr_assert_eq (ids[0].mtime, 1600000000);
    cr_assert_eq (ids[0].mtime_ns, 987654321);
    tl_jobfile_t job = s_job (42, s_spec, names, ids, 2);
    tl_jobfile_t back;
    s_round_trip (s_path ("job"), &job, &back);
    tl_jobfile_free (&back);
}

Test (jobfile, round_trip_of_names_with_leading_blanks)
{
    //  Any name but one with a line feed is a name a job may have
    char *names[] = {" leading space.tsv", "\tleading tab.tsv", "  two spaces", "ok"};
    tl_file_id_t ids[] = {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}};
    tl_jobfile_t job = s_job (9, s_spec, names, ids, 4), back;
    char error[S_ERROR_MAX] = "";
    cr_assert_eq (tl_jobfile_write (s_path ("job"), &job, error, sizeof error), 0, "%s", error);
    cr_assert_eq (tl_jobfile_read (s_path ("job"), &back, error, sizeof error), 1, "%s", error);
    cr_assert_eq (back.nfiles, 4);
    for (size_t i = 0; i < 4; i++)
        cr_expect_str_eq (back.names[i], names[i], "file %zu: \"%s\", expected \"%s\"", i,
                          back.names[i], names[i]);
    tl_jobfile_free (&back);
}

Test (jobfile, written_text)
{
    //  The documented format, field by field
    char *names[] = {"/data/a b.tsv", "données.tsv.gz"};
    tl_file_id_t ids[] = {{12345, 1700000000, 123456789}, {0, -5, 0}};
    tl_jobfile_t job =
        s_job (0x0123456789abcdefu, "format=auto chunk=64 max_line=100", names, ids, 2);
    for (size_t i = 0; i < TL_SECRET_SIZE; i++)
        job.secret[i] = (uint8_t)(0x11 * i);
    char error[S_ERROR_MAX] = "";
    cr_assert_eq (tl_jobfile_write (s_path ("job"), &job, error, sizeof error), 0, "%s", error);
    size_t size;
    char *text = tl_test_read_file (s_path ("job"), &size);
    text[size] = 0;
    cr_assert_str_eq (text, s_good);
    free (text);
    //  And the reader takes that text
    s_write_text (s_path ("good"), s_good);
    tl_jobfile_t back;
    cr_assert_eq (tl_jobfile_read (s_path ("good"), &back, error, sizeof error), 1, "%s", error);
    s_assert_job_eq (&back, &job);
    tl_jobfile_free (&back);
}

//  ---------------------------------------------------------------------------------
//  Missing and malformed files

Test (jobfile, missing_file_is_no_job)
{
    char error[S_ERROR_MAX] = "untouched";
    tl_jobfile_t job;
    memset (&job, 0x5a, sizeof job);
    cr_assert_eq (tl_jobfile_read (s_path ("none"), &job, error, sizeof error), 0);
    cr_assert_null (job.spec);
    cr_assert_null (job.names);
    cr_assert_null (job.ids);
    cr_assert_eq (job.nfiles, 0);
    cr_assert_eq (job.id, 0);
    tl_jobfile_free (&job);
    //  Nor is a missing folder an error
    cr_assert_eq (tl_jobfile_read (s_path ("no/such/job"), &job, error, sizeof error), 0);
}

Test (jobfile, malformed_files_are_refused)
{
    static const struct {
        const char *what;  //  The case
        const char *text;  //  The file
    } cases[] = {
        {"empty file", ""},
        {"a lone LF", "\n"},
        {"wrong header", "tally-ventilator job 2\nid 0123456789abcdef\n"
                         "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"},
        {"another program's file", "hello world\n"},
        {"header with CR", "tally-ventilator job 1\r\nid 0123456789abcdef\n"
                           "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"},
        {"header only", "tally-ventilator job 1\n"},
        {"id not hex", "tally-ventilator job 1\nid 01234567zzabcdef\n"
                       "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"},
        {"id too long", "tally-ventilator job 1\nid 0123456789abcdef0\n"
                        "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"},
        {"id empty", "tally-ventilator job 1\nid \n"
                     "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"},
        {"id with junk", "tally-ventilator job 1\nid 0123 x\n"
                         "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"},
        {"no id line", "tally-ventilator job 1\n"
                       "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"},
        {"secret short", "tally-ventilator job 1\nid 0123456789abcdef\n"
                         "secret 00112233445566778899aabbccddee\nspec x\nfiles 1\n1 2 3 a\n"},
        {"secret odd", "tally-ventilator job 1\nid 0123456789abcdef\n"
                       "secret 00112233445566778899aabbccddeef\nspec x\nfiles 1\n1 2 3 a\n"},
        {"secret long", "tally-ventilator job 1\nid 0123456789abcdef\n"
                        "secret 00112233445566778899aabbccddeeff00\nspec x\nfiles 1\n1 2 3 a\n"},
        {"secret very long", "tally-ventilator job 1\nid 0123456789abcdef\n"
                             "secret 00112233445566778899aabbccddeeff00112233445566778899aabbcc"
                             "ddeeff00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"},
        {"secret not hex", "tally-ventilator job 1\nid 0123456789abcdef\n"
                           "secret 0011223344556677gg99aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"},
        {"secret empty", "tally-ventilator job 1\nid 0123456789abcdef\nsecret \nspec x\nfiles 1\n"
                         "1 2 3 a\n"},
        {"no secret line", "tally-ventilator job 1\nid 0123456789abcdef\nspec x\nfiles 1\n"
                           "1 2 3 a\n"},
        {"no spec line", "tally-ventilator job 1\nid 0123456789abcdef\n"
                         "secret 00112233445566778899aabbccddeeff\nfiles 1\n1 2 3 a\n"},
        {"files zero", "tally-ventilator job 1\nid 0123456789abcdef\n"
                       "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 0\n"},
        {"files not a number", "tally-ventilator job 1\nid 0123456789abcdef\n"
                               "secret 00112233445566778899aabbccddeeff\nspec x\nfiles two\n"
                               "1 2 3 a\n1 2 3 b\n"},
        {"files with junk",
         "tally-ventilator job 1\nid 0123456789abcdef\n"
         "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1 x\n1 2 3 a\n"},
        {"files negative", "tally-ventilator job 1\nid 0123456789abcdef\n"
                           "secret 00112233445566778899aabbccddeeff\nspec x\nfiles -1\n1 2 3 a\n"},
        {"files beyond the protocol's limit", "tally-ventilator job 1\nid 0123456789abcdef\n"
                                              "secret 00112233445566778899aabbccddeeff\nspec x\n"
                                              "files 65537\n1 2 3 a\n"},
        {"files huge", "tally-ventilator job 1\nid 0123456789abcdef\n"
                       "secret 00112233445566778899aabbccddeeff\nspec x\n"
                       "files 18446744073709551615\n1 2 3 a\n"},
        {"more files than lines", "tally-ventilator job 1\nid 0123456789abcdef\n"
                                  "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 3\n"
                                  "1 2 3 a\n4 5 6 b\n"},
        {"no files line", "tally-ventilator job 1\nid 0123456789abcdef\n"
                          "secret 00112233445566778899aabbccddeeff\nspec x\n"},
        {"file line without a name", "tally-ventilator job 1\nid 0123456789abcdef\n"
                                     "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n"
                                     "1 2 3\n"},
        {"file line without a name, one space", "tally-ventilator job 1\nid 0123456789abcdef\n"
                                                "secret 00112233445566778899aabbccddeeff\n"
                                                "spec x\nfiles 1\n1 2 3 \n"},
        {"file line of two numbers", "tally-ventilator job 1\nid 0123456789abcdef\n"
                                     "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n"
                                     "1 2 name\n"},
        {"file size not a number", "tally-ventilator job 1\nid 0123456789abcdef\n"
                                   "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n"
                                   "big 2 3 a\n"},
        {"empty file line", "tally-ventilator job 1\nid 0123456789abcdef\n"
                            "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n\n"},
        {"trailing junk", "tally-ventilator job 1\nid 0123456789abcdef\n"
                          "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n"
                          "junk\n"},
        {"trailing junk without LF", "tally-ventilator job 1\nid 0123456789abcdef\n"
                                     "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n"
                                     "1 2 3 a\njunk"},
        {"trailing empty line", "tally-ventilator job 1\nid 0123456789abcdef\n"
                                "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n"
                                "1 2 3 a\n\n"},
        {"one file line too many", "tally-ventilator job 1\nid 0123456789abcdef\n"
                                   "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n"
                                   "1 2 3 a\n4 5 6 b\n"},
        {"lines in another order", "tally-ventilator job 1\n"
                                   "secret 00112233445566778899aabbccddeeff\n"
                                   "id 0123456789abcdef\nspec x\nfiles 1\n1 2 3 a\n"},
    };
    //  The skeleton the cases vary is itself good
    const char *path = s_path ("job");
    s_write_text (path, "tally-ventilator job 1\nid 0123456789abcdef\n"
                        "secret 00112233445566778899aabbccddeeff\nspec x\nfiles 1\n1 2 3 a\n");
    char error[S_ERROR_MAX];
    tl_jobfile_t job;
    cr_assert_eq (tl_jobfile_read (path, &job, error, sizeof error), 1, "%s", error);
    cr_assert_str_eq (job.names[0], "a");
    tl_jobfile_free (&job);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        s_write_text (path, cases[i].text);
        s_expect_refused (path, cases[i].what);
    }
}

Test (jobfile, secret_not_of_32_hex_digits_is_refused)
{
    //  32 characters, but not 32 hex digits: scanf would take a lone digit, signs and blanks
    static const char *secrets[] = {
        "00112233445566778899aabbccddeefz", "0g112233445566778899aabbccddeeff",
        "-0112233445566778899aabbccddeeff", "+0112233445566778899aabbccddeeff",
        " 0112233445566778899aabbccddeeff", "00112233445566778899aabbccddee-f",
        "00 12233445566778899aabbccddeeff", "0x112233445566778899aabbccddeeff",
    };
    const char *path = s_path ("job");
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++) {
        char text[512];
        snprintf (text, sizeof text,
                  "tally-ventilator job 1\nid 0123456789abcdef\nsecret %s\nspec x\nfiles 1\n"
                  "1 2 3 a\n",
                  secrets[i]);
        s_write_text (path, text);
        char what[128];
        snprintf (what, sizeof what, "secret \"%s\"", secrets[i]);
        s_expect_refused (path, what);
    }
}

Test (jobfile, cut_anywhere_before_the_last_name_is_refused)
{
    //  Every prefix of a good file that ends before its last name begins
    size_t len = strlen (s_good);
    const char *last_line = s_good + len - strlen ("0 -5 0 données.tsv.gz\n");
    size_t name_at = (size_t)(last_line - s_good) + strlen ("0 -5 0 ");
    const char *path = s_path ("job");
    for (size_t cut = 0; cut < name_at; cut++) {
        s_write_bytes (path, s_good, cut);
        char what[64];
        snprintf (what, sizeof what, "the first %zu of %zu bytes", cut, len);
        s_expect_refused (path, what);
    }
    //  The whole file, with or without its last LF, is good
    char error[S_ERROR_MAX];
    tl_jobfile_t job;
    s_write_bytes (path, s_good, len - 1);
    cr_assert_eq (tl_jobfile_read (path, &job, error, sizeof error), 1, "%s", error);
    cr_assert_str_eq (job.names[1], "données.tsv.gz");
    tl_jobfile_free (&job);
}

Test (jobfile, nul_bytes_are_refused)
{
    //  Text files: a NUL byte cuts a field short where C strings see it
    const char *path = s_path ("job");
    size_t len = strlen (s_good);
    static const char *spots[] = {"job 1\n", "def\n", "eeff\n", "=100\n", "files 2\n", "b.tsv\n"};
    for (size_t i = 0; i < sizeof spots / sizeof *spots; i++) {
        //  NUL and junk put before the LF of that line
        const char *at = strstr (s_good, spots[i]);
        cr_assert_not_null (at);
        size_t lf = (size_t)(at - s_good) + strlen (spots[i]) - 1;
        char text[1024];
        memcpy (text, s_good, lf);
        memcpy (text + lf, "\0junk", 5);
        memcpy (text + lf + 5, s_good + lf, len - lf);
        s_write_bytes (path, text, len + 5);
        char what[64];
        snprintf (what, sizeof what, "NUL at the end of line \"%.*s\"",
                  (int)strcspn (spots[i], "\n"), spots[i]);
        s_expect_refused (path, what);
    }
}

Test (jobfile, a_folder_is_refused)
{
    const char *path = s_path ("folder");
    cr_assert_eq (mkdir (path, 0700), 0);
    s_expect_refused (path, "a folder");
}

//  Random mutations of a good file: each is refused with a message naming the file, or
//  read as a job that holds together and reads back the same once written again.
Test (jobfile, mutations_never_crash)
{
    size_t len = strlen (s_good);
    const char *path = s_path ("job"), *again = s_path ("again");
    uint8_t bytes[1024];
    int refused = 0, read = 0;
    for (int round = 0; round < 600; round++) {
        size_t size = len;
        memcpy (bytes, s_good, len);
        tl_test_mutate (bytes, &size, sizeof bytes);
        if (round % 3 == 0) tl_test_mutate (bytes, &size, sizeof bytes);
        s_write_bytes (path, bytes, size);
        char error[S_ERROR_MAX] = "";
        tl_jobfile_t job;
        int rc = tl_jobfile_read (path, &job, error, sizeof error);
        cr_assert (rc == 1 || rc == -1, "round %d: read gave %d", round, rc);
        if (rc == -1) {
            cr_assert_not_null (strstr (error, path), "round %d: \"%s\"", round, error);
            cr_assert_null (job.names);
            refused++;
            continue;
        }
        read++;
        cr_assert_not_null (job.spec);
        cr_assert (job.nfiles >= 1 && job.nfiles <= TL_FILES_MAX);
        for (size_t i = 0; i < job.nfiles; i++) {
            cr_assert_not_null (job.names[i]);
            cr_assert_null (strchr (job.names[i], '\n'));
        }
        tl_jobfile_t back;
        if (!strchr (job.spec, '\n')) {
            s_round_trip (again, &job, &back);
            tl_jobfile_free (&back);
        }
        tl_jobfile_free (&job);
    }
    cr_log_info ("%d mutations refused, %d read", refused, read);
    cr_assert_gt (refused, 300, "most mutations break the file");
}

//  ---------------------------------------------------------------------------------
//  Writing

Test (jobfile, line_feed_in_a_name_is_refused)
{
    const char *path = s_path ("job");
    char *names[] = {"fine.tsv", "two\nlines.tsv"};
    tl_file_id_t ids[] = {{1, 2, 3}, {4, 5, 6}};
    tl_jobfile_t job = s_job (1, s_spec, names, ids, 2);
    char error[S_ERROR_MAX] = "";
    cr_assert_eq (tl_jobfile_write (path, &job, error, sizeof error), -1);
    cr_assert_not_null (strstr (error, path), "\"%s\" does not name %s", error, path);
    cr_assert_not_null (strstr (error, "line feed"), "%s", error);
    cr_assert_eq (access (path, F_OK), -1, "nothing written");
    cr_assert_eq (s_count_files (), 0, "no temporary file left");

    //  An existing job file stays as it was
    s_write_text (path, s_good);
    names[1] = "\n";
    cr_assert_eq (tl_jobfile_write (path, &job, error, sizeof error), -1);
    size_t size;
    char *text = tl_test_read_file (path, &size);
    cr_assert_eq (size, strlen (s_good));
    cr_assert_eq (memcmp (text, s_good, size), 0);
    free (text);
    cr_assert_eq (s_count_files (), 1);
}

Test (jobfile, written_with_mode_0600)
{
    const char *path = s_path ("job");
    char *names[] = {"a.tsv"};
    tl_file_id_t ids[] = {{1, 2, 3}};
    tl_jobfile_t job = s_job (1, s_spec, names, ids, 1);
    char error[S_ERROR_MAX] = "";
    //  Whatever the umask lets through, and whatever mode the file had before
    mode_t old = umask (0);
    int rc = tl_jobfile_write (path, &job, error, sizeof error);
    umask (old);
    cr_assert_eq (rc, 0, "%s", error);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0);
    cr_assert (S_ISREG (st.st_mode));
    cr_assert_eq (st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
    cr_assert_eq (chmod (path, 0666), 0);
    old = umask (0);
    rc = tl_jobfile_write (path, &job, error, sizeof error);
    umask (old);
    cr_assert_eq (rc, 0, "%s", error);
    cr_assert_eq (stat (path, &st), 0);
    cr_assert_eq (st.st_mode & 07777, 0600, "mode %o after replacing a 0666 file",
                  st.st_mode & 07777);
}

Test (jobfile, write_replaces_the_file_whole)
{
    const char *path = s_path ("job");
    //  A large job first
    enum { N = 300 };
    char *names[N];
    tl_file_id_t ids[N];
    for (int i = 0; i < N; i++) {
        names[i] = malloc (200);
        snprintf (names[i], 200, "/a/rather/long/folder/name/for/input/number/%d.tsv.gz", i);
        ids[i] = (tl_file_id_t){.size = 1000u * (unsigned)i, .mtime = i, .mtime_ns = i};
    }
    tl_jobfile_t big = s_job (1, s_spec, names, ids, N), back;
    s_round_trip (path, &big, &back);
    tl_jobfile_free (&back);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0);
    off_t big_size = st.st_size;

    //  Then a small one over it: nothing of the large one is left
    char *small_names[] = {"b.tsv"};
    tl_file_id_t small_ids[] = {{5, 6, 7}};
    tl_jobfile_t small = s_job (2, "chunk=1", small_names, small_ids, 1);
    s_round_trip (path, &small, &back);
    tl_jobfile_free (&back);
    size_t size;
    char *text = tl_test_read_file (path, &size);
    text[size] = 0;
    cr_assert_lt ((off_t)size, big_size);
    cr_assert_null (strstr (text, "folder"), "a remnant of the large job");
    cr_assert_eq (text[size - 1], '\n');
    free (text);
    cr_assert_eq (s_count_files (), 1, "no temporary file left beside it");

    //  Over a file that is not a job file at all, and larger
    char *junk = malloc (100000);
    memset (junk, 'j', 100000);
    s_write_bytes (path, junk, 100000);
    free (junk);
    s_round_trip (path, &small, &back);
    tl_jobfile_free (&back);
    cr_assert_eq (s_count_files (), 1);
    for (int i = 0; i < N; i++)
        free (names[i]);
}

Test (jobfile, write_to_a_missing_folder_fails)
{
    const char *path = s_path ("no/such/folder/job");
    char *names[] = {"a.tsv"};
    tl_file_id_t ids[] = {{1, 2, 3}};
    tl_jobfile_t job = s_job (1, s_spec, names, ids, 1);
    char error[S_ERROR_MAX] = "";
    cr_assert_eq (tl_jobfile_write (path, &job, error, sizeof error), -1);
    cr_assert_not_null (strstr (error, path), "\"%s\" does not name %s", error, path);
    cr_assert_not_null (strstr (error, strerror (ENOENT)), "%s", error);
}
