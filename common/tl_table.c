/*  tl_table: byte-string keys to uint64 counts, the hot path of worker and sink.

    Why it is shaped this way:

    - Open addressing with linear probing over a power-of-two array of slots, doubled when
      more than 70% full. A probe walks adjacent slots, so a lookup touches one or two cache
      lines, and the start slot is hash & mask (the hash's low bits are well mixed). The
      hash is keyed with a secret drawn at random when the process starts (s_secret), so
      that nobody can craft keys whose start slots pile up: XXH3 for keys longer than 16
      bytes, and for shorter ones XXH3's mixing of 9 to 16 bytes over the key as two
      masked words, with no branch on the length (s_hash).

    - A slot is 24 bytes: the full 64-bit hash, the count, and one packed 64-bit
      reference to the key: length + 1 (21 bits), arena block index (20 bits) and offset
      in that block (23 bits). The full hash lets a probe reject a non-matching slot without
      reading key bytes, and lets growth rehash from the stored hash without reading keys
      (merge reuses it too). The length sits in the slot, so a probe also rejects on length
      without touching the arena; only a real match (or a 2^-64 hash collision) pays for the
      memcmp. A pointer plus a length would make the slot 32 bytes, a third more memory for
      the sink's tens of millions of slots. The length is stored plus one so that a zero
      reference means "empty slot": a count of 0 and the empty key are both valid entries.

    - Keys are copied, packed, into an arena of blocks that start at 4 KiB and double up to
      8 MiB (a 23-bit offset reaches any byte of a block; 20 bits of block index give 8 TiB).
      Blocks of 8 MiB are large enough for huge pages (below), which the sink's compares
      at random places of a gigabyte arena need. A key longer than 128 KiB gets a block of its own,
   so a long key wastes at most an eighth of a block's tail. Keys never move, so tl_entry_t pointers
   survive growth.

    - tl_table_clear runs once per ~1 MiB chunk in the worker, so it must not cost
      O(capacity) when a table that once grew large now holds a few keys. The table notes
      the first capacity/8 slots it fills since the last clear in `touched`; clear resets
      just those slots, or memsets the slot array when more were filled (past that point a
      sequential memset costs about what the scattered writes would). Arena blocks are kept
      and refilled from the first; only the blocks of long keys are freed.             */

#include "tl_table.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
//  XXH3 compiled in here rather than called in libxxhash: keys are mostly a few bytes,
//  and the call and its length dispatch cost as much as the hashing.
#define XXH_INLINE_ALL
#include <xxhash.h>

//  Packing of slot_t.ref (see the header comment)
#define REF_OFFSET_BITS 23
#define REF_BLOCK_BITS  20
#define REF_LEN_SHIFT   (REF_OFFSET_BITS + REF_BLOCK_BITS)
#define REF_OFFSET_MASK ((UINT64_C (1) << REF_OFFSET_BITS) - 1)
#define REF_BLOCK_MASK  ((UINT64_C (1) << REF_BLOCK_BITS) - 1)

#define BLOCK_MIN        4096u                    //  First arena block
#define BLOCK_MAX        (1u << REF_OFFSET_BITS)  //  Largest block an offset can address
#define OWN_BLOCK_MIN    (128u << 10)             //  Longer keys get their own block
#define NO_BLOCK         SIZE_MAX                 //  No block being filled
#define CAPACITY_MIN     16                       //  Smallest slot array
#define CAPACITY_DEFAULT 64                       //  Slot array for a hint of 0
#define TOUCHED_DIVISOR  8                        //  Track up to capacity / 8 filled slots

typedef struct {
    uint64_t hash;   //  Keyed hash of the key (s_hash); emptiness is marked by ref, not here
    uint64_t count;  //  Total for the key
    uint64_t ref;    //  Packed (length + 1, block, offset) of the key; 0 when empty
} slot_t;

typedef struct {
    char *data;   //  The block's bytes
    size_t size;  //  Bytes allocated, at most BLOCK_MAX
    size_t used;  //  Bytes handed out since the last clear
    bool own;     //  Holds one long key: freed on clear, never filled further
} block_t;

//  Memory faulted in ahead by a thread (tl_table_expect, s_spare_prepare), in steps that
//  the thread and, when the memory is needed before it is done, the merge's own thread
//  take in turn from next.
typedef struct {
    pthread_t thread;
    bool running;         //  thread was started: finish it before the memory is used or freed
    volatile char *data;  //  The bytes to fault in
    size_t bytes;
    atomic_size_t next;  //  Offset of the first step nobody has taken
} s_toucher_t;

struct _tl_table_t {
    slot_t *slots;              //  Array of capacity slots
    size_t capacity;            //  Number of slots, a power of two
    size_t mask;                //  capacity - 1: turns a hash into a slot index
    size_t size;                //  Keys held
    size_t size_max;            //  Grow before size would pass this (70% of capacity)
    uint64_t sum;               //  Sum of all totals, saturating
    uint32_t *touched;          //  Indexes of slots filled since the last clear, while few
    size_t touched_max;         //  Room in touched; 0 when not tracking
    size_t touched_size;        //  Indexes held in touched
    bool touched_lost;          //  More slots filled than touched holds: clear must memset
    block_t *blocks;            //  Arena blocks; a key's ref names its block by index
    size_t nblocks;             //  Blocks in the arena
    size_t blocks_max;          //  Room in blocks
    size_t current;             //  Block being filled, NO_BLOCK when none since the last clear
    size_t arena_bytes;         //  Sum of block sizes
    bool grown;                 //  The array holds twice capacity slots (tl_table_expect)
    s_toucher_t toucher;        //  Faulting the grown half in
    char *spare;                //  The next arena block of a large table, BLOCK_MAX bytes
    s_toucher_t spare_toucher;  //  Faulting it in
};

static uint64_t s_ref_pack (size_t len, size_t block, size_t offset)
{
    return ((uint64_t)(len + 1) << REF_LEN_SHIFT) | ((uint64_t)block << REF_OFFSET_BITS) |
           (uint64_t)offset;
}

static inline size_t s_ref_len (uint64_t ref)
{
    return (size_t)(ref >> REF_LEN_SHIFT) - 1;
}

//  Returns the key bytes a reference names. The empty key has no arena bytes.
static inline const char *s_ref_key (tl_table_t *self, uint64_t ref)
{
    if (s_ref_len (ref) == 0) return "";
    block_t *block = &self->blocks[(ref >> REF_OFFSET_BITS) & REF_BLOCK_MASK];
    return block->data + (ref & REF_OFFSET_MASK);
}

//  The process's hash secret: random bytes drawn once, so nobody outside this process
//  can choose keys that collide in its tables (with a fixed hash, 100,000 crafted words
//  that share their hashes' low bits turn every probe into a walk along one cluster, and
//  counting quadratic). No hash ever leaves the process: keys travel as bytes.
static unsigned char s_secret[192];  //  The size of XXH3's own (>= XXH3_SECRET_SIZE_MIN)
static pthread_once_t s_secret_once = PTHREAD_ONCE_INIT;

static void s_secret_init (void)
{
    size_t got = 0;
    while (got < sizeof s_secret) {
        ssize_t n = getrandom (s_secret + got, sizeof s_secret - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno != EINTR)
            break;
    }
    if (got < sizeof s_secret) {
        //  No getrandom (a very old kernel or a seccomp filter): mix what differs from
        //  run to run; weaker, but never the same fixed secret.
        uint64_t mix[3] = {(uint64_t)time (NULL), (uint64_t)getpid (), (uint64_t)clock ()};
        for (size_t i = 0; i < sizeof s_secret; i += 8) {
            uint64_t v = XXH3_64bits_withSeed (mix, sizeof mix, i);
            memcpy (s_secret + i, &v, sizeof s_secret - i < 8 ? sizeof s_secret - i : 8);
        }
    }
}

//  The bytes of a key of up to 16 bytes as two little-endian words, zero past len.
//  Where 16 bytes from key stay within its page, they are loaded whole and masked: no
//  branch on the length, which mispredicts on words of mixed lengths (XXH3's short path
//  has three). The bytes past the key are read but never used; ASan would see them as
//  out of bounds, so it copies instead.
#if defined(__SANITIZE_ADDRESS__)
#define S_LOAD_WHOLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_LOAD_WHOLE 0
#endif
#endif
#ifndef S_LOAD_WHOLE
#define S_LOAD_WHOLE 1
#endif

static inline void s_load16 (const void *key, size_t len, uint64_t *lo, uint64_t *hi)
{
    assert (len <= 16);
    unsigned char bytes[16];
    const unsigned char *from = key;
    if (!S_LOAD_WHOLE || ((uintptr_t)key & 4095) > 4096 - 16) {
        memset (bytes, 0, sizeof bytes);
        memcpy (bytes, key, len);
        from = bytes;
    }
    memcpy (lo, from, 8);
    memcpy (hi, from + 8, 8);
    //  Shifts of 64 are undefined: len 0 and 8 take the masks' ends by selection
    size_t lo_bits = len >= 8 ? 64 : len * 8, hi_bits = len <= 8 ? 0 : (len - 8) * 8;
    *lo &= lo_bits == 64 ? ~UINT64_C (0) : (UINT64_C (1) << lo_bits) - 1;
    *hi &= hi_bits == 64 ? ~UINT64_C (0) : (UINT64_C (1) << hi_bits) - 1;
}

//  The keyed hash. Keys of up to 16 bytes: XXH3's mixing of 9 to 16 bytes (the two
//  words XORed with secret words, a 128-bit multiply folded, XXH3's avalanche) applied
//  to the zero-padded words, with the length added, so that keys of every length share
//  one path. Longer keys: XXH3_64bits_withSecret.
static inline uint64_t s_hash (const void *key, size_t len)
{
    if (len <= 16) {
        uint64_t lo, hi, s[2];
        s_load16 (key, len, &lo, &hi);
        memcpy (s, s_secret + 24, sizeof s);
        lo ^= s[0];
        hi ^= s[1];
        uint64_t acc =
            (uint64_t)len * XXH_PRIME64_1 + XXH_swap64 (lo) + hi + XXH3_mul128_fold64 (lo, hi);
        return XXH3_avalanche (acc);
    }
    return XXH3_64bits_withSecret (key, len, s_secret, sizeof s_secret);
}

//  memcmp (a, b, len) == 0 without a call: keys of up to 16 bytes as two masked words
//  each, longer ones 8 bytes at a time up to 32.
static inline bool s_key_equal (const char *a, const char *b, size_t len)
{
    if (len <= 16) {
        uint64_t alo, ahi, blo, bhi;
        s_load16 (a, len, &alo, &ahi);
        s_load16 (b, len, &blo, &bhi);
        return ((alo ^ blo) | (ahi ^ bhi)) == 0;
    }
    if (len > 32) return memcmp (a, b, len) == 0;
    uint64_t x, y;
    while (len >= 8) {
        memcpy (&x, a, 8);
        memcpy (&y, b, 8);
        if (x != y) return false;
        a += 8, b += 8, len -= 8;
    }
    while (len--)
        if (*a++ != *b++) return false;
    return true;
}

//  Finds the key's slot. Returns true with *index at the key, or false with *index at the
//  empty slot where the key would go. There is always an empty slot (size < capacity).
static inline bool s_find (tl_table_t *self, uint64_t hash, const void *key, size_t len,
                           size_t *index)
{
    size_t i = (size_t)hash & self->mask;
    for (;;) {
        slot_t *slot = &self->slots[i];
        if (slot->ref == 0) {
            *index = i;
            return false;
        }
        if (slot->hash == hash && s_ref_len (slot->ref) == len &&
            s_key_equal (s_ref_key (self, slot->ref), key, len)) {
            *index = i;
            return true;
        }
        i = (i + 1) & self->mask;
    }
}

//  Smallest slot count that holds hint keys under the load limit, or 0 when too large.
static size_t s_capacity_for (size_t hint)
{
    if (hint > SIZE_MAX / 128) return 0;
    size_t capacity = CAPACITY_MIN;
    while (capacity / 10 * 7 < hint)
        capacity *= 2;
    return capacity;
}

//  Asks for huge pages (2 MiB) under a large array not yet touched. The sink's slot
//  array for tens of millions of keys is gigabytes read at random places: with 4 KiB
//  pages nearly every probe also misses the TLB, and filling it takes a page fault
//  per 4 KiB. Only advice: where the kernel has no transparent huge pages, nothing
//  changes. glibc serves such sizes with mmap, so the pages are still untouched here.
static void s_huge_pages (void *data, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (bytes < 4 * huge) return;
    uintptr_t start = ((uintptr_t)data + huge - 1) & ~(huge - 1);
    uintptr_t end = ((uintptr_t)data + bytes) & ~(huge - 1);
    if (end > start) (void)madvise ((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)data, (void)bytes;
#endif
}

//  A doubling of at least this many slots moves the keys on two threads (below).
#ifndef TL_TABLE_SPLIT_MIN
#define TL_TABLE_SPLIT_MIN (1u << 21)
#endif

//  One thread's share of a doubling: the keys whose start slot is in its half of the new
//  array, [lo, hi). A key whose probe would leave the half is put aside in deferred, to
//  be placed once both halves are done; no thread reads or writes the other's half.
typedef struct {
    const slot_t *old;    //  The array being left
    size_t old_capacity;  //  Its slots
    slot_t *slots;        //  The new array
    size_t mask;          //  Its capacity - 1
    size_t lo, hi;        //  This thread's half
    slot_t *deferred;     //  Keys put aside
    size_t ndeferred;     //  How many
    size_t deferred_max;  //  Room
    bool failed;          //  Out of memory putting one aside
} s_rehash_t;

static void *s_rehash (void *arg)
{
    s_rehash_t *part = arg;
    for (size_t old = 0; old < part->old_capacity && !part->failed; old++) {
        const slot_t *slot = &part->old[old];
        if (slot->ref == 0) continue;
        size_t i = (size_t)slot->hash & part->mask;
        if (i < part->lo || i >= part->hi) continue;  //  The other half's
        while (i < part->hi && part->slots[i].ref != 0)
            i++;
        if (i < part->hi) {
            part->slots[i] = *slot;
            continue;
        }
        if (part->ndeferred == part->deferred_max) {
            size_t max = part->deferred_max ? part->deferred_max * 2 : 64;
            slot_t *deferred = realloc (part->deferred, max * sizeof (slot_t));
            if (!deferred) {
                part->failed = true;
                break;
            }
            part->deferred = deferred;
            part->deferred_max = max;
        }
        part->deferred[part->ndeferred++] = *slot;
    }
    return NULL;
}

//  Moves every key of self into slots, an empty array of twice self's capacity, on two
//  threads: each fills one half of it (and faults its pages in, which is most of the
//  time a doubling takes for a table of gigabytes). Its slots are then filled without
//  a record in touched. Returns 0, or -1 when that cannot be done (slots left empty).
static int s_rehash_split (tl_table_t *self, slot_t *slots, size_t capacity)
{
    s_rehash_t part[2];
    for (int k = 0; k < 2; k++)
        part[k] = (s_rehash_t){.old = self->slots,
                               .old_capacity = self->capacity,
                               .slots = slots,
                               .mask = capacity - 1,
                               .lo = k ? capacity / 2 : 0,
                               .hi = k ? capacity : capacity / 2};
    pthread_t thread;
    if (pthread_create (&thread, NULL, s_rehash, &part[1]) != 0) return -1;
    s_rehash (&part[0]);
    pthread_join (thread, NULL);
    int rc = part[0].failed || part[1].failed ? -1 : 0;
    //  The keys put aside, wherever their probe leads (past either half's end)
    for (int k = 0; k < 2 && rc == 0; k++)
        for (size_t d = 0; d < part[k].ndeferred; d++) {
            size_t i = (size_t)part[k].deferred[d].hash & (capacity - 1);
            while (slots[i].ref != 0)
                i = (i + 1) & (capacity - 1);
            slots[i] = part[k].deferred[d];
        }
    free (part[0].deferred);
    free (part[1].deferred);
    if (rc != 0) memset (slots, 0, capacity * sizeof (slot_t));
    return rc;
}

//  Slot arrays. Each has a header just before its first slot saying how it was allocated,
//  so that tl_table_entries_free can free what the sorts hand out (the slots themselves,
//  for tl_table_sorted_take). Up to TL_TABLE_MAP_MIN slots an array is a malloc block.
//  From there on it is a mapping of its own, its first slot on a 2 MiB boundary (huge
//  pages need it) and its header in the page before, so that it can double in place:
//  mremap moves its pages (page tables only, no copy) to a place twice as large, whose
//  second half is new, zeroed memory, and the keys then move within it (s_rehash_in_place).
//  A doubling so needs only the new half as memory the process has not touched before,
//  not a whole new array: on this machine such memory costs about 2 s per GB to fault
//  in on one thread (the VM backs guest memory at first touch), and for 46 M keys the
//  doublings to 1.5 GiB faulted in 3 GB of new arrays with the merge stopped.
#ifndef TL_TABLE_MAP_MIN
#define TL_TABLE_MAP_MIN (1u << 21)  //  Slots (48 MiB)
#endif
#define S_HUGE     ((size_t)2 << 20)
#define S_HEAP_PAD 64  //  Bytes before a malloc'd array's first slot (its header at the end)

typedef struct {
    void *base;  //  The malloc block, or the mapping (header page first)
    size_t len;  //  The mapping's bytes; 0 for a malloc block
} s_head_t;

static inline s_head_t *s_head (void *data)
{
    return (s_head_t *)data - 1;
}

static size_t s_page (void)
{
    long page = sysconf (_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096;
}

//  The length of a mapping for an array of bytes: the header page, then whole pages.
static size_t s_map_len (size_t bytes)
{
    size_t page = s_page ();
    return page + ((bytes + page - 1) & ~(page - 1));
}

//  A mapping of bytes (plus the header page) whose data starts on a 2 MiB boundary:
//  new, or the pages of the mapped array old moved into its first part. NULL on failure
//  (old is then as it was).
static void *s_map (size_t bytes, void *old)
{
    size_t page = s_page ();
    if (bytes > SIZE_MAX / 2) return NULL;
    size_t len = s_map_len (bytes), room = len + S_HUGE;
    //  A reservation with room to align in, trimmed to the aligned part
    char *raw = mmap (NULL, room, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    char *data = (char *)(((uintptr_t)raw + page + S_HUGE - 1) & ~(uintptr_t)(S_HUGE - 1));
    char *base = data - page;
    if (base > raw) munmap (raw, (size_t)(base - raw));
    if (raw + room > base + len) munmap (base + len, (size_t)(raw + room - (base + len)));
    void *got;
    if (old)
        got = mremap (s_head (old)->base, s_head (old)->len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
                      base);
    else
        got = mmap (base, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
                    0);
    if (got == MAP_FAILED) {
        munmap (base, len);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    (void)madvise (base, len, MADV_HUGEPAGE);  //  Advice only (the whole mapping: one VMA)
#endif
    *s_head (data) = (s_head_t){base, len};
    return data;
}

//  A zeroed array of n slots (or records, or entries: all 24 bytes), NULL when out of memory.
static void *s_array_new (size_t n)
{
    if (n > SIZE_MAX / 2 / sizeof (slot_t)) return NULL;
    size_t bytes = n * sizeof (slot_t);
    if (n >= TL_TABLE_MAP_MIN) {
        void *data = s_map (bytes, NULL);
        if (data) return data;
    }
    char *block = calloc (1, S_HEAP_PAD + bytes);
    if (!block) return NULL;
    *s_head (block + S_HEAP_PAD) = (s_head_t){block, 0};
    s_huge_pages (block + S_HEAP_PAD, bytes);
    return block + S_HEAP_PAD;
}

static void s_array_free (void *data)
{
    if (!data) return;
    s_head_t head = *s_head (data);
    if (head.len)
        munmap (head.base, head.len);
    else
        free (head.base);
}

//  Gives back what follows the first bytes of an array; returns where it now is.
static void *s_array_shrink (void *data, size_t bytes)
{
    s_head_t *head = s_head (data);
    if (head->len) {
        size_t len = s_map_len (bytes);
        if (len < head->len) {
            munmap ((char *)head->base + len, head->len - len);
            head->len = len;
        }
        return data;
    }
    char *block = realloc (head->base, S_HEAP_PAD + bytes);
    if (!block) return data;
    *s_head (block + S_HEAP_PAD) = (s_head_t){block, 0};
    return block + S_HEAP_PAD;
}

void tl_table_entries_free (tl_entry_t *entries)
{
    s_array_free (entries);
}

//  Doubles in place: slots holds 2 * old_capacity slots, the keys in the first half as
//  they were placed for old_capacity, the second half zero. Each key moves to where it
//  belongs under the new mask, taken out first so that it can also stay. The keys are
//  visited from just after an empty slot round to it, so a key's old probe path (from
//  its start slot to it) holds only keys visited before it; each lands on that path or
//  in the second half, and no path ever crosses a slot not visited yet, since the only
//  probes that would (those running off the array's end into its start) are put aside
//  and placed last. Only keys of the run of full slots around the old end can run off
//  (the second half holds fewer keys than the old array at every place), so their
//  number bounds the room set aside, asked for before anything moves. Returns 0, or -1
//  when that room cannot be had (nothing moved).
static int s_rehash_in_place (slot_t *slots, size_t old_capacity)
{
    size_t capacity = 2 * old_capacity, mask = capacity - 1, old_mask = old_capacity - 1;
    size_t bound = 0;
    for (size_t i = old_capacity; i-- > 0 && slots[i].ref != 0;)
        bound++;
    for (size_t i = 0; i < old_capacity && slots[i].ref != 0; i++)
        bound++;
    slot_t *aside = malloc ((bound ? bound : 1) * sizeof (slot_t));
    if (!aside) return -1;
    size_t naside = 0, empty = 0;
    while (slots[empty].ref != 0)
        empty++;
    for (size_t k = 1; k <= old_capacity; k++) {
        size_t j = (empty + k) & old_mask;
        if (slots[j].ref == 0) continue;
        slot_t key = slots[j];
        slots[j] = (slot_t){0, 0, 0};
        size_t i = (size_t)key.hash & mask;
        while (i < capacity && slots[i].ref != 0)
            i++;
        if (i < capacity)
            slots[i] = key;
        else if (naside < bound)
            aside[naside++] = key;
        else {
            //  Beyond the bound, which cannot be: placed at once, as an add would
            i = 0;
            while (slots[i].ref != 0)
                i++;
            slots[i] = key;
        }
    }
    for (size_t d = 0; d < naside; d++) {
        size_t i = (size_t)aside[d].hash & mask;
        while (slots[i].ref != 0)
            i = (i + 1) & mask;
        slots[i] = aside[d];
    }
    free (aside);
    return 0;
}

//  Growth prepared ahead (tl_table_expect): a mapped array half way to a doubling that
//  is expected is grown in place at once, its new half faulted in by a thread while
//  the merge goes on in the first half, so that the doubling only moves keys. It runs
//  at the merge's priority: at nice +10 it got too little of two busy CPUs to be done
//  by the doubling.
#ifndef TL_TABLE_AHEAD_MIN
#define TL_TABLE_AHEAD_MIN (1u << 22)  //  Slots (96 MiB)
#endif

#define S_TOUCH_STEP (2u << 20)  //  Bytes per step: a huge page

//  Faults in steps until none is left.
static void s_touch_run (s_toucher_t *touch)
{
    size_t page = s_page ();
    while (true) {
        size_t at = atomic_fetch_add_explicit (&touch->next, S_TOUCH_STEP, memory_order_relaxed);
        if (at >= touch->bytes) return;
        size_t end = touch->bytes - at < S_TOUCH_STEP ? touch->bytes : at + S_TOUCH_STEP;
        for (size_t i = at; i < end; i += page)
            touch->data[i] = 0;  //  Zero already: the write only makes the page present
    }
}

static void *s_touch_thread (void *arg)
{
    s_touch_run (arg);
    return NULL;
}

//  Starts a thread faulting in bytes at data (if none can start, the pages fault in on
//  use instead).
static void s_touch_start (s_toucher_t *touch, void *data, size_t bytes)
{
    touch->data = data;
    touch->bytes = bytes;
    atomic_store_explicit (&touch->next, 0, memory_order_relaxed);
    touch->running = pthread_create (&touch->thread, NULL, s_touch_thread, touch) == 0;
}

//  Ends the faulting in before the memory is used (help: this thread takes the steps
//  left too, rather than wait while the other does them all: a doubling waited up to a
//  second for it, with a CPU idle) or given up (no step is taken any more).
static void s_touch_finish (s_toucher_t *touch, bool help)
{
    if (!touch->running) return;
    if (help)
        s_touch_run (touch);
    else
        atomic_store_explicit (&touch->next, touch->bytes, memory_order_relaxed);
    pthread_join (touch->thread, NULL);
    touch->running = false;
}

void tl_table_expect (tl_table_t *self, size_t keys)
{
    assert (self);
    //  The grown half is held from here, and is wasted when the doubling never comes
    if (self->grown || !self->slots || self->capacity < TL_TABLE_AHEAD_MIN ||
        !s_head (self->slots)->len || self->size < self->size_max / 2 || keys <= self->size_max)
        return;
    size_t bytes = self->capacity * sizeof (slot_t);
    slot_t *slots = s_map (2 * bytes, self->slots);
    if (!slots) return;
    self->slots = slots;
    self->grown = true;
    s_touch_start (&self->toucher, (char *)slots + bytes, bytes);
}

//  Doubles a mapped array in place (grown ahead or now). Returns 0, or -1 when it
//  cannot (the table is then unchanged, if perhaps grown ahead).
static int s_double_in_place (tl_table_t *self)
{
    if (!s_head (self->slots)->len) return -1;
    if (!self->grown) {
        slot_t *slots = s_map (2 * self->capacity * sizeof (slot_t), self->slots);
        if (!slots) return -1;
        self->slots = slots;
        self->grown = true;
    }
    s_touch_finish (&self->toucher, true);  //  The doubling uses the grown half now
    if (s_rehash_in_place (self->slots, self->capacity) != 0) return -1;
    self->grown = false;
    self->capacity *= 2;
    self->mask = self->capacity - 1;
    self->size_max = self->capacity / 10 * 7;
    self->touched_lost = true;  //  Until the next clear, which memsets
    return 0;
}

//  Moves every slot into a new array of capacity slots, using the stored hashes.
//  Returns 0, or -1 when memory is exhausted (the table is then unchanged).
static int s_resize (tl_table_t *self, size_t capacity)
{
    if (capacity == 0 || capacity > SIZE_MAX / 2 / sizeof (slot_t)) return -1;
    if (self->slots && capacity == 2 * self->capacity && s_double_in_place (self) == 0) return 0;
    slot_t *slots = s_array_new (capacity);
    if (!slots) return -1;
    //  Tracking is an optimisation: without room for it, clear just memsets.
    size_t touched_max = capacity / TOUCHED_DIVISOR;
    uint32_t *touched = NULL;
    if (capacity <= (size_t)UINT32_MAX + 1 && touched_max > 0)
        touched = malloc (touched_max * sizeof (uint32_t));
    if (!touched) touched_max = 0;

    size_t mask = capacity - 1;
    size_t touched_size = 0;
    bool touched_lost = touched == NULL;
    if (capacity >= TL_TABLE_SPLIT_MIN && capacity == 2 * self->capacity &&
        s_rehash_split (self, slots, capacity) == 0)
        touched_lost = true;  //  Until the next clear, which memsets
    else
        for (size_t old = 0; old < self->capacity; old++) {
            if (self->slots[old].ref == 0) continue;
            size_t i = (size_t)self->slots[old].hash & mask;
            while (slots[i].ref != 0)
                i = (i + 1) & mask;
            slots[i] = self->slots[old];
            if (touched_size < touched_max)
                touched[touched_size++] = (uint32_t)i;
            else
                touched_lost = true;
        }
    s_touch_finish (&self->toucher, false);  //  A half grown ahead goes with the old array
    s_array_free (self->slots);
    self->grown = false;
    free (self->touched);
    self->slots = slots;
    self->capacity = capacity;
    self->mask = mask;
    self->size_max = capacity / 10 * 7;
    self->touched = touched;
    self->touched_max = touched_max;
    self->touched_size = touched_size;
    self->touched_lost = touched_lost;
    return 0;
}

//  Appends a block of size bytes to the arena and sets *index to it. Returns 0, or -1
//  when memory is exhausted or the block index would not fit a reference.
//  The spare arena block of a large table, its pages faulted in by a thread while the
//  current block fills, as the grown half of its slots is (tl_table_expect): a key
//  copied into a block's new page otherwise waits for the fault (46 M keys: 12% of the
//  merge thread's time went to faulting in the 0.9 GB of keys).
static char *s_spare_take (tl_table_t *self, bool use)
{
    s_touch_finish (&self->spare_toucher, use);
    char *spare = self->spare;
    self->spare = NULL;
    return spare;
}

static void s_spare_prepare (tl_table_t *self)
{
    if (self->spare || self->capacity < TL_TABLE_AHEAD_MIN) return;
    char *spare = malloc (BLOCK_MAX);
    if (!spare) return;
    s_huge_pages (spare, BLOCK_MAX);
    self->spare = spare;
    s_touch_start (&self->spare_toucher, spare, BLOCK_MAX);
}

static int s_block_append (tl_table_t *self, size_t size, bool own, size_t *index)
{
    if (self->nblocks > REF_BLOCK_MASK) return -1;
    if (self->nblocks == self->blocks_max) {
        size_t blocks_max = self->blocks_max ? self->blocks_max * 2 : 8;
        block_t *blocks = realloc (self->blocks, blocks_max * sizeof (block_t));
        if (!blocks) return -1;
        self->blocks = blocks;
        self->blocks_max = blocks_max;
    }
    char *data = !own && size == BLOCK_MAX ? s_spare_take (self, true) : NULL;
    if (!data) data = malloc (size);
    if (!data) return -1;
    s_huge_pages (data, size);
    if (!own && size == BLOCK_MAX) s_spare_prepare (self);
    self->blocks[self->nblocks] = (block_t){data, size, 0, own};
    self->arena_bytes += size;
    *index = self->nblocks++;
    return 0;
}

//  Makes current a block with room for len more bytes: a block kept by clear when one is
//  large enough, else a new one twice the size of the last. Returns 0 or -1 (no memory).
static int s_block_next (tl_table_t *self, size_t len)
{
    size_t start = self->current == NO_BLOCK ? 0 : self->current + 1;
    for (size_t i = start; i < self->nblocks; i++) {
        block_t *block = &self->blocks[i];
        if (!block->own && block->used == 0 && block->size >= len) {
            self->current = i;
            return 0;
        }
    }
    size_t size = BLOCK_MIN;
    if (self->current != NO_BLOCK && self->blocks[self->current].size < BLOCK_MAX)
        size = self->blocks[self->current].size * 2;
    else if (self->current != NO_BLOCK)
        size = BLOCK_MAX;
    while (size < len)
        size *= 2;
    return s_block_append (self, size, false, &self->current);
}

//  Copies a key into the arena and sets *ref to it. Returns 0, or -1 when memory is
//  exhausted (the arena then holds no new key).
static int s_arena_store (tl_table_t *self, const void *key, size_t len, uint64_t *ref)
{
    if (len == 0) {
        *ref = s_ref_pack (0, 0, 0);
        return 0;
    }
    size_t index;
    if (len > OWN_BLOCK_MIN) {
        if (s_block_append (self, len, true, &index)) return -1;
    } else {
        if (self->current == NO_BLOCK ||
            self->blocks[self->current].size - self->blocks[self->current].used < len)
            if (s_block_next (self, len)) return -1;
        index = self->current;
    }
    block_t *block = &self->blocks[index];
    memcpy (block->data + block->used, key, len);
    *ref = s_ref_pack (len, index, block->used);
    block->used += len;
    return 0;
}

static inline void s_sum_add (tl_table_t *self, uint64_t count)
{
    if (__builtin_add_overflow (self->sum, count, &self->sum)) self->sum = UINT64_MAX;
}

//  tl_table_add with the key's hash already known (merge takes it from the other table).
static int s_add_hashed (tl_table_t *self, uint64_t hash, const void *key, size_t len,
                         uint64_t count)
{
    size_t index;
    if (s_find (self, hash, key, len, &index)) {
        slot_t *slot = &self->slots[index];
        s_sum_add (self, count);
        if (__builtin_add_overflow (slot->count, count, &slot->count)) {
            slot->count = UINT64_MAX;
            return 1;
        }
        return 0;
    }
    if (self->size >= self->size_max) {
        if (s_resize (self, self->capacity * 2)) return -1;
        s_find (self, hash, key, len, &index);
    }
    uint64_t ref;
    if (s_arena_store (self, key, len, &ref)) return -1;
    self->slots[index] = (slot_t){hash, count, ref};
    self->size++;
    s_sum_add (self, count);
    if (self->touched_size < self->touched_max)
        self->touched[self->touched_size++] = (uint32_t)index;
    else
        self->touched_lost = true;
    return 0;
}

static inline void s_entry (tl_table_t *self, const slot_t *slot, tl_entry_t *entry)
{
    entry->key = s_ref_key (self, slot->ref);
    entry->len = (uint32_t)s_ref_len (slot->ref);
    entry->count = slot->count;
}

tl_table_t *tl_table_new (size_t capacity_hint)
{
    pthread_once (&s_secret_once, s_secret_init);
    size_t capacity = capacity_hint ? s_capacity_for (capacity_hint) : CAPACITY_DEFAULT;
    if (capacity == 0) return NULL;
    tl_table_t *self = calloc (1, sizeof (tl_table_t));
    if (!self) return NULL;
    self->current = NO_BLOCK;
    if (s_resize (self, capacity)) {
        free (self);
        return NULL;
    }
    return self;
}

void tl_table_destroy (tl_table_t **self_p)
{
    assert (self_p);
    tl_table_t *self = *self_p;
    if (!self) return;
    s_touch_finish (&self->toucher, false);
    free (s_spare_take (self, false));
    for (size_t i = 0; i < self->nblocks; i++)
        free (self->blocks[i].data);
    free (self->blocks);
    free (self->touched);
    s_array_free (self->slots);
    free (self);
    *self_p = NULL;
}

int tl_table_add (tl_table_t *self, const void *key, size_t len, uint64_t count)
{
    assert (self);
    assert (self->slots);  //  Not given away by tl_table_sorted_take
    assert (key || len == 0);
    if (len == 0) key = "";  //  The empty key may come as NULL; memcmp must not see it
    if (len > TL_KEY_MAX) return -1;
    return s_add_hashed (self, s_hash (key, len), key, len, count);
}

//  Hashes a key and asks for its start slot, which the add that follows reads, and the
//  next cache line: a quarter of the 24-byte slots end in the next line, and an add of a
//  new key probes past its start slot (2.5 slots on average at half full, 6 at 70%).
//  With the start slot's line alone, the sink's merge of 46 M new keys waited on the
//  next line (bench_merge: 5.66 s, against 4.82 s with both).
static inline uint64_t s_prepare (tl_table_t *self, const void *key, size_t len)
{
    uint64_t hash = s_hash (key, len);
    const slot_t *slot = &self->slots[(size_t)hash & self->mask];
    __builtin_prefetch (slot, 1, 1);
    __builtin_prefetch ((const char *)slot + 64, 1, 1);  //  Past the array's end: no fault
    return hash;
}

int tl_table_add_batch (tl_table_t *self, const tl_kv_t *kv, size_t n)
{
    assert (self);
    assert (self->slots);  //  Not given away by tl_table_sorted_take
    assert (n <= TL_TABLE_BATCH);
    uint64_t hash[TL_TABLE_BATCH];
    bool too_long = false;
    //  1: hash every key and ask for its start slot
    for (size_t i = 0; i < n; i++) {
        if (kv[i].len > TL_KEY_MAX) {
            n = i;  //  The ones before it are added, then the call fails
            too_long = true;
            break;
        }
        hash[i] = s_prepare (self, kv[i].len ? kv[i].key : "", kv[i].len);
    }
    //  2: where the start slot already holds this hash, ask for that key's bytes (a
    //  key already counted, most of the time: the compare then hits the cache)
    for (size_t i = 0; i < n; i++) {
        const slot_t *slot = &self->slots[(size_t)hash[i] & self->mask];
        if (slot->hash == hash[i] && slot->ref != 0)
            __builtin_prefetch (s_ref_key (self, slot->ref), 0, 1);
    }
    //  3: add them
    int saturated = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = s_add_hashed (self, hash[i], kv[i].len ? kv[i].key : "", kv[i].len, kv[i].count);
        if (rc < 0) return -1;
        saturated += rc;
    }
    return too_long ? -1 : saturated;
}

uint64_t tl_table_prepare (tl_table_t *self, const void *key, size_t len)
{
    assert (self);
    return s_prepare (self, len ? key : "", len);
}

int tl_table_add_prepared (tl_table_t *self, uint64_t hash, const void *key, size_t len,
                           uint64_t count)
{
    assert (self);
    if (len == 0) key = "";
    if (len > TL_KEY_MAX) return -1;
    return s_add_hashed (self, hash, key, len, count);
}

bool tl_table_get (tl_table_t *self, const void *key, size_t len, uint64_t *count)
{
    assert (self);
    assert (self->slots);  //  Not given away by tl_table_sorted_take
    assert (key || len == 0);
    size_t index;
    if (len == 0) key = "";  //  The empty key may come as NULL; memcmp must not see it
    if (len > TL_KEY_MAX || !s_find (self, s_hash (key, len), key, len, &index)) return false;
    if (count) *count = self->slots[index].count;
    return true;
}

size_t tl_table_size (tl_table_t *self)
{
    assert (self);
    return self->size;
}

uint64_t tl_table_sum (tl_table_t *self)
{
    assert (self);
    return self->sum;
}

//  Counts the slot array, the clear bookkeeping and every arena block.
size_t tl_table_memory (tl_table_t *self)
{
    assert (self);
    return self->capacity * sizeof (slot_t) + self->touched_max * sizeof (uint32_t) +
           self->blocks_max * sizeof (block_t) + self->arena_bytes +
           (self->grown ? self->capacity * sizeof (slot_t) : 0) + (self->spare ? BLOCK_MAX : 0);
}

void tl_table_clear (tl_table_t *self)
{
    assert (self);
    assert (self->slots);  //  Not given away by tl_table_sorted_take
    if (self->size > 0) {
        if (self->touched_lost)
            memset (self->slots, 0, self->capacity * sizeof (slot_t));
        else
            for (size_t i = 0; i < self->touched_size; i++)
                self->slots[self->touched[i]].ref = 0;
    }
    self->touched_size = 0;
    self->touched_lost = self->touched == NULL;
    self->size = 0;
    self->sum = 0;

    //  Keep the shared blocks, in order, for the next keys; long keys' blocks go.
    size_t kept = 0;
    for (size_t i = 0; i < self->nblocks; i++) {
        block_t block = self->blocks[i];
        if (block.own) {
            free (block.data);
            self->arena_bytes -= block.size;
        } else {
            block.used = 0;
            self->blocks[kept++] = block;
        }
    }
    self->nblocks = kept;
    self->current = NO_BLOCK;
}

bool tl_table_next (tl_table_t *self, size_t *cursor, tl_entry_t *entry)
{
    assert (self);
    assert (cursor);
    assert (entry);
    if (self->size == 0) return false;
    //  A table that holds few keys for its size (the worker's, reused chunk after chunk)
    //  knows which slots it filled: walk those rather than every slot.
    if (self->touched_max && !self->touched_lost) {
        if (*cursor >= self->touched_size) return false;
        s_entry (self, &self->slots[self->touched[*cursor]], entry);
        (*cursor)++;
        return true;
    }
    for (size_t i = *cursor; i < self->capacity; i++) {
        if (self->slots[i].ref != 0) {
            s_entry (self, &self->slots[i], entry);
            *cursor = i + 1;
            return true;
        }
    }
    *cursor = self->capacity;
    return false;
}

//  On -1 (memory exhausted) self holds the entries of other merged before the failure.
int tl_table_merge (tl_table_t *self, tl_table_t *other)
{
    assert (self);
    assert (other);
    int rc = 0;
    for (size_t i = 0; i < other->capacity && other->size > 0; i++) {
        const slot_t *slot = &other->slots[i];
        if (slot->ref == 0) continue;
        int added = s_add_hashed (self, slot->hash, s_ref_key (other, slot->ref),
                                  s_ref_len (slot->ref), slot->count);
        if (added < 0) return -1;
        if (added > 0) rc = 1;
    }
    return rc;
}

//  The caller owns the returned array; its keys point into the table's arena.
//
//  Sorting the totals is what stands between the last merge and the totals file (tens
//  of millions of keys for 2-grams), and the sink's other cores are idle then. Each key
//  is sorted as a record of its total, the first 8 bytes of its key as a big-endian
//  number, and its reference. A radix sort on the total and the prefix (below) orders
//  them with no compare at all, and hands the small ranges it leaves, and the records
//  that share total and prefix, to an introsort inlined on the records (quicksort,
//  heapsort below a depth limit, so keys chosen to defeat the pivots cost n log n at
//  worst, insertion sort for short ranges) whose compares read the arena only past the
//  prefix. No memory beside the array; the radix sort's large ranges are spread over
//  the CPUs. Records and entries are both 24 bytes, so the sorted records become the
//  entries in place.
//  The first 8 bytes of a key as a big-endian number, zero-padded: comparing two of
//  them compares the keys' first 8 bytes as memcmp does.
static inline uint64_t s_prefix (const char *key, size_t len)
{
    unsigned char bytes[8] = {0};
    memcpy (bytes, key, len < 8 ? len : 8);
    return ((uint64_t)bytes[0] << 56) | ((uint64_t)bytes[1] << 48) | ((uint64_t)bytes[2] << 40) |
           ((uint64_t)bytes[3] << 32) | ((uint64_t)bytes[4] << 24) | ((uint64_t)bytes[5] << 16) |
           ((uint64_t)bytes[6] << 8) | (uint64_t)bytes[7];
}

typedef struct {
    uint64_t count;   //  Total
    uint64_t prefix;  //  The key's first 8 bytes, big-endian, zero-padded
    uint64_t ref;     //  The key's reference
} s_rec_t;

_Static_assert(sizeof (s_rec_t) == sizeof (tl_entry_t), "records become entries in place");

//  What the compares of one range need: the table, and how many key bytes before the
//  prefix all its records share (the prefix holds key bytes skip to skip + 7).
typedef struct {
    tl_table_t *table;  //  Whose keys, or NULL: records alike in total and prefix are equal
    size_t skip;        //  Key bytes before the prefix
} s_sort_ctx_t;

//  Total descending, then key bytewise (a key that is a prefix of another first): as
//  tl_entry_compare, for records whose keys share their first ctx->skip bytes. A
//  prefix is zero-padded, and a key that ends inside it sorts before a longer key with
//  the same bytes (zero or not) there: the lengths decide when all else is equal.
static inline int s_rec_cmp (const s_rec_t *a, const s_rec_t *b, const s_sort_ctx_t *ctx)
{
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    if (a->prefix != b->prefix) return a->prefix < b->prefix ? -1 : 1;
    if (!ctx->table) return 0;
    size_t la = s_ref_len (a->ref), lb = s_ref_len (b->ref);
    size_t common = la < lb ? la : lb, seen = ctx->skip + 8;
    int rc = 0;
    if (common > seen) {
        //  Both keys are longer than the bytes compared so far: both have arena bytes.
        const tl_table_t *table = ctx->table;
        const block_t *ba = &table->blocks[(a->ref >> REF_OFFSET_BITS) & REF_BLOCK_MASK];
        const block_t *bb = &table->blocks[(b->ref >> REF_OFFSET_BITS) & REF_BLOCK_MASK];
        rc = memcmp (ba->data + (a->ref & REF_OFFSET_MASK) + seen,
                     bb->data + (b->ref & REF_OFFSET_MASK) + seen, common - seen);
    }
    if (rc != 0) return rc < 0 ? -1 : 1;
    return (la > lb) - (la < lb);
}

static inline void s_rec_swap (s_rec_t *a, s_rec_t *b)
{
    s_rec_t t = *a;
    *a = *b;
    *b = t;
}

static void s_rec_insertion (s_rec_t *a, size_t n, const s_sort_ctx_t *ctx)
{
    for (size_t i = 1; i < n; i++) {
        s_rec_t x = a[i];
        size_t j = i;
        for (; j > 0 && s_rec_cmp (&x, &a[j - 1], ctx) < 0; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

static void s_rec_sift (s_rec_t *a, size_t n, size_t i, const s_sort_ctx_t *ctx)
{
    while (true) {
        size_t largest = i, l = 2 * i + 1, r = l + 1;
        if (l < n && s_rec_cmp (&a[l], &a[largest], ctx) > 0) largest = l;
        if (r < n && s_rec_cmp (&a[r], &a[largest], ctx) > 0) largest = r;
        if (largest == i) return;
        s_rec_swap (&a[i], &a[largest]);
        i = largest;
    }
}

static void s_rec_heapsort (s_rec_t *a, size_t n, const s_sort_ctx_t *ctx)
{
    for (size_t i = n / 2; i-- > 0;)
        s_rec_sift (a, n, i, ctx);
    for (size_t end = n; end-- > 1;) {
        s_rec_swap (&a[0], &a[end]);
        s_rec_sift (a, end, 0, ctx);
    }
}

//  Hoare's partition around pivot (a value of a[0..n), n >= 2): returns j with every
//  record of a[0..j] not after pivot and every one of a[j+1..n) not before it, both
//  parts non-empty when pivot is not the largest record or sits below the middle.
static size_t s_rec_partition (s_rec_t *a, size_t n, const s_rec_t *pivot, const s_sort_ctx_t *ctx)
{
    size_t i = (size_t)-1, j = n;
    while (true) {
        do
            i++;
        while (s_rec_cmp (&a[i], pivot, ctx) < 0);
        do
            j--;
        while (s_rec_cmp (&a[j], pivot, ctx) > 0);
        if (i >= j) return j;
        s_rec_swap (&a[i], &a[j]);
    }
}

static void s_rec_sort (s_rec_t *a, size_t n, int depth, const s_sort_ctx_t *ctx)
{
    while (n > 16) {
        if (depth-- == 0) {
            s_rec_heapsort (a, n, ctx);
            return;
        }
        //  Median of three into the lower middle, which Hoare's partition needs.
        size_t mid = (n - 1) / 2;
        if (s_rec_cmp (&a[mid], &a[0], ctx) < 0) s_rec_swap (&a[mid], &a[0]);
        if (s_rec_cmp (&a[n - 1], &a[0], ctx) < 0) s_rec_swap (&a[n - 1], &a[0]);
        if (s_rec_cmp (&a[n - 1], &a[mid], ctx) < 0) s_rec_swap (&a[n - 1], &a[mid]);
        s_rec_t pivot = a[mid];
        size_t j = s_rec_partition (a, n, &pivot, ctx);
        //  The smaller part by recursion, the larger by the loop: a stack of log n.
        if (j + 1 < n - j - 1) {
            s_rec_sort (a, j + 1, depth, ctx);
            a += j + 1;
            n -= j + 1;
        } else {
            s_rec_sort (a + j + 1, n - j - 1, depth, ctx);
            n = j + 1;
        }
    }
    s_rec_insertion (a, n, ctx);
}

static int s_depth_limit (size_t n)
{
    int depth = 0;
    while (n > 1) {
        n >>= 1;
        depth += 2;
    }
    return depth;
}

//  The radix sort in front of the introsort. A record's order is decided first by 16
//  bytes: the total's 8 (complemented, most significant first: larger totals come
//  first) and the prefix's 8. An in-place MSD radix sort (American flag sort) splits
//  by one of those bytes at a time into 256 buckets, two passes over a range per byte
//  and no compare; a byte that is the same across a range is skipped. A range of at
//  most S_RADIX_SMALL records, or one whose 16 bytes are all alike, goes to the
//  introsort, which compares whole keys. Totals are mostly small and shared by
//  millions of keys, so that compares are what the introsort alone spent its time on.
//  Ranges of more than S_RADIX_TASK records are tasks on a queue that the sorting
//  threads share, so that a total held by most keys still splits over the threads.
#define S_KEY_AHEAD        16  //  Records or slots whose keys are asked for ahead
#define S_RADIX_BYTES      16
#define S_RADIX_SMALL      64
#define S_RADIX_TASK       (1u << 16)
#define S_SORT_THREADS_MAX 8

static inline unsigned s_rec_byte (const s_rec_t *r, int level)
{
    return level < 8 ? (unsigned)(~r->count >> (56 - 8 * level)) & 0xff
                     : (unsigned)(r->prefix >> (56 - 8 * (level - 8))) & 0xff;
}

typedef enum {
    S_FILLED,  //  The records hold their key bytes
    S_PREFIX,  //  Their prefixes are still to be read (s_fill)
    S_PACKED   //  They are still to be packed (s_fill)
} s_fill_t;

typedef struct {
    s_rec_t *a;     //  Range
    size_t n;       //  Its records
    int level;      //  Its first byte not yet sorted by
    size_t skip;    //  Key bytes before the prefix
    s_fill_t fill;  //  What is still to be read of the keys
} s_radix_task_t;

typedef struct {
    tl_table_t *table;      //  Whose keys
    pthread_mutex_t lock;   //  Guards what follows
    pthread_cond_t ready;   //  A task was queued, or the work is done
    s_radix_task_t *tasks;  //  Ranges waiting
    size_t ntasks;          //  How many
    size_t tasks_max;       //  Room
    size_t busy;            //  Threads sorting a task now
} s_radix_t;

//  Queues a range. Returns false when there is no queue or no room: the caller sorts it.
static bool s_radix_push (s_radix_t *queue, const s_radix_task_t *task)
{
    if (!queue) return false;
    pthread_mutex_lock (&queue->lock);
    if (queue->ntasks == queue->tasks_max) {
        size_t max = queue->tasks_max ? queue->tasks_max * 2 : 256;
        s_radix_task_t *tasks = realloc (queue->tasks, max * sizeof *tasks);
        if (!tasks) {
            pthread_mutex_unlock (&queue->lock);
            return false;
        }
        queue->tasks = tasks;
        queue->tasks_max = max;
    }
    queue->tasks[queue->ntasks++] = *task;
    pthread_cond_signal (&queue->ready);
    pthread_mutex_unlock (&queue->lock);
    return true;
}

//  Replaces the prefixes of a range whose records share total and prefix by the next
//  8 bytes of their keys. Returns false when no key has bytes there (all are equal).
static bool s_radix_deeper (s_rec_t *a, size_t n, size_t skip, tl_table_t *table)
{
    bool longer = false;
    for (size_t i = 0; i < n; i++) {
        if (i + S_KEY_AHEAD < n && s_ref_len (a[i + S_KEY_AHEAD].ref) > skip + 8)
            __builtin_prefetch (s_ref_key (table, a[i + S_KEY_AHEAD].ref) + skip + 8, 0, 0);
        size_t len = s_ref_len (a[i].ref);
        if (len > skip + 8) {
            a[i].prefix = s_prefix (s_ref_key (table, a[i].ref) + skip + 8, len - skip - 8);
            longer = true;
        } else
            a[i].prefix = 0;
    }
    return longer;
}

//  Sorts a small range whose keys share their first skip bytes. A compare that finds
//  total and prefix alike would read both keys in the arena, two cache misses each time
//  (2-grams share their first 8 bytes and small totals by the thousand). So the range
//  is sorted by total and prefix alone, and each run of records alike in both then has
//  its next 8 key bytes read once per record (the reads overlap) and is sorted by them.
static void s_rec_sort_small (s_rec_t *a, size_t n, size_t skip, tl_table_t *table)
{
    s_sort_ctx_t by_record = {NULL, skip};
    while (true) {
        s_rec_sort (a, n, s_depth_limit (n), &by_record);
        if (n < 2 || a[0].count != a[n - 1].count || a[0].prefix != a[n - 1].prefix) break;
        //  One run: all alike so far
        if (!s_radix_deeper (a, n, skip, table)) {
            //  Every key ends within the bytes seen: their lengths order them
            s_sort_ctx_t by_key = {table, skip};
            s_rec_sort (a, n, s_depth_limit (n), &by_key);
            return;
        }
        skip += 8;
        by_record.skip = skip;
    }
    //  Each run is shorter than the range: the recursion is at most n deep
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && a[j].count == a[i].count && a[j].prefix == a[i].prefix; j++)
            ;
        if (j - i > 1) s_rec_sort_small (a + i, j - i, skip, table);
    }
}

//  Reads the keys of a range of records made without them (s_build with buckets): the
//  prefix (S_PREFIX), or the first 16 bytes packed (S_PACKED).
static void s_fill (s_rec_t *a, size_t n, s_fill_t fill, tl_table_t *table)
{
    for (size_t i = 0; i < n; i++) {
        if (i + S_KEY_AHEAD < n && s_ref_len (a[i + S_KEY_AHEAD].ref) > 0)
            __builtin_prefetch (s_ref_key (table, a[i + S_KEY_AHEAD].ref), 0, 0);
        const char *key = s_ref_key (table, a[i].ref);
        size_t len = s_ref_len (a[i].ref);
        if (fill == S_PACKED) {
            a[i].count = ~s_prefix (key, len);
            a[i].prefix = len > 8 ? s_prefix (key + 8, len - 8) : 0;
        } else
            a[i].prefix = s_prefix (key, len);
    }
}

static void s_radix_sort (s_radix_task_t task, tl_table_t *table, s_radix_t *queue)
{
    s_rec_t *a = task.a;
    size_t n = task.n, skip = task.skip, count[256];
    int level = task.level;
    if (task.fill != S_FILLED) s_fill (a, n, task.fill, table);
    while (n > S_RADIX_SMALL) {
        if (level == S_RADIX_BYTES) {
            //  Total and the 8 key bytes alike: on to the next 8 (keys that end before
            //  them get a zero prefix, and the compares end on the lengths).
            if (!s_radix_deeper (a, n, skip, table)) break;
            skip += 8;
            level = 8;
        }
        memset (count, 0, sizeof count);
        for (size_t i = 0; i < n; i++)
            count[s_rec_byte (&a[i], level)]++;
        if (count[s_rec_byte (&a[0], level)] == n) {
            level++;  //  One bucket holds them all
            continue;
        }
        //  Bucket b ends at end[b]; next[b] is its first record not yet in place.
        size_t next[256], end[256], at = 0;
        for (unsigned b = 0; b < 256; b++) {
            next[b] = at;
            at += count[b];
            end[b] = at;
        }
        for (unsigned b = 0; b < 256; b++) {
            while (next[b] < end[b]) {
                s_rec_t v = a[next[b]];
                unsigned d = s_rec_byte (&v, level);
                while (d != b) {
                    s_rec_t t = a[next[d]];
                    a[next[d]++] = v;
                    v = t;
                    d = s_rec_byte (&v, level);
                }
                a[next[b]++] = v;
            }
        }
        for (unsigned b = 0; b < 256; b++) {
            if (count[b] < 2) continue;
            s_radix_task_t part = {a + end[b] - count[b], count[b], level + 1, skip, S_FILLED};
            if (count[b] <= S_RADIX_TASK || !s_radix_push (queue, &part))
                s_radix_sort (part, table, queue);
        }
        return;
    }
    if (n <= S_RADIX_SMALL) {
        s_rec_sort_small (a, n, skip, table);
        return;
    }
    //  Every key ends within the bytes seen: no compare reads the arena
    s_sort_ctx_t ctx = {table, skip};
    s_rec_sort (a, n, s_depth_limit (n), &ctx);
}

static void *s_radix_thread (void *arg)
{
    s_radix_t *queue = arg;
    pthread_mutex_lock (&queue->lock);
    while (true) {
        if (queue->ntasks > 0) {
            s_radix_task_t task = queue->tasks[--queue->ntasks];
            queue->busy++;
            pthread_mutex_unlock (&queue->lock);
            s_radix_sort (task, queue->table, queue);
            pthread_mutex_lock (&queue->lock);
            queue->busy--;
            if (queue->busy == 0 && queue->ntasks == 0) pthread_cond_broadcast (&queue->ready);
        } else if (queue->busy == 0)
            break;  //  Nothing queued and nobody left to queue more: done
        else
            pthread_cond_wait (&queue->ready, &queue->lock);
    }
    pthread_mutex_unlock (&queue->lock);
    return NULL;
}

//  The first pass over many records with totals that differ, by a bucket of the total
//  (s_code) rather than by one of its bytes. Totals are mostly small and alike (46 M
//  2-grams: all but 180 below 256), so that byte by byte the first passes over all the
//  records each moved a handful of them (three passes, one thread, 0.7 s for 46 M
//  records). The totals below 2^15 get a bucket each and the larger ones one per power
//  of two, so that one pass splits them; its counts are made with the records (on the
//  threads that make them), and the buckets are then tasks for the sorting threads.
#define S_CODE_EXACT   32768u  //  Totals below this: a bucket each
#define S_CODE_CLASSES 49u     //  Larger ones: one per leading zero count (0 to 48)
#define S_CODES        (S_CODE_CLASSES + S_CODE_EXACT)

//  A total's bucket; larger totals are in lower buckets.
static inline size_t s_code (uint64_t count)
{
    return count >= S_CODE_EXACT ? (size_t)__builtin_clzll (count)
                                 : S_CODE_CLASSES + (S_CODE_EXACT - 1 - (size_t)count);
}

//  Puts the records in bucket order (hist: the records in each bucket; next: room for
//  2 * S_CODES cursors) and queues each bucket of two or more as a task.
static void s_code_pass (s_rec_t *a, const size_t *hist, size_t *next, s_radix_t *queue)
{
    size_t *end = next + S_CODES, at = 0;
    for (size_t b = 0; b < S_CODES; b++) {
        next[b] = at;
        at += hist[b];
        end[b] = at;
    }
    for (size_t b = 0; b < S_CODES; b++)
        while (next[b] < end[b]) {
            s_rec_t v = a[next[b]];
            size_t d = s_code (v.count);
            while (d != b) {
                s_rec_t t = a[next[d]];
                a[next[d]++] = v;
                v = t;
                d = s_code (v.count);
            }
            a[next[b]++] = v;
        }
    for (size_t b = 0; b < S_CODES; b++) {
        if (hist[b] < 2) continue;
        //  The records of a bucket of one total below S_CODE_EXACT get packed (s_fill):
        //  their 16 bytes are the key's first 16
        s_radix_task_t part = {a + end[b] - hist[b], hist[b], 0, b < S_CODE_CLASSES ? 0 : 8,
                               b < S_CODE_CLASSES ? S_PREFIX : S_PACKED};
        if (!s_radix_push (queue, &part)) s_radix_sort (part, queue->table, NULL);
    }
}

//  Sorts n records, on several threads when there are many. hist, when given, holds the
//  records in each s_code bucket (and room for the cursors of s_code_pass after them),
//  and the records of small totals are packed (s_build); without it, the bytes before
//  level are alike in all the records.
static void s_rec_sort_all (s_rec_t *a, size_t n, int level, tl_table_t *table, size_t *hist)
{
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);
    size_t threads = cpus < 1 ? 1 : cpus > S_SORT_THREADS_MAX ? S_SORT_THREADS_MAX : (size_t)cpus;
    s_radix_task_t all = {a, n, level, 0, S_FILLED};
    s_radix_t queue = {.table = table};
    if (!hist && (n <= S_RADIX_TASK || threads == 1)) {
        s_radix_sort (all, table, NULL);
        return;
    }
    pthread_mutex_init (&queue.lock, NULL);
    pthread_cond_init (&queue.ready, NULL);
    bool queued = true;
    if (hist)
        s_code_pass (a, hist, hist + S_CODES, &queue);
    else
        queued = s_radix_push (&queue, &all);
    if (!queued)
        s_radix_sort (all, table, NULL);
    else {
        pthread_t thread[S_SORT_THREADS_MAX];
        size_t started = 0;
        while (started + 1 < threads &&
               pthread_create (&thread[started], NULL, s_radix_thread, &queue) == 0)
            started++;
        s_radix_thread (&queue);
        for (size_t i = 0; i < started; i++)
            pthread_join (thread[i], NULL);
    }
    free (queue.tasks);
    pthread_cond_destroy (&queue.ready);
    pthread_mutex_destroy (&queue.lock);
}

//  One thread's share of making the records: slots [from, to) into recs, forward from
//  recs[at] or backward from recs[at - 1]; with how the totals and prefixes differ.
//  When the records are counted by s_code bucket (hist), they are made without their
//  keys: each bucket's task reads them (s_fill), on the sorting threads. The records of
//  a total below S_CODE_EXACT are then packed: their bucket is their total, so their
//  count field carries the key's first 8 bytes instead (big-endian, inverted, so that
//  the order of totals descending is that of the bytes ascending), and the prefix the
//  next 8 (skip 8). The radix passes then have 16 key bytes in the record before
//  s_radix_deeper reads the arena again: 2-grams share their first 8 bytes and a small
//  total by the thousand, and that second read of each key cost as much as the first.
//  The totals come back from the buckets (s_entries).
typedef struct {
    tl_table_t *table;  //  Whose slots
    s_rec_t *recs;      //  Records
    size_t from, to;    //  Slots to read
    size_t at;          //  Next record (forward) or one past it (backward)
    bool backward;      //  Fill from the end of recs
    size_t made;        //  Records made
    s_rec_t first;      //  The first record made
    uint64_t dcount;    //  Bits in which some total differs from first's (hist NULL)
    uint64_t dprefix;   //  Bits in which some prefix differs from first's (hist NULL)
    size_t *hist;       //  Records in each s_code bucket, when counted (S_CODES)
} s_build_t;

static void *s_build (void *arg)
{
    s_build_t *b = arg;
    tl_table_t *self = b->table;
    for (size_t i = b->from; i < b->to; i++) {
        //  Each key is a cache miss: asked for this far ahead, the misses overlap
        if (!b->hist && i + S_KEY_AHEAD < b->to && self->slots[i + S_KEY_AHEAD].ref != 0)
            __builtin_prefetch (s_ref_key (self, self->slots[i + S_KEY_AHEAD].ref), 0, 0);
        const slot_t *slot = &self->slots[i];
        if (slot->ref == 0) continue;
        s_rec_t rec = {slot->count, 0, slot->ref};
        if (b->hist)
            b->hist[s_code (rec.count)]++;
        else
            rec.prefix = s_prefix (s_ref_key (self, slot->ref), s_ref_len (slot->ref));
        if (b->made++ == 0) b->first = rec;
        b->dcount |= rec.count ^ b->first.count;
        b->dprefix |= rec.prefix ^ b->first.prefix;
        b->recs[b->backward ? --b->at : b->at++] = rec;
    }
    return NULL;
}

//  Records [from, to) of the sorted recs become their entries where they lie: entry i is
//  written only once record i has been read. A packed record's total is its bucket's.
typedef struct {
    tl_table_t *table;   //  Whose keys
    s_rec_t *recs;       //  All the records, sorted
    size_t from, to;     //  This thread's share
    const size_t *hist;  //  Records in each s_code bucket, when they were counted
} s_entries_t;

static void *s_entries (void *arg)
{
    s_entries_t *c = arg;
    tl_table_t *self = c->table;
    tl_entry_t *entries = (tl_entry_t *)(void *)c->recs;
    size_t b = 0, end = c->hist ? c->hist[0] : SIZE_MAX;  //  Bucket of record i, its end
    while (end <= c->from)
        end += c->hist[++b];
    for (size_t i = c->from; i < c->to; i++) {
        while (i >= end)
            end += c->hist[++b];
        s_rec_t rec = c->recs[i];
        uint64_t count =
            c->hist && b >= S_CODE_CLASSES ? S_CODE_EXACT - 1 - (b - S_CODE_CLASSES) : rec.count;
        tl_entry_t entry = {s_ref_key (self, rec.ref), (uint32_t)s_ref_len (rec.ref), count};
        memcpy (&entries[i], &entry, sizeof entry);
    }
    return NULL;
}

//  Makes a record of every key into recs, sorts them and turns them into entries in
//  place. recs is a new array of size records, or the table's own slots: the records
//  are made in slot order, record i never after slot i, so that no slot is overwritten
//  before it is read.
static tl_entry_t *s_sort_into (tl_table_t *self, s_rec_t *recs, bool in_place)
{
    size_t n = self->size;
    //  Two threads read the slots: the first half's records fill recs from the front,
    //  the second half's from the back of recs, or, in place, from the middle, and are
    //  then moved down to follow the first half's (the sort does not mind their order).
    //  Each key read is a cache miss: the arena holds them in the order they came.
    size_t half = n > S_RADIX_TASK ? self->capacity / 2 : self->capacity;
    //  Two threads' counts by bucket, later the cursors of s_code_pass
    size_t *hist = n > S_RADIX_TASK ? calloc (3 * S_CODES, sizeof *hist) : NULL;
    s_build_t part[2] = {{self, recs, 0, half, 0, false, 0, {0, 0, 0}, 0, 0, hist},
                         {self,
                          recs,
                          half,
                          self->capacity,
                          in_place ? half : n,
                          !in_place,
                          0,
                          {0, 0, 0},
                          0,
                          0,
                          hist ? hist + S_CODES : NULL}};
    pthread_t thread;
    bool threaded = half < self->capacity && pthread_create (&thread, NULL, s_build, &part[1]) == 0;
    s_build (&part[0]);
    if (threaded)
        pthread_join (thread, NULL);
    else
        s_build (&part[1]);
    assert (part[0].made + part[1].made == n);
    if (in_place && part[1].made && part[0].made < half)
        memmove (recs + part[0].made, recs + half, part[1].made * sizeof (s_rec_t));
    //  Leading bytes alike in every record need no radix pass (records counted by
    //  bucket start from the bucket instead).
    uint64_t dcount = part[0].dcount | part[1].dcount;
    uint64_t dprefix = part[0].dprefix | part[1].dprefix;
    if (part[0].made && part[1].made) {
        dcount |= part[0].first.count ^ part[1].first.count;
        dprefix |= part[0].first.prefix ^ part[1].first.prefix;
    }
    int level = dcount    ? __builtin_clzll (dcount) / 8
                : dprefix ? 8 + __builtin_clzll (dprefix) / 8
                          : S_RADIX_BYTES;
    if (hist)
        for (size_t b = 0; b < S_CODES; b++)
            hist[b] += hist[S_CODES + b];
    s_rec_sort_all (recs, n, level, self, hist);
    //  The records become entries, on two threads when there are many
    s_entries_t conv[2] = {{self, recs, 0, n, hist}, {self, recs, n, n, hist}};
    threaded = false;
    if (hist) {
        conv[0].to = conv[1].from = n / 2;
        threaded = pthread_create (&thread, NULL, s_entries, &conv[1]) == 0;
    }
    s_entries (&conv[0]);
    if (threaded)
        pthread_join (thread, NULL);
    else
        s_entries (&conv[1]);
    free (hist);
    return (tl_entry_t *)(void *)recs;
}

tl_entry_t *tl_table_sorted (tl_table_t *self, size_t *size)
{
    assert (self);
    assert (size);
    assert (self->slots);
    *size = 0;
    if (self->size == 0) return NULL;
    s_rec_t *recs = s_array_new (self->size);
    if (!recs) return NULL;
    *size = self->size;
    return s_sort_into (self, recs, false);
}

_Static_assert(sizeof (s_rec_t) == sizeof (slot_t), "records are made in the slots");

tl_entry_t *tl_table_sorted_take (tl_table_t *self, size_t *size)
{
    assert (self);
    assert (size);
    assert (self->slots);
    *size = 0;
    if (self->size == 0) return NULL;
    //  No doubling comes now, nor keys: what is not faulted in yet never will be
    s_touch_finish (&self->toucher, false);
    free (s_spare_take (self, false));
    tl_entry_t *entries = s_sort_into (self, (s_rec_t *)(void *)self->slots, true);
    //  The slots past the entries go back (and a half grown ahead)
    entries = s_array_shrink (entries, self->size * sizeof (tl_entry_t));
    self->grown = false;
    free (self->touched);
    self->slots = NULL;
    self->touched = NULL;
    self->capacity = 0;
    self->mask = 0;
    self->size_max = 0;
    self->touched_max = 0;
    self->touched_size = 0;
    self->touched_lost = true;
    *size = self->size;
    return entries;
}

//  Restores the heap below index: every parent sorts after its children, so heap[0] is
//  the entry that sorts last among the k kept (the first to drop out).
static void s_heap_down (tl_entry_t *heap, size_t n, size_t index)
{
    for (;;) {
        size_t worst = index;
        size_t left = 2 * index + 1;
        size_t right = left + 1;
        if (left < n && tl_entry_compare (&heap[left], &heap[worst]) > 0) worst = left;
        if (right < n && tl_entry_compare (&heap[right], &heap[worst]) > 0) worst = right;
        if (worst == index) return;
        tl_entry_t swap = heap[index];
        heap[index] = heap[worst];
        heap[worst] = swap;
        index = worst;
    }
}

static void s_heap_up (tl_entry_t *heap, size_t index)
{
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (tl_entry_compare (&heap[index], &heap[parent]) <= 0) return;
        tl_entry_t swap = heap[index];
        heap[index] = heap[parent];
        heap[parent] = swap;
        index = parent;
    }
}

//  Keeps the k best entries in out as a heap with the worst at the root, then sorts them.
size_t tl_table_top (tl_table_t *self, size_t k, tl_entry_t *out)
{
    assert (self);
    assert (out || k == 0);
    if (k == 0 || self->size == 0) return 0;
    size_t n = 0;
    for (size_t i = 0; i < self->capacity; i++) {
        if (self->slots[i].ref == 0) continue;
        tl_entry_t entry;
        s_entry (self, &self->slots[i], &entry);
        if (n < k) {
            out[n] = entry;
            s_heap_up (out, n++);
        } else if (tl_entry_compare (&entry, &out[0]) < 0) {
            out[0] = entry;
            s_heap_down (out, n, 0);
        }
    }
    qsort (out, n, sizeof (tl_entry_t), tl_entry_compare);
    return n;
}

int tl_entry_compare (const void *a, const void *b)
{
    const tl_entry_t *x = a;
    const tl_entry_t *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    uint32_t common = x->len < y->len ? x->len : y->len;
    int rc = common ? memcmp (x->key, y->key, common) : 0;
    if (rc != 0) return rc < 0 ? -1 : 1;
    return (x->len > y->len) - (x->len < y->len);
}
