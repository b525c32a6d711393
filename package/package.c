/* The function package writer: collect the entries, check the limits, write a deterministic zip. */
#define _GNU_SOURCE
#include "package.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zip.h>

#include "aws/curl_api.h"
#include "elf_deps.h"
#include "util/misc.h"

/* 1980-01-01 00:00:00, the first date a zip (DOS) timestamp can hold: date = (year-1980)<<9 | month<<5 | day. */
#define FIXED_DOS_DATE ((0u << 9) | (1u << 5) | 1u)
#define FIXED_DOS_TIME 0u
#define DEFLATE_LEVEL 6
#define MAX_LIBC_BYTES (64u << 20)
#define SCRIPT_MAX_BYTES 2048

void lmr_package_clean_up(struct lmr_package *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_entries; i++) {
        free(p->entries[i].name);
        free(p->entries[i].source);
    }
    free(p->entries);
    memset(p, 0, sizeof *p);
}

enum lmr_result lmr_package_entry_script(const char *loader, char *out, size_t cap, struct lmr_err *err)
{
    int n = snprintf(out, cap,
                     "#!/bin/sh\n"
                     "# Entry point of a lambdamr function package (written by 'lambdamr package'). It starts\n"
                     "# the function binary through the packaged dynamic loader with only the package's own\n"
                     "# libraries: nothing of the image's /lib64 or /usr/lib64 is used, and no /proc is needed.\n"
                     "root=${LAMBDA_TASK_ROOT:-${0%%/*}}\n"
                     "exec \"$root/lib/%s\" --inhibit-cache --library-path \"$root/lib\" \"$root/%s\" \"$@\"\n",
                     loader, LMR_PACKAGE_FUNCTION_PATH);
    if (n < 0 || (size_t)n >= cap)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "the loader name '%s' makes the entry point script too long", loader);
    return LMR_OK;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A base name that unpacks to exactly one file in its folder. */
static bool plain_name(const char *name)
{
    if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            return false;
    return true;
}

static struct lmr_package_entry *find_entry(struct lmr_package *pkg, const char *name)
{
    for (size_t i = 0; i < pkg->n_entries; i++)
        if (!strcmp(pkg->entries[i].name, name))
            return &pkg->entries[i];
    return NULL;
}

/* Add an entry named name read from source (NULL source: the generated entry point of size_bytes). */
static enum lmr_result add_entry(struct lmr_package *pkg, const char *name, const char *source, uint64_t size_bytes,
                                 uint32_t mode, struct lmr_err *err)
{
    if (pkg->n_entries == LMR_PACKAGE_MAX_ENTRIES)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "the package would have more than %d entries", LMR_PACKAGE_MAX_ENTRIES);
    struct lmr_package_entry *e = realloc(pkg->entries, (pkg->n_entries + 1) * sizeof *e);
    if (!e)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory adding %s to the package", name);
    pkg->entries = e;
    e = &e[pkg->n_entries];
    e->name = strdup(name);
    e->source = source ? strdup(source) : NULL;
    e->size_bytes = size_bytes;
    e->mode = mode;
    if (!e->name || (source && !e->source)) {
        free(e->name);
        free(e->source);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory adding %s to the package", name);
    }
    pkg->n_entries++;
    return LMR_OK;
}

/* Add a file of this machine as zip_name; stat gives the size, force_mode (or else the x bits) the mode. */
static enum lmr_result add_file(struct lmr_package *pkg, const char *zip_name, const char *source, int force_mode,
                                const char *what, struct lmr_err *err)
{
    struct stat st;
    if (stat(source, &st) != 0)
        return lmr_fail(err, errno == ENOENT ? LMR_ERR_NOT_FOUND : LMR_ERR_IO, "%s '%s': %s", what, source,
                        strerror(errno));
    if (!S_ISREG(st.st_mode))
        return lmr_fail(err, LMR_ERR_INVALID, "%s '%s' is not a regular file", what, source);
    if (access(source, R_OK) != 0)
        return lmr_fail(err, LMR_ERR_IO, "%s '%s' is not readable: %s", what, source, strerror(errno));
    uint32_t mode = force_mode >= 0 ? (uint32_t)force_mode : (st.st_mode & 0111) ? 0755u : 0644u;
    return add_entry(pkg, zip_name, source, (uint64_t)st.st_size, mode, err);
}

/* Add the libraries libs lists that lib/ does not have yet (the loader only once, by its base name). */
static enum lmr_result add_libs(struct lmr_package *pkg, const struct lmr_elf_libs *libs, struct lmr_err *err)
{
    for (size_t i = 0; i < libs->n; i++) {
        char name[1024];
        if (!plain_name(libs->items[i].name) ||
            snprintf(name, sizeof name, "lib/%s", libs->items[i].name) >= (int)sizeof name)
            return lmr_fail(err, LMR_ERR_FORMAT, "the loader named a library '%s' that cannot be a file name",
                            libs->items[i].name);
        if (find_entry(pkg, name))
            continue;
        enum lmr_result r = add_file(pkg, name, libs->items[i].path, 0755, "shared library", err);
        if (r)
            return r;
        if (libs->items[i].is_loader && !pkg->loader[0])
            snprintf(pkg->loader, sizeof pkg->loader, "%s", libs->items[i].name);
    }
    return LMR_OK;
}

/* Add an extra ELF file's libraries (a plugin, or an executable given with --file). */
static enum lmr_result add_elf_deps(struct lmr_package *pkg, const char *loader, uint16_t machine, const char *path,
                                    const char *what, struct lmr_err *err)
{
    struct lmr_elf_info info;
    enum lmr_result r = lmr_elf_read_info(path, &info, err);
    if (r)
        return lmr_err_prefix(err, "%s", what);
    if (info.machine != machine)
        return lmr_fail(err, LMR_ERR_INVALID, "%s '%s' is built for another architecture than the function binary (%s)",
                        what, path, pkg->arch);
    struct lmr_elf_libs libs;
    if ((r = lmr_elf_list_libs(loader, path, &libs, err)))
        return r;
    r = add_libs(pkg, &libs, err);
    lmr_elf_libs_clean_up(&libs);
    return r;
}

/*
 * Libraries the function opens at run time rather than names (aws/curl_api.h: libcurl), with
 * the libraries they need: looked for where the loader found the function's own libraries.
 */
static enum lmr_result add_opened_libs(struct lmr_package *pkg, const char *loader, uint16_t machine,
                                       const struct lmr_elf_libs *linked, struct lmr_err *err)
{
    static const char *const opened[] = {LMR_CURL_SONAME};
    for (size_t k = 0; k < sizeof opened / sizeof opened[0]; k++) {
        char path[4096] = "";
        for (size_t i = 0; i < linked->n && !path[0]; i++) {
            const char *slash = strrchr(linked->items[i].path, '/');
            if (!slash || linked->items[i].is_loader)
                continue;
            char cand[4096];
            if (snprintf(cand, sizeof cand, "%.*s/%s", (int)(slash - linked->items[i].path), linked->items[i].path,
                         opened[k]) < (int)sizeof cand &&
                access(cand, R_OK) == 0)
                snprintf(path, sizeof path, "%s", cand);
        }
        if (!path[0])
            return lmr_fail(err, LMR_ERR_NOT_FOUND,
                            "the function opens %s at run time (for HTTP to S3 and AWS), but it is in none of the "
                            "folders its other libraries came from; install libcurl (Debian: apt-get install "
                            "libcurl4t64 or libcurl4) and package again",
                            opened[k]);
        char zip_name[1024];
        snprintf(zip_name, sizeof zip_name, "lib/%s", opened[k]);
        enum lmr_result r = LMR_OK;
        if (!find_entry(pkg, zip_name))
            r = add_file(pkg, zip_name, path, 0755, "shared library", err);
        if (!r)
            r = add_elf_deps(pkg, loader, machine, path, opened[k], err);
        if (r)
            return r;
    }
    return LMR_OK;
}

static bool is_elf(const char *path)
{
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == sizeof magic && !memcmp(magic, "\177ELF", 4);
}

/* Extras: plugins/NAME.so and files/NAME, with the libraries they need. */
static enum lmr_result add_extras(struct lmr_package *pkg, const struct lmr_package_options *o, const char *loader,
                                  uint16_t machine, struct lmr_err *err)
{
    enum lmr_result r = LMR_OK;
    for (size_t i = 0; !r && i < o->n_plugins; i++) {
        const char *p = o->plugins[i], *b = base_name(p);
        size_t bl = strlen(b);
        char name[1024];
        if (!plain_name(b) || bl < 4 || strcmp(b + bl - 3, ".so") ||
            snprintf(name, sizeof name, "plugins/%s", b) >= (int)sizeof name)
            return lmr_fail(err, LMR_ERR_INVALID,
                            "--plugin '%s': a plugin is a shared library named NAME.so (it is found at run time as "
                            "plugins/NAME.so)",
                            p);
        if (find_entry(pkg, name))
            return lmr_fail(err, LMR_ERR_INVALID, "--plugin '%s': another plugin is also named %s; rename one", p, b);
        if (!(r = add_file(pkg, name, p, 0755, "--plugin", err)))
            r = add_elf_deps(pkg, loader, machine, p, "--plugin", err);
    }
    for (size_t i = 0; !r && i < o->n_files; i++) {
        const char *p = o->files[i], *b = base_name(p);
        char name[1024];
        if (!plain_name(b) || snprintf(name, sizeof name, "files/%s", b) >= (int)sizeof name)
            return lmr_fail(err, LMR_ERR_INVALID, "--file '%s' has no usable file name", p);
        if (find_entry(pkg, name))
            return lmr_fail(err, LMR_ERR_INVALID, "--file '%s': another --file is also named %s; rename one", p, b);
        if ((r = add_file(pkg, name, p, -1, "--file", err)))
            break;
        struct lmr_elf_info info;
        /* A dynamically linked executable shipped with --file needs its libraries in lib/ too. */
        if (is_elf(p) && lmr_elf_read_info(p, &info, NULL) == LMR_OK && info.interp[0])
            r = add_elf_deps(pkg, loader, machine, p, "--file", err);
    }
    return r;
}

/* The version in the packaged libc's banner ("... stable release version 2.36."). */
static void find_glibc_version(struct lmr_package *pkg)
{
    snprintf(pkg->glibc_version, sizeof pkg->glibc_version, "unknown");
    const struct lmr_package_entry *libc = find_entry(pkg, "lib/libc.so.6");
    char *data = NULL;
    size_t len = 0;
    if (!libc || lmr_read_file(libc->source, MAX_LIBC_BYTES, &data, &len, NULL) != LMR_OK)
        return;
    static const char marker[] = "release version ";
    const char *p = memmem(data, len, marker, sizeof marker - 1);
    if (p) {
        p += sizeof marker - 1;
        size_t n = 0;
        while (p + n < data + len && n + 1 < sizeof pkg->glibc_version && (p[n] == '.' || (p[n] >= '0' && p[n] <= '9')))
            n++;
        while (n && p[n - 1] == '.')
            n--;
        if (n)
            snprintf(pkg->glibc_version, sizeof pkg->glibc_version, "%.*s", (int)n, p);
    }
    free(data);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct lmr_package_entry *)a)->name, ((const struct lmr_package_entry *)b)->name);
}

static enum lmr_result zip_fail(struct lmr_err *err, const char *out_path, const char *what, zip_error_t *ze)
{
    return lmr_fail(err, LMR_ERR_IO, "cannot write the package %s (%s): %s", out_path, what, zip_error_strerror(ze));
}

/* Write the sorted entries; the entry point (source NULL) comes from script. */
static enum lmr_result write_zip(const struct lmr_package *pkg, const char *out_path, const char *script,
                                 struct lmr_err *err)
{
    int zerr = 0;
    zip_t *za = zip_open(out_path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        enum lmr_result r = zip_fail(err, out_path, "open", &ze);
        zip_error_fini(&ze);
        return r;
    }
    for (size_t i = 0; i < pkg->n_entries; i++) {
        const struct lmr_package_entry *e = &pkg->entries[i];
        zip_source_t *src =
            e->source ? zip_source_file(za, e->source, 0, -1) : zip_source_buffer(za, script, strlen(script), 0);
        zip_int64_t idx = src ? zip_file_add(za, e->name, src, ZIP_FL_ENC_UTF_8) : -1;
        if (idx < 0) {
            if (src)
                zip_source_free(src);
            enum lmr_result r = zip_fail(err, out_path, e->name, zip_get_error(za));
            zip_discard(za);
            return r;
        }
        if (zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, DEFLATE_LEVEL) != 0 ||
            zip_file_set_dostime(za, (zip_uint64_t)idx, FIXED_DOS_TIME, FIXED_DOS_DATE, 0) != 0 ||
            zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                             (zip_uint32_t)(S_IFREG | e->mode) << 16) != 0) {
            enum lmr_result r = zip_fail(err, out_path, e->name, zip_get_error(za));
            zip_discard(za);
            return r;
        }
    }
    /* libzip writes a temporary file beside out_path and renames it over out_path only here. */
    if (zip_close(za) != 0) {
        enum lmr_result r = zip_fail(err, out_path, "close", zip_get_error(za));
        zip_discard(za);
        return r;
    }
    return LMR_OK;
}

enum lmr_result lmr_package_write(const struct lmr_package_options *o, struct lmr_package *out, struct lmr_err *err)
{
    memset(out, 0, sizeof *out);
    if (!o->function_path || !o->out_path)
        return lmr_fail(err, LMR_ERR_INVALID, "the package needs a function binary and an output path");
    struct lmr_elf_info info;
    enum lmr_result r = lmr_elf_read_info(o->function_path, &info, err);
    if (r)
        return lmr_err_prefix(err, "the function binary");
    const char *arch = lmr_elf_lambda_arch(info.machine);
    if (!arch)
        return lmr_fail(err, LMR_ERR_UNSUPPORTED,
                        "the function binary '%s' is built for ELF machine %u; Lambda runs only x86_64 and arm64",
                        o->function_path, info.machine);
    if (!info.interp[0])
        return lmr_fail(err, LMR_ERR_UNSUPPORTED,
                        "the function binary '%s' names no dynamic loader (a static binary or a library); build "
                        "the project's bootstrap",
                        o->function_path);
    snprintf(out->arch, sizeof out->arch, "%s", arch);

    struct lmr_elf_libs libs;
    char script[SCRIPT_MAX_BYTES];
    if (!(r = add_file(out, LMR_PACKAGE_FUNCTION_PATH, o->function_path, 0755, "the function binary", err)) &&
        !(r = lmr_elf_list_libs(info.interp, o->function_path, &libs, err))) {
        r = add_libs(out, &libs, err);
        if (!r)
            r = add_opened_libs(out, info.interp, info.machine, &libs, err);
        lmr_elf_libs_clean_up(&libs);
    }
    if (!r && !out->loader[0])
        r = lmr_fail(err, LMR_ERR_FORMAT, "the dynamic loader %s did not list itself for %s", info.interp,
                     o->function_path);
    if (!r && !(r = lmr_package_entry_script(out->loader, script, sizeof script, err)))
        r = add_entry(out, LMR_PACKAGE_ENTRY_POINT, NULL, strlen(script), 0755, err);
    if (!r)
        r = add_extras(out, o, info.interp, info.machine, err);
    if (r) {
        lmr_package_clean_up(out);
        return r;
    }
    qsort(out->entries, out->n_entries, sizeof *out->entries, by_name);
    for (size_t i = 0; i < out->n_entries; i++)
        out->unzipped_bytes += out->entries[i].size_bytes;
    if (out->unzipped_bytes > LMR_LAMBDA_UNZIPPED_MAX_BYTES) {
        r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                     "the package would be %llu bytes unzipped, over Lambda's limit of %llu bytes (250 MiB, "
                     "CodeSizeUnzipped); nothing was written: ship fewer or smaller --file and --plugin files",
                     (unsigned long long)out->unzipped_bytes, LMR_LAMBDA_UNZIPPED_MAX_BYTES);
        lmr_package_clean_up(out);
        return r;
    }
    find_glibc_version(out);
    if ((r = write_zip(out, o->out_path, script, err))) {
        lmr_package_clean_up(out);
        return r;
    }
    struct stat st;
    if (stat(o->out_path, &st) != 0) {
        r = lmr_fail(err, LMR_ERR_IO, "cannot stat the package %s just written: %s", o->out_path, strerror(errno));
        lmr_package_clean_up(out);
        return r;
    }
    out->zipped_bytes = (uint64_t)st.st_size;
    return LMR_OK;
}
