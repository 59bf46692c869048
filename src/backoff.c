/* backoff.c - 1 s doubling to 60 s, with jitter so that many sidecars do not retry in step. */
#include "backoff.h"

#include <stdlib.h>

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000

unsigned backoff_ms(unsigned failures, double jitter)
{
    unsigned ms = BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < failures && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    /* The cap holds after the jitter too: the README promises "at most 60 s". */
    unsigned jittered = (unsigned)(ms * jitter);
    return jittered > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : jittered;
}

double backoff_jitter(void)
{
    return 0.8 + 0.4 * ((double)rand() / RAND_MAX);
}
