/*  test_window: tl_window, the ventilator's window of unacknowledged chunks.

    Drives the window with a fake clock (plain seconds passed to each call) and real
    tl_buf buffers from a source pool, whose reference counts show exactly how many the
    window still holds: ids, capacity, acks, the resend deadlines while streaming, at the
    tail and after a worker left, the order of resends, the latency estimate, counters,
    and which sends count as attempts and when a chunk has failed them all. After a sink
    restart: chunks produced again under their own ids, chunks the sink holds skipped,
    sent chunks due again at once as a new first attempt, and the sink's ack count.    */

#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "source_int.h"
#include "window.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define S_MAX_BUFS 32
#define S_BUF_SIZE 4096
#define S_EPSILON  1e-9

static tl__pool_t *s_pool;            //  Where the test's buffers come from
static tl_buf_t *s_bufs[S_MAX_BUFS];  //  Each buffer made, with one reference of the test's
static size_t s_nbufs;                //  Entries in s_bufs

static void s_setup (void)
{
    s_pool = tl__pool_new (S_BUF_SIZE, 1);
    cr_assert_not_null (s_pool);
    s_nbufs = 0;
}

static void s_teardown (void)
{
    for (size_t i = 0; i < s_nbufs; i++)
        tl_buf_release (s_bufs[i]);
    tl__pool_close (&s_pool);
}

TestSuite (window, .init = s_setup, .fini = s_teardown);

//  Under AddressSanitizer, fails when memory leaked so far (a buffer the window kept).
static void s_assert_no_leaks (void)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_assert_eq (__lsan_do_recoverable_leak_check (), 0, "memory leaked (see the report)");
#endif
}

//  A chunk of size bytes in a buffer of its own, with the one reference the window will
//  take. The test keeps another, so the buffer outlives the window's release and its
//  count still says how many references the window holds.
static tl_chunk_t s_chunk (size_t size)
{
    cr_assert_lt (s_nbufs, S_MAX_BUFS);
    cr_assert_leq (size, S_BUF_SIZE);
    tl_buf_t *buf = tl__pool_get (s_pool);
    cr_assert_not_null (buf);
    memset (buf->mem, 'a' + (int)s_nbufs, size);
    tl_buf_ref (buf);
    s_bufs[s_nbufs++] = buf;
    return (tl_chunk_t){.file = (uint32_t)s_nbufs % 3,
                        .offset = s_nbufs * 1000,
                        .first = s_nbufs == 1,
                        .data = buf->mem,
                        .size = size,
                        .buf = buf};
}

//  References the window holds on buf.
static unsigned s_window_refs (tl_buf_t *buf)
{
    return atomic_load (&buf->refs) - 1;
}

//  Adds a new chunk of size bytes; checks it got the id expected.
static const tl_window_slot_t *s_add (tl_window_t *window, size_t size, uint64_t id)
{
    cr_assert (tl_window_has_room (window));
    tl_chunk_t chunk = s_chunk (size);
    const tl_window_slot_t *slot = tl_window_add (window, &chunk);
    cr_assert_not_null (slot);
    cr_assert_eq (slot->id, id);
    return slot;
}

static tl_window_t *s_new_max (size_t capacity, double retry, uint32_t max_attempts)
{
    tl_window_t *window = tl_window_new (capacity, retry, max_attempts);
    cr_assert_not_null (window);
    return window;
}

static tl_window_t *s_new (size_t capacity, double retry)
{
    return s_new_max (capacity, retry, 5);
}

//  Sends slot's chunk at time now, which must be due then; checks the attempts it has
//  opened and the times it was sent afterwards.
static void s_send (tl_window_t *window, const tl_window_slot_t *slot, double now, bool last_cut,
                    uint32_t attempts, uint32_t sends)
{
    cr_assert_eq (tl_window_due (window, now, last_cut), slot, "due at %g", now);
    cr_assert_null (tl_window_failed (window, now, last_cut), "nothing failed at %g", now);
    tl_window_sent (window, slot, now);
    cr_assert_eq (tl_window_attempts (window, slot), attempts, "attempts after the send at %g",
                  now);
    cr_assert_eq (tl_window_sends (window, slot), sends, "sends after the send at %g", now);
}

//  Gives the window a latency of exactly seconds: a spare chunk sent at 0 and acked then.
static void s_measure_latency (tl_window_t *window, double seconds)
{
    cr_assert_eq (tl_window_latency (window), 0, "only for a window without samples");
    tl_chunk_t chunk = s_chunk (1);
    const tl_window_slot_t *slot = tl_window_add (window, &chunk);
    tl_window_sent (window, slot, 0);
    cr_assert_eq (tl_window_ack (window, slot->id, seconds), 0);
    cr_assert_float_eq (tl_window_latency (window), seconds, S_EPSILON);
}

//  --------------------------------------------------------------------------
//  Ids, capacity, acks and buffers

Test (window, ids_in_cut_order)
{
    tl_window_t *window = s_new (8, 5);
    const tl_window_slot_t *slots[5];
    for (uint64_t id = 0; id < 5; id++)
        slots[id] = s_add (window, 10 + id, id);
    cr_assert_eq (tl_window_added (window), 5);
    cr_assert_eq (tl_window_inflight (window), 5);

    //  The slot shows the chunk as it was added
    cr_assert_eq (slots[3]->chunk.buf, s_bufs[3]);
    cr_assert_eq (slots[3]->chunk.data, s_bufs[3]->mem);
    cr_assert_eq (slots[3]->chunk.size, 13);
    cr_assert_eq (slots[3]->chunk.offset, 4000);
    cr_assert_eq (slots[3]->chunk.file, 1);

    //  A freed slot is reused, its id is not
    cr_assert_eq (tl_window_ack (window, 1, 0), 0);
    s_add (window, 10, 5);
    cr_assert_eq (tl_window_added (window), 6);
    cr_assert_eq (tl_window_inflight (window), 5);
    tl_window_destroy (&window);
    cr_assert_null (window);
    tl_window_destroy (&window);  //  Harmless twice
}

Test (window, capacity)
{
    tl_window_t *window = s_new (3, 5);
    for (uint64_t id = 0; id < 3; id++)
        s_add (window, 10, id);
    cr_assert_not (tl_window_has_room (window));
    cr_assert_eq (tl_window_inflight (window), 3);

    //  Sending frees nothing; only an ack does
    const tl_window_slot_t *slot;
    while ((slot = tl_window_due (window, 1, false)))
        tl_window_sent (window, slot, 1);
    cr_assert_not (tl_window_has_room (window));
    cr_assert_eq (tl_window_ack (window, 2, 2), 0);
    cr_assert (tl_window_has_room (window));
    s_add (window, 10, 3);
    cr_assert_not (tl_window_has_room (window));
    tl_window_destroy (&window);
}

Test (window, ack_releases_buffer_once)
{
    tl_window_t *window = s_new (4, 5);
    const tl_window_slot_t *slot = s_add (window, 100, 0);
    s_add (window, 20, 1);
    const tl_window_slot_t *last = s_add (window, 30, 2);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq (s_window_refs (s_bufs[i]), 1, "the window holds the caller's reference");

    tl_window_sent (window, slot, 1);
    cr_assert_eq (tl_window_ack (window, 0, 2), 0);
    cr_assert_eq (s_window_refs (s_bufs[0]), 0, "released on the ack");
    cr_assert_eq (s_window_refs (s_bufs[1]), 1, "the others are kept");
    cr_assert_eq (tl_window_inflight (window), 2);
    cr_assert_eq (tl_window_acked (window), 1);
    cr_assert_eq (tl_window_acked_bytes (window), 100);

    //  The same ack again changes nothing and releases nothing
    cr_assert_eq (tl_window_ack (window, 0, 3), -1);
    cr_assert_eq (s_window_refs (s_bufs[0]), 0);
    cr_assert_eq (tl_window_inflight (window), 2);
    cr_assert_eq (tl_window_acked (window), 1);
    cr_assert_eq (tl_window_acked_bytes (window), 100);

    //  An ack of a chunk never sent still frees it (the sink has it, somehow)
    tl_window_sent (window, last, 3);
    cr_assert_not (tl_window_all_sent (window));
    cr_assert_eq (tl_window_ack (window, 1, 3), 0);
    cr_assert_eq (s_window_refs (s_bufs[1]), 0);
    cr_assert (tl_window_all_sent (window), "no unsent chunk left behind");

    //  Destroying releases what is left, once
    tl_window_destroy (&window);
    cr_assert_eq (s_window_refs (s_bufs[2]), 0);
    cr_assert_eq (s_window_refs (s_bufs[0]), 0);
    s_teardown ();
    s_assert_no_leaks ();
    s_setup ();
}

Test (window, unknown_ack_ignored)
{
    tl_window_t *window = s_new (4, 5);
    const tl_window_slot_t *slot = s_add (window, 10, 0);
    tl_window_sent (window, slot, 1);
    cr_assert_eq (tl_window_ack (window, 1, 2), -1, "never cut");
    cr_assert_eq (tl_window_ack (window, UINT64_MAX, 2), -1);
    cr_assert_eq (tl_window_inflight (window), 1);
    cr_assert_eq (tl_window_acked (window), 0);
    cr_assert_eq (tl_window_acked_bytes (window), 0);
    cr_assert_eq (tl_window_latency (window), 0, "no sample from an unknown id");
    cr_assert_eq (s_window_refs (s_bufs[0]), 1);
    cr_assert_null (tl_window_due (window, 5.9, false), "its send still counts");
    tl_window_destroy (&window);
}

//  --------------------------------------------------------------------------
//  What goes out next

Test (window, unsent_in_cut_order)
{
    tl_window_t *window = s_new (4, 5);
    cr_assert_null (tl_window_due (window, 0, false), "nothing to send");
    const tl_window_slot_t *first = s_add (window, 10, 0);
    const tl_window_slot_t *second = s_add (window, 10, 1);
    cr_assert_not (tl_window_all_sent (window));
    //  After an ack frees slot 0, chunk 2 lands in it, before chunk 1 in the array
    tl_window_sent (window, first, 1);
    cr_assert_eq (tl_window_ack (window, 0, 1.5), 0);
    const tl_window_slot_t *third = s_add (window, 10, 2);
    cr_assert_eq (tl_window_due (window, 2, false), second);
    tl_window_sent (window, second, 2);
    cr_assert_eq (tl_window_due (window, 2, false), third);
    tl_window_sent (window, third, 2);
    cr_assert (tl_window_all_sent (window));
    cr_assert_null (tl_window_due (window, 2, false));
    tl_window_destroy (&window);
}

Test (window, resend_while_streaming)
{
    //  No latency measured yet: max(retry, 10 x 0.5)
    tl_window_t *window = s_new (4, 6);
    const tl_window_slot_t *slot = s_add (window, 10, 0);
    tl_window_sent (window, slot, 100);
    cr_assert_null (tl_window_due (window, 105.875, false));
    cr_assert_eq (tl_window_due (window, 106, false), slot);
    tl_window_destroy (&window);

    window = s_new (4, 2);
    slot = s_add (window, 10, 0);
    tl_window_sent (window, slot, 100);
    cr_assert_null (tl_window_due (window, 104.875, false), "10 x 0.5 s rules over retry");
    cr_assert_eq (tl_window_due (window, 105, false), slot);
    tl_window_destroy (&window);

    //  Measured latency 2 s: max(retry, 20)
    window = s_new (4, 6);
    s_measure_latency (window, 2);
    slot = s_add (window, 10, 1);
    tl_window_sent (window, slot, 10);
    cr_assert_null (tl_window_due (window, 29.875, false));
    cr_assert_eq (tl_window_due (window, 30, false), slot);

    //  A resend restarts its clock
    tl_window_sent (window, slot, 30);
    cr_assert_null (tl_window_due (window, 49.875, false));
    cr_assert_eq (tl_window_due (window, 50, false), slot);
    tl_window_destroy (&window);

    //  Measured latency 0.25 s: retry rules
    window = s_new (4, 6);
    s_measure_latency (window, 0.25);
    slot = s_add (window, 10, 1);
    tl_window_sent (window, slot, 10);
    cr_assert_null (tl_window_due (window, 15.875, false));
    cr_assert_eq (tl_window_due (window, 16, false), slot);
    tl_window_destroy (&window);
}

Test (window, resend_at_tail)
{
    //  No latency yet: max(retry / 4, 4 x 0.5), once nothing more will be cut
    tl_window_t *window = s_new (4, 4);
    const tl_window_slot_t *slot = s_add (window, 10, 0);
    tl_window_sent (window, slot, 100);
    cr_assert_null (tl_window_due (window, 101.875, true));
    cr_assert_eq (tl_window_due (window, 102, true), slot);
    cr_assert_null (tl_window_due (window, 102, false), "not while streaming");

    //  A chunk not sent yet means the tail has not begun: it goes first, and the sent
    //  one waits for the streaming deadline
    const tl_window_slot_t *unsent = s_add (window, 10, 1);
    cr_assert_eq (tl_window_due (window, 102, true), unsent);
    tl_window_sent (window, unsent, 102);
    cr_assert_eq (tl_window_due (window, 102, true), slot);
    tl_window_destroy (&window);

    //  retry / 4 rules over 4 x 0.5 s
    window = s_new (4, 20);
    slot = s_add (window, 10, 0);
    tl_window_sent (window, slot, 100);
    cr_assert_null (tl_window_due (window, 104.875, true));
    cr_assert_eq (tl_window_due (window, 105, true), slot);
    tl_window_destroy (&window);

    //  Measured latency 1.5 s: max(retry / 4, 6)
    window = s_new (4, 12);
    s_measure_latency (window, 1.5);
    slot = s_add (window, 10, 1);
    tl_window_sent (window, slot, 10);
    cr_assert_null (tl_window_due (window, 15.875, true));
    cr_assert_eq (tl_window_due (window, 16, true), slot);
    tl_window_destroy (&window);
}

Test (window, resend_after_disconnect)
{
    //  No latency yet: suspects go after 0.25 s
    tl_window_t *window = s_new (4, 5);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    const tl_window_slot_t *b = s_add (window, 10, 1);
    const tl_window_slot_t *c = s_add (window, 10, 2);
    tl_window_sent (window, a, 10);
    tl_window_sent (window, b, 10.125);
    tl_window_disconnected (window);
    cr_assert_eq (tl_window_due (window, 10.21875, false), c, "nothing suspect due yet");
    cr_assert_eq (tl_window_due (window, 10.25, false), a);
    tl_window_sent (window, a, 10.25);
    cr_assert_eq (tl_window_due (window, 10.25, false), c);
    cr_assert_eq (tl_window_due (window, 10.375, false), b);
    tl_window_sent (window, b, 10.375);

    //  c was not out when the worker left: it goes once, and later sends are not suspect
    cr_assert_eq (tl_window_due (window, 10.375, false), c);
    tl_window_sent (window, c, 10.375);
    cr_assert_null (tl_window_due (window, 14.875, false));
    cr_assert_eq (tl_window_resent (window), 2);
    tl_window_destroy (&window);

    //  Measured latency 1 s: suspects go after 3 s (a new send is not suspect)
    window = s_new (4, 5);
    s_measure_latency (window, 1);
    a = s_add (window, 10, 1);
    tl_window_sent (window, a, 5);
    tl_window_disconnected (window);
    b = s_add (window, 10, 2);
    tl_window_sent (window, b, 5);
    cr_assert_null (tl_window_due (window, 7.875, false));
    cr_assert_eq (tl_window_due (window, 8, false), a);
    tl_window_sent (window, a, 8);
    cr_assert_null (tl_window_due (window, 14.875, false), "the others wait 10 x latency");
    tl_window_destroy (&window);

    //  Measured latency 0.0625 s: 0.25 s at least
    window = s_new (4, 5);
    s_measure_latency (window, 0.0625);
    a = s_add (window, 10, 1);
    tl_window_sent (window, a, 5);
    tl_window_disconnected (window);
    cr_assert_null (tl_window_due (window, 5.21875, false));
    cr_assert_eq (tl_window_due (window, 5.25, false), a);
    tl_window_destroy (&window);
}

Test (window, oldest_overdue_first)
{
    tl_window_t *window = s_new (4, 5);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    const tl_window_slot_t *b = s_add (window, 10, 1);
    const tl_window_slot_t *c = s_add (window, 10, 2);
    tl_window_sent (window, a, 3);
    tl_window_sent (window, b, 1);
    tl_window_sent (window, c, 2);
    //  An unsent chunk waits while any sent one is overdue
    const tl_window_slot_t *d = s_add (window, 10, 3);
    cr_assert_eq (tl_window_due (window, 20, false), b);
    tl_window_sent (window, b, 20);
    cr_assert_eq (tl_window_due (window, 20, false), c);
    tl_window_sent (window, c, 20);
    cr_assert_eq (tl_window_due (window, 20, false), a);
    tl_window_sent (window, a, 20);
    cr_assert_eq (tl_window_due (window, 20, false), d);
    tl_window_sent (window, d, 20);
    cr_assert_null (tl_window_due (window, 20, false));
    tl_window_destroy (&window);
}

//  --------------------------------------------------------------------------
//  Latency and counters

Test (window, latency_from_first_sends_only)
{
    tl_window_t *window = s_new (4, 5);
    cr_assert_eq (tl_window_latency (window), 0);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    tl_window_sent (window, a, 0);
    cr_assert_eq (tl_window_ack (window, 0, 1), 0);
    cr_assert_float_eq (tl_window_latency (window), 1, S_EPSILON,
                        "the first sample is taken whole");

    //  Sent twice: no telling which copy was answered, so no sample
    const tl_window_slot_t *b = s_add (window, 10, 1);
    tl_window_sent (window, b, 0);
    tl_window_sent (window, b, 10);
    cr_assert_eq (tl_window_ack (window, 1, 10.5), 0);
    cr_assert_float_eq (tl_window_latency (window), 1, S_EPSILON);

    //  Never sent: no sample either
    s_add (window, 10, 2);
    cr_assert_eq (tl_window_ack (window, 2, 50), 0);
    cr_assert_float_eq (tl_window_latency (window), 1, S_EPSILON);

    //  Later samples are smoothed: 0.9 x 1 + 0.1 x 3
    const tl_window_slot_t *c = s_add (window, 10, 3);
    tl_window_sent (window, c, 20);
    cr_assert_eq (tl_window_ack (window, 3, 23), 0);
    cr_assert_float_eq (tl_window_latency (window), 1.2, S_EPSILON);
    tl_window_destroy (&window);
}

Test (window, resent_counter)
{
    tl_window_t *window = s_new (4, 5);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    const tl_window_slot_t *b = s_add (window, 10, 1);
    tl_window_sent (window, a, 0);
    tl_window_sent (window, b, 0);
    cr_assert_eq (tl_window_resent (window), 0, "first sends are not resends");
    tl_window_sent (window, a, 5);
    tl_window_sent (window, a, 10);
    tl_window_sent (window, b, 10);
    cr_assert_eq (tl_window_resent (window), 3);
    cr_assert_eq (tl_window_ack (window, 0, 11), 0);
    cr_assert_eq (tl_window_resent (window), 3, "an ack does not change it");
    tl_window_destroy (&window);
}

//  --------------------------------------------------------------------------
//  Attempts: which sends count, and a chunk that fails them all

Test (window, tail_backups_do_not_count)
{
    //  retry 8, no latency yet: streaming interval max(8, 5) = 8, tail max(2, 2) = 2
    tl_window_t *window = s_new_max (4, 8, 3);
    const tl_window_slot_t *slot = s_add (window, 10, 0);
    s_send (window, slot, 100, true, 1, 1);
    tl_window_heard (window, 101);
    //  Backup copies every 2 s, all within the first attempt
    s_send (window, slot, 102, true, 1, 2);
    s_send (window, slot, 104, true, 1, 3);
    s_send (window, slot, 106, true, 1, 4);
    //  A whole streaming interval after the attempt opened, with the sink up: a new one
    cr_assert_null (tl_window_due (window, 107.875, true));
    s_send (window, slot, 108, true, 2, 5);
    s_send (window, slot, 110, true, 2, 6);
    //  A slow worker answers at last: the chunk took two attempts, not six sends
    cr_assert_eq (tl_window_ack (window, 0, 111), 0);
    cr_assert_eq (tl_window_most_attempts (window), 2);
    cr_assert_eq (tl_window_resent (window), 5);
    tl_window_destroy (&window);

    //  One attempt allowed: backups still go out, and only the next attempt fails
    window = s_new_max (4, 8, 1);
    slot = s_add (window, 10, 0);
    s_send (window, slot, 100, true, 1, 1);
    tl_window_heard (window, 101);
    s_send (window, slot, 102, true, 1, 2);
    s_send (window, slot, 104, true, 1, 3);
    s_send (window, slot, 106, true, 1, 4);
    cr_assert_null (tl_window_due (window, 108, true), "not sent an attempt too many");
    cr_assert_eq (tl_window_failed (window, 108, true), slot);
    tl_window_destroy (&window);
}

Test (window, timeouts_count_while_the_sink_answers)
{
    //  retry 6, no latency yet: streaming interval max(6, 5) = 6
    tl_window_t *window = s_new_max (4, 6, 2);
    const tl_window_slot_t *slot = s_add (window, 10, 0);
    s_send (window, slot, 0, false, 1, 1);
    //  The sink has never answered: its silence, not the chunk, explains the wait
    s_send (window, slot, 6, false, 1, 2);
    s_send (window, slot, 12, false, 1, 3);
    //  An ack of another chunk says the sink is up: the next timeout is an attempt
    const tl_window_slot_t *other = s_add (window, 10, 1);
    s_send (window, other, 12.5, false, 1, 1);
    cr_assert_eq (tl_window_ack (window, other->id, 13), 0);
    s_send (window, slot, 18, false, 2, 4);
    //  Both attempts used; a timeout with no answer since still only sends a copy
    s_send (window, slot, 24, false, 2, 5);
    tl_window_heard (window, 25);
    //  The third attempt is reported, not sent
    cr_assert_null (tl_window_failed (window, 29.875, false), "not due yet");
    cr_assert_null (tl_window_due (window, 30, false));
    cr_assert_eq (tl_window_failed (window, 30, false), slot);
    cr_assert_eq (tl_window_failed (window, 60, false), slot, "and stays reported");
    cr_assert_eq (tl_window_attempts (window, slot), 2);
    cr_assert_eq (tl_window_sends (window, slot), 5);
    cr_assert_eq (tl_window_inflight (window), 1, "kept: the job cannot end without it");
    tl_window_destroy (&window);
}

Test (window, disconnect_resends_count)
{
    //  Suspect resends open attempts at once, whether the sink answered or not
    tl_window_t *window = s_new_max (4, 5, 3);
    const tl_window_slot_t *slot = s_add (window, 10, 0);
    s_send (window, slot, 10, false, 1, 1);
    tl_window_disconnected (window);
    s_send (window, slot, 10.25, false, 2, 2);
    tl_window_disconnected (window);
    s_send (window, slot, 10.5, false, 3, 3);
    tl_window_disconnected (window);
    cr_assert_null (tl_window_failed (window, 10.71875, false), "not due yet");
    cr_assert_null (tl_window_due (window, 10.75, false));
    cr_assert_eq (tl_window_failed (window, 10.75, false), slot);
    //  Acknowledged after all (a copy was merged): it leaves, and nothing is failed
    cr_assert_eq (tl_window_ack (window, 0, 11), 0);
    cr_assert_null (tl_window_failed (window, 11, false));
    cr_assert_eq (tl_window_most_attempts (window), 3);
    tl_window_destroy (&window);

    //  A chunk out when a worker left, answered in time, took one attempt
    window = s_new_max (4, 5, 1);
    slot = s_add (window, 10, 0);
    s_send (window, slot, 10, false, 1, 1);
    tl_window_disconnected (window);
    cr_assert_null (tl_window_failed (window, 10.125, false));
    cr_assert_eq (tl_window_ack (window, 0, 10.125), 0);
    cr_assert_eq (tl_window_most_attempts (window), 1);
    tl_window_destroy (&window);
}

Test (window, failed_chunk_does_not_block_others)
{
    //  retry 5, no latency yet: streaming interval 5
    tl_window_t *window = s_new_max (4, 5, 1);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    const tl_window_slot_t *b = s_add (window, 10, 1);
    s_send (window, a, 0, false, 1, 1);
    s_send (window, b, 2, false, 1, 1);
    tl_window_heard (window, 3);
    const tl_window_slot_t *c = s_add (window, 10, 2);
    //  a has failed; the chunk not sent yet still goes out
    cr_assert_eq (tl_window_failed (window, 5, false), a);
    cr_assert_eq (tl_window_due (window, 5, false), c);
    tl_window_sent (window, c, 5);
    //  Both failed: neither is sent, and the one that waited longest is reported
    cr_assert_null (tl_window_due (window, 7, false));
    cr_assert_eq (tl_window_failed (window, 7, false), a);
    tl_window_destroy (&window);
}

Test (window, undelivered_attempts_count)
{
    //  retry 5, no latency yet: streaming interval 5
    tl_window_t *window = s_new_max (4, 5, 3);
    const tl_window_slot_t *slot = s_add (window, 10, 0);
    const tl_window_slot_t *unsent = s_add (window, 10, 1);
    s_send (window, slot, 10, false, 1, 1);
    tl_window_heard (window, 11);
    //  Its worker left and none is there to take it: nothing counts within the interval,
    //  as a worker may be back in a moment
    tl_window_disconnected (window);
    cr_assert_eq (tl_window_due (window, 10.25, false), slot);
    tl_window_undelivered (window, slot, 10.25);
    tl_window_undelivered (window, slot, 14.875);
    cr_assert_eq (tl_window_attempts (window, slot), 1);
    //  A whole interval with nobody to take it: one attempt failed, once
    tl_window_undelivered (window, slot, 15);
    tl_window_undelivered (window, slot, 17);
    cr_assert_eq (tl_window_attempts (window, slot), 2);
    cr_assert_eq (tl_window_sends (window, slot), 1, "nothing was sent");
    //  A chunk never sent is only waiting for its first worker
    tl_window_undelivered (window, unsent, 17);
    cr_assert_eq (tl_window_attempts (window, unsent), 0);
    //  A worker comes back: the chunk goes at once, as its next attempt
    s_send (window, slot, 17, false, 3, 2);
    //  Lost again with that worker: the next attempt is reported, not sent
    tl_window_disconnected (window);
    cr_assert_null (tl_window_failed (window, 17.125, false), "not due yet");
    cr_assert_eq (tl_window_failed (window, 17.25, false), slot);
    cr_assert_eq (tl_window_due (window, 17.25, false), unsent);
    tl_window_destroy (&window);

    //  The sink silent: no attempt counts, however long the wait
    window = s_new_max (4, 5, 2);
    slot = s_add (window, 10, 0);
    s_send (window, slot, 10, false, 1, 1);
    tl_window_disconnected (window);
    tl_window_undelivered (window, slot, 100);
    cr_assert_eq (tl_window_attempts (window, slot), 1);
    tl_window_heard (window, 100);
    tl_window_undelivered (window, slot, 101);
    cr_assert_eq (tl_window_attempts (window, slot), 2);
    cr_assert_eq (tl_window_failed (window, 101, false), slot);
    tl_window_undelivered (window, slot, 200);
    cr_assert_eq (tl_window_attempts (window, slot), 2, "never beyond max_attempts");
    tl_window_destroy (&window);
}

//  --------------------------------------------------------------------------
//  Crash recovery: chunks produced again, skipped, and a sink that restarted

Test (window, add_id_keeps_its_id)
{
    tl_window_t *window = s_new (4, 5);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    const tl_window_slot_t *b = s_add (window, 20, 1);
    s_add (window, 30, 2);
    tl_window_sent (window, a, 1);
    tl_window_sent (window, b, 1);
    cr_assert_eq (tl_window_ack (window, 1, 2), 0);
    cr_assert_eq (tl_window_acked (window), 1);
    cr_assert_eq (tl_window_acked_bytes (window), 20);
    cr_assert_not (tl_window_holds (window, 1));

    //  The sink lost chunk 1: produced again, it comes back under its own id
    tl_chunk_t again = s_chunk (21);
    const tl_window_slot_t *slot = tl_window_add_id (window, &again, 1);
    cr_assert_not_null (slot);
    cr_assert_eq (slot->id, 1);
    cr_assert_eq (slot->chunk.buf, again.buf);
    cr_assert_eq (slot->chunk.data, again.data);
    cr_assert_eq (slot->chunk.size, 21);
    cr_assert_eq (slot->chunk.offset, again.offset);
    cr_assert_eq (s_window_refs (again.buf), 1, "the window holds the caller's reference");
    cr_assert (tl_window_holds (window, 1));
    cr_assert_eq (tl_window_added (window), 3, "no new id was used");
    cr_assert_eq (tl_window_inflight (window), 3);
    cr_assert_eq (tl_window_acked (window), 1, "acks stay as they were");
    cr_assert_not (tl_window_all_sent (window), "it has not gone out yet");
    cr_assert_eq (tl_window_sends (window, slot), 0);
    cr_assert_eq (tl_window_attempts (window, slot), 0);

    //  The next chunk cut still gets the next id
    s_add (window, 40, 3);
    cr_assert_eq (tl_window_added (window), 4);
    cr_assert_not (tl_window_has_room (window));

    //  Never sent: it goes before the later cuts, in id order
    cr_assert_eq (tl_window_due (window, 1.5, false), slot);
    tl_window_sent (window, slot, 1.5);
    cr_assert_eq (tl_window_sends (window, slot), 1);
    cr_assert_eq (tl_window_attempts (window, slot), 1);
    cr_assert_eq (tl_window_resent (window), 0, "its first send in this window");

    //  Its ack releases it, and counts its bytes
    cr_assert_eq (tl_window_ack (window, 1, 2.5), 0);
    cr_assert_eq (s_window_refs (again.buf), 0, "released on the ack");
    cr_assert_not (tl_window_holds (window, 1));
    cr_assert_eq (tl_window_inflight (window), 3);
    cr_assert_eq (tl_window_acked (window), 2);
    cr_assert_eq (tl_window_acked_bytes (window), 41);
    cr_assert_eq (tl_window_ack (window, 1, 3), -1, "and only once");
    cr_assert_eq (tl_window_acked (window), 2);
    tl_window_destroy (&window);
    s_teardown ();
    s_assert_no_leaks ();
    s_setup ();
}

Test (window, add_id_goes_before_later_cuts)
{
    //  Chunks produced again are older than any chunk not sent yet: they go first
    tl_window_t *window = s_new (8, 5);
    for (uint64_t id = 0; id < 4; id++) {
        const tl_window_slot_t *slot = s_add (window, 10, id);
        tl_window_sent (window, slot, 0);
        cr_assert_eq (tl_window_ack (window, id, 0.5), 0);
    }
    cr_assert_eq (tl_window_skip (window, 10), 4);
    cr_assert_eq (tl_window_skip (window, 10), 5);
    tl_chunk_t lost4 = s_chunk (10), lost0 = s_chunk (10);
    const tl_window_slot_t *four = tl_window_add_id (window, &lost4, 4);
    const tl_window_slot_t *zero = tl_window_add_id (window, &lost0, 0);
    const tl_window_slot_t *later = s_add (window, 10, 6);
    cr_assert_eq (tl_window_due (window, 1, false), zero);
    tl_window_sent (window, zero, 1);
    cr_assert_eq (tl_window_due (window, 1, false), four);
    tl_window_sent (window, four, 1);
    cr_assert_eq (tl_window_due (window, 1, false), later);
    tl_window_sent (window, later, 1);
    cr_assert (tl_window_all_sent (window));
    cr_assert_null (tl_window_due (window, 1, false));
    //  Destroying releases the chunks produced again too
    tl_window_destroy (&window);
    cr_assert_eq (s_window_refs (lost4.buf), 0);
    cr_assert_eq (s_window_refs (lost0.buf), 0);
}

Test (window, skip_counts_acked_and_advances_ids)
{
    tl_window_t *window = s_new (2, 5);
    s_add (window, 10, 0);
    cr_assert_eq (tl_window_skip (window, 100), 1);
    cr_assert_eq (tl_window_skip (window, 200), 2);
    cr_assert_eq (tl_window_added (window), 3);
    cr_assert_eq (tl_window_acked (window), 2);
    cr_assert_eq (tl_window_acked_bytes (window), 300);
    cr_assert_eq (tl_window_inflight (window), 1, "a skipped chunk is not held");
    cr_assert_not (tl_window_holds (window, 1));
    cr_assert_not (tl_window_holds (window, 2));
    cr_assert_eq (tl_window_ack (window, 1, 1), -1, "nor can it be acknowledged");
    cr_assert_eq (tl_window_acked (window), 2);

    //  Cut order goes on after the skipped ones
    s_add (window, 10, 3);
    cr_assert_not (tl_window_has_room (window));
    //  A full window can still skip: it takes no slot
    cr_assert_eq (tl_window_skip (window, 0), 4);
    cr_assert_eq (tl_window_acked (window), 3);
    cr_assert_eq (tl_window_acked_bytes (window), 300);
    cr_assert_eq (tl_window_inflight (window), 2);
    cr_assert_eq (tl_window_ack (window, 0, 1), 0);
    cr_assert_eq (tl_window_acked (window), 4);
    cr_assert_eq (tl_window_acked_bytes (window), 310);
    s_add (window, 10, 5);
    tl_window_destroy (&window);
}

Test (window, holds)
{
    tl_window_t *window = s_new (3, 5);
    cr_assert_not (tl_window_holds (window, 0), "an empty window holds nothing");
    s_add (window, 10, 0);
    s_add (window, 10, 1);
    cr_assert (tl_window_holds (window, 0));
    cr_assert (tl_window_holds (window, 1));
    cr_assert_not (tl_window_holds (window, 2), "not cut yet");
    cr_assert_not (tl_window_holds (window, UINT64_MAX));
    //  A freed slot holds nothing, not even the id its memory was cleared to
    cr_assert_eq (tl_window_ack (window, 1, 1), 0);
    cr_assert_not (tl_window_holds (window, 1));
    cr_assert_eq (tl_window_ack (window, 0, 1), 0);
    cr_assert_not (tl_window_holds (window, 0));
    s_add (window, 10, 2);
    cr_assert (tl_window_holds (window, 2));
    cr_assert_not (tl_window_holds (window, 0));
    tl_window_skip (window, 10);  //  3
    cr_assert_not (tl_window_holds (window, 3));
    tl_window_destroy (&window);
}

Test (window, restart_makes_sent_chunks_due_at_once)
{
    tl_window_t *window = s_new (4, 5);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    const tl_window_slot_t *b = s_add (window, 10, 1);
    const tl_window_slot_t *c = s_add (window, 10, 2);
    tl_window_sent (window, a, 100);
    tl_window_sent (window, b, 100);
    cr_assert_eq (tl_window_due (window, 100.125, false), c, "only the unsent one is due");
    cr_assert_eq (tl_window_due (window, 100.125, true), c);

    tl_window_restart (window, 100);
    //  The sent ones go out now, before the chunk never sent, which is unaffected
    cr_assert_eq (tl_window_sends (window, c), 0);
    cr_assert_eq (tl_window_attempts (window, c), 0);
    cr_assert_not (tl_window_all_sent (window));
    const tl_window_slot_t *first = tl_window_due (window, 100.125, false);
    cr_assert (first == a || first == b, "a sent chunk first");
    tl_window_sent (window, first, 100.125);
    const tl_window_slot_t *second = tl_window_due (window, 100.125, false);
    cr_assert (second == (first == a ? b : a), "then the other sent chunk");
    tl_window_sent (window, second, 100.125);
    cr_assert_eq (tl_window_due (window, 100.125, false), c);
    tl_window_sent (window, c, 100.125);
    cr_assert_null (tl_window_due (window, 100.125, false));
    cr_assert_eq (tl_window_resent (window), 2, "a and b went twice, c once");
    cr_assert_eq (tl_window_sends (window, c), 1);
    //  And the resends wait their normal interval again
    cr_assert_null (tl_window_due (window, 105, false));
    cr_assert_eq (tl_window_due (window, 105.125, false), first);
    tl_window_destroy (&window);

    //  Also at the tail, with nothing left to cut
    window = s_new (4, 40);
    a = s_add (window, 10, 0);
    tl_window_sent (window, a, 100);
    cr_assert_null (tl_window_due (window, 100.125, true));
    tl_window_restart (window, 100);
    cr_assert_eq (tl_window_due (window, 100.125, true), a);
    cr_assert_null (tl_window_failed (window, 100.125, true));
    tl_window_destroy (&window);

    //  An empty window, or one whose chunks were never sent: nothing changes
    window = s_new (4, 5);
    tl_window_restart (window, 0);
    cr_assert_null (tl_window_due (window, 0, false));
    a = s_add (window, 10, 0);
    tl_window_restart (window, 0);
    cr_assert_eq (tl_window_due (window, 0, false), a);
    cr_assert_eq (tl_window_sends (window, a), 0);
    s_send (window, a, 0, false, 1, 1);
    cr_assert_eq (tl_window_resent (window), 0);
    tl_window_destroy (&window);
}

Test (window, restart_resets_attempts)
{
    //  Two attempts allowed; the streaming interval is max(5, 10 x 0.5) = 5
    tl_window_t *window = s_new_max (4, 5, 2);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    const tl_window_slot_t *b = s_add (window, 10, 1);
    const tl_window_slot_t *c = s_add (window, 10, 2);
    s_send (window, a, 10, false, 1, 1);
    tl_window_disconnected (window);
    s_send (window, a, 10.25, false, 2, 2);
    s_send (window, b, 10.25, false, 1, 1);
    tl_window_heard (window, 10.5);
    tl_window_disconnected (window);
    //  a has used both attempts and is failed; b has one left
    cr_assert_eq (tl_window_failed (window, 10.75, false), a);
    cr_assert_eq (tl_window_due (window, 10.75, false), b);

    //  The sink restarted: those attempts were lost with it, not failed by the chunks
    tl_window_restart (window, 10.75);
    cr_assert_eq (tl_window_attempts (window, a), 0);
    cr_assert_eq (tl_window_attempts (window, b), 0);
    cr_assert_eq (tl_window_attempts (window, c), 0);
    cr_assert_eq (tl_window_sends (window, c), 0, "c was never sent");
    cr_assert_null (tl_window_failed (window, 10.75, false), "a is not failed any more");
    cr_assert_null (tl_window_failed (window, 10.75, true));
    cr_assert_null (tl_window_failed (window, 1000, false));

    //  Each goes out at once, as its first attempt after the restart
    for (int i = 0; i < 2; i++) {
        const tl_window_slot_t *slot = tl_window_due (window, 10.75, false);
        cr_assert (slot == a || slot == b, "send %d: a sent chunk", i);
        tl_window_sent (window, slot, 10.75);
        cr_assert_eq (tl_window_attempts (window, slot), 1, "send %d", i);
    }
    s_send (window, c, 10.75, false, 1, 1);
    cr_assert_null (tl_window_due (window, 10.75, false));

    //  From there a has its two attempts again: one more, then it fails
    tl_window_disconnected (window);
    cr_assert_null (tl_window_failed (window, 11, false));
    const tl_window_slot_t *slot = tl_window_due (window, 11, false);
    cr_assert (slot == a || slot == b || slot == c);
    while ((slot = tl_window_due (window, 11, false)))
        tl_window_sent (window, slot, 11);
    cr_assert_eq (tl_window_attempts (window, a), 2);
    cr_assert_null (tl_window_failed (window, 11.125, false), "not due yet");
    tl_window_disconnected (window);
    slot = tl_window_failed (window, 11.25, false);
    cr_assert (slot == a || slot == b || slot == c, "each has used its two attempts");
    cr_assert_null (tl_window_due (window, 11.25, false));
    tl_window_destroy (&window);
}

Test (window, restart_then_ack_before_the_resend)
{
    //  A chunk sent before the restart and acknowledged before it went out again (a copy
    //  still with a worker reached the new sink): the ack says nothing about the
    //  latency, and the window keeps resending on time afterwards
    tl_window_t *window = s_new (4, 5);
    s_measure_latency (window, 0.25);
    const tl_window_slot_t *a = s_add (window, 10, 1);
    tl_window_sent (window, a, 10);
    tl_window_restart (window, 10.25);
    cr_assert_eq (tl_window_ack (window, 1, 10.5), 0);
    double latency = tl_window_latency (window);
    cr_expect (isfinite (latency) && latency > 0 && latency <= 0.5,
               "latency %g after an ack of a chunk out before the restart", latency);
    const tl_window_slot_t *b = s_add (window, 10, 2);
    tl_window_sent (window, b, 20);
    cr_expect_eq (tl_window_due (window, 25, false), b, "resent after max(retry, 10 x latency)");
    tl_window_destroy (&window);

    //  The same before any latency was measured
    window = s_new (4, 5);
    a = s_add (window, 10, 0);
    tl_window_sent (window, a, 10);
    tl_window_restart (window, 10.25);
    cr_assert_eq (tl_window_ack (window, 0, 10.5), 0);
    latency = tl_window_latency (window);
    cr_expect (isfinite (latency) && latency <= 0.5, "latency %g", latency);
    b = s_add (window, 10, 1);
    tl_window_sent (window, b, 20);
    cr_expect_eq (tl_window_due (window, 25, false), b);
    tl_window_destroy (&window);
}

Test (window, set_acked)
{
    tl_window_t *window = s_new (4, 5);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    s_add (window, 20, 1);
    tl_window_sent (window, a, 0);
    cr_assert_eq (tl_window_ack (window, 0, 1), 0);
    cr_assert_eq (tl_window_acked (window), 1);

    //  The sink's own count replaces the window's, up or down
    tl_window_set_acked (window, 7, 700);
    cr_assert_eq (tl_window_acked (window), 7);
    cr_assert_eq (tl_window_acked_bytes (window), 700);
    cr_assert_eq (tl_window_inflight (window), 1, "the chunks held stay");
    cr_assert_eq (tl_window_added (window), 2);
    cr_assert (tl_window_holds (window, 1));
    //  Later acks and skips count from there
    cr_assert_eq (tl_window_ack (window, 1, 2), 0);
    cr_assert_eq (tl_window_acked (window), 8);
    cr_assert_eq (tl_window_acked_bytes (window), 720);
    tl_window_skip (window, 5);
    cr_assert_eq (tl_window_acked (window), 9);
    cr_assert_eq (tl_window_acked_bytes (window), 725);
    tl_window_set_acked (window, 0, 0);
    cr_assert_eq (tl_window_acked (window), 0);
    cr_assert_eq (tl_window_acked_bytes (window), 0);
    cr_assert_eq (tl_window_added (window), 3);
    tl_window_destroy (&window);
}

Test (window, restart_then_no_worker_at_once)
{
    //  After a restart a chunk goes out as a new first attempt. If no worker is there
    //  to take it at that moment, that is waiting for a worker, as before a first send:
    //  no attempt counts yet (the streaming interval is max(5, 10 x 0.5) = 5)
    tl_window_t *window = s_new_max (4, 5, 1);
    const tl_window_slot_t *a = s_add (window, 10, 0);
    s_send (window, a, 10, false, 1, 1);
    tl_window_heard (window, 11);
    //  The sink is gone for a while, then restarts and accepts the job again
    tl_window_restart (window, 40);
    tl_window_heard (window, 40);
    cr_assert_eq (tl_window_due (window, 40, false), a);
    tl_window_undelivered (window, a, 40);
    cr_expect_eq (tl_window_attempts (window, a), 0, "an attempt counted without a send");
    cr_expect_null (tl_window_failed (window, 40, false), "failed before it went out again");
    cr_expect_eq (tl_window_due (window, 40.125, false), a, "not sent again");
    //  A worker comes in a moment later: it goes, as its one attempt
    if (tl_window_due (window, 40.125, false) == a) {
        tl_window_sent (window, a, 40.125);
        cr_expect_eq (tl_window_attempts (window, a), 1);
    }
    tl_window_destroy (&window);
}
