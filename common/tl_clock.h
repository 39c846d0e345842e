/*  tl_clock: the one clock every Tally program reads for timeouts, rates and
    durations: monotonic seconds as a double, immune to wall-clock changes.          */

#ifndef TL_CLOCK_H_INCLUDED
#define TL_CLOCK_H_INCLUDED

//  Monotonic seconds since an arbitrary start.
double tl_now (void);

#endif
