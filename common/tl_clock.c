/*  tl_clock: monotonic seconds.  */

#include "tl_clock.h"

#include <time.h>

double tl_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
