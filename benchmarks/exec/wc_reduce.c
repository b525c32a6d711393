/*
 * Word count reducer for exec jobs: sums "word<TAB>count" lines whose words arrive sorted (as a
 * reducer's input does), writing "word<TAB>sum". Also usable as the combiner.
 *   cc -O2 -o wc_reduce wc_reduce.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *line = NULL, *cur = NULL;
    size_t cap = 0, cur_len = 0, cur_cap = 0;
    unsigned long long sum = 0;
    ssize_t n;
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        char *tab = memchr(line, '\t', (size_t)n);
        if (!tab) {
            fprintf(stderr, "wc_reduce: a line without a TAB: %s\n", line);
            return 2;
        }
        size_t klen = (size_t)(tab - line);
        unsigned long long v = strtoull(tab + 1, NULL, 10);
        if (cur && klen == cur_len && !memcmp(cur, line, klen)) {
            sum += v;
            continue;
        }
        if (cur)
            printf("%.*s\t%llu\n", (int)cur_len, cur, sum);
        if (klen + 1 > cur_cap) {
            cur_cap = klen * 2 + 16;
            if (!(cur = realloc(cur, cur_cap)))
                return 1;
        }
        memcpy(cur, line, klen);
        cur_len = klen;
        sum = v;
    }
    if (cur)
        printf("%.*s\t%llu\n", (int)cur_len, cur, sum);
    free(line);
    free(cur);
    return fflush(stdout) ? 1 : 0;
}
