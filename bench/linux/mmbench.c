/*
 * mmbench: times, on a Linux ppc64le guest, the mm operations that the
 * ppc64 kernel of this repository implements, so that `make bench` can put
 * the two side by side on the same QEMU.
 *
 * It runs as /init of a throw-away initramfs (bench/linux/run.sh builds it),
 * mounts /proc and /sys, measures, prints one line per result and powers the
 * machine off:
 *
 *   LINUXBENCH {"name":"fault_base_page","unit":"us","min":..,"median":..,"max":..,"reps":20}
 *
 * Clock: the timebase (mftb), whose frequency is the "timebase" line of
 * /proc/cpuinfo; the same clock the bare-metal kernel uses, so boot figures
 * ("since machine reset") compare directly.  Every repetition sets up fresh
 * memory untimed and times one operation; a result reports min/median/max
 * over the repetitions in microseconds.
 *
 * Options, from the kernel command line (this is PID 1, so no argv):
 *   mmbench.reps=N   repetitions per result (default 20)
 *
 * Plain C99 + Linux system calls; built with
 *   powerpc64le-linux-gnu-gcc -std=gnu99 -O2 -static -Wall -Wextra -pthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linuxbench.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1; older headers lack it */
#endif

#define MAX_REPS 1000
/* Untimed first runs of each loop: the first pass through a kernel path
 * pays for QEMU's translation of it, which is not what is measured. */
#define WARMUP 1

static size_t pmd;           /* THP size: 2 MiB radix, 16 MiB hash, 0 = no THP */
static size_t region;        /* size of the THP/collapse regions (pmd, or 2 MiB) */
static int reps = 20;
static int ncpus = 1;

/* ---------- output: one write() per line, so kernel messages on the same
 * console cannot land in the middle of a result ---------- */

/* extra: either "" or a string starting with ',' holding more JSON fields */
static void emit(const char *name, double *v, int n, const char *extra)
{
    if (n <= 0) {
        out("LINUXBENCH {\"name\":\"%s\",\"status\":\"failed\",\"error\":\"no sample\"%s}", name, extra);
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    double med = (n & 1) ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    out("LINUXBENCH {\"name\":\"%s\",\"unit\":\"us\",\"min\":%.3f,\"median\":%.3f,\"max\":%.3f,\"reps\":%d%s}",
        name, v[0], med, v[n - 1], n, extra);
}

static void emit_failed(const char *name, int err, int ok, int tried)
{
    out("LINUXBENCH {\"name\":\"%s\",\"status\":\"failed\",\"errno\":%d,\"error\":\"%s\",\"ok\":%d,\"reps\":%d}",
        name, err, strerror(err), ok, tried);
}

static void die(const char *what)
{
    out("LINUXBENCH {\"name\":\"error\",\"status\":\"failed\",\"error\":\"%s: %s\"}", what, strerror(errno));
    reboot(RB_POWER_OFF);
    _exit(1);
}

/* ---------- small helpers ---------- */

/* Small pages only: with THP "always" (Debian's default) a touched aligned
 * region would otherwise be backed by a THP. */
static char *map_small(size_t len)
{
    char *p = map_aligned(len, page);
    madvise(p, len, MADV_NOHUGEPAGE);
    return p;
}

static void touch(char *p, size_t len)
{
    for (size_t o = 0; o < len; o += page)
        *(volatile char *)(p + o) = 1;
}

static void pin_to_cpu(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

/* ---------- spinners: another vCPU busy in the same mm (thread) or in
 * another mm (process, the control for host CPU contention).  A busy
 * thread of the same mm makes a one-page flush broadcast (tlbie) or an IPI
 * instead of a local tlbiel. ---------- */

static volatile int spin_stop;
static pthread_t spin_thread;
static pid_t spin_pid;

static void *spin_fn(void *arg)
{
    (void)arg;
    pin_to_cpu(1);
    while (!spin_stop) {}
    return NULL;
}

static void spin_start(int proc)
{
    spin_stop = 0;
    if (proc) {
        spin_pid = fork();
        if (spin_pid < 0)
            die("fork");
        if (spin_pid == 0) {
            pin_to_cpu(1);
            for (;;) {}
        }
    } else if (pthread_create(&spin_thread, NULL, spin_fn, NULL)) {
        die("pthread_create");
    }
    usleep(20000); /* let it get onto its CPU */
}

static void spin_end(int proc)
{
    if (proc) {
        kill(spin_pid, SIGKILL);
        waitpid(spin_pid, NULL, 0);
    } else {
        spin_stop = 1;
        pthread_join(spin_thread, NULL);
    }
}

/* ---------- the measurements ---------- */

/* Anonymous fault-in, per base page: touch every page of a fresh 2 MiB
 * small-page region; then its munmap, per page (the zap, the TLB flush,
 * the pages and the emptied table freed: one system call for them all). */
static void bench_fault_base(void)
{
    double v[MAX_REPS], u[MAX_REPS];
    size_t len = 2u << 20;
    for (int r = -WARMUP; r < reps; r++) {
        char *p = map_small(len);
        uint64_t t0 = mftb();
        touch(p, len);
        uint64_t t1 = mftb();
        munmap(p, len);
        uint64_t t2 = mftb();
        if (r >= 0) {
            v[r] = tb_us(t1 - t0) / (double)(len / page);
            u[r] = tb_us(t2 - t1) / (double)(len / page);
        }
    }
    emit("fault_base_page", v, reps, ",\"per\":\"page\"");
    emit("unmap_base_page", u, reps, ",\"per\":\"page\"");
}

/* A system call's round trip: getpid through syscall(2), so that no C
 * library cache answers it, 1000 calls per repetition. */
static void bench_syscall(void)
{
    double v[MAX_REPS];
    const int calls = 1000;
    for (int r = -WARMUP; r < reps; r++) {
        uint64_t t0 = mftb();
        for (int i = 0; i < calls; i++)
            syscall(SYS_getpid);
        uint64_t t1 = mftb();
        if (r >= 0)
            v[r] = tb_us(t1 - t0) / (double)calls;
    }
    emit("syscall_getpid", v, reps, ",\"per\":\"call\"");
}

/* One write fault on a fresh MADV_HUGEPAGE region: allocates, zeroes and
 * maps one THP (when the MMU has THP). */
static void bench_fault_thp(void)
{
    double v[MAX_REPS], per[MAX_REPS];
    int huge = 0;
    for (int r = -WARMUP; r < reps; r++) {
        char *p = map_aligned(region, region);
        madvise(p, region, MADV_HUGEPAGE);
        uint64_t t0 = mftb();
        *(volatile char *)p = 1;
        uint64_t t1 = mftb();
        if (r >= 0) {
            v[r] = tb_us(t1 - t0);
            per[r] = v[r] / (double)(region / page);
            huge += is_thp(p) == 1;
        }
        munmap(p, region);
    }
    char extra[128];
    snprintf(extra, sizeof extra, ",\"bytes\":%zu,\"huge_ok\":%d", region, huge);
    emit("fault_thp", v, reps, extra);
    emit("fault_thp_per_base_page", per, reps, extra);
}

/* MADV_COLLAPSE of one PMD-sized region faulted in as small pages, each
 * page holding a distinct word that must survive the copy. */
static void bench_collapse(const char *name, int spin)
{
    double v[MAX_REPS], per[MAX_REPS];
    int ok = 0, huge = 0, huge_before = 0, bad = 0, err = 0;
    size_t npages = region / page;
    if (spin)
        spin_start(spin == 2);
    for (int r = -WARMUP; r < reps; r++) {
        char *p = map_aligned(region, region);
        madvise(p, region, MADV_NOHUGEPAGE);
        for (size_t i = 0; i < npages; i++)
            *(volatile uint64_t *)(p + i * page) = 0x5a5a000000000000ull + i;
        if (r >= 0)
            huge_before += is_thp(p) == 1;
        madvise(p, region, MADV_HUGEPAGE); /* NOHUGEPAGE would refuse the collapse */
        uint64_t t0 = mftb();
        int rc = madvise(p, region, MADV_COLLAPSE);
        uint64_t t1 = mftb();
        if (rc) {
            err = errno;
        } else if (r >= 0) {
            v[ok] = tb_us(t1 - t0);
            per[ok] = v[ok] / (double)npages;
            ok++;
            huge += is_thp(p) == 1;
            for (size_t i = 0; i < npages; i++)
                bad += *(volatile uint64_t *)(p + i * page) != 0x5a5a000000000000ull + i;
        }
        munmap(p, region);
    }
    if (spin)
        spin_end(spin == 2);
    if (ok < reps) {
        emit_failed(name, err, ok, reps);
        return;
    }
    char extra[160], pname[80];
    snprintf(extra, sizeof extra, ",\"bytes\":%zu,\"huge_ok\":%d,\"huge_before\":%d,\"data_bad\":%d",
             region, huge, huge_before, bad);
    emit(name, v, ok, extra);
    snprintf(pname, sizeof pname, "%s_per_base_page", name);
    emit(pname, per, ok, extra);
}

/* mprotect RW->R->RW of one written page: a PTE change and a one-page TLB
 * flush each way (the PTE is re-dirtied, untimed, before each repetition). */
static void bench_mprotect(const char *name, int spin)
{
    double v[MAX_REPS];
    char *p = map_small(page);
    if (spin)
        spin_start(spin == 2);
    for (int r = -WARMUP; r < reps; r++) {
        *(volatile char *)p = (char)r;
        uint64_t t0 = mftb();
        if (mprotect(p, page, PROT_READ) || mprotect(p, page, PROT_READ | PROT_WRITE))
            die("mprotect");
        uint64_t t1 = mftb();
        if (r >= 0)
            v[r] = tb_us(t1 - t0);
    }
    if (spin)
        spin_end(spin == 2);
    munmap(p, page);
    emit(name, v, reps, "");
}

/* vmsplice(2) of user pages into a pipe: the kernel pins them through
 * get_user_pages_fast (iov_iter_get_pages).  The read that drains the
 * pipe (copy out + unpin) is timed apart. */
static void bench_vmsplice(const char *name, char *src, int npages)
{
    double call[MAX_REPS], drain[MAX_REPS];
    size_t len = (size_t)npages * page;
    char *dst = map_small(len);
    int pfd[2];
    touch(dst, len);
    if (pipe(pfd))
        die("pipe");
    fcntl(pfd[1], F_SETPIPE_SZ, (int)len); /* >= 16 slots; 16 is the default */
    for (int r = -WARMUP; r < reps; r++) {
        struct iovec iov = { src, len };
        uint64_t t0 = mftb();
        ssize_t n = vmsplice(pfd[1], &iov, 1, 0);
        uint64_t t1 = mftb();
        if (n != (ssize_t)len) {
            if (n < 0)
                emit_failed(name, errno, r < 0 ? 0 : r, reps);
            else
                out("LINUXBENCH {\"name\":\"%s\",\"status\":\"failed\",\"error\":\"short vmsplice %zd of %zu\"}",
                    name, n, len);
            /* drain what went in and give up */
            while (n > 0) {
                ssize_t m = read(pfd[0], dst, len);
                if (m <= 0)
                    break;
                n -= m;
            }
            goto done;
        }
        size_t got = 0;
        uint64_t t2 = mftb();
        while (got < len) {
            ssize_t m = read(pfd[0], dst + got, len - got);
            if (m <= 0)
                die("read pipe");
            got += m;
        }
        uint64_t t3 = mftb();
        if (r >= 0) {
            call[r] = tb_us(t1 - t0);
            drain[r] = tb_us(t3 - t2);
        }
    }
    {
        char cname[80], dname[80];
        snprintf(cname, sizeof cname, "%s_call", name);
        snprintf(dname, sizeof dname, "%s_drain_read", name);
        emit(cname, call, reps, "");
        emit(dname, drain, reps, "");
    }
done:
    close(pfd[0]);
    close(pfd[1]);
    munmap(dst, len);
}

/* process_vm_readv(2) from our own pid: pin_user_pages_remote, the
 * GUP-slow path under the mmap lock, plus the copy.  memcpy of the same
 * bytes is the baseline for the copy part. */
static void bench_pvreadv(const char *name, const char *mname, char *src, int npages)
{
    double v[MAX_REPS], m[MAX_REPS];
    size_t len = (size_t)npages * page;
    char *dst = map_small(len);
    touch(dst, len);
    pid_t self = getpid();
    for (int r = -WARMUP; r < reps; r++) {
        struct iovec l = { dst, len }, rv = { src, len };
        uint64_t t0 = mftb();
        ssize_t n = process_vm_readv(self, &l, 1, &rv, 1, 0);
        uint64_t t1 = mftb();
        if (n != (ssize_t)len) {
            emit_failed(name, n < 0 ? errno : EIO, r < 0 ? 0 : r, reps);
            munmap(dst, len);
            return;
        }
        double call = tb_us(t1 - t0);
        t0 = mftb();
        memcpy(dst, src, len);
        __asm__ __volatile__("" ::: "memory"); /* keep the copy */
        t1 = mftb();
        if (r >= 0) {
            v[r] = call;
            m[r] = tb_us(t1 - t0);
        }
    }
    munmap(dst, len);
    emit(name, v, reps, "");
    emit(mname, m, reps, "");
}

static void single(const char *name, double us)
{
    emit(name, &us, 1, "");
}

int main(void)
{
    uint64_t tb_start = mftb(); /* first thing: boot-to-init on the timebase */
    char buf[4096], val[256];

    mkdir("/proc", 0555);
    mkdir("/sys", 0555);
    if (mount("proc", "/proc", "proc", 0, NULL))
        die("mount /proc");
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    double up_init = -1;
    if (read_file("/proc/uptime", buf, sizeof buf) > 0)
        up_init = strtod(buf, NULL);

    if (file_field("/proc/cpuinfo", "timebase", val, sizeof val))
        die("no timebase line in /proc/cpuinfo");
    tb_hz = strtod(val, NULL);
    page = sysconf(_SC_PAGESIZE);
    ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);

    if (read_file("/proc/cmdline", buf, sizeof buf) > 0) {
        char *o = strstr(buf, "mmbench.reps=");
        if (o)
            reps = atoi(o + strlen("mmbench.reps="));
    }
    if (reps < 1)
        reps = 1;
    if (reps > MAX_REPS)
        reps = MAX_REPS;

    /* THP is available iff the sysfs directory exists (a hash guest without
     * a 16M page size has none); its PMD size is the collapse unit. */
    struct kernel_info k;
    read_kernel_info(&k);
    pmd = k.pmd;
    region = pmd ? pmd : 2u << 20;

    out("LINUXBENCH {\"name\":\"info\",\"kernel\":\"%s\",\"mmu\":\"%s\",\"cpus\":%d,\"page_size\":%ld,"
        "\"thp_pmd_size\":%zu,\"thp_enabled\":\"%s\",\"region\":%zu,\"tb_hz\":%.0f,\"reps\":%d}",
        k.u.release, k.mmu, ncpus, page, pmd, k.thp, region, tb_hz, reps);

    single("boot_init_tb", tb_us(tb_start)); /* since machine reset (TB = 0) */
    if (up_init >= 0)
        single("boot_init_uptime", up_init * 1e6); /* since Linux's clock start; 10 ms steps */

    pin_to_cpu(0); /* spinners go on CPU 1; keep the measuring thread still */

    bench_fault_base();
    bench_fault_thp();
    bench_syscall();
    bench_collapse("collapse", 0);
    bench_mprotect("mprotect_pair", 0);

    /* Sources for GUP: 16 written small pages, and a THP. */
    char *small = map_small(16 * page);
    touch(small, 16 * page);
    bench_vmsplice("vmsplice_1p", small, 1);
    bench_vmsplice("vmsplice_16p", small, 16);
    char *huge = map_aligned(region, region);
    madvise(huge, region, MADV_HUGEPAGE);
    touch(huge, region);
    if (is_thp(huge) == 1)
        bench_vmsplice("vmsplice_16p_thp", huge, 16);
    else
        emit_skipped("vmsplice_16p_thp_call", pmd ? "source not huge" : "no THP on this MMU");
    bench_pvreadv("gupslow_pvreadv_1p_call", "memcpy_1p", small, 1);
    bench_pvreadv("gupslow_pvreadv_16p_call", "memcpy_16p", small, 16);
    munmap(huge, region);
    munmap(small, 16 * page);

    if (ncpus >= 2) {
        bench_mprotect("mprotect_pair_spin1", 1);
        bench_collapse("collapse_spin1", 1);
        bench_mprotect("mprotect_pair_spin1_proc", 2);
        bench_collapse("collapse_spin1_proc", 2);
    } else {
        emit_skipped("spin1", "1 CPU online");
    }

    if (read_file("/proc/uptime", buf, sizeof buf) > 0)
        single("boot_end_uptime", strtod(buf, NULL) * 1e6);
    out("LINUXBENCH {\"name\":\"done\",\"status\":\"ok\"}");
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
