/*  tl_test: small helpers the Criterion tests share (reading fixtures, finding the
    source tree, reproducible random numbers and frame mutations). Header-only: each
    test program includes it once.                                                   */

#ifndef TL_TEST_H_INCLUDED
#define TL_TEST_H_INCLUDED

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
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

//  Reproducible random numbers (splitmix64 from a fixed seed): a failure reproduces.
static inline uint64_t tl_test_random (void)
{
    static uint64_t state = 0x9e3779b97f4a7c15ull;
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

//  Mutates bytes[0..*size) in place (capacity cap) one to three times: a byte replaced or
//  a bit flipped, the end cut off, a byte inserted or removed. Bytes that msgpack parsers
//  treat specially are favoured, so that headers turn into other headers.
static inline void tl_test_mutate (uint8_t *bytes, size_t *size, size_t cap)
{
    static const uint8_t special[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                      0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc6, 0xc7, 0xc9,
                                      0xca, 0xcb, 0xcc, 0xcf, 0xd0, 0xd3, 0xd4, 0xd8,
                                      0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
    int ops = 1 + (int)(tl_test_random () % 3);
    for (int op = 0; op < ops; op++) {
        size_t at = *size ? tl_test_random () % *size : 0;
        switch (tl_test_random () % 6) {
        case 0:
            if (*size) bytes[at] = (uint8_t)tl_test_random ();
            break;
        case 1:
            if (*size) bytes[at] ^= (uint8_t)(1u << (tl_test_random () % 8));
            break;
        case 2:
            if (*size) bytes[at] = special[tl_test_random () % sizeof special];
            break;
        case 3:
            *size = *size ? tl_test_random () % *size : 0;
            break;
        case 4:
            if (*size < cap) {
                memmove (bytes + at + 1, bytes + at, *size - at);
                bytes[at] = special[tl_test_random () % sizeof special];
                (*size)++;
            }
            break;
        default:
            if (*size) {
                memmove (bytes + at, bytes + at + 1, *size - at - 1);
                (*size)--;
            }
            break;
        }
    }
}

#endif
