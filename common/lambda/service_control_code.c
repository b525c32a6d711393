/*
 * The control plane's code handling (see service_control.h): a function's zip from the request
 * (Code.ZipFile) or from S3 (Code.S3Bucket/S3Key, through the store) is kept as
 * STATE/functions/NAME-ID/code.zip with its SHA-256, and unpacked into STATE/functions/NAME-ID/task
 * by lambda/zip_unpack.h. Runs without the service lock except to make the state dir.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lambda/service_control_internal.h"
#include "lambda/zip_unpack.h"
#include "store/store.h"
#include "util/base64.h"
#include "util/misc.h"

#define S3_CHUNK_BYTES (1u << 20)

static void sha256_b64(const unsigned char digest[32], char out[48])
{
    EVP_EncodeBlock((unsigned char *)out, digest, 32);
}

/* SHA-256 (base64) and size of a file. */
bool lmr_svc_cp_hash_file(const char *path, char sha[48], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *buf = malloc(S3_CHUNK_BYTES);
    bool ok = md && buf && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    uint64_t total = 0;
    while (ok) {
        ssize_t n = read(fd, buf, S3_CHUNK_BYTES);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        total += (uint64_t)n;
        ok = EVP_DigestUpdate(md, buf, (size_t)n);
    }
    unsigned char digest[32];
    unsigned dlen = 0;
    if (ok)
        ok = EVP_DigestFinal_ex(md, digest, &dlen) && dlen == 32;
    if (ok) {
        sha256_b64(digest, sha);
        *size = total;
    }
    EVP_MD_CTX_free(md);
    free(buf);
    close(fd);
    return ok;
}

/* ---- code: fetch, keep, unpack ---------------------------------------------------------------- */

static bool ensure_state_dir_locked(struct lmr_svc_control *cp, struct lmr_svc_api_err *e)
{
    if (cp->state_dir)
        return true;
    char path[4096];
    struct lmr_err err = {0};
    if (cp->state_dir_wanted) {
        snprintf(path, sizeof path, "%s/functions", cp->state_dir_wanted);
        if (lmr_mkdirs(path, &err) != LMR_OK)
            return SERVICE_ERROR(e, "cannot create the state directory of lambdamr serve: %s", err.msg);
        cp->state_dir = lmr_abspath(cp->state_dir_wanted);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/lambdamr-state-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(path))
            return SERVICE_ERROR(e, "cannot create a state directory %s: %s; set TMPDIR or --state-dir", path,
                                 strerror(errno));
        cp->state_dir = strdup(path);
        cp->state_dir_temp = true;
        snprintf(path + strlen(path), sizeof path - strlen(path), "/functions");
        if (mkdir(path, 0755) != 0)
            return SERVICE_ERROR(e, "cannot create %s: %s", path, strerror(errno));
    }
    return cp->state_dir ? true : SERVICE_ERROR(e, "out of memory creating the state directory");
}

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool zip_from_request(const struct code_src *src, const char *zip_path, struct code_out *out,
                             struct lmr_svc_api_err *e)
{
    size_t cap = src->zip_b64_len / 4 * 3 + 3;
    uint8_t *zip = malloc(cap);
    if (!zip)
        return SERVICE_ERROR(e, "out of memory decoding the ZipFile");
    size_t len = 0;
    if (lmr_base64_decode(src->zip_b64, src->zip_b64_len, zip, &len) != LMR_OK || len == 0) {
        free(zip);
        return INVALID_PARAM(e, "Could not unzip uploaded file. Please check your file, then try to upload again. "
                                "(Code.ZipFile is not valid base64 or is empty.)");
    }
    unsigned char digest[32];
    unsigned dlen = 0;
    EVP_Digest(zip, len, digest, &dlen, EVP_sha256(), NULL);
    sha256_b64(digest, out->sha256);
    out->zip_bytes = len;
    int fd = open(zip_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write_all(fd, zip, len);
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    free(zip);
    return ok ? true : SERVICE_ERROR(e, "cannot write %s: %s", zip_path, strerror(errno));
}

static bool zip_from_s3(const struct code_src *src, const char *zip_path, struct code_out *out,
                        struct lmr_svc_api_err *e)
{
    char uri[1200];
    snprintf(uri, sizeof uri, "s3://%s/%s", src->bucket, src->key);
    struct lmr_store *st = NULL;
    char *key = NULL;
    struct lmr_err err = {0};
    struct lmr_store_reader *rd = NULL;
    uint64_t size = 0;
    enum lmr_result r = lmr_store_open(uri, &st, &key, &err);
    if (!r)
        r = lmr_store_head(st, key, &size, &err);
    if (r) {
        lmr_store_destroy(st);
        free(key);
        if (r == LMR_ERR_NOT_FOUND)
            return INVALID_PARAM(e,
                                 "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The "
                                 "specified key does not exist. (%s: %s)",
                                 uri, err.msg);
        return INVALID_PARAM(e, "Error occurred while GetObject of %s: %s", uri, err.msg);
    }
    if (size > LMR_ZIP_UNZIPPED_MAX_BYTES) {
        lmr_store_destroy(st);
        free(key);
        return INVALID_PARAM(e, "Unzipped size must be smaller than %llu bytes (%s is %llu bytes zipped)",
                             LMR_ZIP_UNZIPPED_MAX_BYTES, uri, (unsigned long long)size);
    }
    int fd = open(zip_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    char *chunk = malloc(S3_CHUNK_BYTES);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = fd >= 0 && chunk && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    uint64_t total = 0;
    if (ok)
        r = lmr_store_open_read(st, key, 0, LMR_STORE_TO_END, &rd, &err);
    while (ok && !r) {
        size_t got = 0;
        r = lmr_store_read(rd, chunk, S3_CHUNK_BYTES, &got, &err);
        if (r || !got)
            break;
        total += got;
        if (total > LMR_ZIP_UNZIPPED_MAX_BYTES) {
            r = LMR_ERR_TOO_LARGE;
            break;
        }
        ok = EVP_DigestUpdate(md, chunk, got) && write_all(fd, chunk, got);
    }
    lmr_store_close_read(rd);
    unsigned char digest[32];
    unsigned dlen = 0;
    if (ok && !r)
        ok = EVP_DigestFinal_ex(md, digest, &dlen) && dlen == 32;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    EVP_MD_CTX_free(md);
    free(chunk);
    lmr_store_destroy(st);
    free(key);
    if (r == LMR_ERR_TOO_LARGE)
        return INVALID_PARAM(e, "Unzipped size must be smaller than %llu bytes (%s grew while it was read)",
                             LMR_ZIP_UNZIPPED_MAX_BYTES, uri);
    if (r)
        return INVALID_PARAM(e, "Error occurred while GetObject of %s: %s", uri, err.msg);
    if (!ok)
        return SERVICE_ERROR(e, "cannot copy %s to %s: %s", uri, zip_path, strerror(errno));
    sha256_b64(digest, out->sha256);
    out->zip_bytes = total;
    return true;
}

/* Fetch the code of src into a new directory below the state dir and unpack it there. */
bool lmr_svc_cp_fetch_code(struct lmr_lambda_service *svc, const char *name, const struct code_src *src,
                           struct code_out *out, struct lmr_svc_api_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&svc->mu);
    bool ok = ensure_state_dir_locked(svc->control, e);
    char dir[4096];
    if (ok) {
        char hex[17];
        lmr_random_hex(hex, 8);
        snprintf(dir, sizeof dir, "%s/functions/%s-%s", svc->control->state_dir, name, hex);
    }
    pthread_mutex_unlock(&svc->mu);
    if (!ok)
        return false;
    if (mkdir(dir, 0755) != 0)
        return SERVICE_ERROR(e, "cannot create %s: %s", dir, strerror(errno));
    char zip_path[4200], task[4200];
    snprintf(zip_path, sizeof zip_path, "%s/code.zip", dir);
    snprintf(task, sizeof task, "%s/task", dir);
    ok = src->zip_b64 ? zip_from_request(src, zip_path, out, e) : zip_from_s3(src, zip_path, out, e);
    struct lmr_err err = {0};
    enum lmr_result r = ok ? lmr_zip_unpack_file(zip_path, task, NULL, &out->sum, &err) : LMR_OK;
    if (ok && r) {
        if (r == LMR_ERR_TOO_LARGE && strstr(err.msg, "entries"))
            ok = INVALID_PARAM(e, "Could not unzip uploaded file: %s", err.msg);
        else if (r == LMR_ERR_TOO_LARGE)
            ok = INVALID_PARAM(e, "Unzipped size must be smaller than %llu bytes", LMR_ZIP_UNZIPPED_MAX_BYTES);
        else if (r == LMR_ERR_INVALID)
            ok = INVALID_PARAM(e,
                               "Could not unzip uploaded file: %s. Every entry must stay inside the task root; "
                               "rebuild the zip from inside the package directory",
                               err.msg);
        else if (r == LMR_ERR_FORMAT)
            ok = INVALID_PARAM(
                e, "Could not unzip uploaded file. Please check your file, then try to upload again. (%s)", err.msg);
        else
            ok = SERVICE_ERROR(e, "cannot unpack the code of %s: %s", name, err.msg);
    }
    if (!ok) {
        lmr_remove_tree(dir, NULL);
        return false;
    }
    out->dir = strdup(dir);
    if (!out->dir) {
        lmr_remove_tree(dir, NULL);
        return SERVICE_ERROR(e, "out of memory");
    }
    return true;
}
