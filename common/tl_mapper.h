/*  tl_mapper: whole lines in, a partial dictionary (key -> sum of counts) out.

    In n-gram files a key's years sit on consecutive lines, so the mapper sums a run of
    equal keys before touching the table: most lines never hash. No allocation per line
    or per key. A malformed line (too few columns, a year or count that is not plain
    decimal digits, a count beyond 64 bits, an empty key) is skipped and counted, with
    its byte offset for the first few, and changes no other count. A trailing CR
    before LF is accepted (CRLF files).                                               */

#ifndef TL_MAPPER_H_INCLUDED
#define TL_MAPPER_H_INCLUDED

#include "tl_format.h"
#include "tl_table.h"

typedef struct {
    uint64_t lines;                       //  Lines seen, bad ones included
    uint64_t bad_lines;                   //  Malformed lines skipped
    uint64_t filtered;                    //  Good lines left out by the filter
    uint64_t overflows;                   //  Totals that saturated at UINT64_MAX
    uint64_t bad_offset[TL_BAD_SAMPLES];  //  Byte offsets (in data) of the first bad lines
    uint32_t bad_samples;                 //  How many of bad_offset are set
} tl_map_stats_t;

//  Maps data (whole lines; the last may lack its LF) of a concrete format (not AUTO)
//  into table, adding to what it holds. Adds to *stats (zero it first). Returns 0, or
//  -1 when the table ran out of memory (then the table holds part of the data).
int tl_map (tl_table_t *table, tl_format_t format, const tl_filter_t *filter, const char *data,
            size_t size, tl_map_stats_t *stats);

#endif
