/*
 * Word count mapper for exec jobs: splits stdin on the six ASCII whitespace bytes (as the built-in
 * wordcount) and writes "word<TAB>1" lines. 1 MiB reads and writes, no per-line system calls.
 *   cc -O2 -o wc_map wc_map.c
 *   lambdamr run exec --mapper ./wc_map --reducer ./wc_reduce --file wc_map --file wc_reduce ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF (1 << 20)

static char out[BUF + 4096];
static size_t olen;

static void flush_out(void)
{
    for (size_t off = 0; off < olen;) {
        ssize_t n = write(1, out + off, olen - off);
        if (n <= 0)
            exit(1);
        off += (size_t)n;
    }
    olen = 0;
}

static void put_word(const char *w, size_t n)
{
    if (olen + n + 3 > sizeof out)
        flush_out();
    if (n + 3 > sizeof out) { /* a huge word: write it directly */
        if (write(1, w, n) != (ssize_t)n || write(1, "\t1\n", 3) != 3)
            exit(1);
        return;
    }
    memcpy(out + olen, w, n);
    memcpy(out + olen + n, "\t1\n", 3);
    olen += n + 3;
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int main(void)
{
    char *buf = malloc(2 * BUF);
    size_t carry = 0, cap = 2 * BUF;
    if (!buf)
        return 1;
    for (;;) {
        if (cap - carry < BUF) { /* a word longer than the buffer: grow */
            cap *= 2;
            if (!(buf = realloc(buf, cap)))
                return 1;
        }
        ssize_t n = read(0, buf + carry, cap - carry);
        if (n < 0)
            return 1;
        size_t len = carry + (size_t)n, i = 0, start = 0;
        int eof = n == 0;
        while (i < len) {
            while (i < len && is_space((unsigned char)buf[i]))
                i++;
            start = i;
            while (i < len && !is_space((unsigned char)buf[i]))
                i++;
            if (i == len && !eof)
                break; /* the word may go on in the next read */
            if (i > start)
                put_word(buf + start, i - start);
            start = i;
        }
        carry = len - start;
        memmove(buf, buf + start, carry);
        if (eof)
            break;
    }
    flush_out();
    free(buf);
    return 0;
}
