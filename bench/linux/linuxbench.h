/*
 * What the Linux anchor's init programs (mmbench.c, gupbench.c) share: the
 * timebase clock, the one-write-per-line console output and its JSON result
 * lines, /proc and /sys readers, an aligned anonymous mapping and the THP
 * check. Each program is one translation unit that includes this once,
 * after it has declared die() (report, then power off).
 */
#ifndef LINUXBENCH_H
#define LINUXBENCH_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define KPF_THP 22 /* bit of /proc/kpageflags: page belongs to a THP */

static double tb_hz; /* timebase ticks per second */
static long page;    /* base page size (64K on Debian's ppc64le) */

static void die(const char *what);

static inline uint64_t mftb(void)
{
    uint64_t t;
    __asm__ __volatile__("mfspr %0,268" : "=r"(t)); /* TBR, user readable */
    return t;
}

static double tb_us(uint64_t ticks) { return (double)ticks * 1e6 / tb_hz; }

/* One write() per line, so kernel messages cannot land inside a result. */
static void out(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    if (write(1, buf, n) < 0) { /* nothing better to do on a console */ }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void emit_skipped(const char *name, const char *why)
{
    out("LINUXBENCH {\"name\":\"%s\",\"status\":\"skipped\",\"reason\":\"%s\"}", name, why);
}

static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return (int)n;
}

/* The value after "key" and ':' on a line of a "key : value" file. */
static int file_field(const char *path, const char *key, char *val, size_t len)
{
    char buf[16384];
    if (read_file(path, buf, sizeof buf) < 0)
        return -1;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, key, strlen(key)))
            continue;
        char *c = strchr(line, ':');
        if (!c)
            continue;
        for (c++; *c == ' ' || *c == '\t'; c++) {}
        snprintf(val, len, "%s", c);
        return 0;
    }
    return -1;
}

/* What both init programs report about the kernel they run on: its release,
 * the MMU /proc/cpuinfo names, the THP PMD size (0 when there is no THP: a
 * hash guest without a 16M page size has no sysfs directory for it) and the
 * THP mode ("none" then). */
struct kernel_info {
    struct utsname u;
    char mmu[32];
    char thp[64];
    size_t pmd;
};

static void read_kernel_info(struct kernel_info *k)
{
    char buf[4096];
    k->pmd = 0;
    if (read_file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", buf, sizeof buf) > 0)
        k->pmd = strtoul(buf, NULL, 10);
    uname(&k->u);
    snprintf(k->mmu, sizeof k->mmu, "?");
    snprintf(k->thp, sizeof k->thp, "none");
    file_field("/proc/cpuinfo", "MMU", k->mmu, sizeof k->mmu);
    if (k->pmd && read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) > 0) {
        buf[strcspn(buf, "\n")] = 0;
        snprintf(k->thp, sizeof k->thp, "%.60s", buf);
    }
}

/* A private anonymous mapping of len bytes aligned to align, a VMA of its own. */
static char *map_aligned(size_t len, size_t align)
{
    size_t span = len + align;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    char *a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (a > p)
        munmap(p, a - p);
    if (p + span > a + len)
        munmap(a + len, p + span - (a + len));
    return a;
}

/* 1 if the page at p is part of a THP, 0 if not, -1 if unknown. */
static int is_thp(const void *p)
{
    uint64_t ent, flags;
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, &ent, 8, (off_t)((uintptr_t)p / page) * 8);
    close(fd);
    if (n != 8 || !(ent >> 63 & 1))
        return -1;
    uint64_t pfn = ent & ((1ULL << 55) - 1);
    fd = open("/proc/kpageflags", O_RDONLY);
    if (fd < 0)
        return -1;
    n = pread(fd, &flags, 8, (off_t)pfn * 8);
    close(fd);
    if (n != 8)
        return -1;
    return (int)(flags >> KPF_THP & 1);
}

#endif
