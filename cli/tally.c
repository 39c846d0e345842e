/*  tally: the one-machine front end. `tally run FILE...` starts a sink (or --shards
    sink shards, whose parts it merges into one totals file), N workers and a
    ventilator as child processes on private ipc:// endpoints, lets the ventilator draw
    the progress, and when the job is merged prints the summary and the top keys. No
    process outlives it: children are stopped on exit and on Ctrl-C, and each child is
    told by the kernel (PR_SET_PDEATHSIG) should tally itself be killed.
    `tally keygen NAME` makes a CURVE key pair for multi-machine setups; `tally merge
    PART...` merges totals files of disjoint keys into one (merge.c); `tally web FEED...`
    serves a live page and Prometheus metrics of the sinks' feeds (web.c).           */

#include "merge.h"
#include "web.h"
#include "tl_clock.h"
#include "tl_files.h"
#include "tl_jobspec.h"
#include "tl_opts.h"
#include "tl_proto.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_CHILDREN_MAX 1040

typedef struct {
    pid_t pid;         //  Child process, 0 once reaped
    const char *role;  //  "sink", "worker", "ventilator"
} s_child_t;

static s_child_t s_children[S_CHILDREN_MAX];
static int s_nchildren;
static volatile sig_atomic_t s_signal;

static void s_on_signal (int sig)
{
    s_signal = sig;
}

static void s_scrub_environment (void)
{
    extern char **environ;
    for (size_t i = 0; environ[i];) {
        if (strncmp (environ[i], "TALLY_", 6) == 0) {
            char name[256];
            size_t len = strcspn (environ[i], "=");
            snprintf (name, sizeof name, "%.*s", (int)(len < 255 ? len : 255), environ[i]);
            unsetenv (name);  //  Shifts the array: look at slot i again
        } else
            i++;
    }
}

//  Starts program (a sibling of this executable) with argv, niceness raised by nice_by;
//  returns its pid or -1.
static pid_t s_spawn (const char *bindir, const char *program, const char *role, char **argv,
                      int nice_by)
{
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", bindir, program);
    argv[0] = path;
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent) _exit (1);  //  The parent died before prctl took effect
        signal (SIGINT, SIG_DFL);
        signal (SIGTERM, SIG_DFL);
        //  Options reach the children as arguments only: a TALLY_* variable meant for
        //  tally run (TALLY_TOP, TALLY_OUTPUT...) must not change what a child does.
        s_scrub_environment ();
        //  Only advice: a program that keeps its priority counts all the same
        errno = 0;
        if (nice_by > 0 && nice (nice_by) == -1 && errno != 0)
            fprintf (stderr, "tally: %s keeps its priority: %s\n", role, strerror (errno));
        execv (path, argv);
        fprintf (stderr, "tally: cannot start %s: %s\n", path, strerror (errno));
        _exit (127);
    }
    if (pid > 0 && s_nchildren < S_CHILDREN_MAX) s_children[s_nchildren++] = (s_child_t){pid, role};
    return pid;
}

static s_child_t *s_child_of (pid_t pid)
{
    for (int i = 0; i < s_nchildren; i++)
        if (s_children[i].pid == pid) return &s_children[i];
    return NULL;
}

//  Sends SIGTERM to every live child, waits up to grace seconds, then SIGKILLs.
static void s_stop_children (double grace)
{
    for (int i = 0; i < s_nchildren; i++)
        if (s_children[i].pid > 0) kill (s_children[i].pid, SIGTERM);
    double deadline = tl_now () + grace;
    int alive = 1;
    //  Children stop within milliseconds of SIGTERM: looked at after 1 ms, then ever
    //  less often, up to every 20 ms (a fixed 20 ms added most of that to every run).
    useconds_t pause = 1000;
    while (alive) {
        alive = 0;
        for (int i = 0; i < s_nchildren; i++) {
            if (s_children[i].pid <= 0) continue;
            if (waitpid (s_children[i].pid, NULL, WNOHANG) == s_children[i].pid)
                s_children[i].pid = 0;
            else
                alive++;
        }
        if (alive && tl_now () > deadline) {
            for (int i = 0; i < s_nchildren; i++)
                if (s_children[i].pid > 0) {
                    kill (s_children[i].pid, SIGKILL);
                    waitpid (s_children[i].pid, NULL, 0);
                    s_children[i].pid = 0;
                }
            alive = 0;
        }
        if (alive) {
            usleep (pause);
            pause = pause < 10000 ? pause * 2 : 20000;
        }
    }
}

//  Removes the private folder: the ipc:// endpoints, the parts, and the sinks' state
//  folders with any checkpoint (one level of folders).
static void s_remove_folder (const char *dir, int depth)
{
    DIR *folder = opendir (dir);
    struct dirent *entry;
    while (folder && (entry = readdir (folder))) {
        if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0) continue;
        char path[PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        if (unlink (path) != 0 && errno == EISDIR && depth > 0) s_remove_folder (path, depth - 1);
    }
    if (folder) closedir (folder);
    rmdir (dir);
}

static void s_print_top (const char *output, long top)
{
    FILE *file = fopen (output, "r");
    if (!file) return;
    char *line = NULL;
    size_t capacity = 0;
    ssize_t len;
    printf ("top %ld:\n", top);
    for (long i = 0; i < top && (len = getline (&line, &capacity, file)) > 0; i++) {
        char *tab = memrchr (line, '\t', (size_t)len);
        if (!tab) continue;
        line[len - 1] = line[len - 1] == '\n' ? 0 : line[len - 1];
        printf ("  %3ld. %-32.*s %s\n", i + 1, (int)(tab - line), line, tab + 1);
    }
    free (line);
    fclose (file);
}

//  Joins the shards' endpoints "PREFIX0,PREFIX1,..." into buf. Returns buf.
static char *s_endpoint_list (const char *dir, const char *name, long shards, char *buf,
                              size_t size)
{
    buf[0] = 0;
    for (long i = 0; i < shards; i++) {
        size_t used = strlen (buf);
        snprintf (buf + used, size - used, "%sipc://%s/%s%ld", i ? "," : "", dir, name, i);
    }
    return buf;
}

static int s_run (int argc, char **argv)
{
    long workers = sysconf (_SC_NPROCESSORS_ONLN), top = 10, shards = 1, worker_nice = 10;
    const char *output = "totals.tsv";
    bool quiet = false;
    tl_jobspec_t spec = tl_jobspec_defaults ();
    tl_opt_t opts[] = {
        TL_OPT ("workers", 'w', "TALLY_WORKERS", TL_OPT_INT, &workers, "N",
                "Worker processes (default: the number of CPUs)", 1, 1024),
        TL_OPT ("output", 'o', "TALLY_OUTPUT", TL_OPT_STR, &output, "FILE",
                "Totals file: KEY<TAB>TOTAL lines, largest first (default totals.tsv)", 0, 0),
        TL_OPT ("top", 't', "TALLY_TOP", TL_OPT_INT, &top, "N",
                "Keys shown at the end (default 10)", 0, 1000),
        TL_OPT ("shards", 0, "TALLY_SHARDS", TL_OPT_INT, &shards, "N",
                "Sink shards, each merging the keys that hash to it, their parts merged into "
                "one totals file at the end (default 1, the fastest for a few million keys; "
                "with tens of millions, 2 or more: see bench/README.md)",
                1, TL_SHARDS_MAX),
        TL_OPT ("worker-nice", 0, "TALLY_WORKER_NICE", TL_OPT_INT, &worker_nice, "N",
                "Niceness added to the workers, so that when every CPU is busy the sink and "
                "the ventilator, which every chunk passes through, run first (default 10; "
                "0: the same priority as the others)",
                0, 19),
        TL_JOBSPEC_OPTS (spec),
        TL_OPT_QUIET (quiet),
    };
    tl_cli_t cli = {.program = "tally run",
                    .usage = "[OPTIONS] FILE|FOLDER...",
                    .summary = "Counts the keys of the files on this machine: starts a sink, "
                               "workers and a ventilator,\nwrites the totals file and prints a "
                               "summary and the top keys.",
                    .epilog = "Example: tally run --workers 2 data/sample/",
                    TL_CLI_OPTS (opts),
                    .min_args = 1,
                    .max_args = -1};
    int first = tl_cli_parse (&cli, argc, argv);
    tl_jobspec_check (&cli, &spec);
    char error[1024];
    tl_files_t files;
    if (tl_files_expand (&files, argv + first, (size_t)(argc - first), error, sizeof error))
        tl_cli_usage_error (&cli, "%s", error);
    tl_files_free (&files);

    char self_path[PATH_MAX];
    ssize_t len = readlink ("/proc/self/exe", self_path, sizeof self_path - 1);
    if (len <= 0) {
        fprintf (stderr, "tally: cannot find my own executable\n");
        return 1;
    }
    self_path[len] = 0;
    const char *bindir = dirname (self_path);
    static const char *programs[] = {"tally-sink", "tally-worker", "tally-ventilator"};
    for (size_t i = 0; i < 3; i++) {
        char path[PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", bindir, programs[i]);
        if (access (path, X_OK) != 0) {
            fprintf (stderr, "tally: %s not found beside tally (%s)\n", programs[i], path);
            return 1;
        }
    }
    char dir[] = "/tmp/tally-XXXXXX";
    if (!mkdtemp (dir)) {
        fprintf (stderr, "tally: cannot make a temporary folder: %s\n", strerror (errno));
        return 1;
    }
    //  One sink writes the totals file itself; shards write parts in the private
    //  folder, merged into it at the end.
    static char in_eps[TL_SHARDS_MAX * 48], chunks_ep[64];
    s_endpoint_list (dir, "in", shards, in_eps, sizeof in_eps);
    snprintf (chunks_ep, sizeof chunks_ep, "ipc://%s/chunks", dir);

    //  The job's options go to the ventilator as they were given (from the command line
    //  or the environment), so it sees exactly what tally run checked.
    size_t nopts = sizeof opts / sizeof *opts;
    int max = (argc - first) + 12 + (int)nopts, n = 1;
    char **vent_argv = calloc ((size_t)max + 1, sizeof *vent_argv);
    if (!vent_argv) {
        fprintf (stderr, "tally: out of memory\n");
        s_remove_folder (dir, 1);
        return 1;
    }
    char *fixed[] = {"--bind", chunks_ep, "--sink", in_eps, "--merge-to", (char *)output};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        vent_argv[n++] = fixed[i];
    int passed_from = n;
    for (size_t i = 0; i < nopts; i++)
        if (tl_jobspec_owns (&spec, &opts[i]) || opts[i].value == &quiet)
            tl_opts_forward (&opts[i], 1, vent_argv, &n, max);
    int passed_to = n;
    vent_argv[n++] = "--";
    for (int i = first; i < argc; i++)
        vent_argv[n++] = argv[i];

    struct sigaction action = {.sa_handler = s_on_signal};
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGHUP, &action, NULL);

    //  The sink's checkpoints (written when it is stopped mid-job) stay in the private
    //  folder and go with it: an interrupted tally run leaves nothing behind. Its
    //  processes live and die together, so periodic checkpoints would bring nothing back.
    static char parts[TL_SHARDS_MAX][PATH_MAX];
    for (long i = 0; i < shards; i++) {
        char in_ep[64], feed_ep[64], state[PATH_MAX];
        snprintf (in_ep, sizeof in_ep, "ipc://%s/in%ld", dir, i);
        snprintf (feed_ep, sizeof feed_ep, "ipc://%s/feed%ld", dir, i);
        snprintf (state, sizeof state, "%s/state%ld", dir, i);
        if (shards == 1)
            snprintf (parts[i], sizeof parts[i], "%s", output);
        else
            snprintf (parts[i], sizeof parts[i], "%s/part%ld.tsv", dir, i);
        char *sink_argv[] = {NULL,
                             "--bind",
                             in_ep,
                             "--publish",
                             feed_ep,
                             "--output",
                             parts[i],
                             "--state-dir",
                             state,
                             "--quiet",
                             "--checkpoint-interval",
                             "0",
                             NULL};
        s_spawn (bindir, "tally-sink", "sink", sink_argv, 0);
    }
    for (long i = 0; i < workers; i++) {
        char *worker_argv[] = {NULL, "--ventilator", chunks_ep, "--sink", in_eps, "--quiet", NULL};
        s_spawn (bindir, "tally-worker", "worker", worker_argv, (int)worker_nice);
    }
    pid_t ventilator = s_spawn (bindir, "tally-ventilator", "ventilator", vent_argv, 0);
    for (int i = passed_from; i < passed_to; i++)
        free (vent_argv[i]);
    free (vent_argv);

    int status = 1;
    while (true) {
        if (s_signal) {
            fprintf (stderr, "\ntally: interrupted; stopping\n");
            status = 128 + s_signal;
            break;
        }
        int wstatus;
        pid_t pid = waitpid (-1, &wstatus, 0);
        if (pid == -1) {
            if (errno == EINTR) continue;
            break;
        }
        s_child_t *child = s_child_of (pid);
        if (!child) continue;
        child->pid = 0;
        int code = WIFEXITED (wstatus) ? WEXITSTATUS (wstatus) : 128 + WTERMSIG (wstatus);
        if (pid == ventilator) {
            status = code;
            break;
        }
        if (!s_signal) {
            fprintf (stderr, "tally: the %s process stopped unexpectedly (status %d)\n",
                     child->role, code);
            if (strcmp (child->role, "sink") == 0) {
                status = 1;
                break;
            }
        }
    }
    s_stop_children (5.0);
    if (status == 0 && shards > 1) {
        //  The parts hold disjoint keys, each sorted: one streaming merge makes the file.
        char *merge_argv[TL_SHARDS_MAX + 6];
        int m = 0;
        merge_argv[m++] = "merge";
        merge_argv[m++] = "--output";
        merge_argv[m++] = (char *)output;
        if (quiet) merge_argv[m++] = "--quiet";
        merge_argv[m++] = "--";
        for (long i = 0; i < shards; i++)
            merge_argv[m++] = parts[i];
        merge_argv[m] = NULL;
        status = tl_merge_main (m, merge_argv) == 0 ? 0 : 1;
    }
    s_remove_folder (dir, 1);
    if (status == 0 && !quiet && top > 0) s_print_top (output, top);
    return status;
}

//  Writes NAME (public) and NAME_secret (secret) CURVE certificates.
static int s_keygen (int argc, char **argv)
{
    tl_cli_t cli = {.program = "tally keygen",
                    .usage = "NAME",
                    .summary = "Writes a CURVE key pair: NAME (public, give it to the other side) "
                               "and NAME_secret (keep it).",
                    .min_args = 1,
                    .max_args = 1};
    int first = tl_cli_parse (&cli, argc, argv);
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "tally keygen: cannot make a key pair\n");
        return 1;
    }
    zcert_set_meta (cert, "created-by", "tally keygen");
    int rc = zcert_save (cert, argv[first]);
    zcert_destroy (&cert);
    if (rc != 0) {
        fprintf (stderr, "tally keygen: cannot write %s: %s\n", argv[first], strerror (errno));
        return 1;
    }
    printf ("wrote %s (public) and %s_secret (secret)\n", argv[first], argv[first]);
    return 0;
}

static void s_usage (FILE *out)
{
    fprintf (out, "Usage: tally COMMAND [OPTIONS] ...\n"
                  "Counts keys (Google Books n-grams, words) across inputs larger than memory.\n\n"
                  "Commands:\n"
                  "  run FILE|FOLDER...   count on this machine (sink, workers, ventilator)\n"
                  "  merge PART...        merge totals files of different keys into one\n"
                  "  keygen NAME          make a CURVE key pair for encrypted multi-machine runs\n"
                  "  web FEED...          serve a live page and metrics of the sinks' feeds\n\n"
                  "'tally COMMAND --help' tells more. The services run on their own as\n"
                  "tally-sink, tally-worker, tally-ventilator; tally-watch prints the feed.\n");
}

int main (int argc, char **argv)
{
    if (argc < 2) {
        s_usage (stderr);
        return 2;
    }
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0) {
        s_usage (stdout);
        return 0;
    }
    if (strcmp (argv[1], "--version") == 0 || strcmp (argv[1], "-V") == 0) {
        printf ("tally %s\n", TALLY_VERSION);
        return 0;
    }
    if (strcmp (argv[1], "run") == 0) return s_run (argc - 1, argv + 1);
    if (strcmp (argv[1], "keygen") == 0) return s_keygen (argc - 1, argv + 1);
    if (strcmp (argv[1], "merge") == 0) return tl_merge_main (argc - 1, argv + 1);
    if (strcmp (argv[1], "web") == 0) return tl_web_main (argc - 1, argv + 1);
    fprintf (stderr, "tally: unknown command '%s'\nTry 'tally --help'.\n", argv[1]);
    return 2;
}
