/*  test_sock: what common/tl_sock.c does without a socket: tl_endpoints_parse, which
    splits the --sink list of a job's sink shards ("EP0,EP1,...", shard i is entry i).
    Blanks around an entry are dropped, an empty entry or more than TL_SHARDS_MAX entries
    refuse the whole list and leave nothing allocated (the sanitized build's
    LeakSanitizer checks that).                                                     */

#include "tl_sock.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Parses text, expecting success with the n endpoints of want.
static void s_expect_list (const char *text, const char *const *want, size_t n)
{
    tl_endpoints_t list;
    memset (&list, 0xA5, sizeof list);  //  Whatever the parser leaves unset shows
    const char *error = NULL;
    cr_assert_eq (tl_endpoints_parse (text, &list, &error), 0, "\"%s\": %s", text,
                  error ? error : "(no error)");
    cr_assert_eq (list.count, n, "\"%s\": %zu endpoints", text, list.count);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq (list.endpoint[i], want[i], "\"%s\", entry %zu", text, i);
    for (size_t i = n; i < TL_SHARDS_MAX; i++)
        cr_assert_null (list.endpoint[i], "\"%s\", entry %zu", text, i);
    tl_endpoints_free (&list);
    cr_assert_eq (list.count, 0);
    cr_assert_null (list.endpoint[0]);
    tl_endpoints_free (&list);  //  Again: nothing left to free
}

//  Parses text, expecting it refused with an error containing reason.
static void s_expect_refused (const char *text, const char *reason)
{
    tl_endpoints_t list;
    memset (&list, 0xA5, sizeof list);
    const char *error = NULL;
    cr_assert_eq (tl_endpoints_parse (text, &list, &error), -1, "\"%s\" was taken", text);
    cr_assert_not_null (error, "\"%s\": no error", text);
    cr_assert (strstr (error, reason), "\"%s\": error \"%s\" lacks \"%s\"", text, error, reason);
    cr_assert_eq (list.count, 0, "\"%s\": the list keeps %zu", text, list.count);
    for (size_t i = 0; i < TL_SHARDS_MAX; i++)
        cr_assert_null (list.endpoint[i], "\"%s\", entry %zu", text, i);
    tl_endpoints_free (&list);
}

#define LIST(...)                                                                                  \
    (const char *const[]){__VA_ARGS__},                                                            \
        sizeof ((const char *const[]){__VA_ARGS__}) / sizeof (const char *)

Test (sock, endpoints_one_or_many_in_order)
{
    s_expect_list ("tcp://localhost:5558", LIST ("tcp://localhost:5558"));
    s_expect_list ("tcp://a:1,tcp://b:2", LIST ("tcp://a:1", "tcp://b:2"));
    s_expect_list ("tcp://b:2,tcp://a:1", LIST ("tcp://b:2", "tcp://a:1"));
    s_expect_list ("ipc:///tmp/s0,inproc://s1,tcp://[::1]:5558",
                   LIST ("ipc:///tmp/s0", "inproc://s1", "tcp://[::1]:5558"));
    //  The same endpoint twice is two entries: the list is not checked for sense
    s_expect_list ("x,x", LIST ("x", "x"));
    s_expect_list ("a", LIST ("a"));
}

Test (sock, endpoints_blanks_around_entries_are_dropped)
{
    s_expect_list (" tcp://a:1", LIST ("tcp://a:1"));
    s_expect_list ("tcp://a:1 ", LIST ("tcp://a:1"));
    s_expect_list ("tcp://a:1, tcp://b:2", LIST ("tcp://a:1", "tcp://b:2"));
    s_expect_list ("  tcp://a:1 ,\ttcp://b:2\t ,  c  ", LIST ("tcp://a:1", "tcp://b:2", "c"));
    //  Only around: a blank inside an entry is kept
    s_expect_list ("a b, c\td ", LIST ("a b", "c\td"));
}

Test (sock, endpoints_empty_entries_refuse_the_list)
{
    static const char *lists[] = {
        "",     " ",     "\t",     ",",    ",,",   "a,",     ",a",
        "a,,b", "a, ,b", "a,\t,b", " , a", "a , ", "a,b,c,", "a,b,,c,d",
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        s_expect_refused (lists[i], "empty endpoint");
}

//  Builds a list of n entries "tcp://s<i>:<5000+i>", with blanks after the commas when
//  spaced.
static char *s_many (size_t n, bool spaced)
{
    size_t cap = n * 32 + 1;
    char *text = malloc (cap);
    cr_assert_not_null (text);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf (text + len, cap - len, "%stcp://s%zu:%zu",
                                 i ? (spaced ? ", " : ",") : "", i, 5000 + i);
    return text;
}

Test (sock, endpoints_at_most_64)
{
    for (int spaced = 0; spaced < 2; spaced++) {
        char *text = s_many (TL_SHARDS_MAX, spaced);
        tl_endpoints_t list;
        const char *error = NULL;
        cr_assert_eq (tl_endpoints_parse (text, &list, &error), 0, "%s", error);
        cr_assert_eq (list.count, TL_SHARDS_MAX);
        for (size_t i = 0; i < TL_SHARDS_MAX; i++) {
            char want[32];
            snprintf (want, sizeof want, "tcp://s%zu:%zu", i, 5000 + i);
            cr_assert_str_eq (list.endpoint[i], want);
        }
        tl_endpoints_free (&list);
        free (text);

        //  One more: refused whole, the 64 taken so far freed
        text = s_many (TL_SHARDS_MAX + 1, spaced);
        s_expect_refused (text, "more than 64");
        free (text);
        text = s_many (1000, spaced);
        s_expect_refused (text, "more than 64");
        free (text);
    }
    //  64 entries then an empty one: refused (the empty entry or the 65th, either way)
    char *text = s_many (TL_SHARDS_MAX, false);
    size_t len = strlen (text);
    char *more = malloc (len + 2);
    cr_assert_not_null (more);
    memcpy (more, text, len);
    memcpy (more + len, ",", 2);
    tl_endpoints_t list;
    const char *error = NULL;
    cr_assert_eq (tl_endpoints_parse (more, &list, &error), -1);
    cr_assert_eq (list.count, 0);
    free (more);
    free (text);
}

//  The text is not changed, and the entries are copies: they outlive it.
Test (sock, endpoints_are_copies)
{
    char text[] = "tcp://a:1, tcp://b:2";
    tl_endpoints_t list;
    const char *error = NULL;
    cr_assert_eq (tl_endpoints_parse (text, &list, &error), 0);
    cr_assert_str_eq (text, "tcp://a:1, tcp://b:2");
    memset (text, 'z', sizeof text - 1);
    cr_assert_str_eq (list.endpoint[0], "tcp://a:1");
    cr_assert_str_eq (list.endpoint[1], "tcp://b:2");
    tl_endpoints_free (&list);
}
