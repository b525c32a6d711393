/* ELF headers and the loader's own answer to "which libraries does this file load". */
#define _GNU_SOURCE
#include "elf_deps.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/buf.h"

#define MAX_PHDRS 4096
#define MAX_LIST_OUTPUT_BYTES (256u << 10)
#define MAX_LIBS 1024

enum lmr_result lmr_elf_read_info(const char *path, struct lmr_elf_info *out, struct lmr_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return lmr_fail(err, errno == ENOENT ? LMR_ERR_NOT_FOUND : LMR_ERR_IO, "cannot open '%s': %s", path,
                        strerror(errno));
    Elf64_Ehdr eh;
    enum lmr_result r = LMR_OK;
    if (fread(&eh, 1, sizeof eh, f) != sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        r = lmr_fail(err, LMR_ERR_FORMAT, "'%s' is not an ELF file (a Linux executable or shared library)", path);
    } else if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) {
        r = lmr_fail(err, LMR_ERR_FORMAT, "'%s' is not a 64-bit little-endian ELF file; Lambda runs x86_64 and arm64",
                     path);
    } else if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) {
        r = lmr_fail(err, LMR_ERR_FORMAT, "'%s' is an ELF file but neither an executable nor a shared library", path);
    } else if (eh.e_phnum > MAX_PHDRS || (eh.e_phnum && eh.e_phentsize != sizeof(Elf64_Phdr))) {
        r = lmr_fail(err, LMR_ERR_FORMAT, "'%s' has a malformed program header table", path);
    }
    out->machine = eh.e_machine;
    for (unsigned i = 0; !r && i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (fseeko(f, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph), SEEK_SET) != 0 ||
            fread(&ph, 1, sizeof ph, f) != sizeof ph) {
            r = lmr_fail(err, LMR_ERR_FORMAT, "'%s' is truncated (program header %u)", path, i);
            break;
        }
        if (ph.p_type != PT_INTERP)
            continue;
        if (ph.p_filesz < 2 || ph.p_filesz > sizeof out->interp || fseeko(f, (off_t)ph.p_offset, SEEK_SET) != 0 ||
            fread(out->interp, 1, ph.p_filesz, f) != ph.p_filesz || out->interp[ph.p_filesz - 1] != '\0' ||
            out->interp[0] != '/') {
            r = lmr_fail(err, LMR_ERR_FORMAT, "'%s' has a malformed PT_INTERP (loader path)", path);
            out->interp[0] = '\0';
        }
    }
    fclose(f);
    out->executable = eh.e_type == ET_EXEC || out->interp[0];
    return r;
}

const char *lmr_elf_lambda_arch(uint16_t machine)
{
    switch (machine) {
    case EM_X86_64:
        return "x86_64";
    case EM_AARCH64:
        return "arm64";
    default:
        return NULL;
    }
}

void lmr_elf_libs_clean_up(struct lmr_elf_libs *libs)
{
    if (!libs)
        return;
    for (size_t i = 0; i < libs->n; i++) {
        free(libs->items[i].name);
        free(libs->items[i].path);
    }
    free(libs->items);
    libs->items = NULL;
    libs->n = 0;
}

/* Run `loader --list path` with an empty environment; its standard output and error go to out. */
static enum lmr_result run_list(const char *loader, const char *path, struct lmr_buf *out, int *status,
                                struct lmr_err *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return lmr_fail(err, LMR_ERR_IO, "cannot make a pipe to run the loader %s: %s", loader, strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    char *argv[] = {(char *)loader, "--list", (char *)path, NULL};
    char *envp[] = {NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, loader, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return lmr_fail(err, LMR_ERR_NOT_FOUND, "cannot run the dynamic loader %s (named by %s): %s", loader, path,
                        strerror(rc));
    }
    enum lmr_result r = LMR_OK;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fds[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (!r && lmr_buf_append(out, chunk, (size_t)n) != LMR_OK)
            r = lmr_fail(err, LMR_ERR_TOO_LARGE, "the loader's library list for %s is over %u bytes", path,
                         MAX_LIST_OUTPUT_BYTES);
    }
    close(fds[0]);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    return r;
}

static enum lmr_result add_lib(struct lmr_elf_libs *libs, const char *name, size_t name_len, const char *path,
                               size_t path_len, bool is_loader, struct lmr_err *err)
{
    if (libs->n == MAX_LIBS)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "more than %d shared libraries; that is not a Lambda function",
                        MAX_LIBS);
    struct lmr_elf_lib *items = realloc(libs->items, (libs->n + 1) * sizeof *items);
    if (!items)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory listing shared libraries");
    libs->items = items;
    struct lmr_elf_lib *l = &items[libs->n];
    l->name = strndup(name, name_len);
    l->path = strndup(path, path_len);
    l->is_loader = is_loader;
    if (!l->name || !l->path) {
        free(l->name);
        free(l->path);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory listing shared libraries");
    }
    libs->n++;
    return LMR_OK;
}

/*
 * One line of the loader's list. The three shapes glibc prints:
 *   "libcurl.so.4 => /lib/x86_64-linux-gnu/libcurl.so.4 (0x...)"   a library and where it is
 *   "libfoo.so.1 => not found"                                      a library that is missing
 *   "/lib64/ld-linux-x86-64.so.2 (0x...)"                           the loader (an absolute path)
 *   "linux-vdso.so.1 (0x...)"                                       the kernel's vDSO: no file
 */
static enum lmr_result parse_line(const char *file, const char *line, size_t len, struct lmr_elf_libs *libs,
                                  struct lmr_err *err)
{
    while (len && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\r'))
        len--;
    if (!len)
        return LMR_OK;
    const char *arrow = memmem(line, len, " => ", 4);
    if (arrow) {
        const char *p = arrow + 4;
        size_t rest = len - (size_t)(p - line);
        if (rest >= 9 && !memcmp(p, "not found", 9))
            return lmr_fail(err, LMR_ERR_NOT_FOUND,
                            "%s needs %.*s, which the dynamic loader cannot find on this machine; install the "
                            "Debian package that has it",
                            file, (int)(arrow - line), line);
        const char *paren = memmem(p, rest, " (", 2);
        size_t plen = paren ? (size_t)(paren - p) : rest;
        if (!plen || p[0] != '/')
            return lmr_fail(err, LMR_ERR_FORMAT, "cannot read the loader's line '%.*s' for %s", (int)len, line, file);
        return add_lib(libs, line, (size_t)(arrow - line), p, plen, false, err);
    }
    const char *paren = memmem(line, len, " (", 2);
    size_t plen = paren ? (size_t)(paren - line) : len;
    if (line[0] != '/')
        return LMR_OK; /* linux-vdso.so.1 and the like: provided by the kernel */
    const char *base = line + plen;
    while (base > line && base[-1] != '/')
        base--;
    return add_lib(libs, base, (size_t)(line + plen - base), line, plen, true, err);
}

enum lmr_result lmr_elf_list_libs(const char *loader, const char *path, struct lmr_elf_libs *out, struct lmr_err *err)
{
    memset(out, 0, sizeof *out);
    struct lmr_buf text;
    lmr_buf_init(&text, MAX_LIST_OUTPUT_BYTES);
    int status = 0;
    enum lmr_result r = run_list(loader, path, &text, &status, err);
    if (!r && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        /* The loader says why (e.g. "not a dynamic executable"); keep the first line of it. */
        const char *t = text.data ? text.data : "";
        r = lmr_fail(err, LMR_ERR_FORMAT, "the dynamic loader %s cannot list the libraries of %s: %.*s", loader, path,
                     (int)strcspn(t, "\n"), t);
    }
    for (const char *p = text.data; !r && p && *p;) {
        size_t len = strcspn(p, "\n");
        r = parse_line(path, p, len, out, err);
        p += len;
        if (*p)
            p++;
    }
    lmr_buf_clean_up(&text);
    if (r)
        lmr_elf_libs_clean_up(out);
    return r;
}
