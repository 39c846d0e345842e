/*  test_totals: the totals file (sink/totals.c). It holds "key TAB total" lines in the
    order given, replaces an older file whole, and when it cannot be written leaves
    neither a temporary file nor a changed target behind.                            */

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
