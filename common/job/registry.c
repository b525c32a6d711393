#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "job/registry.h"

static const struct lmr_job_ops *const builtins[] = {
    &lmr_job_wordcount,
    &lmr_job_scan,
    &lmr_job_aggregate,
};

enum lmr_result lmr_job_find(const char *name, const struct lmr_job_ops **out, struct lmr_err *err)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        if (!strcmp(builtins[i]->name, name)) {
            *out = builtins[i];
            return LMR_OK;
        }
    }
    size_t n = strlen(name);
    if (strchr(name, '/') || (n > 3 && !strcmp(name + n - 3, ".so"))) {
        void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            return lmr_fail(err, LMR_ERR_NOT_FOUND, "cannot load job plugin '%s': %s", name, dlerror());
        const struct lmr_job_ops *(*entry)(void) = (const struct lmr_job_ops *(*)(void))dlsym(h, "lmr_job_plugin");
        if (!entry || !(*out = entry()))
            return lmr_fail(err, LMR_ERR_NOT_FOUND,
                            "'%s' is not a lambdamr job plugin: it must export lmr_job_plugin()", name);
        return LMR_OK;
    }
    return lmr_fail(err, LMR_ERR_NOT_FOUND, "unknown job '%s'; run 'lambdamr run --help' for the built-in jobs", name);
}

void lmr_job_list(FILE *f)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        fprintf(f, "  %-10s %s\n", builtins[i]->name, builtins[i]->summary);
}
