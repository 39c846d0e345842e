/*  tl_test: small helpers the Criterion tests share (reading fixtures, finding the
    source tree). Header-only: each test program includes it once.                  */

#ifndef TL_TEST_H_INCLUDED
#define TL_TEST_H_INCLUDED

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The repository root: $TALLY_SOURCE_DIR, else the one the test was built from.
static inline const char *tl_test_source_dir (void)
{
    const char *dir = getenv ("TALLY_SOURCE_DIR");
    return dir ? dir : TALLY_SOURCE_DIR;
}

//  Reads a whole file (also a FIFO) into a new buffer with one spare byte; sets *size.
//  Fails the test when the file cannot be read. The caller frees the buffer.
static inline char *tl_test_read_file (const char *path, size_t *size)
{
    FILE *file = fopen (path, "rb");
    cr_assert_not_null (file, "%s: %s", path, strerror (errno));
    size_t capacity = 1 << 16, length = 0, n;
    char *data = malloc (capacity + 1);
    cr_assert_not_null (data);
    while ((n = fread (data + length, 1, capacity - length, file)) > 0) {
        length += n;
        if (length == capacity) {
            data = realloc (data, (capacity *= 2) + 1);
            cr_assert_not_null (data);
        }
    }
    fclose (file);
    *size = length;
    return data;
}

#endif
