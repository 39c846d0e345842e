/*  libFuzzer target for the mapper: any bytes, in every format and with filters on
    and off, must map without a crash, and every byte of input is a line's or part of
    one: the line count never exceeds the LF count + 1.                               */

#include "tl_mapper.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static tl_table_t *table;
    if (!table) table = tl_table_new (0);
    size_t newlines = 0;
    for (size_t i = 0; i < size; i++)
        newlines += data[i] == '\n';
    tl_filter_t filters[] = {TL_FILTER_NONE, {1900, 2000, true}};
    for (int format = TL_FORMAT_NGRAM2009; format < TL_FORMAT_COUNT_; format++)
        for (size_t f = 0; f < 2; f++) {
            tl_map_stats_t stats = {0};
            tl_table_clear (table);
            if (tl_map (table, (tl_format_t)format, &filters[f], (const char *)data, size, &stats))
                abort ();
            if (stats.lines > newlines + 1 || stats.bad_lines > stats.lines) abort ();
        }
    tl_format_detect ((const char *)data, size);
    return 0;
}
