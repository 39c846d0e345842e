/*  bench_peak: runs a command and measures it as bench/run reports it: wall time, and
    the peak of the summed resident memory (RSS) of its whole process tree, sampled
    from /proc every few milliseconds. A pipeline or a program with helper processes
    (tally run: sink, workers, ventilator) is charged for all of them at once, which a
    per-process maximum (getrusage) cannot tell. bench_peak is a child subreaper, so
    processes whose parent exits stay in the tree.

    Usage: bench_peak [-i MS] [-t SECONDS] [-o FILE] [-p] -- COMMAND [ARG...]
    Writes one line to FILE (default stderr):
      wall_s=W peak_tree_kib=K peak_procs=N max_single_kib=M cpu_s=C other_cpu_s=O status=S
    With -p it also sums the proportional set size (PSS, /proc/PID/smaps_rollup) of the
    tree at each sample and appends peak_tree_pss_kib=P: pages shared by several of its
    processes (a forked child's copy-on-write image of its parent) count once in all,
    where the RSS sum counts them in every process that maps them.
    cpu_s is the CPU time (user + system) of the command's processes; other_cpu_s the
    CPU time the rest of the machine used meanwhile (from /proc/stat), which tells a
    run that shared the cores with other work. Exits with the command's status (124
    when it was stopped at the time limit).                                           */

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_PROCS_MAX 65536  //  Processes looked at in one sample

//  One process seen in /proc.
typedef struct {
    int pid;      //  Process id
    int ppid;     //  Parent's id
    bool member;  //  In the measured tree
} s_proc_t;

static double s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

//  Parent id from /proc/PID/stat ("pid (comm) state ppid ..."; comm may hold spaces
//  and parentheses, so parse from the last ')'). -1 when the process is gone.
static int s_parent_of (int pid)
{
    char path[64], text[1024];
    snprintf (path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = fopen (path, "r");
    if (!file) return -1;
    size_t got = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text[got] = 0;
    char *close = strrchr (text, ')');
    int ppid = -1;
    if (!close || sscanf (close + 1, " %*c %d", &ppid) != 1) return -1;
    return ppid;
}

//  Resident bytes of a process from /proc/PID/statm (0 when gone).
static uint64_t s_rss_of (int pid, long page)
{
    char path[64];
    snprintf (path, sizeof path, "/proc/%d/statm", pid);
    FILE *file = fopen (path, "r");
    if (!file) return 0;
    unsigned long long size = 0, resident = 0;
    int fields = fscanf (file, "%llu %llu", &size, &resident);
    fclose (file);
    return fields == 2 ? resident * (uint64_t)page : 0;
}

//  Proportional set size of a process in bytes, from /proc/PID/smaps_rollup (0 when
//  gone or unreadable).
static uint64_t s_pss_of (int pid)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *file = fopen (path, "r");
    if (!file) return 0;
    unsigned long long kib = 0;
    while (fgets (line, sizeof line, file))
        if (sscanf (line, "Pss: %llu kB", &kib) == 1) break;
    fclose (file);
    return (uint64_t)kib * 1024;
}

//  Sums the RSS of root and all its descendants, and their PSS into *pss when pss is
//  not NULL. Sets *procs to their number.
static uint64_t s_sample (int root, s_proc_t *procs, int *nprocs_in_tree, long page, uint64_t *pss)
{
    DIR *dir = opendir ("/proc");
    if (!dir) return 0;
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)) && n < S_PROCS_MAX) {
        if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
        int pid = atoi (entry->d_name);
        int ppid = s_parent_of (pid);
        if (ppid >= 0) procs[n++] = (s_proc_t){pid, ppid, pid == root};
    }
    closedir (dir);
    //  Mark descendants: repeat until no new member (trees are shallow)
    bool changed = true;
    while (changed) {
        changed = false;
        for (int i = 0; i < n; i++) {
            if (procs[i].member) continue;
            for (int j = 0; j < n; j++)
                if (procs[j].member && procs[j].pid == procs[i].ppid) {
                    procs[i].member = changed = true;
                    break;
                }
        }
    }
    uint64_t sum = 0;
    int members = 0;
    if (pss) *pss = 0;
    for (int i = 0; i < n; i++)
        if (procs[i].member) {
            sum += s_rss_of (procs[i].pid, page);
            if (pss) *pss += s_pss_of (procs[i].pid);
            members++;
        }
    *nprocs_in_tree = members;
    return sum;
}

//  CPU time all cores spent busy since boot, in seconds (from /proc/stat).
static double s_busy_seconds (void)
{
    FILE *file = fopen ("/proc/stat", "r");
    if (!file) return 0;
    unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                       steal = 0;
    int fields = fscanf (file, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system,
                         &idle, &iowait, &irq, &softirq, &steal);
    fclose (file);
    if (fields < 4) return 0;
    return (double)(user + nice + system + irq + softirq + steal) / (double)sysconf (_SC_CLK_TCK);
}

static void s_usage (void)
{
    fprintf (stderr, "usage: bench_peak [-i MS] [-t SECONDS] [-o FILE] [-p] -- COMMAND [ARG...]\n");
    exit (2);
}

int main (int argc, char *argv[])
{
    long interval_ms = 50;
    double limit = 0;
    const char *output = NULL;
    bool with_pss = false;
    int opt;
    while ((opt = getopt (argc, argv, "+i:t:o:ph")) != -1) {
        if (opt == 'i')
            interval_ms = atol (optarg);
        else if (opt == 't')
            limit = atof (optarg);
        else if (opt == 'o')
            output = optarg;
        else if (opt == 'p')
            with_pss = true;
        else
            s_usage ();
    }
    if (optind >= argc || interval_ms < 1) s_usage ();

    //  Orphans of the tree (a pipeline's stages, a daemon's children) come to us
    prctl (PR_SET_CHILD_SUBREAPER, 1);
    s_proc_t *procs = malloc (S_PROCS_MAX * sizeof *procs);
    long page = sysconf (_SC_PAGESIZE);
    double busy_start = s_busy_seconds ();
    double start = s_now ();
    pid_t pid = fork ();
    if (pid == 0) {
        setpgid (0, 0);  //  Its own group, so a time limit can stop all of it
        execvp (argv[optind], argv + optind);
        fprintf (stderr, "bench_peak: %s: %s\n", argv[optind], strerror (errno));
        _exit (127);
    }
    if (pid < 0 || !procs) {
        perror ("bench_peak");
        return 1;
    }
    setpgid (pid, pid);
    //  A pidfd turns readable the moment the child exits: the wall time is exact
    //  while the samples stay interval_ms apart.
    int pidfd = (int)syscall (SYS_pidfd_open, pid, 0);
    uint64_t peak = 0, peak_pss = 0;
    int peak_procs = 0, status = 0;
    bool timed_out = false;
    while (true) {
        int members = 0;
        uint64_t pss = 0;
        uint64_t sum = s_sample (pid, procs, &members, page, with_pss ? &pss : NULL);
        if (sum > peak) {
            peak = sum;
            peak_procs = members;
        }
        if (pss > peak_pss) peak_pss = pss;
        if (pidfd >= 0) {
            struct pollfd item = {pidfd, POLLIN, 0};
            poll (&item, 1, (int)interval_ms);
        } else
            usleep ((useconds_t)interval_ms * 1000);
        pid_t done = waitpid (pid, &status, WNOHANG);
        if (done == pid) break;
        double now = s_now ();
        if (limit > 0 && !timed_out && now - start > limit) {
            kill (-pid, SIGTERM);
            timed_out = true;
        }
        if (timed_out && now - start > limit + 2)
            kill (-pid, SIGKILL);  //  Two seconds to stop cleanly
    }
    double wall = s_now () - start;
    double busy = s_busy_seconds () - busy_start;
    //  Reap orphans that were handed to us, and stop any still running
    kill (-pid, SIGTERM);
    while (waitpid (-1, NULL, WNOHANG) > 0)
        ;
    struct rusage usage;
    getrusage (RUSAGE_CHILDREN, &usage);
    int code = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
    if (timed_out) code = 124;
    FILE *out = output ? fopen (output, "w") : stderr;
    if (!out) {
        perror (output);
        return 1;
    }
    double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec * 1e-6 +
                 (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec * 1e-6;
    double other = busy > cpu ? busy - cpu : 0;
    fprintf (out,
             "wall_s=%.4f peak_tree_kib=%llu peak_procs=%d max_single_kib=%ld cpu_s=%.2f "
             "other_cpu_s=%.2f status=%d",
             wall, (unsigned long long)(peak / 1024), peak_procs, usage.ru_maxrss, cpu, other,
             code);
    if (with_pss) fprintf (out, " peak_tree_pss_kib=%llu", (unsigned long long)(peak_pss / 1024));
    fputc ('\n', out);
    if (out != stderr) fclose (out);
    free (procs);
    return code;
}
