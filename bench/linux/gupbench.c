/*
 * gupbench: Linux's own GUP-fast benchmark (mm/gup_test.c, CONFIG_GUP_TEST)
 * on a ppc64le guest, so that `make bench` can put our kernel's GUP-fast
 * beside the same operation in Linux, timed by Linux itself.
 *
 * It runs as /init of a throw-away initramfs (bench/linux/gup-test.sh
 * builds it and the kernel), mounts /proc, /sys and debugfs, opens
 * /sys/kernel/debug/gup_test and, on two regions of gupbench.mib MiB each,
 *
 *   small  MADV_NOHUGEPAGE, every 64K page written first
 *   huge   aligned to the THP size, MADV_HUGEPAGE, written; checked to be
 *          THPs through /proc/self/pagemap + /proc/kpageflags
 *
 * issues the ioctls PIN_FAST_BENCHMARK (pin_user_pages_fast, then
 * unpin_user_pages) and GUP_FAST_BENCHMARK (get_user_pages_fast, then
 * put_page) with FOLL_WRITE and nr_pages_per_call 32 and 1.  The kernel
 * times the pinning loop over the whole region and the release apart
 * (ktime, whole microseconds: get_delta_usec, put_delta_usec); the region
 * is thousands of pages, so the rounding is below 0.1 %.  This program
 * also reads the timebase (mftb) around each ioctl.  One line per result,
 * per page, in microseconds, min/median/max over the repetitions:
 *
 *   LINUXBENCH {"name":"pin_fast_small_32_pin","unit":"us","min":..,"median":..,"max":..,"reps":10,"per":"page",...}
 *
 * <ioctl>_<region>_<pages per call>_{pin,unpin,ioctl}: pin = get_delta_usec,
 * unpin = put_delta_usec, ioctl = the whole ioctl on the timebase (the
 * pages array's allocation, the pinned check and the system call too).
 *
 * Options, from the kernel command line (this is PID 1, so no argv):
 *   gupbench.reps=N   timed ioctls per result, after one warm-up (default 10)
 *   gupbench.mib=N    size of each region in MiB (default 512)
 *
 * struct gup_test and the ioctl numbers are those of Linux 6.1's
 * mm/gup_test.h (the selftest is tools/testing/selftests/vm/gup_test.c).
 * Built with powerpc64le-linux-gnu-gcc -std=c99 -O2 -static.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linuxbench.h"


/* Linux 6.1, mm/gup_test.h */
#define GUP_TEST_MAX_PAGES_TO_DUMP 8
struct gup_test {
    uint64_t get_delta_usec;
    uint64_t put_delta_usec;
    uint64_t addr;
    uint64_t size;
    uint32_t nr_pages_per_call;
    uint32_t gup_flags;
    uint32_t test_flags;
    uint32_t which_pages[GUP_TEST_MAX_PAGES_TO_DUMP];
};
_Static_assert(offsetof(struct gup_test, nr_pages_per_call) == 32, "gup_test layout");
_Static_assert(offsetof(struct gup_test, which_pages) == 44, "gup_test layout");
_Static_assert(sizeof(struct gup_test) == 80, "gup_test size (the ioctl numbers encode it)");
#define GUP_FAST_BENCHMARK _IOWR('g', 1, struct gup_test)
#define PIN_FAST_BENCHMARK _IOWR('g', 2, struct gup_test)
/* include/linux/mm.h */
#define FOLL_WRITE 0x01

#define MAX_REPS 1000
#define WARMUP 1     /* untimed first ioctl of each result: QEMU translates the path */
#define GUP_TEST_FILE "/sys/kernel/debug/gup_test"

static size_t pmd;
static int reps = 10;
static size_t mib = 512;

static void emit(const char *name, double *v, int n, const char *extra)
{
    qsort(v, n, sizeof *v, cmp_double);
    double med = (n & 1) ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    out("LINUXBENCH {\"name\":\"%s\",\"unit\":\"us\",\"min\":%.5f,\"median\":%.5f,\"max\":%.5f,\"reps\":%d%s}",
        name, v[0], med, v[n - 1], n, extra);
}

static void poweroff(void)
{
    sync();
    reboot(RB_POWER_OFF);
    _exit(1);
}

static void die(const char *what)
{
    out("LINUXBENCH {\"name\":\"error\",\"status\":\"failed\",\"error\":\"%s: %s\"}", what, strerror(errno));
    poweroff();
}

/* The value of "key=" on the kernel command line, or dflt. */
static long cmdline_option(const char *key, long dflt)
{
    char buf[4096];
    if (read_file("/proc/cmdline", buf, sizeof buf) <= 0)
        return dflt;
    char *o = strstr(buf, key);
    return o ? atol(o + strlen(key)) : dflt;
}

static void write_pages(char *p, size_t len)
{
    for (size_t o = 0; o < len; o += page)
        *(volatile char *)(p + o) = 1;
}

/* The THPs of [p, p + len): how many of its PMD-sized pieces are huge. */
static int count_thp(const char *p, size_t len, int *pieces)
{
    int huge = 0;
    *pieces = (int)(len / pmd);
    for (size_t o = 0; o < len; o += pmd)
        huge += is_thp(p + o) == 1;
    return huge;
}

/* One result: the ioctl `cmd` over [p, p + len) with nr pages per call. */
static void bench(int fd, unsigned long cmd, const char *what, const char *kind, char *p, size_t len,
                  unsigned nr, const char *extra)
{
    double pin[MAX_REPS], unpin[MAX_REPS], call[MAX_REPS];
    double pages = (double)(len / page);
    char name[96];
    for (int r = -WARMUP; r < reps; r++) {
        struct gup_test g;
        memset(&g, 0, sizeof g);
        g.addr = (uintptr_t)p;
        g.size = len;
        g.nr_pages_per_call = nr;
        g.gup_flags = FOLL_WRITE;
        uint64_t t0 = mftb();
        int rc = ioctl(fd, cmd, &g);
        uint64_t t1 = mftb();
        if (rc || g.size != len) {
            snprintf(name, sizeof name, "%s_%s_%u", what, kind, nr);
            out("LINUXBENCH {\"name\":\"%s_pin\",\"status\":\"failed\",\"errno\":%d,\"error\":\"%s\","
                "\"pinned_bytes\":%llu,\"bytes\":%zu}",
                name, rc ? errno : 0, rc ? strerror(errno) : "short", (unsigned long long)g.size, len);
            return;
        }
        if (r >= 0) {
            pin[r] = (double)g.get_delta_usec / pages;
            unpin[r] = (double)g.put_delta_usec / pages;
            call[r] = tb_us(t1 - t0) / pages;
        }
    }
    char more[256];
    snprintf(more, sizeof more, ",\"per\":\"page\",\"pages\":%.0f,\"pages_per_call\":%u%s", pages, nr, extra);
    snprintf(name, sizeof name, "%s_%s_%u_pin", what, kind, nr);
    emit(name, pin, reps, more);
    snprintf(name, sizeof name, "%s_%s_%u_unpin", what, kind, nr);
    emit(name, unpin, reps, more);
    snprintf(name, sizeof name, "%s_%s_%u_ioctl", what, kind, nr);
    emit(name, call, reps, more);
}

static void bench_region(int fd, const char *kind, char *p, size_t len, const char *extra)
{
    static const unsigned per_call[] = { 32, 1 };
    for (unsigned i = 0; i < sizeof per_call / sizeof *per_call; i++) {
        bench(fd, PIN_FAST_BENCHMARK, "pin_fast", kind, p, len, per_call[i], extra);
        bench(fd, GUP_FAST_BENCHMARK, "gup_fast", kind, p, len, per_call[i], extra);
    }
}

int main(void)
{
    char val[256];

    mkdir("/proc", 0555);
    mkdir("/sys", 0555);
    if (mount("proc", "/proc", "proc", 0, NULL))
        die("mount /proc");
    if (mount("sysfs", "/sys", "sysfs", 0, NULL))
        die("mount /sys");
    if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL))
        die("mount debugfs on /sys/kernel/debug");

    if (file_field("/proc/cpuinfo", "timebase", val, sizeof val))
        die("no timebase line in /proc/cpuinfo");
    tb_hz = strtod(val, NULL);
    page = sysconf(_SC_PAGESIZE);
    reps = (int)cmdline_option("gupbench.reps=", 10);
    if (reps < 1)
        reps = 1;
    if (reps > MAX_REPS)
        reps = MAX_REPS;
    long m = cmdline_option("gupbench.mib=", 512);
    mib = m < 1 ? 1 : m > 512 ? 512 : (size_t)m;
    size_t len = mib << 20;

    struct kernel_info k;
    read_kernel_info(&k);
    pmd = k.pmd;
    out("LINUXBENCH {\"name\":\"info\",\"kernel\":\"%s\",\"mmu\":\"%s\",\"cpus\":%ld,\"page_size\":%ld,"
        "\"thp_pmd_size\":%zu,\"thp_enabled\":\"%s\",\"region\":%zu,\"tb_hz\":%.0f,\"reps\":%d,"
        "\"ioctl_gup_fast\":\"0x%lx\",\"ioctl_pin_fast\":\"0x%lx\"}",
        k.u.release, k.mmu, sysconf(_SC_NPROCESSORS_ONLN), page, pmd, k.thp, len, tb_hz, reps,
        (unsigned long)GUP_FAST_BENCHMARK, (unsigned long)PIN_FAST_BENCHMARK);

    int fd = open(GUP_TEST_FILE, O_RDWR);
    if (fd < 0)
        die("open " GUP_TEST_FILE);

    /* Small pages: THP is "always", so NOHUGEPAGE before the first write. */
    char *small = map_aligned(len, pmd ? pmd : (size_t)page);
    if (madvise(small, len, MADV_NOHUGEPAGE))
        die("madvise MADV_NOHUGEPAGE");
    write_pages(small, len);
    int pieces = 0, huge = pmd ? count_thp(small, len, &pieces) : 0;
    char extra[128];
    snprintf(extra, sizeof extra, ",\"bytes\":%zu,\"thp\":%d", len, huge);
    bench_region(fd, "small", small, len, extra);
    munmap(small, len);

    if (!pmd) {
        emit_skipped("pin_fast_huge", "no THP on this MMU (hash without 16M pages)");
    } else {
        char *big = map_aligned(len, pmd);
        if (madvise(big, len, MADV_HUGEPAGE))
            die("madvise MADV_HUGEPAGE");
        write_pages(big, len);
        huge = count_thp(big, len, &pieces);
        if (huge < pieces) {
            out("LINUXBENCH {\"name\":\"thp_check\",\"status\":\"failed\",\"error\":\"%d of %d PMD pieces are THPs\"}",
                huge, pieces);
        }
        if (huge == 0) {
            emit_skipped("pin_fast_huge", "the MADV_HUGEPAGE region got no THP");
        } else {
            snprintf(extra, sizeof extra, ",\"bytes\":%zu,\"thp_size\":%zu,\"thp\":%d,\"thp_of\":%d",
                     len, pmd, huge, pieces);
            bench_region(fd, "huge", big, len, extra);
        }
        munmap(big, len);
    }

    close(fd);
    out("LINUXBENCH {\"name\":\"done\",\"status\":\"ok\"}");
    poweroff();
    return 0;
}
