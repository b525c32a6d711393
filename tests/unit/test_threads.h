/* Test helper shared by test_lambda_*.c: join worker threads that return a count of failures. */
#ifndef LMR_TEST_THREADS_H
#define LMR_TEST_THREADS_H

#include <pthread.h>

/* Join the n threads t[0, n), each returning a long cast to void *, and return the sum. */
static inline long join_sum(const pthread_t *t, int n)
{
    long sum = 0;
    for (int i = 0; i < n; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        sum += (long)rv;
    }
    return sum;
}

#endif
