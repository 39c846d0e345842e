/*  test_totals: the totals file (sink/totals.c) and the file replacement it is
    written through (sink/replace.c). It holds "key TAB total" lines in the order
    given, replaces an older file whole, and when it cannot be written leaves neither
    a temporary file nor a changed target behind. Temporary names cannot be guessed,
    and a symbolic link planted where one was expected is never followed.           */

#include "replace.h"
#include "totals.h"
#include "tl_test.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
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
    cr_assert_eq (tl_totals_write (path, entries, 4), 0);
    size_t size;
    char *data = tl_test_read_file (path, &size);
    const char expected[] = "the\t18446744073709551615\na b\t7\n\t0\ntab\there\t1\n";
    cr_assert_eq (size, sizeof expected - 1);
    cr_assert (memcmp (data, expected, size) == 0, "%.*s", (int)size, data);
    free (data);
    s_expect_files (1);

    cr_assert_eq (tl_totals_write (path, NULL, 0), 0, "a job without keys");
    data = tl_test_read_file (path, &size);
    cr_assert_eq (size, 0);
    free (data);
    s_expect_files (1);
}

Test (totals, a_missing_folder_fails_with_errno)
{
    char path[256];
    snprintf (path, sizeof path, "%s/missing/totals.tsv", s_dir);
    tl_entry_t entry = {"a", 1, 1};
    errno = 0;
    cr_assert_eq (tl_totals_write (path, &entry, 1), -1);
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
    cr_assert_eq (tl_totals_write (path, &entry, 1), -1);
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
    cr_assert_eq (tl_totals_write (path, &entry, 1), 0);
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
    cr_assert_eq (tl_totals_write (path, &entry, 1), 0);
    cr_assert_eq (tl_totals_write (path, &entry, 1), 0);
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
    cr_assert_eq (tl_totals_write (path, &entry, 1), 0);
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
    cr_assert_eq (tl_totals_write (path, &entry, 1), 0);
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
    cr_assert_eq (tl_totals_write (path, &entry, 1), 0);
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
