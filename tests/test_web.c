/*  test_web: tally web's state (cli/web_state.c) without sockets or HTTP. Keys escaped
    for JSON (HTML-looking bytes, quotes, control and non-UTF-8 bytes) and label values
    for Prometheus; a job of two shards fed as encoded feed bodies: running with a line
    per shard, the top merged, done only once both shards are, its metrics the shards'
    done counts; a repeated done (as a snapshot sends it) and a late progress leave the
    finished job as it was; the stats topic becomes the sink's metrics; an undecodable
    body is counted.                                                                   */

#include "../cli/web.h"
#include "tl_test.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *s_json_of (const char *bytes, size_t len)
{
    tl_web_buf_t out = {0};
    tl_web_buf_json_string (&out, bytes, len);
    cr_assert (!out.failed);
    return out.data;
}

Test (web, json_strings)
{
    char *text = s_json_of ("<img src=x>\"\\", 13);
    cr_assert_str_eq (text, "\"\\u003cimg src=x\\u003e\\\"\\\\\"");
    free (text);
    text = s_json_of ("a\tb\nc\x01", 6);
    cr_assert_str_eq (text, "\"a\\tb\\nc\\u0001\"");
    free (text);
    //  Valid UTF-8 passes; a key that is not has each high byte as \u00XX.
    text = s_json_of ("\xc3\xa9t\xc3\xa9", 5);
    cr_assert_str_eq (text, "\"\xc3\xa9t\xc3\xa9\"");
    free (text);
    text = s_json_of ("\xe9t\xe9", 3);
    cr_assert_str_eq (text, "\"\\u00e9t\\u00e9\"");
    free (text);
}

Test (web, label_values)
{
    tl_web_buf_t out = {0};
    tl_web_buf_label (&out, "tcp://a\"b\\c\nd", 13);
    cr_assert_str_eq (out.data, "\"tcp://a\\\"b\\\\c\\nd\"");
    tl_web_buf_free (&out);
}

//  ---------------------------------------------------------------------------------

static void s_add (tl_web_t *web, const tl_feed_msg_t *msg, const tl_entry_t *entries, size_t n)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (tl_feed_encode (msg, entries, n, &buf), 0);
    const char *topic = tl_feed_topic_name (msg->topic);
    cr_assert_eq (tl_web_add (web, 0, topic, strlen (topic), buf.data, buf.size), 0);
    msgpack_sbuffer_destroy (&buf);
}

static void s_progress (tl_web_t *web, uint64_t shard, uint64_t done, uint64_t lines)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_PROGRESS, .job = 0xabc, .shard = shard, .shards = 2};
    msg.u.progress = (tl_progress_t){.chunks_done = done,
                                     .chunks_known = 10,
                                     .chunks_final = true,
                                     .bytes = done * 100,
                                     .input_bytes = 1000,
                                     .lines = lines,
                                     .keys = lines / 2,
                                     .rate = 50,
                                     .seconds = 1};
    s_add (web, &msg, NULL, 0);
}

//  A shard's top of two: key with total, then "-" with 1.
static void s_top (tl_web_t *web, uint64_t shard, const char *key, uint64_t total)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_TOP, .job = 0xabc, .shard = shard, .shards = 2};
    tl_entry_t entries[2] = {{.key = key, .len = (uint32_t)strlen (key), .count = total},
                             {.key = "-", .len = 1, .count = 1}};
    s_add (web, &msg, entries, 2);
}

static void s_done (tl_web_t *web, uint64_t shard, uint64_t keys, uint64_t lines)
{
    tl_feed_msg_t msg = {.topic = TL_FEED_DONE, .job = 0xabc, .shard = shard, .shards = 2};
    msg.u.done = (tl_done_body_t){.keys = keys,
                                  .sum = keys * 3,
                                  .lines = lines,
                                  .bad_lines = shard,
                                  .seconds = 2.5,
                                  .output = {"part.tsv", 8}};
    s_add (web, &msg, NULL, 0);
}

static char *s_render (tl_web_t *web, bool metrics)
{
    tl_web_buf_t out = {0};
    pthread_mutex_lock (&web->lock);
    if (metrics)
        tl_web_render_metrics (web, &out);
    else
        tl_web_render_json (web, &out);
    pthread_mutex_unlock (&web->lock);
    cr_assert (!out.failed);
    return out.data;
}

static void s_expect (const char *text, const char *part)
{
    cr_expect (strstr (text, part), "missing: %s\nin: %s", part, text);
}

Test (web, job_of_two_shards)
{
    tl_web_t web;
    char *feeds[] = {"tcp://sink:5559"};
    cr_assert_eq (tl_web_init (&web, feeds, 1), 0);
    s_progress (&web, 0, 4, 100);
    s_progress (&web, 1, 6, 60);
    s_top (&web, 0, "<b>", 7);
    s_top (&web, 1, "zz", 9);
    char *json = s_render (&web, false);
    s_expect (json, "\"id\":\"0000000000000abc\",\"status\":\"running\",\"shards\":2");
    //  The job has merged what its slowest shard has: 4 of 10 chunks. Its top: the
    //  shards' merged, as long as the longest.
    s_expect (json, "\"fraction\":0.40000000000000002");
    s_expect (json, "\"lines\":160");
    s_expect (json, "\"shard_progress\":[{\"shard\":0,\"done\":false,\"chunks_done\":4");
    s_expect (json, "{\"shard\":1,\"done\":false,\"chunks_done\":6");
    s_expect (json, "\"top\":[[\"zz\",9],[\"\\u003cb\\u003e\",7]]");
    free (json);

    s_done (&web, 0, 40, 100);
    json = s_render (&web, false);
    s_expect (json, "\"status\":\"running\"");
    s_expect (json, "\"shards_done\":1");
    free (json);
    s_done (&web, 1, 30, 61);
    //  A snapshot repeats a done, and a progress comes late: nothing changes.
    s_done (&web, 1, 30, 61);
    s_progress (&web, 0, 5, 999);
    json = s_render (&web, false);
    s_expect (json, "\"status\":\"done\"");
    s_expect (json, "\"done\":{\"keys\":70,\"sum\":210,\"lines\":161,\"bad_lines\":1,");
    cr_expect_eq (web.njobs, 1);
    free (json);

    char *metrics = s_render (&web, true);
    s_expect (metrics, "# TYPE tally_job_lines_total counter\n");
    s_expect (metrics, "tally_job_lines_total{job=\"0000000000000abc\",shard=\"0\"} 100\n");
    s_expect (metrics, "tally_job_lines_total{job=\"0000000000000abc\",shard=\"1\"} 61\n");
    s_expect (metrics, "tally_job_keys{job=\"0000000000000abc\",shard=\"0\"} 40\n");
    s_expect (metrics, "tally_job_bad_lines_total{job=\"0000000000000abc\",shard=\"1\"} 1\n");
    s_expect (metrics, "tally_jobs{status=\"done\"} 1\n");
    s_expect (metrics, "tally_job_status{job=\"0000000000000abc\",status=\"done\"} 1\n");
    s_expect (metrics, "tally_web_feed_messages_total{feed=\"tcp://sink:5559\"} 8\n");
    free (metrics);
    tl_web_destroy (&web);
}

Test (web, failed_and_stats)
{
    tl_web_t web;
    char *feeds[] = {"tcp://a:5559"};
    cr_assert_eq (tl_web_init (&web, feeds, 1), 0);
    tl_feed_msg_t failed = {.topic = TL_FEED_FAILED, .job = 7, .shards = 1};
    failed.u.reason = (tl_str_t){"disk \"full\"", 11};
    s_add (&web, &failed, NULL, 0);
    tl_feed_msg_t stats = {.topic = TL_FEED_STATS, .shards = 1};
    stats.u.stats = (tl_feed_stats_t){.incarnation = 5,
                                      .uptime = 12.5,
                                      .partials = 40,
                                      .duplicates = 2,
                                      .junk = 3,
                                      .disconnects = 1,
                                      .bytes = 4096,
                                      .lines = 77,
                                      .jobs_failed = 1};
    s_add (&web, &stats, NULL, 0);
    cr_assert_eq (tl_web_add (&web, 0, "progress", 8, "\x81\xa3job", 5), -1);
    char *json = s_render (&web, false);
    s_expect (json, "\"status\":\"failed\"");
    s_expect (json, "\"reason\":\"disk \\\"full\\\"\"");
    free (json);
    char *metrics = s_render (&web, true);
    s_expect (metrics, "tally_sink_duplicates_total{feed=\"tcp://a:5559\"} 2\n");
    s_expect (metrics, "tally_sink_junk_total{feed=\"tcp://a:5559\"} 3\n");
    s_expect (metrics, "tally_sink_lines_total{feed=\"tcp://a:5559\"} 77\n");
    s_expect (metrics, "tally_sink_uptime_seconds{feed=\"tcp://a:5559\"} 12.5\n");
    s_expect (metrics, "tally_sink_jobs_failed_total{feed=\"tcp://a:5559\"} 1\n");
    s_expect (metrics, "tally_web_feed_undecodable_total{feed=\"tcp://a:5559\"} 1\n");
    s_expect (metrics, "tally_jobs{status=\"failed\"} 1\n");
    free (metrics);
    tl_web_destroy (&web);
}
