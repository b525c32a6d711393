/*
 * The poller's checkpoints: checkpoint.json (positions after the last committed window) and
 * pending.json (written before a window's output; adopted on start when that output exists).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "stream/poller_internal.h"
#include "stream/state.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/misc.h"

/* Read a checkpoint object: {"window_start_ms": W, "shards": {id: {"sequenceNumber": s, "ended": b}}}. */
static enum lmr_result load_json(struct poller *p, const char *name, json_t **out, struct lmr_err *err)
{
    *out = NULL;
    char *key = lmr_poller_join_key(p->ckpt_prefix, name);
    struct lmr_buf b;
    lmr_buf_init(&b, CHECKPOINT_MAX_BYTES);
    enum lmr_result r = lmr_store_get(p->ckpt_store, key, 0, LMR_STORE_TO_END, &b, err);
    if (r == LMR_ERR_NOT_FOUND) {
        lmr_err_clear(err);
        r = LMR_OK;
    } else if (!r) {
        json_error_t jerr;
        *out = json_loadb(b.data ? b.data : "", b.len, 0, &jerr);
        if (!*out || !json_is_object(json_object_get(*out, "shards")))
            r = lmr_fail(err, LMR_ERR_FORMAT, "checkpoint %s/%s is corrupt (%s); remove it to start over",
                         p->ckpt_store->root_uri, key, *out ? "no shards" : jerr.text);
    }
    lmr_buf_clean_up(&b);
    free(key);
    return r;
}

enum lmr_result lmr_poller_load_checkpoint(struct poller *p, struct lmr_err *err)
{
    json_t *ckpt, *pending;
    enum lmr_result r = load_json(p, "checkpoint.json", &ckpt, err);
    if (r)
        return r;
    if ((r = load_json(p, "pending.json", &pending, err))) {
        json_decref(ckpt);
        return r;
    }
    json_t *use = ckpt;
    if (pending) {
        uint64_t pw = (uint64_t)json_integer_value(json_object_get(pending, "window_start_ms"));
        uint64_t cw = ckpt ? (uint64_t)json_integer_value(json_object_get(ckpt, "window_start_ms")) : 0;
        if (!ckpt || pw > cw) {
            char *key = lmr_poller_window_key(p, pw);
            uint64_t size;
            enum lmr_result hr = lmr_store_head(p->o->output, key, &size, NULL);
            free(key);
            if (hr == LMR_OK) {
                LMR_INFO("stream: adopting the checkpoint of window %" PRIu64 " (committed by an earlier run)", pw);
                use = pending;
            }
        }
    }
    if (use) {
        json_t *w = json_object_get(use, "window_start_ms");
        json_t *wms = json_object_get(use, "window_ms");
        if (json_is_integer(wms) && (uint64_t)json_integer_value(wms) != p->window_ms)
            LMR_WARN("stream: the checkpoint was written with --window %" PRIu64 " ms, now %" PRIu64 " ms",
                     (uint64_t)json_integer_value(wms), p->window_ms);
        if (json_is_integer(w)) {
            p->min_window = (uint64_t)json_integer_value(w) + p->window_ms;
            p->have_min_window = true;
        }
        p->saved_positions = json_incref(json_object_get(use, "shards"));
    }
    json_decref(ckpt);
    json_decref(pending);
    return LMR_OK;
}

enum lmr_result lmr_poller_write_positions(struct poller *p, const char *name, uint64_t window, struct lmr_err *err)
{
    json_t *root = json_object(), *shards = json_object();
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "window_start_ms", json_integer((json_int_t)window));
    json_object_set_new(root, "window_ms", json_integer((json_int_t)p->window_ms));
    char iso[40];
    json_object_set_new(root, "window_start", json_string(lmr_stream_iso8601(window, iso, sizeof iso)));
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        const char *seq = s->ckpt_seq;
        for (size_t m = 0; m < s->n_marks; m++)
            if (s->marks[m].window <= window)
                seq = s->marks[m].seq;
        if (!*seq && !s->ckpt_ended)
            continue;
        json_t *e = json_object();
        json_object_set_new(e, "sequenceNumber", json_string(seq));
        json_object_set_new(e, "ended", json_boolean(s->ckpt_ended));
        json_object_set_new(shards, s->info.id, e);
    }
    json_object_set_new(root, "shards", shards);
    char *text = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    if (!text)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory writing the checkpoint");
    char *key = lmr_poller_join_key(p->ckpt_prefix, name);
    enum lmr_result r = lmr_store_put(p->ckpt_store, key, text, strlen(text), 0, err);
    if (r)
        lmr_err_prefix(err, "writing checkpoint %s: ", key);
    free(key);
    free(text);
    return r;
}
