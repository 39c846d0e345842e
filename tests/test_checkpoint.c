/*  test_checkpoint: the sink's checkpoint file (sink/checkpoint.c). A job saved and
    read back has the same totals, merged chunk ids, counters, files and age, and goes
    on as if the sink had never stopped; a checkpoint cut short or altered is refused;
    loading a folder hands over every good checkpoint and deletes every checkpoint
    file, good or bad, and nothing else. Only the sink's own folder is trusted: none
    is read from (or written to) a folder that others may write, and no file is read
    that is a link, not a regular file, or another user's.                         */

#include "checkpoint.h"
#include "tl_test.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

//  ---------------------------------------------------------------------------------
//  Helpers

static tl_str_t s_files[] = {{"one.tsv", 7}, {"two.tsv.gz", 10}};
static const uint8_t s_secret[TL_SECRET_SIZE] = "0123456789abcdef";

static tl_job_t *s_job_new (uint64_t id, bool strict)
{
    tl_job_body_t body = {.version = TL_PROTO_VERSION,
                          .strict = strict,
                          .input_bytes = 12345,
                          .nfiles = 2,
                          .files = s_files};
    tl_job_t *job = tl_job_new (id, s_secret, &body, 0.0);
    cr_assert_not_null (job);
    return job;
}

//  Merges chunk with keys "key0".."key<chunk>" counting chunk+1 each, and bad_lines.
static tl_job_outcome_t s_feed (tl_job_t *job, uint64_t chunk, uint64_t bad_lines)
{
    tl_table_t *table = tl_table_new (0);
    cr_assert_not_null (table);
    for (uint64_t k = 0; k <= chunk; k++) {
        char key[32];
        snprintf (key, sizeof key, "key%llu", (unsigned long long)k);
        cr_assert_eq (tl_table_add (table, key, strlen (key), chunk + 1), 0);
    }
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_map_encode (table, &buf), 0);
    tl_partial_body_t body = {.chunk = chunk,
                              .tag = tl_chunk_tag (s_secret, tl_job_id (job), chunk),
                              .file = 1,
                              .bytes = 100,
                              .lines = chunk + 1,
                              .bad_lines = bad_lines};
    tl_job_outcome_t out;
    tl_job_partial (job, &body, buf.data, buf.size, &out);
    msgpack_sbuffer_destroy (&buf);
    tl_table_destroy (&table);
    return out;
}

//  A new empty folder under /tmp; the caller frees the name.
static char *s_folder (void)
{
    char *dir = strdup ("/tmp/test_checkpoint.XXXXXX");
    cr_assert_not_null (dir);
    cr_assert_not_null (mkdtemp (dir));
    return dir;
}

//  The path of job id's checkpoint in dir, in a static buffer.
static const char *s_path (const char *dir, uint64_t id)
{
    static char path[4200];
    snprintf (path, sizeof path, "%s/tally-sink-%016llx.checkpoint", dir, (unsigned long long)id);
    return path;
}

//  Saves job to dir at time now and reads the file back; sets *size.
static char *s_save (const char *dir, tl_job_t *job, double now, size_t *size)
{
    cr_assert_eq (tl_checkpoint_save (dir, job, now), 0);
    return tl_test_read_file (s_path (dir, tl_job_id (job)), size);
}

static void s_remove_folder (char *dir)
{
    DIR *folder = opendir (dir);
    cr_assert_not_null (folder);
    struct dirent *entry;
    while ((entry = readdir (folder)))
        if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, "..")) {
            char path[4200];
            snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
            unlink (path);
        }
    closedir (folder);
    rmdir (dir);
    free (dir);
}

//  Files in dir, other than . and ..
static int s_count_files (const char *dir)
{
    DIR *folder = opendir (dir);
    cr_assert_not_null (folder);
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir (folder)))
        n += strcmp (entry->d_name, ".") && strcmp (entry->d_name, "..");
    closedir (folder);
    return n;
}

//  Asserts that two tables hold the same keys with the same totals.
static void s_expect_same_table (tl_table_t *a, tl_table_t *b)
{
    cr_assert_eq (tl_table_size (a), tl_table_size (b));
    cr_assert_eq (tl_table_sum (a), tl_table_sum (b));
    size_t cursor = 0;
    tl_entry_t entry;
    while (tl_table_next (a, &cursor, &entry)) {
        uint64_t count;
        cr_assert (tl_table_get (b, entry.key, entry.len, &count), "%.*s missing", (int)entry.len,
                   entry.key);
        cr_assert_eq (count, entry.count);
    }
}

//  A job part-way: chunks 0, 1 and 3 of 5 merged (1 twice), END seen with 2 bad lines.
static tl_job_t *s_job_part_way (uint64_t id)
{
    tl_job_t *job = s_job_new (id, false);
    cr_assert (s_feed (job, 0, 1).ack);
    cr_assert (s_feed (job, 1, 0).ack);
    cr_assert (s_feed (job, 1, 0).ack);
    cr_assert (s_feed (job, 3, 0).ack);
    tl_end_body_t end = {.chunks = 5, .bytes = 500, .bad_lines = 2};
    tl_job_outcome_t out;
    tl_job_end (job, &end, &out);
    cr_assert_eq (out.verdict, TL_JOB_NONE);
    return job;
}

//  ---------------------------------------------------------------------------------
//  Round trip

Test (checkpoint, round_trip_keeps_totals_merged_ids_and_counters)
{
    char *dir = s_folder ();
    tl_job_t *job = s_job_part_way (0xABCDEF0123456789u);
    size_t size;
    char *data = s_save (dir, job, 10.0, &size);
    tl_job_t *back = tl_checkpoint_restore (data, size, 100.0);
    cr_assert_not_null (back);

    cr_assert_eq (tl_job_id (back), tl_job_id (job));
    const tl_job_counters_t *a = tl_job_counters (job), *b = tl_job_counters (back);
    cr_assert_eq (b->chunks_done, 3);
    cr_assert_eq (b->chunks_done, a->chunks_done);
    cr_assert_eq (b->chunks_seen, a->chunks_seen);
    cr_assert_eq (b->chunks_total, a->chunks_total);
    cr_assert_eq (b->ended, a->ended);
    cr_assert_eq (b->bytes, a->bytes);
    cr_assert_eq (b->lines, a->lines);
    cr_assert_eq (b->bad_lines, 3);
    cr_assert_eq (b->bad_lines, a->bad_lines);
    cr_assert_eq (b->filtered, a->filtered);
    cr_assert_eq (b->duplicates, 1);
    cr_assert_eq (b->duplicates, a->duplicates);
    cr_assert_eq (b->overflows, a->overflows);
    cr_assert_eq (b->bad_logged, a->bad_logged);
    for (uint64_t chunk = 0; chunk < 6; chunk++)
        cr_assert_eq (tl_job_merged (back, chunk), tl_job_merged (job, chunk), "chunk %llu",
                      (unsigned long long)chunk);
    s_expect_same_table (tl_job_totals (job), tl_job_totals (back));
    s_expect_same_table (tl_job_totals (back), tl_job_totals (job));
    cr_assert_eq (tl_job_input_bytes (back), 12345);
    cr_assert_eq (tl_job_nfiles (back), 2);
    cr_assert_str_eq (tl_job_file (back, 1), "two.tsv.gz");
    cr_assert_float_eq (tl_job_seconds (back, 100.0), 10.0, 1e-9, "the job's age is kept");

    //  It goes on where it stopped: a merged chunk is a copy, the missing ones complete it.
    tl_job_outcome_t out = s_feed (back, 3, 0);
    cr_assert (out.ack);
    cr_assert_eq (tl_job_counters (back)->duplicates, 2);
    cr_assert_eq (s_feed (back, 2, 0).verdict, TL_JOB_NONE);
    out = s_feed (back, 4, 0);
    cr_assert_eq (out.verdict, TL_JOB_COMPLETE, "%s", out.reason);
    uint64_t key0;
    cr_assert (tl_table_get (tl_job_totals (back), "key0", 4, &key0));
    cr_assert_eq (key0, 1 + 2 + 3 + 4 + 5);

    free (data);
    tl_job_destroy (&back);
    tl_job_destroy (&job);
    s_remove_folder (dir);
}

Test (checkpoint, strict_survives_a_round_trip)
{
    char *dir = s_folder ();
    tl_job_t *job = s_job_new (7, true);
    size_t size;
    char *data = s_save (dir, job, 1.0, &size);
    tl_job_t *back = tl_checkpoint_restore (data, size, 1.0);
    cr_assert_not_null (back);
    tl_job_outcome_t out = s_feed (back, 0, 1);
    cr_assert_eq (out.verdict, TL_JOB_FAIL, "a restored strict job took a bad line");
    cr_assert (strstr (out.reason, "two.tsv.gz"), "%s", out.reason);
    free (data);
    tl_job_destroy (&back);
    tl_job_destroy (&job);
    s_remove_folder (dir);
}

Test (checkpoint, saving_follows_no_link_and_keeps_the_file_private)
{
    char *dir = s_folder ();
    char victim[4200], link[4300];
    snprintf (victim, sizeof victim, "%s/victim", dir);
    snprintf (link, sizeof link, "%s.tmp", s_path (dir, 9));  //  The name it once used
    FILE *file = fopen (victim, "w");
    cr_assert_not_null (file);
    fclose (file);
    cr_assert_eq (symlink (victim, link), 0);
    tl_job_t *job = s_job_part_way (9);
    cr_assert_eq (tl_checkpoint_save (dir, job, 1.0), 0);
    struct stat st;
    cr_assert_eq (stat (victim, &st), 0);
    cr_assert_eq (st.st_size, 0, "the link's target is untouched");
    cr_assert_eq (stat (s_path (dir, 9), &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    cr_assert_eq (s_count_files (dir), 3, "the checkpoint, the link and its target");
    tl_job_destroy (&job);
    s_remove_folder (dir);
}

//  ---------------------------------------------------------------------------------
//  Refused

Test (checkpoint, every_truncation_is_refused)
{
    char *dir = s_folder ();
    tl_job_t *job = s_job_part_way (1);
    size_t size;
    char *data = s_save (dir, job, 1.0, &size);
    for (size_t cut = 0; cut < size; cut++) {
        char *copy = malloc (cut ? cut : 1);  //  Exact size: ASan sees any read past it
        cr_assert_not_null (copy);
        memcpy (copy, data, cut);
        tl_job_t *back = tl_checkpoint_restore (copy, cut, 1.0);
        cr_assert_null (back, "restored from the first %zu of %zu bytes", cut, size);
        free (copy);
    }
    free (data);
    tl_job_destroy (&job);
    s_remove_folder (dir);
}

//  Offset of the counters part's first byte in a checkpoint.
static size_t s_counters_at (const char *data, size_t size)
{
    uint64_t len;
    cr_assert_geq (size, 16);
    memcpy (&len, data + 8, sizeof len);
    cr_assert_lt (16 + len + 8, size);
    return 16 + len + 8;
}

Test (checkpoint, altered_checkpoints_are_refused)
{
    char *dir = s_folder ();
    tl_job_t *job = s_job_part_way (1);
    size_t size;
    char *data = s_save (dir, job, 1.0, &size);
    tl_job_t *back = tl_checkpoint_restore (data, size, 1.0);
    cr_assert_not_null (back, "the unaltered checkpoint restores");
    tl_job_destroy (&back);

    data[0] = 'X';  //  Not a checkpoint
    cr_assert_null (tl_checkpoint_restore (data, size, 1.0));
    data[0] = 'T';

    size_t at = s_counters_at (data, size);
    cr_assert_eq ((uint8_t)data[at], 0x9e, "the counters are an array of 14");
    cr_assert_eq (data[at + 1], 3, "chunks_done is 3");
    data[at + 1] = 2;  //  Two chunks done, but three merged ids
    cr_assert_null (tl_checkpoint_restore (data, size, 1.0));
    data[at + 1] = 3;
    data[at] = (char)0x9d;  //  An array of 13: the last counter is left over
    cr_assert_null (tl_checkpoint_restore (data, size, 1.0));
    data[at] = (char)0x9e;
    data[at + 1] = (char)0xc0;  //  nil where a count belongs
    cr_assert_null (tl_checkpoint_restore (data, size, 1.0));
    data[at + 1] = 3;

    back = tl_checkpoint_restore (data, size, 1.0);
    cr_assert_not_null (back, "put back, it restores again");
    tl_job_destroy (&back);
    free (data);
    tl_job_destroy (&job);
    s_remove_folder (dir);
}

//  ---------------------------------------------------------------------------------
//  A folder of checkpoints

typedef struct {
    tl_job_t *jobs[4];  //  Jobs taken
    int taken;          //  How many
    int room;           //  How many it takes before refusing
} s_taker_t;

static int s_take (void *arg, tl_job_t *job)
{
    s_taker_t *taker = arg;
    if (taker->taken == taker->room) return -1;
    taker->jobs[taker->taken++] = job;
    return 0;
}

Test (checkpoint, load_all_keeps_what_it_took_and_deletes_the_rest)
{
    char *dir = s_folder ();
    tl_job_t *one = s_job_part_way (1), *two = s_job_new (2, false), *three = s_job_new (3, true);
    cr_assert_eq (tl_checkpoint_save (dir, one, 1.0), 0);
    cr_assert_eq (tl_checkpoint_save (dir, two, 1.0), 0);
    cr_assert_eq (tl_checkpoint_save (dir, three, 1.0), 0);
    FILE *bad = fopen (s_path (dir, 4), "w");
    cr_assert_not_null (bad);
    fputs ("TLYCKP01 but nothing after", bad);
    fclose (bad);
    char other[4200];
    snprintf (other, sizeof other, "%s/tally-sink-0000000000000005.checkpoint.tmp", dir);
    FILE *keep = fopen (other, "w");
    cr_assert_not_null (keep);
    fclose (keep);
    char partial[4200];  //  What a writer killed half-way leaves
    snprintf (partial, sizeof partial, "%s/tally-sink-0000000000000001.checkpoint.tmp.Ab12Cd", dir);
    FILE *half = fopen (partial, "w");
    cr_assert_not_null (half);
    fclose (half);

    s_taker_t taker = {.room = 2};
    tl_checkpoint_load_all (dir, 5.0, s_take, &taker);
    cr_assert_eq (taker.taken, 2, "two taken, one refused for room, one malformed");
    cr_assert_eq (s_count_files (dir), 3, "the two taken and the file that is not a checkpoint");
    cr_assert_eq (access (other, F_OK), 0);
    cr_assert_eq (access (partial, F_OK), -1, "a half-written temporary file is removed");
    for (int i = 0; i < taker.taken; i++)
        cr_assert_eq (access (s_path (dir, tl_job_id (taker.jobs[i])), F_OK), 0,
                      "a job taken keeps its checkpoint until the next replaces it");
    for (int i = 0; i < taker.taken; i++) {
        uint64_t id = tl_job_id (taker.jobs[i]);
        cr_assert (id >= 1 && id <= 3);
        if (id == 1) s_expect_same_table (tl_job_totals (taker.jobs[i]), tl_job_totals (one));
        tl_job_destroy (&taker.jobs[i]);
    }

    tl_checkpoint_load_all ("/nonexistent/tally", 5.0, s_take, &taker);  //  Nothing to do
    tl_job_destroy (&one);
    tl_job_destroy (&two);
    tl_job_destroy (&three);
    s_remove_folder (dir);
}

//  ---------------------------------------------------------------------------------
//  Sink shards: the checkpoint keeps which shard of how many the sink is (TLYCKP03);
//  a checkpoint of an earlier format (TLYCKP02: protocol version 3, no shards) is refused.

//  A job that is shard `shard` of `shards`, with chunks 0 and 1 merged (its parts).
static tl_job_t *s_job_shard (uint64_t id, uint32_t shard, uint32_t shards)
{
    tl_job_body_t body = {.version = TL_PROTO_VERSION,
                          .input_bytes = 12345,
                          .nfiles = 2,
                          .files = s_files,
                          .shard = shard,
                          .shards = shards};
    tl_job_t *job = tl_job_new (id, s_secret, &body, 0.0);
    cr_assert_not_null (job);
    for (uint64_t chunk = 0; chunk < 2; chunk++) {
        tl_partial_body_t part = {.chunk = chunk,
                                  .tag = tl_chunk_tag (s_secret, id, chunk),
                                  .bytes = 100,
                                  .lines = 1,
                                  .shard = shard};
        tl_job_outcome_t out;
        tl_job_partial (job, &part, "\x81\xa1k\x01", 4, &out);
        cr_assert (out.ack, "%s", out.reason);
    }
    return job;
}

//  The checkpoint's four parts (after the 8-byte magic): offsets and sizes.
static void s_parts (const char *data, size_t size, size_t at[4], size_t len[4])
{
    size_t cursor = 8;
    for (int i = 0; i < 4; i++) {
        uint64_t n;
        cr_assert_leq (cursor + 8, size);
        memcpy (&n, data + cursor, 8);
        cursor += 8;
        cr_assert_leq (n, size - cursor);
        at[i] = cursor;
        len[i] = (size_t)n;
        cursor += (size_t)n;
    }
    cr_assert_eq (cursor, size);
}

//  A checkpoint file: magic, then the four parts given.
static char *s_build (const char *magic, const void *parts[4], const size_t len[4], size_t *size)
{
    *size = 8 + 4 * 8 + len[0] + len[1] + len[2] + len[3];
    char *data = malloc (*size);
    cr_assert_not_null (data);
    memcpy (data, magic, 8);
    size_t cursor = 8;
    for (int i = 0; i < 4; i++) {
        uint64_t n = len[i];
        memcpy (data + cursor, &n, 8);
        memcpy (data + cursor + 8, parts[i], len[i]);
        cursor += 8 + len[i];
    }
    return data;
}

Test (checkpoint, the_shard_survives_a_round_trip)
{
    static const uint32_t cases[][2] = {{0, 1}, {1, 2}, {5, 7}, {TL_SHARDS_MAX - 1, TL_SHARDS_MAX}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t shard = cases[i][0], shards = cases[i][1];
        char *dir = s_folder ();
        tl_job_t *job = s_job_shard (40 + i, shard, shards);
        size_t size;
        char *data = s_save (dir, job, 1.0, &size);
        cr_assert_arr_eq (data, "TLYCKP03", 8);

        //  The file's JOB names the shard.
        size_t at[4], len[4];
        s_parts (data, size, at, len);
        tl_msg_t msg;
        cr_assert_eq (tl_msg_decode (TL_CMD_JOB, data + at[0], len[0], &msg), 0);
        cr_assert_eq (msg.u.job.version, TL_PROTO_VERSION);
        cr_assert_eq (msg.u.job.shard, shard);
        cr_assert_eq (msg.u.job.shards, shards);
        tl_msg_reset (&msg);

        tl_job_t *back = tl_checkpoint_restore (data, size, 2.0);
        cr_assert_not_null (back, "shard %u of %u", shard, shards);
        uint32_t got_shard = 99, got_shards = 99;
        tl_job_shard (back, &got_shard, &got_shards);
        cr_assert_eq (got_shard, shard);
        cr_assert_eq (got_shards, shards);
        cr_assert_eq (tl_job_counters (back)->chunks_done, 2);

        //  The restored job still takes its own shard's parts only.
        tl_partial_body_t part = {.chunk = 2, .tag = tl_chunk_tag (s_secret, 40 + i, 2)};
        tl_job_outcome_t out;
        if (shards > 1) {
            part.shard = (shard + 1) % shards;
            tl_job_partial (back, &part, "\x80", 1, &out);
            cr_assert_eq (out.verdict, TL_JOB_JUNK, "shard %u of %u took shard %u's part", shard,
                          shards, part.shard);
            cr_assert_not (tl_job_merged (back, 2));
        }
        part.shard = shard;
        tl_job_partial (back, &part, "\x80", 1, &out);
        cr_assert (out.ack, "%s", out.reason);
        cr_assert (tl_job_merged (back, 2));

        //  Saved again, it is still the same shard.
        free (data);
        data = s_save (dir, back, 3.0, &size);
        tl_job_t *again = tl_checkpoint_restore (data, size, 3.0);
        cr_assert_not_null (again);
        tl_job_shard (again, &got_shard, &got_shards);
        cr_assert (got_shard == shard && got_shards == shards);
        tl_job_destroy (&again);
        free (data);
        tl_job_destroy (&back);
        tl_job_destroy (&job);
        s_remove_folder (dir);
    }
}

//  What a sink of protocol version 3 wrote: "TLYCKP02", a version 3 JOB [id, 3, secret,
//  strict, input_bytes, files] (no shards), then the same counters, merged ids and
//  totals as now. Refused, magic or not: its JOB says nothing of shards. A folder holding
//  one restores nothing from it and deletes it (as every malformed checkpoint).
Test (checkpoint, a_checkpoint_of_the_previous_format_is_refused)
{
    char *dir = s_folder ();
    tl_job_t *job = s_job_part_way (0x77);
    size_t size;
    char *data = s_save (dir, job, 1.0, &size);
    size_t at[4], len[4];
    s_parts (data, size, at, len);

    //  The version 3 JOB
    msgpack_sbuffer v3;
    msgpack_sbuffer_init (&v3);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &v3, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 6);
    msgpack_pack_uint64 (&pk, 0x77);
    msgpack_pack_uint64 (&pk, 3);
    msgpack_pack_bin (&pk, TL_SECRET_SIZE);
    msgpack_pack_bin_body (&pk, s_secret, TL_SECRET_SIZE);
    msgpack_pack_false (&pk);
    msgpack_pack_uint64 (&pk, 12345);
    msgpack_pack_array (&pk, 2);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_str (&pk, s_files[i].len);
        msgpack_pack_str_body (&pk, s_files[i].ptr, s_files[i].len);
    }
    const void *parts[4] = {v3.data, data + at[1], data + at[2], data + at[3]};
    size_t lens[4] = {v3.size, len[1], len[2], len[3]};
    size_t old_size;
    char *old = s_build ("TLYCKP02", parts, lens, &old_size);
    cr_assert_null (tl_checkpoint_restore (old, old_size, 2.0), "a TLYCKP02 file was restored");

    //  This version's parts under the old magic: refused for the magic alone
    memcpy (data, "TLYCKP02", 8);
    cr_assert_null (tl_checkpoint_restore (data, size, 2.0));
    memcpy (data, "TLYCKP03", 8);
    tl_job_t *back = tl_checkpoint_restore (data, size, 2.0);
    cr_assert_not_null (back, "the file as written restores");
    tl_job_destroy (&back);

    //  In the folder: not restored, deleted
    FILE *file = fopen (s_path (dir, 0x77), "wb");
    cr_assert_not_null (file);
    cr_assert_eq (fwrite (old, 1, old_size, file), old_size);
    fclose (file);
    s_taker_t taker = {.room = 4};
    tl_checkpoint_load_all (dir, 5.0, s_take, &taker);
    cr_assert_eq (taker.taken, 0);
    cr_assert_eq (access (s_path (dir, 0x77), F_OK), -1, "the old checkpoint is left in place");

    free (old);
    msgpack_sbuffer_destroy (&v3);
    free (data);
    tl_job_destroy (&job);
    s_remove_folder (dir);
}

//  A checkpoint of this format whose JOB is of another version (the older JOB of a
//  TLYCKP02 file under the new magic, say) holds no shard, no files and no secret: a JOB
//  of another version decodes as [job, version] alone. It must be refused, not restored
//  as a job with an all-zero secret (as it once was: no files, shard 0 of 1).
Test (checkpoint, a_job_of_another_version_is_refused_under_this_magic)
{
    char *dir = s_folder ();
    tl_job_t *job = s_job_part_way (0x78);
    size_t size;
    char *data = s_save (dir, job, 1.0, &size);
    size_t at[4], len[4];
    s_parts (data, size, at, len);
    static const uint32_t versions[] = {3, TL_PROTO_VERSION + 1};
    for (size_t v = 0; v < sizeof versions / sizeof versions[0]; v++) {
        //  This version's JOB with another version number: the same layout otherwise
        char *frame = malloc (len[0]);
        cr_assert_not_null (frame);
        memcpy (frame, data + at[0], len[0]);
        cr_assert_eq ((uint8_t)frame[0], 0x98, "JOB is an array of 8");
        cr_assert_eq (frame[1], 0x78, "the job id");
        cr_assert_eq (frame[2], TL_PROTO_VERSION, "the version");
        frame[2] = (char)versions[v];
        const void *parts[4] = {frame, data + at[1], data + at[2], data + at[3]};
        size_t other_size;
        char *other = s_build ("TLYCKP03", parts, len, &other_size);
        tl_job_t *back = tl_checkpoint_restore (other, other_size, 2.0);
        cr_assert_null (back, "restored a job from a version %u JOB (secret %s)", versions[v],
                        back && tl_job_owned_by (back, (const uint8_t[TL_SECRET_SIZE]){0})
                            ? "all zero"
                            : "kept");
        free (other);
        free (frame);
    }
    free (data);
    tl_job_destroy (&job);
    s_remove_folder (dir);
}

//  ---------------------------------------------------------------------------------
//  Whose folder, whose files

//  Saves jobs ids[0..n-1] (fresh, empty) to dir.
static void s_save_jobs (const char *dir, const uint64_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        tl_job_t *job = s_job_new (ids[i], false);
        cr_assert_eq (tl_checkpoint_save (dir, job, 1.0), 0);
        tl_job_destroy (&job);
    }
}

//  Loads dir; returns how many jobs were taken (and destroys them).
static int s_load_count (const char *dir)
{
    s_taker_t taker = {.room = 4};
    tl_checkpoint_load_all (dir, 5.0, s_take, &taker);
    for (int i = 0; i < taker.taken; i++)
        tl_job_destroy (&taker.jobs[i]);
    return taker.taken;
}

Test (checkpoint, a_folder_others_may_write_is_not_loaded)
{
    char *dir = s_folder ();
    s_save_jobs (dir, (uint64_t[]){1, 2}, 2);
    cr_assert_eq (chmod (dir, 0777), 0);
    cr_assert_eq (s_load_count (dir), 0, "a folder anyone may write");
    cr_assert_eq (s_count_files (dir), 2, "its files are left alone");
    cr_assert_eq (chmod (dir, 0770), 0);
    cr_assert_eq (s_load_count (dir), 0, "a folder its group may write");
    cr_assert_eq (s_count_files (dir), 2);
    cr_assert_eq (chmod (dir, 0755), 0);
    cr_assert_eq (s_load_count (dir), 2, "a folder only its owner writes");
    cr_assert_eq (s_count_files (dir), 2, "kept for the next restart");
    s_remove_folder (dir);
}

Test (checkpoint, a_folder_of_another_user_is_not_loaded)
{
    if (geteuid () != 0) cr_skip_test ("only root can give a folder to another user");
    char *dir = s_folder ();
    s_save_jobs (dir, (uint64_t[]){1}, 1);
    cr_assert_eq (chown (dir, 65534, 65534), 0);  //  nobody
    cr_assert_eq (s_load_count (dir), 0);
    cr_assert_eq (s_count_files (dir), 1);
    cr_assert_eq (chown (dir, 0, 0), 0);
    cr_assert_eq (s_load_count (dir), 1);
    s_remove_folder (dir);
}

Test (checkpoint, only_regular_files_of_the_sinks_user_are_loaded)
{
    char *dir = s_folder (), *elsewhere = s_folder ();
    s_save_jobs (dir, (uint64_t[]){1, 2}, 2);
    s_save_jobs (elsewhere, (uint64_t[]){3}, 1);
    char target[4200];
    snprintf (target, sizeof target, "%s", s_path (elsewhere, 3));
    cr_assert_eq (symlink (target, s_path (dir, 3)), 0, "a link to a good checkpoint");
    cr_assert_eq (mkfifo (s_path (dir, 4), 0600), 0, "a FIFO must not block the start");
    int expected = 1, left = 4;
    if (geteuid () == 0)
        cr_assert_eq (chown (s_path (dir, 2), 65534, 65534), 0, "a file of nobody's");
    else
        expected = 2, left = 4;  //  Without root no file can be another user's
    cr_assert_eq (s_load_count (dir), expected);
    cr_assert_eq (s_count_files (dir), left, "what it would not read is left in place");
    cr_assert_eq (access (s_path (dir, 1), F_OK), 0, "its own checkpoint is kept");
    cr_assert_eq (access (target, F_OK), 0, "the link's target is untouched");
    s_remove_folder (dir);
    s_remove_folder (elsewhere);
}

Test (checkpoint, saving_makes_a_private_folder_and_refuses_a_shared_one)
{
    char *dir = s_folder ();
    char state[256];
    snprintf (state, sizeof state, "%s/.tally-sink", dir);
    tl_job_t *job = s_job_new (5, false);
    cr_assert_eq (tl_checkpoint_save (state, job, 1.0), 0, "the missing folder is made");
    struct stat st;
    cr_assert_eq (stat (state, &st), 0);
    cr_assert (S_ISDIR (st.st_mode));
    cr_assert_eq (st.st_mode & 0777, 0700, "mode %o", st.st_mode & 0777);
    cr_assert_eq (s_count_files (state), 1);

    cr_assert_eq (chmod (state, 0777), 0);
    cr_assert_eq (unlink (s_path (state, 5)), 0);
    cr_assert_eq (tl_checkpoint_save (state, job, 1.0), -1, "a folder anyone may write");
    cr_assert_eq (s_count_files (state), 0, "nothing written there");
    tl_job_destroy (&job);
    rmdir (state);
    s_remove_folder (dir);
}

Test (checkpoint, write_reports_the_size_and_remove_deletes)
{
    char *dir = s_folder ();
    tl_job_t *job = s_job_part_way (7);
    uint64_t bytes = 0;
    cr_assert_eq (tl_checkpoint_write (dir, job, 1.0, &bytes), 0);
    struct stat st;
    cr_assert_eq (stat (s_path (dir, 7), &st), 0);
    cr_assert_eq ((uint64_t)st.st_size, bytes, "reported %llu, file %lld",
                  (unsigned long long)bytes, (long long)st.st_size);
    tl_checkpoint_remove (dir, 7);
    cr_assert_eq (access (s_path (dir, 7), F_OK), -1);
    tl_checkpoint_remove (dir, 7);  //  Gone already: harmless
    tl_job_destroy (&job);
    s_remove_folder (dir);
}
