/* The shape of the shuffle: direct or through a merge stage (see exchange.h). */
#include "exchange.h"

#include <math.h>
#include <string.h>

#include "lambda/memory.h"
#include "shuffle/merge_stage.h"

uint64_t lmr_exchange_direct_requests(uint64_t maps, uint64_t reducers)
{
    return maps * reducers;
}

uint64_t lmr_exchange_merge_requests(uint64_t maps, uint64_t reducers, uint32_t fan_in)
{
    return 2 * maps + lmr_exchange_merge_tasks(maps, fan_in) * (reducers + 3);
}

uint32_t lmr_exchange_max_fan_in(uint32_t memory_mb)
{
    uint64_t g = lmr_task_budget(memory_mb, 0).shuffle_bytes / LMR_MERGE_SOURCE_MEMORY_BYTES;
    if (g < 2)
        g = 2;
    return g > LMR_MERGE_FAN_IN_MAX ? LMR_MERGE_FAN_IN_MAX : (uint32_t)g;
}

uint32_t lmr_exchange_default_fan_in(uint64_t maps, uint32_t memory_mb)
{
    uint64_t g = (uint64_t)ceil(sqrt((double)maps));
    uint32_t max = lmr_exchange_max_fan_in(memory_mb);
    if (g < 2)
        g = 2;
    return g > max ? max : (uint32_t)g;
}

enum lmr_result lmr_exchange_plan(enum lmr_exchange_mode mode, uint32_t fan_in_given, uint64_t maps, uint64_t reducers,
                                  uint32_t memory_mb, uint32_t *fan_in, struct lmr_err *err)
{
    *fan_in = 0;
    if (fan_in_given && (fan_in_given < 2 || fan_in_given > LMR_MERGE_FAN_IN_MAX))
        return lmr_fail(err, LMR_ERR_INVALID, "--merge-fan-in %u is outside 2..%u", fan_in_given, LMR_MERGE_FAN_IN_MAX);
    bool direct_fits = maps * reducers <= LMR_EXCHANGE_MAX_FRAMES;
    if (reducers == 0 || maps < 2)
        return LMR_OK;
    if (mode == LMR_EXCHANGE_DIRECT) {
        if (!direct_fits)
            return lmr_fail(err, LMR_ERR_TOO_LARGE,
                            "a direct shuffle of %llu map tasks x %llu reducers reads %llu frames, over the limit of "
                            "%llu: use --exchange merge (or auto), or fewer map tasks (a larger --split-size)",
                            (unsigned long long)maps, (unsigned long long)reducers,
                            (unsigned long long)(maps * reducers), LMR_EXCHANGE_MAX_FRAMES);
        return LMR_OK;
    }
    uint32_t g = fan_in_given ? fan_in_given : lmr_exchange_default_fan_in(maps, memory_mb);
    if (mode == LMR_EXCHANGE_AUTO && direct_fits) {
        uint64_t direct = lmr_exchange_direct_requests(maps, reducers);
        uint64_t merged = lmr_exchange_merge_requests(maps, reducers, g) +
                          lmr_exchange_merge_tasks(maps, g) * LMR_EXCHANGE_REQUESTS_PER_INVOCATION;
        if (direct <= LMR_EXCHANGE_REQUEST_BUDGET || 2 * merged > direct)
            return LMR_OK;
    }
    if (lmr_exchange_merge_tasks(maps, g) * reducers > LMR_EXCHANGE_MAX_FRAMES)
        return lmr_fail(err, LMR_ERR_TOO_LARGE,
                        "%llu merge tasks x %llu reducers read %llu frames, over the limit of %llu: use a larger "
                        "--merge-fan-in (at most %u here), fewer --reducers or fewer map tasks",
                        (unsigned long long)lmr_exchange_merge_tasks(maps, g), (unsigned long long)reducers,
                        (unsigned long long)(lmr_exchange_merge_tasks(maps, g) * reducers), LMR_EXCHANGE_MAX_FRAMES,
                        lmr_exchange_max_fan_in(memory_mb));
    *fan_in = g;
    return LMR_OK;
}

bool lmr_exchange_mode_parse(const char *s, enum lmr_exchange_mode *mode)
{
    static const char *const names[] = {"auto", "direct", "merge"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *mode = (enum lmr_exchange_mode)i;
            return true;
        }
    return false;
}

const char *lmr_exchange_mode_name(enum lmr_exchange_mode mode)
{
    return mode == LMR_EXCHANGE_DIRECT ? "direct" : mode == LMR_EXCHANGE_MERGE ? "merge" : "auto";
}
