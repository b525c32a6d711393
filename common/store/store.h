/*
 * The object store interface: everything lambdamr reads and writes goes through it, so the
 * same task code runs on a local directory ("file" back-end) and on S3 ("s3" back-end).
 *
 * A store is opened for a root (a directory, or an S3 bucket); keys are '/'-separated paths
 * relative to that root and can never escape it (no "..", no leading '/', no NUL).
 * Back-ends follow aws-c-common's vtable shape: { vtable, impl } with thin dispatch wrappers.
 *
 * Reads are streamed and ranged; writes are staged and become visible only on commit
 * (atomically: a reader sees the whole object or nothing). A create-only commit
 * (LMR_PUT_CREATE_ONLY) fails with LMR_ERR_EXISTS when the key exists: first commit wins.
 *
 * Small records that several writers update (a job's lease) use ETags: get_versioned reads an
 * object with its ETag (an opaque tag that changes with every write) and put_if_match replaces
 * it only while the ETag is unchanged, failing with LMR_ERR_EXISTS when another write came
 * first (S3: If-Match on PUT, 412; file: the check and a rename(2) under an flock(2) of the
 * object's directory). Together with a create-only put (If-None-Match: *) this is a
 * compare-and-swap on one key.
 */
#ifndef LMR_STORE_STORE_H
#define LMR_STORE_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/result.h"

#define LMR_STORE_TO_END UINT64_MAX
/* Room for an ETag (S3's are a quoted MD5 or "<md5>-<parts>"; the file store's are shorter). */
#define LMR_STORE_ETAG_BYTES 128
/* No object is larger: S3's limit (10,000 parts of 5 GiB, 48.8 TiB). Listings that say more are malformed. */
#define LMR_STORE_MAX_OBJECT_BYTES (10000ull * 5ull * 1024ull * 1024ull * 1024ull)

struct lmr_store;

/* Request and byte counters, kept per store handle (atomics: tasks use a store from several threads). */
struct lmr_store_stats {
    atomic_uint_fast64_t get_requests;
    atomic_uint_fast64_t put_requests; /* PUT, multipart create/part/complete, copy */
    atomic_uint_fast64_t list_requests;
    atomic_uint_fast64_t head_requests;
    atomic_uint_fast64_t delete_requests;
    atomic_uint_fast64_t bytes_read;
    atomic_uint_fast64_t bytes_written;
    atomic_uint_fast64_t retries;
};

/* Base of every back-end's reader/writer: back-ends embed this as their first member. */
struct lmr_store_reader {
    struct lmr_store *store;
};
struct lmr_store_writer {
    struct lmr_store *store;
};

struct lmr_store_object {
    const char *key; /* relative to the store root */
    uint64_t size_bytes;
};

/** Called once per listed object, in key order within a page. Return non-OK to stop listing. */
typedef enum lmr_result (*lmr_store_list_fn)(void *user_data, const struct lmr_store_object *obj);

enum lmr_store_put_flags {
    LMR_PUT_CREATE_ONLY = 1u << 0, /* commit fails with LMR_ERR_EXISTS if the key exists */
};

/*
 * How a reader will be used (lmr_store_open_read_with); all-zero means the back-end's defaults.
 * Back-ends without read-ahead (file) ignore it.
 */
struct lmr_store_read_options {
    /* Optional: at most this many bytes requested ahead of what the caller has read (the
       read-ahead's memory: parts in flight and received but not yet read); 0 = the back-end's
       default (s3: LMR_S3_READ_AHEAD x LMR_S3_READ_PART_BYTES). */
    uint64_t max_in_flight_bytes;
    /* Optional: the caller reads the whole range in order (a mapper's shard). The back-end may
       then request its full read-ahead at once instead of starting small and growing it (which
       suits the many small readers of a merge). Default false. */
    bool sequential;
};

struct lmr_store_vtable {
    const char *scheme; /* "file", "s3" */
    /* All objects whose key starts with prefix ("" = all), recursively, sorted by key. */
    enum lmr_result (*list)(struct lmr_store *s, const char *prefix, lmr_store_list_fn fn, void *user_data,
                            struct lmr_err *err);
    enum lmr_result (*head)(struct lmr_store *s, const char *key, uint64_t *size_bytes, struct lmr_err *err);
    /* Bytes [offset, offset+length) (length LMR_STORE_TO_END = to the end). */
    enum lmr_result (*open_read)(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                 struct lmr_store_reader **out, struct lmr_err *err);
    /* Up to cap bytes into buf; *got == 0 means the end of the range. */
    enum lmr_result (*read)(struct lmr_store_reader *r, void *buf, size_t cap, size_t *got, struct lmr_err *err);
    void (*close_read)(struct lmr_store_reader *r);
    enum lmr_result (*open_write)(struct lmr_store *s, const char *key, unsigned flags, struct lmr_store_writer **out,
                                  struct lmr_err *err);
    enum lmr_result (*write)(struct lmr_store_writer *w, const void *data, size_t len, struct lmr_err *err);
    /* Make the object visible and free w (also on failure). */
    enum lmr_result (*commit)(struct lmr_store_writer *w, struct lmr_err *err);
    /* Drop the staged object and free w. Nothing becomes visible. */
    void (*abort)(struct lmr_store_writer *w);
    /* Delete keys; missing keys are not an error. */
    enum lmr_result (*delete_keys)(struct lmr_store *s, const char *const *keys, size_t n, struct lmr_err *err);
    void (*destroy)(struct lmr_store *s);
    /* The whole object appended to out (out->max_bytes caps it) and its ETag into etag. */
    enum lmr_result (*get_versioned)(struct lmr_store *s, const char *key, struct lmr_buf *out,
                                     char etag[LMR_STORE_ETAG_BYTES], struct lmr_err *err);
    /* Replace the object only if its ETag is still etag (LMR_ERR_EXISTS otherwise; LMR_ERR_NOT_FOUND if gone). */
    enum lmr_result (*put_if_match)(struct lmr_store *s, const char *key, const void *data, size_t len,
                                    const char *etag, struct lmr_err *err);
    /* Optional: open_read with options (opts never NULL); NULL = open_read, the options ignored. */
    enum lmr_result (*open_read_with)(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                      const struct lmr_store_read_options *opts, struct lmr_store_reader **out,
                                      struct lmr_err *err);
};

struct lmr_store {
    const struct lmr_store_vtable *vtable;
    void *impl;
    char *root_uri; /* canonical URI of the root: "file:///abs/dir" or "s3://bucket" */
    struct lmr_store_stats stats;
};

/**
 * Open the store that holds `uri` and split off the key prefix inside it.
 * - "s3://bucket/a/b"        -> s3 store for bucket, prefix "a/b"
 * - "file:///abs/dir", "dir" -> file store rooted at the absolute directory, prefix ""
 *                               (the directory need not exist yet: outputs create it)
 * - "file:///abs/f.txt", "f.txt" (an existing regular file) -> file store rooted at its
 *                               directory, prefix "f.txt"
 * @param prefix  optional; receives a malloc'd prefix (caller frees).
 */
enum lmr_result lmr_store_open(const char *uri, struct lmr_store **out, char **prefix, struct lmr_err *err);
/** Open a store for exactly this root (as found in struct lmr_store.root_uri). */
enum lmr_result lmr_store_open_root(const char *root_uri, struct lmr_store **out, struct lmr_err *err);
/** Free the store. NULL-safe. */
void lmr_store_destroy(struct lmr_store *s);

/**
 * @return LMR_OK if key is a valid relative key: non-empty, valid UTF-8 (S3 keys are UTF-8, so a
 * name that is not cannot be carried anywhere), no "..", no "." segments, no leading '/'.
 */
enum lmr_result lmr_store_check_key(const char *key, struct lmr_err *err);

/**
 * Decide whether the location `inner` is `outer` or lies below it (both URIs or paths as
 * lmr_store_open takes them; the same store root and a prefix that covers the other).
 */
enum lmr_result lmr_store_uri_within(const char *inner, const char *outer, bool *within, struct lmr_err *err);

/*
 * Dispatch wrappers: validate keys, then call the back-end. lmr_store_list also checks every
 * object the back-end lists before fn sees it: its key starts with the prefix and passes
 * lmr_store_check_key, its size is at most LMR_STORE_MAX_OBJECT_BYTES; otherwise listing stops
 * with LMR_ERR_FORMAT (or LMR_ERR_INVALID for a key) and a message naming the object.
 */
enum lmr_result lmr_store_list(struct lmr_store *s, const char *prefix, lmr_store_list_fn fn, void *user_data,
                               struct lmr_err *err);
/* Keys listed under a prefix, collected by lmr_store_keys_add (an lmr_store_list callback). */
struct lmr_store_keys {
    char **v;      /* the keys, malloc'd */
    size_t n, cap; /* keys held; room in v */
    size_t max;    /* Optional: the most keys (0, the default: no cap) */
    bool too_many; /* set when a key past max was refused (the callback answers LMR_ERR_TOO_LARGE) */
};
/** lmr_store_list callback: appends obj->key to user_data, a struct lmr_store_keys. */
enum lmr_result lmr_store_keys_add(void *user_data, const struct lmr_store_object *obj);
/** Append a copy of s[0..len) (any string, not only a listed key); LMR_ERR_TOO_LARGE past k->max. */
enum lmr_result lmr_store_keys_push(struct lmr_store_keys *k, const char *s, size_t len);
/** Whether k holds s (a linear search: for short lists). */
bool lmr_store_keys_has(const struct lmr_store_keys *k, const char *s);
/** Free the keys; *k is left all zero (max too). */
void lmr_store_keys_free(struct lmr_store_keys *k);
enum lmr_result lmr_store_head(struct lmr_store *s, const char *key, uint64_t *size_bytes, struct lmr_err *err);
enum lmr_result lmr_store_open_read(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                    struct lmr_store_reader **out, struct lmr_err *err);
/**
 * As lmr_store_open_read, with read-ahead options (NULL = the defaults): a cap on the bytes
 * the reader may have requested ahead of the caller, and whether the range is read whole and
 * in order (see struct lmr_store_read_options).
 */
enum lmr_result lmr_store_open_read_with(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                         const struct lmr_store_read_options *opts, struct lmr_store_reader **out,
                                         struct lmr_err *err);
enum lmr_result lmr_store_read(struct lmr_store_reader *r, void *buf, size_t cap, size_t *got, struct lmr_err *err);
void lmr_store_close_read(struct lmr_store_reader *r);
enum lmr_result lmr_store_open_write(struct lmr_store *s, const char *key, unsigned flags,
                                     struct lmr_store_writer **out, struct lmr_err *err);
enum lmr_result lmr_store_write(struct lmr_store_writer *w, const void *data, size_t len, struct lmr_err *err);
enum lmr_result lmr_store_commit(struct lmr_store_writer *w, struct lmr_err *err);
void lmr_store_abort(struct lmr_store_writer *w);
enum lmr_result lmr_store_delete(struct lmr_store *s, const char *const *keys, size_t n, struct lmr_err *err);

/** Read a whole range into out (appending; out's max_bytes caps it). */
enum lmr_result lmr_store_get(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                              struct lmr_buf *out, struct lmr_err *err);
/**
 * Read a whole object (appended to out, capped by out->max_bytes) and its ETag.
 * @return LMR_ERR_NOT_FOUND when the object does not exist.
 */
enum lmr_result lmr_store_get_versioned(struct lmr_store *s, const char *key, struct lmr_buf *out,
                                        char etag[LMR_STORE_ETAG_BYTES], struct lmr_err *err);
/**
 * Replace an object only while its ETag is etag (from lmr_store_get_versioned): a
 * compare-and-swap. @return LMR_ERR_EXISTS when the object changed since (another writer came
 * first), LMR_ERR_NOT_FOUND when it was deleted.
 */
enum lmr_result lmr_store_put_if_match(struct lmr_store *s, const char *key, const void *data, size_t len,
                                       const char *etag, struct lmr_err *err);
/** Write a whole object in one call (open_write + write + commit). */
enum lmr_result lmr_store_put(struct lmr_store *s, const char *key, const void *data, size_t len, unsigned flags,
                              struct lmr_err *err);

/* Back-end constructors (store.c dispatches URIs to these). */
enum lmr_result lmr_file_store_new(const char *abs_dir, struct lmr_store **out, struct lmr_err *err);
enum lmr_result lmr_s3_store_new(const char *bucket, struct lmr_store **out, struct lmr_err *err);

#endif
