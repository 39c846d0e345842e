/*  tl_opts: command line and environment options, described once as a table.

    Every program declares its options in a tl_opt_t array; tl_cli_parse reads the
    environment variables first, then argv (which wins), prints --help and --version,
    and on bad usage prints a one-line reason and exits 2.                            */

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
    long min, max;       //  Bounds for TL_OPT_INT (both 0: unbounded)
} tl_opt_t;

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

//  Parses environment and argv into the table's values. Exits 0 after --help or
//  --version, exits 2 with "program: reason" on stderr for bad usage. Returns the
//  index in argv of the first positional argument.
int tl_cli_parse (const tl_cli_t *cli, int argc, char **argv);

//  Prints "program: message" and "Try 'program --help'." on stderr and exits 2.
void tl_cli_usage_error (const tl_cli_t *cli, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3), noreturn));

//  Parses a size such as "1048576", "64K", "1M", "1MiB", "2G". Returns 0 or -1.
int tl_parse_size (const char *text, size_t *value);

#endif
