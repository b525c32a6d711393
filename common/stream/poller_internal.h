/*
 * The poller's insides, shared by its files (not a public interface):
 *   poller.c             options, the main loop, figures
 *   poller_shards.c      shards, their lineage (parents before children), lanes, reading records
 *   poller_batch.c       batching, invocations, partial batch responses, retries, bisecting
 *   poller_checkpoint.c  checkpoint.json / pending.json
 *   poller_window.c      closing a window: final invokes, the window commit, checkpoints after it
 */
#ifndef LMR_STREAM_POLLER_INTERNAL_H
#define LMR_STREAM_POLLER_INTERNAL_H

#include <jansson.h>
#include <pthread.h>

#include "stream/poller.h"
#include "stream/state.h"
#include "util/misc.h"

#define SEQ_BYTES (LMR_STREAM_SEQ_MAX + 1)
#define FINALS_AT_ONCE 64         /* final invokes of one window run concurrently, this many at a time */
#define EVENT_ENVELOPE_BYTES 4096 /* an event besides its records, state, ARNs and shard id (window, flags, keys) */
#define CHECKPOINT_MAX_BYTES (16u * 1024u * 1024u)
#define OUTPUT_MAX_BYTES ((size_t)1 << 32)

/* Records kept since the last full copy of a state held by reference (see lane_win). */
#define KEPT_RECORDS_MAX 65536
#define KEPT_BYTES_MAX (8u * 1024u * 1024u)

/*
 * A lane's state for one window. The function holds the state by reference (stream/
 * stream_function.c: its warm environment keeps it and answers with the reference only), so the
 * poller keeps the last full copy it has (snap, or state itself when state_has_kv) and the
 * records taken since (kept_*): when the environment no longer holds the state ("lost"), the
 * poller rebuilds it from those. Every KEPT_RECORDS_MAX records (or KEPT_BYTES_MAX bytes) it asks
 * for a full copy again, so that the kept records stay bounded.
 */
struct lane_win {
    uint64_t window;
    char *state;       /* JSON text of the state object, NULL = empty */
    bool state_has_kv; /* state is a full copy (then snap is NULL and nothing is kept) */
    char *snap;        /* the last full copy when state is a reference (NULL = the lane's seed) */
    struct lmr_stream_item *kept_head, *kept_tail; /* records taken since snap, in order */
    size_t kept_n, kept_bytes;
    uint64_t parts_ended_early; /* parts of this window that the state limit ended */
    size_t agg_max;             /* lines per aggregated record (0 = the default: an eighth of a batch, at least 512; see
                                   poller_batch.c): halved when one aggregated
                                   record alone overflows a fresh state (poller_batch.c) */
    uint64_t records;
};

/** Forget a lane window's full copy and kept records (the window is done, or starts afresh). */
void lmr_poller_lane_win_forget(struct lane_win *lw);

struct shard;

struct lane {
    struct shard *shard;
    uint32_t idx;
    struct lmr_stream_item *head, *tail; /* records not yet processed, in order */
    size_t count;
    struct lane_win *wins;
    size_t n_wins;
    /* Retries of the record at the head. */
    uint32_t retries;
    size_t bisect_limit; /* 0 = none, else the next batch takes at most this many */
    uint64_t retry_at_mono_ms;
    /* The invocation in flight (filled by the main thread, run by a worker). */
    struct lmr_stream_item *batch[LMR_STREAM_BATCH_SIZE_MAX];
    size_t batch_n;
    uint64_t batch_window;
    bool final, terminated_early;
    const char *state_in;
    bool chain;      /* this invocation may go on with the lane's next full batch (lane_next in poller_batch.c) */
    bool processed;  /* the chain took the last result already: the main loop does not process it again */
    bool want_snap;  /* ask for the whole state back (the kept records reached their bound) */
    bool by_value;   /* states travel whole (after environments lost this lane's state twice in a row) */
    uint32_t n_lost; /* times in a row an environment did not hold this lane's state */
    char seed[160];  /* the state a fresh window starts from: this lane's meta (lane, lanes, run) */
    struct lmr_buf event;
    struct lmr_invoke_result res;
    uint64_t inv_start_ms, inv_end_ms; /* wall clock of the invocation in flight (for on_invocation) */
    enum lmr_result inv_r;
    struct lmr_err inv_err;
};

struct mark {
    uint64_t window;
    char seq[SEQ_BYTES]; /* last record of this shard in this window */
};

struct shard {
    struct lmr_stream_shard_info info;
    struct lmr_stream_shard_reader *reader;
    bool started, ended;
    bool ckpt_ended;          /* the checkpoint says this shard is finished */
    char ckpt_seq[SEQ_BYTES]; /* committed position ("" = none) */
    struct mark *marks;
    size_t n_marks;
    uint64_t last_window;
    bool caught_up;
    uint64_t millis_behind;
    uint64_t records;
    struct lane lanes[LMR_STREAM_PARALLELIZATION_MAX];
    uint32_t n_lanes;
    /* Records read but not yet given to lanes (read while the lanes' invocations run; poller_shards.c). */
    struct lmr_stream_read_result staged;
    bool staged_valid;
    size_t read_room; /* records the next read_raw may read (lmr_poller_plan_reads) */
};

#define LANE_WORKERS_MAX (LMR_STREAM_PARALLELIZATION_MAX * 64) /* lanes invoked at once (one group) */

/*
 * The threads that run lanes' invocations (poller_batch.c), kept for the poller's life: a round of
 * invocations hands each lane to a worker and waits for them, instead of starting a thread per lane
 * per round. Workers are started as rounds need them, up to LANE_WORKERS_MAX.
 */
struct lane_worker;
struct lane_workers {
    pthread_mutex_t mu;
    pthread_cond_t done; /* busy fell to 0 */
    size_t busy;         /* workers running a job */
    struct lane_worker *w[LANE_WORKERS_MAX];
    size_t n;
};

struct poller {
    const struct lmr_stream_poller_options *o;
    struct lane_workers workers;
    /* Lanes' chains of invocations run on the invoker's threads at once (poller_batch.c): this guards
       what they share, the figures (stats) and on_invocation. The main loop waits while they run. */
    pthread_mutex_t mu;
    struct shard *shards;
    size_t n_shards;
    uint64_t window_ms;
    uint64_t min_window; /* no record goes to a window before this (the last committed window + 1) */
    bool have_min_window;
    char *ckpt_prefix;
    char *out_prefix;
    struct lmr_store *ckpt_store;
    struct lmr_stream_stats stats;
    uint64_t start_mono_ms;
    uint64_t last_list_mono_ms;
    json_t *saved_positions;          /* checkpointed positions by shard id, applied when shards are added */
    char run[LMR_STREAM_RUN_MAX + 1]; /* names this run's window parts ("" for replayable sources) */
    size_t kept_records_max;          /* KEPT_RECORDS_MAX (a test can lower it) */
};

static inline uint64_t lmr_poller_mono_ms(void)
{
    return lmr_mono_ns() / 1000000;
}

/* --batch-size, else the default for the source (see LMR_STREAM_LOCAL_BATCH_SIZE_DEFAULT). */
static inline size_t lmr_poller_batch_size(const struct poller *p)
{
    if (p->o->batch_size)
        return p->o->batch_size;
    return p->o->source->arrival_is_read_time ? LMR_STREAM_LOCAL_BATCH_SIZE_DEFAULT : LMR_STREAM_BATCH_SIZE_DEFAULT;
}

/* poller.c */
char *lmr_poller_join_key(const char *prefix, const char *rest);

/* poller_shards.c: shards, lineage, lanes, reading */
void lmr_poller_lane_free_wins(struct lane *l);
struct lane_win *lmr_poller_lane_win(struct lane *l, uint64_t window, bool create);
void lmr_poller_lane_drop_win(struct lane *l, uint64_t window);
enum lmr_result lmr_poller_list_shards(struct poller *p, struct lmr_err *err);
bool lmr_poller_shard_finished(const struct shard *s);
enum lmr_result lmr_poller_start_shards(struct poller *p, struct lmr_err *err);
uint64_t lmr_poller_oldest_window(struct poller *p, bool *any);
enum lmr_result lmr_poller_read_shards(struct poller *p, uint64_t wait_ms, size_t *got, struct lmr_err *err);
/*
 * The three steps of lmr_poller_read_shards. plan_reads sets each shard's read_room from its lanes' queues
 * and windows (the lanes idle; ahead: they are about to consume, so up to twice the read-ahead); read_raw
 * reads into the shards' staged records and touches nothing else (it may run while the lanes invoke);
 * distribute gives the staged records to the lanes, windows assigned (the lanes idle).
 */
void lmr_poller_plan_reads(struct poller *p, bool ahead);
enum lmr_result lmr_poller_read_raw(struct poller *p, uint64_t wait_ms, struct lmr_err *err);
enum lmr_result lmr_poller_distribute(struct poller *p, size_t *got, struct lmr_err *err);
bool lmr_poller_has_item_beyond(const struct lane *l, uint64_t window);
bool lmr_poller_shard_done_with(struct poller *p, const struct shard *s, uint64_t w, uint64_t now_ms);

/* poller_batch.c: batches, invocations, retries */
/* The lane workers: set up before the first round, stopped (threads joined) when the poller ends. */
void lmr_poller_workers_init(struct lane_workers *ws);
void lmr_poller_workers_stop(struct lane_workers *ws);
/* The prepared invocations of lanes[0..n) at once; chain: each lane goes on with its next full batches
 * (poller_batch.c). */
void lmr_poller_run_invocations(struct poller *p, struct lane **lanes, size_t n, bool chain);
/* lmr_poller_run_invocations with chains, the caller's thread reading the shards meanwhile (lmr_poller_read_raw). */
enum lmr_result lmr_poller_run_and_read(struct poller *p, struct lane **lanes, size_t n, struct lmr_err *err);
enum lmr_result lmr_poller_final_invoke(struct poller *p, struct lane *l, uint64_t window, const char *state,
                                        bool terminated_early, struct lmr_err *err);
/* The final invokes of lanes[0..n) (states[i]: the lane's state, NULL = fresh) at once, each retried until it succeeds.
 */
enum lmr_result lmr_poller_final_invokes(struct poller *p, struct lane **lanes, const char *const *states, size_t n,
                                         uint64_t window, bool terminated_early, struct lmr_err *err);
bool lmr_poller_prepare_batch(struct poller *p, struct lane *l, uint64_t now_wall, uint64_t now_mono);
enum lmr_result lmr_poller_process_result(struct poller *p, struct lane *l, struct lmr_err *err);

/* poller_checkpoint.c: checkpoints */
enum lmr_result lmr_poller_load_checkpoint(struct poller *p, struct lmr_err *err);
enum lmr_result lmr_poller_write_positions(struct poller *p, const char *name, uint64_t window, struct lmr_err *err);

/* poller_window.c: window close and commit */
char *lmr_poller_window_key(struct poller *p, uint64_t window);
enum lmr_result lmr_poller_maybe_close_window(struct poller *p, bool *closed, struct lmr_err *err);

#endif
