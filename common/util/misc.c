#define _GNU_SOURCE /* nftw */
#include "util/misc.h"

#include <ctype.h>
#include <ftw.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t lmr_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double lmr_mono_ms(void)
{
    return (double)lmr_mono_ns() / 1e6;
}

uint64_t lmr_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

void lmr_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

enum lmr_result lmr_parse_size(const char *s, uint64_t *out)
{
    /* Whole numbers only: "1.5", "1e3", "+1", " 1" and "0x10" are refused, not rounded. */
    if (!s || !isdigit((unsigned char)*s))
        return LMR_ERR_INVALID;
    uint64_t v = 0;
    const char *end = s;
    for (; isdigit((unsigned char)*end); end++) {
        unsigned d = (unsigned)(*end - '0');
        if (v > (UINT64_MAX - d) / 10)
            return LMR_ERR_INVALID;
        v = v * 10 + d;
    }
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case '\0':
        break;
    case 'B':
        end++;
        break;
    case 'K':
        shift = 10, end++;
        break;
    case 'M':
        shift = 20, end++;
        break;
    case 'G':
        shift = 30, end++;
        break;
    case 'T':
        shift = 40, end++;
        break;
    default:
        return LMR_ERR_INVALID;
    }
    if (shift) {
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'B' || *end == 'b')
            end++;
    }
    if (*end || v == 0 || v > (LMR_SIZE_MAX_BYTES >> shift))
        return LMR_ERR_INVALID;
    *out = v << shift;
    return LMR_OK;
}

bool lmr_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p++;
        if (c < 0x80)
            continue;
        unsigned need, min;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1, min = 0x80, c &= 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, min = 0x800, c &= 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, min = 0x10000, c &= 0x07;
        else
            return false;
        if ((size_t)(e - p) < need)
            return false;
        for (unsigned i = 0; i < need; i++, p++) {
            if ((*p & 0xC0) != 0x80)
                return false;
            c = (c << 6) | (*p & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false; /* overlong, beyond Unicode, or a surrogate */
    }
    return true;
}

const char *lmr_escape_bytes(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap)
        return out;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < cap; p++) {
        if (*p >= 0x20 && *p < 0x7F && *p != '\\')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
    }
    out[o < cap ? o : cap - 1] = '\0';
    return out;
}

enum lmr_result lmr_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return LMR_ERR_INVALID;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return LMR_ERR_INVALID;
    *out = v;
    return LMR_OK;
}

const char *lmr_format_bytes(double bytes, char *out, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4)
        bytes /= 1024, u++;
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return out;
}

void lmr_random_hex(char *out, size_t nbytes)
{
    unsigned char raw[32];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    if (getrandom(raw, nbytes, 0) != (ssize_t)nbytes) {
        for (size_t i = 0; i < nbytes; i++)
            raw[i] = (unsigned char)lmr_random_below(256);
    }
    for (size_t i = 0; i < nbytes; i++)
        sprintf(out + 2 * i, "%02x", raw[i]);
    out[2 * nbytes] = '\0';
}

uint64_t lmr_random_below(uint64_t n)
{
    static _Thread_local uint64_t state;
    if (!state) {
        if (getrandom(&state, sizeof state, 0) != sizeof state || !state)
            state = lmr_mono_ns() | 1;
    }
    /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    uint64_t x = state * 2685821657736338717ull;
    return n ? x % n : 0;
}

enum lmr_result lmr_mkdirs(const char *path, struct lmr_err *err)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return lmr_fail(err, LMR_ERR_INVALID, "cannot create directory '%s': path is empty or too long", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return lmr_fail(err, LMR_ERR_IO, "cannot create directory '%s': %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return lmr_fail(err, LMR_ERR_IO, "cannot create directory '%s': %s", tmp, strerror(errno));
    struct stat st;
    if (stat(tmp, &st) || !S_ISDIR(st.st_mode))
        return lmr_fail(err, LMR_ERR_IO, "'%s' exists and is not a directory; choose another path", tmp);
    return LMR_OK;
}

char *lmr_abspath(const char *path)
{
    char cwd[PATH_MAX];
    size_t n = strlen(path);
    char *joined;
    if (path[0] == '/') {
        joined = strdup(path);
    } else {
        if (!getcwd(cwd, sizeof cwd))
            return NULL;
        joined = malloc(strlen(cwd) + n + 2);
        if (joined)
            sprintf(joined, "%s/%s", cwd, path);
    }
    if (!joined)
        return NULL;
    /* Normalise: collapse "//", drop "/./", resolve "/../" lexically. */
    char *out = malloc(strlen(joined) + 2);
    if (!out) {
        free(joined);
        return NULL;
    }
    size_t o = 0;
    const char *p = joined;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - seg);
        if (len == 1 && seg[0] == '.')
            continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            continue;
        }
        out[o++] = '/';
        memcpy(out + o, seg, len);
        o += len;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    free(joined);
    return out;
}

enum lmr_result lmr_read_file(const char *path, size_t max_bytes, char **data, size_t *len, struct lmr_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lmr_fail(err, errno == ENOENT ? LMR_ERR_NOT_FOUND : LMR_ERR_IO, "cannot open '%s': %s", path,
                        strerror(errno));
    size_t cap = 4096, n = 0;
    char *p = malloc(cap + 1);
    enum lmr_result r = p ? LMR_OK : LMR_ERR_NOMEM;
    while (!r) {
        if (n == cap) {
            if (cap >= max_bytes) {
                r = lmr_fail(err, LMR_ERR_TOO_LARGE, "'%s' is larger than %zu bytes", path, max_bytes);
                break;
            }
            cap = cap * 2 > max_bytes ? max_bytes : cap * 2;
            char *q = realloc(p, cap + 1);
            if (!q) {
                r = LMR_ERR_NOMEM;
                break;
            }
            p = q;
        }
        size_t got = fread(p + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                r = lmr_fail(err, LMR_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (r) {
        free(p);
        return r;
    }
    p[n] = '\0';
    *data = p;
    if (len)
        *len = n;
    return LMR_OK;
}

char *lmr_self_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    return strdup(buf);
}

uint64_t lmr_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms)
{
    uint64_t ceiling = base_ms;
    for (unsigned i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    return ceiling ? lmr_random_below(ceiling) : 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

enum lmr_result lmr_remove_tree(const char *path, struct lmr_err *err)
{
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT)
        return lmr_fail(err, LMR_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
    return LMR_OK;
}

/* Single-quote s for a POSIX shell when it holds anything but safe characters. */
static size_t shell_quote(char *out, const char *s)
{
    size_t n = 0;
    bool safe = *s != '\0';
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=./:,@%", *p))
            safe = false;
    if (safe) {
        if (out)
            memcpy(out, s, strlen(s));
        return strlen(s);
    }
    if (out)
        out[n] = '\'';
    n++;
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            if (out)
                memcpy(out + n, "'\\''", 4);
            n += 4;
        } else {
            if (out)
                out[n] = *p;
            n++;
        }
    }
    if (out)
        out[n] = '\'';
    return n + 1;
}

char *lmr_shell_join(const char *first, int argc, char **argv)
{
    size_t len = shell_quote(NULL, first) + 1;
    for (int i = 0; i < argc; i++)
        len += shell_quote(NULL, argv[i]) + 1;
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    size_t n = shell_quote(s, first);
    for (int i = 0; i < argc; i++) {
        s[n++] = ' ';
        n += shell_quote(s + n, argv[i]);
    }
    s[n] = '\0';
    return s;
}
