/*  tally merge: totals files of disjoint keys merged into one (see merge.c).         */

#ifndef TL_MERGE_H_INCLUDED
#define TL_MERGE_H_INCLUDED

//  The `tally merge` command: argv[0] is "merge". Returns the exit status.
int tl_merge_main (int argc, char **argv);

#endif
