/*  libFuzzer target for every protocol decoder: the first byte picks a command and a
    feed topic, the rest is the command's frame 1 and the topic's body; the same bytes
    also go to the PARTIAL map merger and the generic msgpack checker. A decoder may
    reject anything but must never crash, leak or allocate more than the frame
    justifies; what it accepts must encode again and decode to the same message.    */

#include "tl_feed.h"
#include "tl_proto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void s_fuzz_msg (uint8_t pick, const uint8_t *frame, size_t size)
{
    tl_cmd_t cmd = (tl_cmd_t)(1 + pick % (TL_CMD_COUNT_ - 1));
    tl_msg_t msg;
    if (tl_msg_decode (cmd, frame, size, &msg) != 0) return;
    msgpack_sbuffer again;
    msgpack_sbuffer_init (&again);
    if (tl_msg_encode (&msg, &again) != 0) abort ();
    tl_msg_t back;
    if (tl_msg_decode (cmd, again.data, again.size, &back) != 0 || back.job != msg.job) abort ();
    tl_msg_reset (&back);
    msgpack_sbuffer_destroy (&again);
    tl_msg_reset (&msg);
}

//  Encodes a decoded feed message again with its topic's encoder; entries are copied
//  out of the frame into a block of their count (which the frame's size bounds).
static int s_feed_encode (const tl_feed_msg_t *msg, msgpack_sbuffer *buf)
{
    tl_feed_entries_t list = {0};
    if (msg->topic == TL_FEED_TOP) list = msg->u.top;
    if (msg->topic == TL_FEED_TOTALS) list = msg->u.totals.entries;
    tl_entry_t *entries = calloc (list.count ? list.count : 1, sizeof *entries);
    if (!entries) abort ();
    size_t n = 0;
    tl_str_t key;
    uint64_t total;
    while (tl_feed_entries_next (&list, &key, &total))
        entries[n++] = (tl_entry_t){key.ptr, (uint32_t)key.len, total};
    if (n != list.count) abort ();  //  Walking checked entries cannot fail
    int rc = -1;
    switch (msg->topic) {
    case TL_FEED_PROGRESS:
        rc = tl_feed_progress (&msg->u.progress, buf);
        break;
    case TL_FEED_TOP:
        rc = tl_feed_top (msg->job, entries, n, buf);
        break;
    case TL_FEED_TOTALS:
        rc = tl_feed_totals (msg->job, msg->u.totals.batch, msg->u.totals.batches, entries, n, buf);
        break;
    case TL_FEED_DONE:
        rc = tl_feed_done (msg->job, &msg->u.done, buf);
        break;
    case TL_FEED_FAILED: {
        char *reason = strndup (msg->u.reason.ptr, msg->u.reason.len);
        if (!reason) abort ();
        rc = tl_feed_failed (msg->job, reason, buf);
        free (reason);
        break;
    }
    default:
        abort ();
    }
    free (entries);
    return rc;
}

static void s_fuzz_feed (uint8_t pick, const uint8_t *body, size_t size)
{
    tl_feed_topic_t topic = (tl_feed_topic_t)(1 + pick % (TL_FEED_COUNT_ - 1));
    const char *name = tl_feed_topic_name (topic);
    tl_feed_msg_t msg;
    if (tl_feed_decode (name, strlen (name), body, size, &msg) != 0) return;
    //  What the typed decoder takes, tally-watch's generic check takes too.
    if (tl_msgpack_check (body, size) != 0) abort ();
    msgpack_sbuffer again;
    msgpack_sbuffer_init (&again);
    if (s_feed_encode (&msg, &again) != 0) abort ();
    tl_feed_msg_t back;
    if (tl_feed_decode (name, strlen (name), again.data, again.size, &back) != 0 ||
        back.topic != msg.topic || back.job != msg.job)
        abort ();
    if (topic == TL_FEED_TOP && back.u.top.count != msg.u.top.count) abort ();
    if (topic == TL_FEED_TOTALS && back.u.totals.entries.count != msg.u.totals.entries.count)
        abort ();
    msgpack_sbuffer_destroy (&again);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    s_fuzz_msg (data[0], data + 1, size - 1);
    s_fuzz_feed (data[0], data + 1, size - 1);
    tl_table_t *table = tl_table_new (0);
    uint64_t entries = 0;
    if (tl_map_merge (data + 1, size - 1, table, &entries) < 0 && tl_table_size (table) != 0)
        abort ();  //  A rejected frame merges nothing
    tl_table_destroy (&table);
    tl_cmd_parse (data, size);
    tl_feed_topic_parse (data, size);
    if (tl_msgpack_check (data + 1, size - 1) == 0) {
        msgpack_zone zone;
        msgpack_zone_init (&zone, 2048);
        msgpack_object object;
        msgpack_unpack ((const char *)data + 1, size - 1, NULL, &zone, &object);
        msgpack_zone_destroy (&zone);
    }
    return 0;
}
