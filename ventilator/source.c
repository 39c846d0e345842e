/*  tl_source: placeholder until written  */
#include "tl_source.h"
