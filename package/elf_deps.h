/*
 * What an ELF file needs at run time: its machine, its dynamic loader (PT_INTERP), and the
 * shared libraries that loader resolves for it. The libraries are asked from the loader itself
 * (`LOADER --list FILE`, what ldd does), so the answer is the loader's own search (DT_NEEDED
 * recursively, RUNPATH, the cache, the default directories), never a hand-kept list.
 */
#ifndef LMR_PACKAGE_ELF_DEPS_H
#define LMR_PACKAGE_ELF_DEPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

#define LMR_ELF_INTERP_MAX_BYTES 512

struct lmr_elf_info {
    uint16_t machine;                      /* e_machine: EM_X86_64 or EM_AARCH64 */
    bool executable;                       /* ET_EXEC, or ET_DYN with a PT_INTERP (PIE) */
    char interp[LMR_ELF_INTERP_MAX_BYTES]; /* PT_INTERP; empty for a shared library */
};

/** One library as the loader resolved it. */
struct lmr_elf_lib {
    char *name; /* the name the loader looked for (the soname, "libcurl.so.4"); the loader's own base name */
    char *path; /* where it is on this machine */
    bool is_loader;
};

struct lmr_elf_libs {
    struct lmr_elf_lib *items;
    size_t n;
};

/**
 * Read the ELF header and program headers of path (64-bit little-endian only, as Lambda's
 * x86_64 and arm64 are). @return LMR_ERR_FORMAT for anything else, naming the file.
 */
enum lmr_result lmr_elf_read_info(const char *path, struct lmr_elf_info *out, struct lmr_err *err);

/** @return Lambda's name for an ELF machine ("x86_64", "arm64"), or NULL if Lambda has no such architecture. */
const char *lmr_elf_lambda_arch(uint16_t machine);

/**
 * Ask loader (an absolute path, usually the binary's PT_INTERP) which libraries path loads:
 * runs `loader --list path` with an empty environment (no LD_LIBRARY_PATH or LD_PRELOAD of
 * the caller leaks in). The loader itself is in the list (is_loader) when path is an
 * executable. A library the loader cannot find is an error naming it. out is caller-owned;
 * free with lmr_elf_libs_clean_up.
 */
enum lmr_result lmr_elf_list_libs(const char *loader, const char *path, struct lmr_elf_libs *out, struct lmr_err *err);

/** Free the list (NULL-safe); the struct can be reused. */
void lmr_elf_libs_clean_up(struct lmr_elf_libs *libs);

#endif
