/*  tl_table: a hash table from byte-string keys to uint64 counts.

    The hot path of the worker (one table per chunk, cleared and reused) and of the sink
    (one table per job, holding the totals). Keys are copied into an arena owned by the
    table; lookups use a keyed hash (XXH3, or XXH3's mixing of two words for keys of up to
    16 bytes). The table grows as needed and can be iterated, sorted (total descending,
    then key bytewise ascending) and asked for its top K.                                */

#ifndef TL_TABLE_H_INCLUDED
#define TL_TABLE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _tl_table_t tl_table_t;

//  One key and its total, as handed out by iteration, sort and top-K. The key
//  points into the table's arena: valid until the table is cleared or destroyed.
typedef struct {
    const char *key;  //  Key bytes, not NUL-terminated
    uint32_t len;     //  Key length in bytes
    uint64_t count;   //  Total for this key
} tl_entry_t;

//  Longest key the table accepts (and so the protocol and mapper).
#define TL_KEY_MAX (1u << 20)

//  Creates an empty table sized for about capacity_hint keys (0 for a default).
//  Returns NULL only when memory is exhausted.
tl_table_t *tl_table_new (size_t capacity_hint);

//  Frees the table and its arena; sets *self_p to NULL. Harmless on NULL.
void tl_table_destroy (tl_table_t **self_p);

//  Adds count to the key's total, inserting the key when new. A total that would pass
//  UINT64_MAX stays at UINT64_MAX and the call returns 1 (the caller reports it); 0 on
//  success, -1 when memory is exhausted or len > TL_KEY_MAX (the table is unchanged).
int tl_table_add (tl_table_t *self, const void *key, size_t len, uint64_t count);

//  One entry for tl_table_add_batch. key may point anywhere; it is copied when new.
typedef struct {
    const void *key;  //  Key bytes
    size_t len;       //  Key length, at most TL_KEY_MAX
    uint64_t count;   //  Added to the key's total
} tl_kv_t;

//  Most entries one tl_table_add_batch takes.
#define TL_TABLE_BATCH 16

//  Adds n entries (n <= TL_TABLE_BATCH), in order, as n calls of tl_table_add would.
//  It hashes them all and prefetches the slots (then the keys) they will touch before
//  it adds the first, so that the cache misses of a large table overlap instead of
//  following one another. Returns the number of totals that saturated (0 mostly), or
//  -1 when memory is exhausted or a len is too long (the entries before it are added).
int tl_table_add_batch (tl_table_t *self, const tl_kv_t *kv, size_t n);

//  The add of one key in two steps, for callers that know their next keys well ahead
//  (the text mapper): tl_table_prepare hashes the key and prefetches its slot; some
//  keys later tl_table_add_prepared adds it, as tl_table_add would, with the slot
//  likely in the cache by then. The hash is the key's whole hash, so it stays right when
//  an add in between grows the table (only the prefetch is wasted then).
uint64_t tl_table_prepare (tl_table_t *self, const void *key, size_t len);
int tl_table_add_prepared (tl_table_t *self, uint64_t hash, const void *key, size_t len,
                           uint64_t count);

//  Looks up a key. Returns true and sets *count when present.
bool tl_table_get (tl_table_t *self, const void *key, size_t len, uint64_t *count);

//  Number of distinct keys.
size_t tl_table_size (tl_table_t *self);

//  Sum of all totals (saturating at UINT64_MAX).
uint64_t tl_table_sum (tl_table_t *self);

//  Bytes held by slots and arena.
size_t tl_table_memory (tl_table_t *self);

//  Removes every key but keeps the memory for reuse.
void tl_table_clear (tl_table_t *self);

//  Tells a large table that it is expected to hold about keys keys before long. When
//  those would need its next doubling and it is half way there, its slot array is
//  doubled in size now (in place) and the new half's pages are faulted in by a
//  background thread, so that the doubling itself only moves keys. Best effort:
//  without memory or a thread nothing is prepared. The new half is held until that
//  doubling, and is wasted when the table never gets there: expect only what is likely.
void tl_table_expect (tl_table_t *self, size_t keys);

//  Iteration, in no particular order. Start with *cursor = 0; returns false when done.
//  The table must not change during an iteration.
bool tl_table_next (tl_table_t *self, size_t *cursor, tl_entry_t *entry);

//  Adds every entry of other into self. Returns as tl_table_add (1 if any total saturated).
int tl_table_merge (tl_table_t *self, tl_table_t *other);

//  Returns a newly allocated array of every entry, sorted by count descending, then
//  key bytewise ascending (shorter first on a common prefix); sets *size. The caller
//  frees the array with tl_table_entries_free. NULL when memory is exhausted (or the
//  table is empty, *size then 0).
tl_entry_t *tl_table_sorted (tl_table_t *self, size_t *size);

//  As tl_table_sorted, but sorts in the table's own slot array and hands that to the
//  caller (who frees it with tl_table_entries_free): no second array of gigabytes for tens of
//  millions of keys to allocate and fault in. The table is left without slots: its
//  size and sum still answer, its arena holds the entries' keys (so it must outlive
//  them), and destroying it is all that is left to do with it. NULL only when the
//  table is empty (*size then 0).
tl_entry_t *tl_table_sorted_take (tl_table_t *self, size_t *size);

//  Frees an array that tl_table_sorted or tl_table_sorted_take returned (NULL: nothing).
void tl_table_entries_free (tl_entry_t *entries);

//  Fills out with the k largest entries in the same order as tl_table_sorted, in
//  O(n log k). Returns how many were written (min of k and size).
size_t tl_table_top (tl_table_t *self, size_t k, tl_entry_t *out);

//  Orders two entries as tl_table_sorted does (for qsort).
int tl_entry_compare (const void *a, const void *b);

#endif
