/*  tl_opts: command line and environment options, described once as a table.  */

#include "tl_opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  Parses a size such as "1048576", "64K", "1M", "1MiB", "2G". Returns 0 or -1.
static int s_parse_size (const char *text, size_t *value)
{
    if (!text || !*text) return -1;
    errno = 0;
    char *end;
    unsigned long long number = strtoull (text, &end, 10);
    if (errno || end == text || *text == '-') return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    default:
        break;
    }
    if (shift && (strcmp (end, "iB") == 0 || strcmp (end, "B") == 0)) end += strlen (end);
    if (*end) return -1;
    if (number > (SIZE_MAX >> shift)) return -1;
    *value = (size_t)number << shift;
    return 0;
}

static int s_parse_bool (const char *text, bool *value)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (strcasecmp (text, yes[i]) == 0) {
            *value = true;
            return 0;
        }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (strcasecmp (text, no[i]) == 0) {
            *value = false;
            return 0;
        }
    return -1;
}

//  Stores text into the option's value and remembers it; returns 0 or -1 for a value
//  of the wrong shape.
static int s_set (tl_opt_t *opt, const char *text)
{
    opt->given = true;
    opt->text = text;
    switch (opt->type) {
    case TL_OPT_STR:
        *(const char **)opt->value = text;
        return 0;
    case TL_OPT_FLAG:
        return text ? s_parse_bool (text, (bool *)opt->value) : (*(bool *)opt->value = true, 0);
    case TL_OPT_SIZE: {
        size_t number;
        if (s_parse_size (text, &number) != 0) return -1;
        if ((opt->min || opt->max) && (number < (size_t)opt->min || number > (size_t)opt->max))
            return -1;
        *(size_t *)opt->value = number;
        return 0;
    }
    case TL_OPT_REAL: {
        char *end;
        errno = 0;
        double number = strtod (text, &end);
        if (errno || end == text || *end) return -1;
        *(double *)opt->value = number;
        return 0;
    }
    case TL_OPT_INT: {
        char *end;
        errno = 0;
        long number = strtol (text, &end, 10);
        if (errno || end == text || *end) return -1;
        if ((opt->min || opt->max) && (number < opt->min || number > opt->max)) return -1;
        *(long *)opt->value = number;
        return 0;
    }
    }
    return -1;
}

static void s_print_help (const tl_cli_t *cli)
{
    printf ("Usage: %s %s\n%s\n\nOptions:\n", cli->program, cli->usage, cli->summary);
    for (size_t i = 0; i < cli->nopts; i++) {
        const tl_opt_t *opt = &cli->opts[i];
        char left[64];
        if (opt->letter)
            snprintf (left, sizeof left, "-%c, --%s%s%s", opt->letter, opt->name,
                      opt->type == TL_OPT_FLAG ? "" : " ",
                      opt->type == TL_OPT_FLAG ? "" : opt->arg);
        else
            snprintf (left, sizeof left, "    --%s%s%s", opt->name,
                      opt->type == TL_OPT_FLAG ? "" : " ",
                      opt->type == TL_OPT_FLAG ? "" : opt->arg);
        printf ("  %-28s %s", left, opt->help);
        if (opt->env) printf (" [env %s]", opt->env);
        printf ("\n");
    }
    printf ("  %-28s %s\n  %-28s %s\n", "-h, --help", "Show this help and exit", "-V, --version",
            "Show the version and exit");
    if (cli->epilog) printf ("\n%s\n", cli->epilog);
}

void tl_cli_usage_error (const tl_cli_t *cli, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    fprintf (stderr, "%s: ", cli->program);
    vfprintf (stderr, fmt, args);
    va_end (args);
    fprintf (stderr, "\nTry '%s --help'.\n", cli->program);
    exit (2);
}

//  "--name wants a size from 4K to 2G" and the like: the bounds as the user writes them.
static char *s_size_text (long value, char *buf, size_t size)
{
    static const char *units = "GMK";
    for (int i = 0; i < 3; i++) {
        long unit = 1L << (10 * (3 - i));
        if (value >= unit && value % unit == 0) {
            snprintf (buf, size, "%ld%c", value / unit, units[i]);
            return buf;
        }
    }
    snprintf (buf, size, "%ld", value);
    return buf;
}

static void s_bad_value (const tl_cli_t *cli, const tl_opt_t *opt, const char *text)
{
    char low[32], high[32];
    if (opt->type == TL_OPT_INT && (opt->min || opt->max))
        tl_cli_usage_error (cli, "--%s wants a whole number from %ld to %ld, not '%s'", opt->name,
                            opt->min, opt->max, text);
    if (opt->type == TL_OPT_SIZE && (opt->min || opt->max))
        tl_cli_usage_error (cli, "--%s wants a size from %s to %s, not '%s'", opt->name,
                            s_size_text (opt->min, low, sizeof low),
                            s_size_text (opt->max, high, sizeof high), text);
    tl_cli_usage_error (cli, "bad value '%s' for --%s", text, opt->name);
}

int tl_cli_parse (const tl_cli_t *cli, int argc, char **argv)
{
    for (size_t i = 0; i < cli->nopts; i++) {
        tl_opt_t *opt = &cli->opts[i];
        const char *text = opt->env ? getenv (opt->env) : NULL;
        if (text && *text && s_set (opt, text) != 0)
            tl_cli_usage_error (cli, "bad value '%s' in environment variable %s", text, opt->env);
    }
    struct option *longs = calloc (cli->nopts + 3, sizeof *longs);
    //  No leading '+': getopt_long permutes, so options may follow the arguments.
    char shorts[3 * 64 + 8] = ":hV";
    size_t nshort = strlen (shorts);
    if (!longs) {
        fprintf (stderr, "%s: out of memory\n", cli->program);
        exit (1);
    }
    for (size_t i = 0; i < cli->nopts; i++) {
        const tl_opt_t *opt = &cli->opts[i];
        longs[i] =
            (struct option){opt->name, opt->type == TL_OPT_FLAG ? no_argument : required_argument,
                            NULL, 256 + (int)i};
        if (opt->letter && nshort + 3 < sizeof shorts) {
            shorts[nshort++] = opt->letter;
            if (opt->type != TL_OPT_FLAG) shorts[nshort++] = ':';
        }
    }
    longs[cli->nopts] = (struct option){"help", no_argument, NULL, 'h'};
    longs[cli->nopts + 1] = (struct option){"version", no_argument, NULL, 'V'};
    shorts[nshort] = 0;

    opterr = 0;
    optind = 1;
    int code;
    while ((code = getopt_long (argc, argv, shorts, longs, NULL)) != -1) {
        if (code == 'h') {
            s_print_help (cli);
            exit (0);
        }
        if (code == 'V') {
            printf ("%s %s\n", cli->program, TALLY_VERSION);
            exit (0);
        }
        if (code == '?' || code == ':') {
            const char *what = argv[optind - 1];
            free (longs);
            if (code == ':') tl_cli_usage_error (cli, "option '%s' needs a value", what);
            tl_cli_usage_error (cli, "unknown option '%s'", what);
        }
        tl_opt_t *opt = NULL;
        if (code >= 256)
            opt = &cli->opts[code - 256];
        else
            for (size_t i = 0; i < cli->nopts && !opt; i++)
                if (cli->opts[i].letter == code) opt = &cli->opts[i];
        if (!opt) continue;
        if (s_set (opt, opt->type == TL_OPT_FLAG ? NULL : optarg) != 0) {
            free (longs);
            s_bad_value (cli, opt, optarg);
        }
    }
    free (longs);
    int nargs = argc - optind;
    if (nargs < cli->min_args)
        tl_cli_usage_error (cli, "missing %s", cli->min_args == 1 ? "argument" : "arguments");
    if (cli->max_args >= 0 && nargs > cli->max_args)
        tl_cli_usage_error (cli, "unexpected argument '%s'", argv[optind + cli->max_args]);
    return optind;
}

int tl_opts_forward (const tl_opt_t *opts, size_t n, char **argv, int *argc, int max)
{
    for (size_t i = 0; i < n; i++) {
        const tl_opt_t *opt = &opts[i];
        if (!opt->given || (opt->type == TL_OPT_FLAG && !*(bool *)opt->value)) continue;
        char *arg;
        int rc = opt->type == TL_OPT_FLAG ? asprintf (&arg, "--%s", opt->name)
                                          : asprintf (&arg, "--%s=%s", opt->name, opt->text);
        if (rc < 0 || *argc >= max) {
            if (rc >= 0) free (arg);
            return -1;
        }
        argv[(*argc)++] = arg;
    }
    return 0;
}
