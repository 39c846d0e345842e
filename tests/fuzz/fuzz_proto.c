/*  libFuzzer target for every protocol decoder: the first byte picks a command, the
    rest is its frame 1; the same bytes also go to the PARTIAL map merger and the
    generic msgpack checker. A decoder may reject anything but must never crash, leak
    or allocate more than the frame justifies; what it accepts must encode again.   */

#include "tl_proto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    tl_cmd_t cmd = (tl_cmd_t)(1 + data[0] % (TL_CMD_COUNT_ - 1));
    tl_msg_t msg;
    if (tl_msg_decode (cmd, data + 1, size - 1, &msg) == 0) {
        msgpack_sbuffer again;
        msgpack_sbuffer_init (&again);
        if (tl_msg_encode (&msg, &again) != 0) abort ();
        tl_msg_t back;
        if (tl_msg_decode (cmd, again.data, again.size, &back) != 0 || back.job != msg.job)
            abort ();
        tl_msg_reset (&back);
        msgpack_sbuffer_destroy (&again);
        tl_msg_reset (&msg);
    }
    tl_table_t *table = tl_table_new (0);
    uint64_t entries = 0;
    if (tl_map_merge (data + 1, size - 1, table, &entries) < 0 && tl_table_size (table) != 0)
        abort ();  //  A rejected frame merges nothing
    tl_table_destroy (&table);
    tl_cmd_parse (data, size);
    if (tl_msgpack_check (data + 1, size - 1) == 0) {
        msgpack_zone zone;
        msgpack_zone_init (&zone, 2048);
        msgpack_object object;
        msgpack_unpack ((const char *)data + 1, size - 1, NULL, &zone, &object);
        msgpack_zone_destroy (&zone);
    }
    return 0;
}
