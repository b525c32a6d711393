/*
 * Jobs by name: the built-ins, then plugins. A plugin is looked up as
 * $LAMBDA_TASK_ROOT/plugins/NAME.so (the function package's layout; the local driver makes such
 * a task root too), else at the path given. Each plugin is dlopen()ed once per process and never
 * unloaded, so a warm execution environment pays for loading it once.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/registry.h"

static const struct lmr_job_ops *const builtins[] = {
    &lmr_job_wordcount, &lmr_job_scan, &lmr_job_aggregate, &lmr_job_exec,   &lmr_job_exec_map,
    &lmr_job_sort,      &lmr_job_join, &lmr_job_join_map,  &lmr_job_bdb_q3,
};

#define PLUGIN_CACHE_MAX 16

static struct {
    pthread_mutex_t mu;
    size_t n;
    char *names[PLUGIN_CACHE_MAX];
    const struct lmr_job_ops *ops[PLUGIN_CACHE_MAX];
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

bool lmr_job_is_plugin_name(const char *name)
{
    size_t n = strlen(name);
    return strchr(name, '/') || (n > 3 && !strcmp(name + n - 3, ".so"));
}

char *lmr_job_plugin_base(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *b = slash ? slash + 1 : name;
    size_t n = strlen(b);
    if (n > 3 && !strcmp(b + n - 3, ".so"))
        n -= 3;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, b, n);
        s[n] = '\0';
    }
    return s;
}

/* The file to dlopen for name: the task root's plugins/BASE.so when it exists, else the path. */
static char *plugin_path(const char *name, bool *in_task_root)
{
    const char *root = getenv("LAMBDA_TASK_ROOT");
    *in_task_root = false;
    char *base = lmr_job_plugin_base(name);
    if (!base)
        return NULL;
    if (root && *root && *base) {
        size_t n = strlen(root) + strlen(base) + 16;
        char *p = malloc(n);
        if (p) {
            snprintf(p, n, "%s/plugins/%s.so", root, base);
            if (!access(p, R_OK)) {
                free(base);
                *in_task_root = true;
                return p;
            }
        }
        free(p);
    }
    free(base);
    if (!lmr_job_is_plugin_name(name))
        return NULL;
    /* dlopen searches the library path for a name without '/'; a plugin is a file. */
    if (strchr(name, '/'))
        return strdup(name);
    size_t n = strlen(name) + 3;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "./%s", name);
    return p;
}

static enum lmr_result load_plugin(const char *name, const char *path, const struct lmr_job_ops **out,
                                   struct lmr_err *err)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return lmr_fail(err, LMR_ERR_NOT_FOUND, "cannot load job plugin '%s': %s", name, dlerror());
    const struct lmr_job_ops *(*entry)(void) = (const struct lmr_job_ops *(*)(void))dlsym(h, "lmr_job_plugin");
    const struct lmr_job_ops *ops = entry ? entry() : NULL;
    if (!ops) {
        dlclose(h);
        return lmr_fail(err, LMR_ERR_NOT_FOUND,
                        "'%s' is not a lambdamr job plugin: it must export lmr_job_plugin() (see docs/JOBS.md)", name);
    }
    if (ops->abi_version != LMR_JOB_ABI_VERSION) {
        /* Before versioning the first field was the name pointer: a huge "version". */
        char theirs[64];
        if (ops->abi_version > 0 && ops->abi_version < 1000000)
            snprintf(theirs, sizeof theirs, "ABI version %u", ops->abi_version);
        else
            snprintf(theirs, sizeof theirs, "no ABI version (a job.h older than version 1, or .abi_version unset)");
        dlclose(h);
        return lmr_fail(err, LMR_ERR_INVALID,
                        "job plugin '%s' was built for %s but this lambdamr has job ABI version %u; rebuild the "
                        "plugin against this lambdamr's include/lambdamr/job.h and set .abi_version = "
                        "LMR_JOB_ABI_VERSION",
                        name, theirs, (unsigned)LMR_JOB_ABI_VERSION);
    }
    if (!ops->name || !ops->map || (!ops->map_only && !ops->reduce)) {
        dlclose(h);
        return lmr_fail(err, LMR_ERR_INVALID, "job plugin '%s' must set name, map and (unless map_only) reduce", name);
    }
    *out = ops;
    return LMR_OK;
}

int lmr_job_setup(const struct lmr_job_ops **ops, void **state, const struct lmr_job_args *args, char *errbuf,
                  size_t errbuf_len)
{
    *state = NULL;
    if ((*ops)->setup && (*ops)->setup(state, args, errbuf, errbuf_len))
        return -1;
    if (*ops == &lmr_job_aggregate)
        *ops = lmr_job_aggregate_for_task(*state);
    return 0;
}

enum lmr_result lmr_job_find(const char *name, const struct lmr_job_ops **out, struct lmr_err *err)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        if (!strcmp(builtins[i]->name, name)) {
            *out = builtins[i];
            return LMR_OK;
        }
    }
    bool in_root;
    char *path = plugin_path(name, &in_root);
    if (!path)
        return lmr_fail(err, LMR_ERR_NOT_FOUND,
                        "unknown job '%s'; run 'lambdamr run --help' for the built-in jobs, or give a plugin as "
                        "PATH/NAME.so",
                        name);
    enum lmr_result r = LMR_OK;
    pthread_mutex_lock(&cache.mu);
    for (size_t i = 0; i < cache.n; i++) {
        if (!strcmp(cache.names[i], path)) {
            *out = cache.ops[i];
            goto done;
        }
    }
    if ((r = load_plugin(name, path, out, err)))
        goto done;
    if (cache.n < PLUGIN_CACHE_MAX) {
        cache.names[cache.n] = path;
        cache.ops[cache.n++] = *out;
        path = NULL;
    }
done:
    pthread_mutex_unlock(&cache.mu);
    free(path);
    return r;
}

void lmr_job_list(FILE *f)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        fprintf(f, "  %-10s %s\n", builtins[i]->name, builtins[i]->summary);
}

bool lmr_job_cut_invariant(const char *name, const struct lmr_job_args *args)
{
    if (!name)
        return false;
    if (!strcmp(name, lmr_job_wordcount.name))
        return true;
    return !strcmp(name, lmr_job_aggregate.name) && lmr_job_aggregate_cut_invariant(args);
}
