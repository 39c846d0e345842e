/*  test_window: tl_window, the ventilator's window of unacknowledged chunks.

    Drives the window with a fake clock (plain seconds passed to each call) and real
    tl_buf buffers from a source pool, whose reference counts show exactly how many the
    window still holds: ids, capacity, acks, the resend deadlines while streaming, at the
    tail and after a worker left, the order of resends, the latency estimate, counters,
    and which sends count as attempts and when a chunk has failed them all.             */

#include <criterion/criterion.h>
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
