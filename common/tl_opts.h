/*  tl_opts: command line and environment options, described once as a table.

    Every program declares its options in a tl_opt_t array; tl_cli_parse reads the
    environment variables first, then argv (which wins), prints --help and --version,
    and on bad usage prints a one-line reason and exits 2. Options may stand anywhere
    on the command line, before or after the other arguments, as GNU tools allow; "--"
    ends them. An option several programs take is declared once, as a macro here or
    beside what it configures (TL_OPT_CURVE_* in tl_sock.h, TL_JOBSPEC_OPTS), and a
    table entry remembers what it was given, so a launcher can pass it on as is.     */

#ifndef TL_OPTS_H_INCLUDED
#define TL_OPTS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TL_OPT_STR,   //  char ** (points into argv or the environment)
    TL_OPT_INT,   //  long *, decimal
    TL_OPT_SIZE,  //  size_t *, with optional K/M/G (powers of 1024) suffix
    TL_OPT_FLAG,  //  bool *, takes no argument ("1/true/yes" or "0/false/no" in env)
    TL_OPT_REAL   //  double *
} tl_opt_type_t;

typedef struct {
    const char *name;    //  Long name, without "--"
    char letter;         //  Short name, 0 for none
    const char *env;     //  Environment variable, NULL for none
    tl_opt_type_t type;  //  What value points to
    void *value;         //  Where the parsed value goes (holds the default before)
    const char *arg;     //  Argument placeholder in --help ("N", "ENDPOINT")
    const char *help;    //  One line of help
    long min, max;       //  Bounds for TL_OPT_INT and TL_OPT_SIZE (both 0: unbounded)
    bool given;          //  Set by tl_cli_parse: taken from argv or the environment
    const char *text;    //  Set by tl_cli_parse: the text it was given (flags: NULL)
} tl_opt_t;

//  One table entry: long name, letter (0: none), environment variable, type, where
//  the value goes, argument placeholder, help, and bounds (INT and SIZE; 0, 0: none).
#define TL_OPT(name_, letter_, env_, type_, value_, arg_, help_, min_, max_)                       \
    {                                                                                              \
        .name = (name_), .letter = (letter_), .env = (env_), .type = (type_), .value = (value_),   \
        .arg = (arg_), .help = (help_), .min = (min_), .max = (max_)                               \
    }

//  --quiet, which every program takes.
#define TL_OPT_QUIET(quiet)                                                                        \
    TL_OPT ("quiet", 'q', "TALLY_QUIET", TL_OPT_FLAG, &(quiet), NULL, "Print only errors", 0, 0)

typedef struct {
    const char *program;  //  Name in messages ("tally-sink")
    const char *usage;    //  After the program name ("[OPTIONS] FILE...")
    const char *summary;  //  What the program does, one or two lines
    const char *epilog;   //  Printed after the options (may be NULL)
    tl_opt_t *opts;       //  Option table
    size_t nopts;         //  Entries in opts
    int min_args;         //  Positional arguments required
    int max_args;         //  Positional arguments allowed (-1: any number)
} tl_cli_t;

//  Points a tl_cli_t at an option table (an array, not a pointer): .opts and .nopts.
#define TL_CLI_OPTS(table) .opts = (table), .nopts = sizeof (table) / sizeof *(table)

//  Parses environment and argv into the table's values and marks what was given.
//  Exits 0 after --help or --version, exits 2 with "program: reason" on stderr for
//  bad usage. Reorders argv so that the positional arguments come last, in their
//  order, and returns the index in argv of the first of them.
int tl_cli_parse (const tl_cli_t *cli, int argc, char **argv);

//  Appends "--name=TEXT" (flags: "--name" when set) to argv for each option of
//  opts[0..n) that was given, from argv[*argc] on, up to max entries in all, and
//  advances *argc. The caller frees each entry. Returns 0, or -1 when they do not
//  fit or memory runs out.
int tl_opts_forward (const tl_opt_t *opts, size_t n, char **argv, int *argc, int max);

//  Prints "program: message" and "Try 'program --help'." on stderr and exits 2.
void tl_cli_usage_error (const tl_cli_t *cli, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3), noreturn));

#endif
