// SPDX-License-Identifier: GPL-2.0-only
/*
 * oomrace-stress: provoke and detect OOM-reaper / TLB-flush memory corruption.
 *
 * The bug class (CVE-2017-18202): the OOM reaper tore down a dying process's
 * memory with a "fullmm" TLB gather, arm64 skipped the TLB flush for fullmm,
 * so threads of the victim that were still running kept storing through stale
 * TLB entries into pages that had already gone back to the page allocator.
 *
 * To catch that we need three parties running at once:
 *   - WRITERS: threads of a victim that store continuously into a small hot
 *     set of pages, every word tagged with who wrote it (pid/thread/iteration);
 *   - a REAPER that frees the writers' pages while they are still running
 *     (process_mrelease, the memcg OOM killer + oom_reaper, munmap, madvise);
 *   - a CHECKER, a separate process that allocates fresh pages right when the
 *     reap frees them (so it receives the freed pages), fills them with its own
 *     pattern and re-verifies them; a foreign word there is the corruption.
 *
 * Output: JSON lines on stdout (start, progress, corruption, error, summary).
 * Exit: 0 clean, 1 corrupted, 2 usage error, 3 runtime error.
 *
 * Builds with: gcc -static -O2 -Wall -Wextra -pthread (any arch, any libc with
 * Linux syscall(2)); the new syscalls are called by number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Same numbers in the x86_64 table and the generic table that arm64 uses. */
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_mrelease
#define SYS_process_mrelease 448
#endif
#define FUTEX_WAIT_OP 0 /* FUTEX_WAIT: shared (not _PRIVATE): the word is in MAP_SHARED memory */
#define FUTEX_WAKE_OP 1
#define CGROUP2_MAGIC 0x63677270

enum exit_code { EXIT_CLEAN = 0, EXIT_CORRUPTED = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

#define PAGE_WORDS_MAX 8192 /* words per page up to 64 KiB pages */
#define MAX_WRITERS 64
#define MAX_REPORTS 64       /* corruption lines printed; more are only counted */
#define CHECK_PASSES 4       /* verify passes over each checker region */
#define STORE_REPEAT 4       /* passes over the hot set between counter bumps */
#define SELF_CHECK_EVERY 8   /* mutate writers verify their own pages every Nth bump */
#define OOM_SLACK_MB 8       /* memory.max = region + this */
#define WAIT_GRACE_S 5.0     /* waits may exceed --duration by this much */
#define VICTIM_KILL_S 20     /* oom: the OOM killer must have ended a victim by then */
#define VICTIM_EXIT_S 10     /* a victim we SIGKILL ourselves must be gone by then */
#define MAX_STUCK 3          /* oom: victims that never exit before the run gives up */
/* Victims keep their writers' hot pages in a mapping of their own at this (free, low)
 * address: the reapers walk the address space upwards, so they free these pages
 * first, before the writers have taken their SIGKILL. */
#define HOT_SET_HINT ((void *)0x40000000UL)
#define ALARM_GRACE_S 60     /* last resort: alarm() kills everything */

/* A writer word: 16-bit magic | 16-bit pid | 8-bit thread | 24-bit iteration. */
#define WRITER_MAGIC 0x0a7eULL
/* A checker word: 16-bit magic | 48 bits derived from address and round. */
#define CHECK_MAGIC 0xc4ecULL
#define MAIN_THREAD_TAG 0xff /* the victim's main thread first-touches its region */
/* --inject-corruption plants this writer word in the checker's first round. */
#define INJECT_PID 4242
#define INJECT_THREAD 7
#define INJECT_ITERATION 99

/* ------------------------------------------------------------------ atomics */

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define ADD(x, v) __atomic_add_fetch(&(x), (v), __ATOMIC_ACQ_REL)
#define BARRIER() __asm__ __volatile__("" ::: "memory")

/* ------------------------------------------------------------------ options */

enum scenario_id { SC_MRELEASE, SC_OOM, SC_MUNMAP, SC_MADVISE, SC_MREMAP };

struct options {
	enum scenario_id scenario;
	long iterations;   /* 0: unlimited (the duration bounds the run) */
	double duration_s;
	int writers;
	long region_mb;
	int hot_pages;
	uint64_t seed;
	bool checker;
	long checker_mb;
	int window_ms;
	int pause_us;
	bool pin;
	double progress_s;
	const char *cgroup_root;
	bool inject;       /* plant one foreign word: proves the detector end to end */
	bool region_given; /* --region-mb on the command line (mremap has its own default) */
	bool checker_mb_given;
};

/* Everything the controller, victims, the mutator and the checker share. */
struct shared {
	uint32_t reap_seq;     /* futex word: bumped at each reap, wakes the checker */
	uint32_t reap_active;  /* a reap is going on (checker runs without pause) */
	int64_t last_reap_ns;  /* CLOCK_MONOTONIC of the last reap */
	uint32_t stop;
	uint32_t iteration;    /* the mutator's current iteration (writer tag) */
	uint64_t writer_passes[MAX_WRITERS];
	uint64_t iterations;
	uint64_t reaps;
	uint64_t faults;
	uint64_t checker_rounds;
	uint64_t checker_pages;
	uint64_t checker_alloc_failures;
	uint64_t corrupt_pages;
	uint64_t corrupt_words;
	uint32_t reports;
	uint64_t moves;        /* mremap: moves of the whole mapping */
	uint64_t punches;      /* mremap: single-page punch holes during a move */
	uint64_t reader_passes;
	uint64_t dropped_passes; /* mremap: passes whose round changed under them */
	uint64_t zero_reads;   /* mremap: zero words read (unproven: see the scenario) */
	uint64_t move_ns;      /* mremap: total time inside mremap() */
	uint64_t exposed_passes; /* mremap: passes begun after a punch and ended in the same move:
				  * the race window was open to the readers */

	int child_errno;       /* a child's setup failure, for the controller to report */
	char child_what[96];
};

/* ------------------------------------------------------------------ globals */

static struct options opt;
static struct shared *sh;
static long page_size;
static size_t page_words;
static int64_t t_start_ns;

/* Children the controller must kill on the way out. */
static volatile pid_t g_checker_pid, g_worker_pid;
#define CGROUP_ROOT_MAX 400
static char g_cgroup_dir[CGROUP_ROOT_MAX + 32]; /* set while the oom cgroup exists */
static volatile sig_atomic_t g_signalled;

/* CPU placement: the reaper and the checker share reap_cpu so the checker's
 * first touches come from the per-CPU free list that the reap just refilled;
 * writers go on the other CPUs. */
static int reap_cpu = -1;
static int other_cpus[CPU_SETSIZE];
static int n_other_cpus;

/* Controller bookkeeping for the summary. */
static uint64_t g_reap_gone, g_reap_other, g_errors, g_oom_kills;
static uint64_t g_oom_kills_before; /* in groups left behind to stuck victims */
static uint64_t g_oom_late;   /* oom victims the OOM killer had not ended in time */
static uint64_t g_stuck;      /* victims that did not exit even after our SIGKILL */
static bool g_error;

/* ------------------------------------------------------------------ time */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double since_s(int64_t t0) { return (double)(now_ns() - t0) / 1e9; }

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_signalled)
		;
}

/* The hard end of the run: every wait stops here. */
static int64_t run_deadline_ns(void) { return t_start_ns + (int64_t)(opt.duration_s * 1e9); }
static int64_t wait_deadline_ns(void) { return run_deadline_ns() + (int64_t)(WAIT_GRACE_S * 1e9); }

static bool should_stop(void)
{
	return g_signalled || LOAD(sh->stop) || now_ns() >= run_deadline_ns();
}

/* ------------------------------------------------------------------ JSON lines */

/* One output line is built in a buffer and written with one write(2) so that
 * lines from the controller, checker and writers do not interleave. */
struct line {
	char buf[2048];
	size_t len;
	bool first;
};

static void line_put(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_put(struct line *l, const char *fmt, ...)
{
	va_list ap;
	if (l->len >= sizeof(l->buf))
		return;
	va_start(ap, fmt);
	int n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->len += (size_t)n;
	if (l->len >= sizeof(l->buf))
		l->len = sizeof(l->buf) - 1;
}

static void line_key(struct line *l, const char *key)
{
	line_put(l, "%s\"%s\":", l->first ? "" : ",", key);
	l->first = false;
}

static void line_escaped(struct line *l, const char *s)
{
	line_put(l, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			line_put(l, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			line_put(l, "\\u%04x", c);
		else
			line_put(l, "%c", c);
	}
	line_put(l, "\"");
}

static void line_str(struct line *l, const char *key, const char *v) { line_key(l, key); line_escaped(l, v); }
static void line_u64(struct line *l, const char *key, uint64_t v) { line_key(l, key); line_put(l, "%" PRIu64, v); }
static void line_i64(struct line *l, const char *key, int64_t v) { line_key(l, key); line_put(l, "%" PRId64, v); }
static void line_f64(struct line *l, const char *key, double v) { line_key(l, key); line_put(l, "%.6f", v); }
static void line_bool(struct line *l, const char *key, bool v) { line_key(l, key); line_put(l, v ? "true" : "false"); }
static void line_hex(struct line *l, const char *key, uint64_t v) { line_key(l, key); line_put(l, "\"0x%016" PRIx64 "\"", v); }

static void line_begin(struct line *l, const char *event)
{
	l->len = 0;
	l->first = true;
	line_put(l, "{");
	line_str(l, "event", event);
}

static void line_obj_begin(struct line *l, const char *key)
{
	line_key(l, key);
	line_put(l, "{");
	l->first = true;
}

static void line_obj_end(struct line *l)
{
	line_put(l, "}");
	l->first = false;
}

static void line_emit(struct line *l)
{
	line_put(l, "}");
	if (l->len > sizeof(l->buf) - 2)
		l->len = sizeof(l->buf) - 2;
	l->buf[l->len++] = '\n';
	size_t off = 0;
	while (off < l->len) {
		ssize_t n = write(STDOUT_FILENO, l->buf + off, l->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* stdout gone: nothing sensible to do */
		off += (size_t)n;
	}
}

/* ------------------------------------------------------------------ errors */

static const char *errno_name(int e)
{
	static const struct { int e; const char *name; } names[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { ESRCH, "ESRCH" }, { EINTR, "EINTR" },
		{ EIO, "EIO" }, { EBADF, "EBADF" }, { ECHILD, "ECHILD" }, { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EFAULT, "EFAULT" }, { EBUSY, "EBUSY" },
		{ EEXIST, "EEXIST" }, { ENODEV, "ENODEV" }, { ENOTDIR, "ENOTDIR" }, { EINVAL, "EINVAL" },
		{ ENOSPC, "ENOSPC" }, { EROFS, "EROFS" }, { ENOSYS, "ENOSYS" }, { ENOTSUP, "ENOTSUP" },
		{ ETIMEDOUT, "ETIMEDOUT" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return names[i].name;
	return "E?";
}

/* Report a failure of `what` (a syscall or step) with errno `err` (0: none).
 * A fatal one ends the run with exit code 3. */
static void report_error(bool fatal, const char *what, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void report_error(bool fatal, const char *what, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct line l;
	line_begin(&l, "error");
	line_str(&l, "message", msg);
	line_str(&l, "syscall", what);
	line_i64(&l, "errno", err);
	line_str(&l, "errno_name", err ? errno_name(err) : "");
	line_str(&l, "strerror", err ? strerror(err) : "");
	line_bool(&l, "fatal", fatal);
	line_emit(&l);

	g_errors++;
	if (fatal) {
		g_error = true;
		STORE(sh->stop, 1);
	}
}

/* A child cannot print a controller error; it leaves the reason here. */
static void child_fail(const char *what, int err)
{
	if (LOAD(sh->child_errno) == 0) {
		snprintf(sh->child_what, sizeof(sh->child_what), "%s", what);
		STORE(sh->child_errno, err ? err : EIO);
	}
	_exit(EXIT_RUNTIME);
}

/* ------------------------------------------------------------------ words */

static inline uint64_t writer_word(unsigned pid, unsigned thread, uint32_t iter)
{
	return WRITER_MAGIC << 48 | (uint64_t)(pid & 0xffff) << 32 | (uint64_t)(thread & 0xff) << 24 |
	       (uint64_t)(iter & 0xffffff);
}

static inline bool is_writer_word(uint64_t w) { return w >> 48 == WRITER_MAGIC; }

static inline uint64_t check_word(uintptr_t addr, uint64_t salt)
{
	return CHECK_MAGIC << 48 | ((((uint64_t)addr >> 3) ^ salt) & 0xffffffffffffULL);
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ------------------------------------------------------------------ reports */

/* "provenance": who stored `found`, when it is a writer's word (null otherwise). */
static void line_provenance(struct line *l, uint64_t found)
{
	if (!is_writer_word(found)) {
		line_key(l, "provenance");
		line_put(l, "null");
		return;
	}
	line_obj_begin(l, "provenance");
	line_u64(l, "pid", (found >> 32) & 0xffff);
	line_u64(l, "thread", (found >> 24) & 0xff);
	line_u64(l, "iteration", found & 0xffffff);
	line_obj_end(l);
}

/* One line per corrupted page: its first bad word and how many words were bad. */
static void report_corruption(const char *source, uintptr_t addr, uint64_t expected, uint64_t found,
			      uint64_t bad_words, uint64_t round, int pass)
{
	ADD(sh->corrupt_pages, 1);
	ADD(sh->corrupt_words, bad_words);
	if (ADD(sh->reports, 1) > MAX_REPORTS)
		return;

	int64_t last = LOAD(sh->last_reap_ns);
	struct line l;
	line_begin(&l, "corruption");
	line_str(&l, "source", source);
	line_hex(&l, "address", addr);
	line_hex(&l, "expected", expected);
	line_hex(&l, "found", found);
	line_provenance(&l, found);
	line_key(&l, "seconds_since_reap");
	if (last)
		line_put(&l, "%.6f", (double)(now_ns() - last) / 1e9);
	else
		line_put(&l, "null");
	line_u64(&l, "bad_words", bad_words);
	line_u64(&l, "round", round);
	line_i64(&l, "pass", pass);
	line_i64(&l, "pid", getpid());
	line_emit(&l);
}

/* ------------------------------------------------------------------ CPUs */

static void init_cpus(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (!opt.pin || sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) < 2)
		return;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (reap_cpu < 0)
			reap_cpu = c;
		else
			other_cpus[n_other_cpus++] = c;
	}
}

/* Best effort: pinning only makes the race likelier, it is not required. */
static void pin_to(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void pin_writer(int index) { if (n_other_cpus) pin_to(other_cpus[index % n_other_cpus]); }

static void pin_away_from_reaper(void)
{
	if (!n_other_cpus)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	for (int i = 0; i < n_other_cpus; i++)
		CPU_SET(other_cpus[i], &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* ------------------------------------------------------------------ futex */

static void futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_OP, INT_MAX, NULL, NULL, 0);
}

static void futex_wait_ms(uint32_t *word, uint32_t seen, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	syscall(SYS_futex, word, FUTEX_WAIT_OP, seen, &ts, NULL, 0);
}

/* The reaper calls this right after it freed memory: the checker wakes and
 * starts allocating on the same CPU, where the freed pages sit. */
static void announce_reap(void)
{
	STORE(sh->last_reap_ns, now_ns());
	ADD(sh->reaps, 1);
	ADD(sh->reap_seq, 1);
	futex_wake_all(&sh->reap_seq);
}

static void set_reap_active(bool on)
{
	STORE(sh->reap_active, on ? 1u : 0u);
	ADD(sh->reap_seq, 1);
	futex_wake_all(&sh->reap_seq);
}

/* ------------------------------------------------------------------ children */

/* A child dies with the controller, whatever way the controller goes. */
static void become_child(pid_t parent)
{
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	alarm(0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(EXIT_RUNTIME);
}

/* waitpid with a deadline. Returns true and the status when the child was
 * reaped; false when it is still alive at the deadline or, if `interruptible`,
 * when SIGTERM/SIGINT asked us to stop. */
static bool wait_child_until(pid_t pid, int *status, int64_t deadline, bool interruptible)
{
	for (;;) {
		if (interruptible && g_signalled)
			return false;
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return true;
		if (r < 0 && errno != EINTR) {
			*status = 0;
			return true; /* not our child any more: nothing to wait for */
		}
		if (now_ns() >= deadline)
			return false;
		sleep_us(200);
	}
}

/* Stop a child for good: SIGKILL, then a bounded wait for its exit. */
static void kill_and_reap(pid_t pid, int *status)
{
	int st = 0;
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	if (!wait_child_until(pid, &st, now_ns() + 5000000000LL, false))
		report_error(false, "waitpid", ETIMEDOUT, "child %d did not exit 5 s after SIGKILL", (int)pid);
	if (status)
		*status = st;
}

/* Ask a child to stop (shared stop flag), then make sure it is gone. */
static void stop_child(volatile pid_t *slot, const char *name)
{
	pid_t pid = *slot;
	int st = 0;
	if (pid <= 0)
		return;
	STORE(sh->stop, 1);
	futex_wake_all(&sh->reap_seq);
	if (!wait_child_until(pid, &st, now_ns() + 2000000000LL, false))
		kill_and_reap(pid, &st);
	*slot = 0;
	if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
		report_error(false, name, 0, "%s process died of signal %d", name, WTERMSIG(st));
}

/* ------------------------------------------------------------------ writers */

/* One writer thread: a small hot set of pages it stores into forever. */
struct writer {
	pthread_t thread;
	int index;
	uint64_t *pages;     /* hot_pages consecutive pages */
	unsigned pid;
	uint32_t iteration;  /* fixed tag for victims; the mutator's counter otherwise */
	bool mutating;       /* munmap/madvise: faults and self-checks expected */
	uint64_t bumps;
};

/* Long straight-line runs of stores across each page keep the page's TLB
 * entry hot; the barrier stops the compiler from dropping "dead" stores. */
static inline void store_page(uint64_t *p, uint64_t v)
{
	for (size_t i = 0; i < page_words; i += 8) {
		p[i + 0] = v; p[i + 1] = v; p[i + 2] = v; p[i + 3] = v;
		p[i + 4] = v; p[i + 5] = v; p[i + 6] = v; p[i + 7] = v;
	}
	BARRIER();
}

static void store_hot_set(struct writer *w, uint64_t v)
{
	for (int r = 0; r < STORE_REPEAT; r++)
		for (int pg = 0; pg < opt.hot_pages; pg++)
			store_page(w->pages + (size_t)pg * page_words, v);
}

/* Victim writer (mrelease/oom): store until SIGKILL. */
static void *victim_writer(void *arg)
{
	struct writer *w = arg;
	uint64_t v = writer_word(w->pid, (unsigned)w->index, w->iteration);
	pin_writer(w->index);
	for (;;) {
		store_hot_set(w, v);
		ADD(sh->writer_passes[w->index], 1);
	}
	return NULL;
}

/* Mutate scenarios: the writer's own page may be zero (madvise, fresh remap)
 * or hold its own words; anything else was written by someone else. */
static void self_check(struct writer *w)
{
	for (int pg = 0; pg < opt.hot_pages; pg++) {
		uint64_t *p = w->pages + (size_t)pg * page_words;
		uint64_t bad = 0, first = 0;
		size_t first_i = 0;
		for (size_t i = 0; i < page_words; i++) {
			uint64_t x = p[i];
			if (x == 0 || (is_writer_word(x) && ((x >> 32) & 0xffff) == (w->pid & 0xffff) &&
				       ((x >> 24) & 0xff) == (unsigned)w->index))
				continue;
			if (!bad++) {
				first = x;
				first_i = i;
			}
		}
		if (bad)
			report_corruption("writer", (uintptr_t)&p[first_i],
					  writer_word(w->pid, (unsigned)w->index, LOAD(sh->iteration)),
					  first, bad, w->bumps, 0);
	}
}

static __thread sigjmp_buf t_jmp;
static __thread volatile sig_atomic_t t_armed;
static uintptr_t g_region_lo, g_region_hi;

/* A store into a range the mutator just unmapped faults: expected, counted,
 * and the writer resumes at its loop. Any other fault is a real crash. */
static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	uintptr_t a = (uintptr_t)si->si_addr;
	if (t_armed && a >= g_region_lo && a < g_region_hi) {
		t_armed = 0;
		siglongjmp(t_jmp, 1);
	}
	signal(sig, SIG_DFL); /* returning re-runs the access and dies normally */
}

/* SIGSEGV and SIGBUS to on_fault, for the threads that expect faults in their region. */
static void install_fault_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

static void mutate_writer_loop(struct writer *w)
{
	while (!LOAD(sh->stop)) {
		uint32_t iter = LOAD(sh->iteration);
		if (w->bumps % SELF_CHECK_EVERY == 0)
			self_check(w);
		store_hot_set(w, writer_word(w->pid, (unsigned)w->index, iter));
		w->bumps++;
		ADD(sh->writer_passes[w->index], 1);
	}
}

static void *mutate_writer(void *arg)
{
	struct writer *w = arg;
	pin_writer(w->index);
	if (sigsetjmp(t_jmp, 1) != 0)
		ADD(sh->faults, 1);
	t_armed = 1;
	mutate_writer_loop(w);
	t_armed = 0;
	return NULL;
}

static size_t region_bytes(void) { return (size_t)opt.region_mb << 20; }

/* Private anonymous memory at `hint` if that is free (NULL: anywhere). */
static uint64_t *map_region_at(void *hint, size_t bytes)
{
	void *p = mmap(hint, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_NOHUGEPAGE
	/* Base pages: freed pages are recycled one by one through the per-CPU lists. */
	madvise(p, bytes, MADV_NOHUGEPAGE);
#endif
	return p;
}

static uint64_t *map_region(size_t bytes) { return map_region_at(NULL, bytes); }

/* Start the writer threads, each on its own run of hot pages. */
static void start_writers(struct writer *ws, uint64_t *region, uint32_t iteration, bool mutating,
			  void *(*fn)(void *))
{
	for (int i = 0; i < opt.writers; i++) {
		struct writer *w = &ws[i];
		memset(w, 0, sizeof(*w));
		w->index = i;
		w->pages = region + (size_t)i * (size_t)opt.hot_pages * page_words;
		w->pid = (unsigned)getpid();
		w->iteration = iteration;
		w->mutating = mutating;
		int e = pthread_create(&w->thread, NULL, fn, w);
		if (e)
			child_fail("pthread_create", e);
	}
}

static void reset_writer_passes(void)
{
	for (int i = 0; i < MAX_WRITERS; i++)
		STORE(sh->writer_passes[i], 0);
}

static uint64_t total_writer_passes(void)
{
	uint64_t t = 0;
	for (int i = 0; i < opt.writers; i++)
		t += LOAD(sh->writer_passes[i]);
	return t;
}

/* True once every writer has finished at least `passes` passes. */
static bool writers_running(uint64_t passes)
{
	for (int i = 0; i < opt.writers; i++)
		if (LOAD(sh->writer_passes[i]) < passes)
			return false;
	return true;
}

/* ------------------------------------------------------------------ checker */

/* Allocate fresh memory (first touch takes pages straight off the free lists
 * the reap refilled), fill it with the checker pattern, verify it a few times
 * while stale-TLB writers may still be storing, then give it back. */
static void checker_round(uint64_t round, uint64_t salt)
{
	size_t bytes = (size_t)opt.checker_mb << 20;
	uint64_t *m = map_region(bytes);
	if (!m) {
		ADD(sh->checker_alloc_failures, 1);
		sleep_us(1000);
		return;
	}
	size_t words = bytes / sizeof(uint64_t);
	for (size_t i = 0; i < words; i++)
		m[i] = check_word((uintptr_t)&m[i], salt);
	if (opt.inject && round == 1) /* what a stale-TLB store from a victim looks like */
		m[words / 2 + 3] = writer_word(INJECT_PID, INJECT_THREAD, INJECT_ITERATION);
	BARRIER();

	for (int pass = 0; pass < CHECK_PASSES; pass++) {
		for (size_t pg = 0; pg < words; pg += page_words) {
			uint64_t *p = m + pg, bad = 0, first = 0;
			size_t first_i = 0;
			for (size_t i = 0; i < page_words; i++) {
				if (p[i] == check_word((uintptr_t)&p[i], salt))
					continue;
				if (!bad++) {
					first = p[i];
					first_i = i;
				}
			}
			if (!bad)
				continue;
			report_corruption("checker", (uintptr_t)&p[first_i],
					  check_word((uintptr_t)&p[first_i], salt), first, bad, round, pass);
			for (size_t i = 0; i < page_words; i++) /* report each new hit once */
				p[i] = check_word((uintptr_t)&p[i], salt);
		}
		ADD(sh->checker_pages, words / page_words);
		BARRIER();
	}
	munmap(m, bytes);
	ADD(sh->checker_rounds, 1);
}

/* Keep checking while a reap is going on and for --window-ms after the last. */
static bool checker_window_open(void)
{
	if (LOAD(sh->reap_active))
		return true;
	int64_t last = LOAD(sh->last_reap_ns);
	return last && now_ns() - last < (int64_t)opt.window_ms * 1000000LL;
}

static void checker_main(void)
{
	uint64_t rng = opt.seed ^ 0xc4ec;
	uint64_t round = 0;
	uint32_t seen = LOAD(sh->reap_seq);
	pin_to(reap_cpu);
	while (!LOAD(sh->stop)) {
		uint32_t seq = LOAD(sh->reap_seq);
		if (seq == seen && !checker_window_open()) {
			futex_wait_ms(&sh->reap_seq, seen, 100);
			continue;
		}
		seen = seq;
		do
			checker_round(++round, xorshift64(&rng));
		while (!LOAD(sh->stop) && checker_window_open());
	}
	_exit(EXIT_CLEAN);
}

static void start_checker(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		report_error(true, "fork", errno, "cannot start the checker process");
		return;
	}
	if (pid == 0) {
		become_child(parent);
		checker_main();
	}
	g_checker_pid = pid;
}

/* ------------------------------------------------------------------ progress */

static void emit_progress(void)
{
	struct line l;
	line_begin(&l, "progress");
	line_f64(&l, "elapsed", since_s(t_start_ns));
	line_u64(&l, "iterations", LOAD(sh->iterations));
	line_u64(&l, "reaps", LOAD(sh->reaps));
	line_u64(&l, "reap_failures_gone", g_reap_gone);
	line_u64(&l, "faults", LOAD(sh->faults));
	line_u64(&l, "writer_passes", total_writer_passes());
	line_u64(&l, "checker_rounds", LOAD(sh->checker_rounds));
	line_u64(&l, "checker_pages_checked", LOAD(sh->checker_pages));
	line_u64(&l, "corruptions", LOAD(sh->corrupt_pages));
	line_emit(&l);
}

static void maybe_progress(int64_t *next)
{
	if (now_ns() < *next)
		return;
	emit_progress();
	*next = now_ns() + (int64_t)(opt.progress_s * 1e9);
}

static bool iterations_done(uint64_t done)
{
	return opt.iterations > 0 && done >= (uint64_t)opt.iterations;
}

/* ------------------------------------------------------------------ victims */

static bool write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	size_t len = strlen(text);
	ssize_t n = write(fd, text, len);
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)len;
}

static bool read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, size - 1);
	int e = errno;
	close(fd);
	errno = e;
	if (n < 0)
		return false;
	buf[n] = 0;
	return true;
}

/* oom victims grow past memory.max so the memcg OOM killer picks them. */
static void grow_until_killed(void)
{
	size_t chunk = 1 << 20, limit = region_bytes() * 8 + ((size_t)OOM_SLACK_MB << 22);
	set_reap_active(true); /* the OOM kill is coming: checker, start allocating */
	for (size_t grown = 0; grown < limit; grown += chunk) {
		char *p = (char *)map_region(chunk);
		if (!p)
			break;
		for (size_t i = 0; i < chunk; i += (size_t)page_size)
			p[i] = 1;
	}
	for (;;) /* not killed: the controller times out and reports it */
		pause();
}

/* The victim process of mrelease/oom: writers + (for oom) a growing main thread. */
static void victim_main(uint32_t iteration, const char *cgroup_procs)
{
	static struct writer ws[MAX_WRITERS];
	char pid_text[32];

	pin_away_from_reaper();
	if (cgroup_procs) {
		snprintf(pid_text, sizeof(pid_text), "%d\n", (int)getpid());
		if (!write_file(cgroup_procs, pid_text))
			child_fail("write cgroup.procs", errno);
	}
	size_t hot_bytes = (size_t)opt.writers * (size_t)opt.hot_pages * (size_t)page_size;
	uint64_t *hot = map_region_at(HOT_SET_HINT, hot_bytes);
	uint64_t *region = map_region(region_bytes());
	if (!region || !hot)
		child_fail("mmap victim region", errno);
	/* Touch every page (so the reap has a lot to free) with tagged words. */
	uint64_t fill = writer_word((unsigned)getpid(), MAIN_THREAD_TAG, iteration);
	for (size_t i = 0; i < region_bytes() / sizeof(uint64_t); i++)
		region[i] = fill;
	for (size_t i = 0; i < hot_bytes / sizeof(uint64_t); i++)
		hot[i] = fill;
	start_writers(ws, hot, iteration, false, victim_writer);
	if (cgroup_procs) {
		while (!writers_running(2))
			sleep_us(100);
		grow_until_killed();
	}
	for (;;)
		pause();
}

static pid_t fork_victim(uint32_t iteration, const char *cgroup_procs)
{
	pid_t parent = getpid();
	reset_writer_passes();
	pid_t pid = fork();
	if (pid < 0) {
		report_error(true, "fork", errno, "cannot fork a victim");
		return -1;
	}
	if (pid == 0) {
		become_child(parent);
		victim_main(iteration, cgroup_procs);
	}
	g_worker_pid = pid;
	return pid;
}

/* Report a victim that died on its own (setup failure, crash). */
static void report_child_death(const char *who, int status)
{
	int e = LOAD(sh->child_errno);
	if (e)
		report_error(true, sh->child_what, e, "%s setup failed: %s", who, sh->child_what);
	else if (WIFSIGNALED(status))
		report_error(true, who, 0, "%s died of signal %d before the reap", who, WTERMSIG(status));
	else
		report_error(true, who, 0, "%s exited with code %d before the reap", who,
			     WEXITSTATUS(status));
}

/* Wait until every writer of the victim ran a few passes, so the kill races
 * against live stores. False (after reporting) if the victim died or hung. */
static bool wait_victim_ready(pid_t pid)
{
	int64_t deadline = wait_deadline_ns();
	while (!writers_running(2)) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			g_worker_pid = 0;
			report_child_death("victim", st);
			return false;
		}
		if (g_signalled || now_ns() >= deadline) {
			if (!g_signalled && !should_stop())
				report_error(true, "victim", ETIMEDOUT, "victim writers never started");
			kill_and_reap(pid, NULL);
			g_worker_pid = 0;
			return false;
		}
		sleep_us(50);
	}
	return true;
}

/* ------------------------------------------------------------------ mrelease */

static long sys_pidfd_open(pid_t pid) { return syscall(SYS_pidfd_open, pid, 0); }
static long sys_pidfd_kill(int fd) { return syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0); }
static long sys_mrelease(int fd) { return syscall(SYS_process_mrelease, fd, 0); }

/* ENOSYS/EPERM from the probe mean this kernel (or sandbox) cannot run the
 * scenario at all: say so once, clearly, instead of failing every iteration. */
static bool probe_mrelease(void)
{
	long fd = sys_pidfd_open(getpid());
	if (fd < 0) {
		report_error(true, "pidfd_open", errno, "pidfd_open is unavailable (needs Linux >= 5.3)");
		return false;
	}
	/* flags=1 is invalid: a kernel with the syscall says EINVAL, without it ENOSYS. */
	long r = syscall(SYS_process_mrelease, (int)fd, 1);
	int e = errno;
	close((int)fd);
	if (r < 0 && e != EINVAL) {
		report_error(true, "process_mrelease", e,
			     "process_mrelease is unavailable (needs Linux >= 5.15 and no seccomp filter)");
		return false;
	}
	return true;
}

/* Kill the victim through its pidfd and reap its memory at once.
 * False if the kill itself failed (the victim is still alive). */
static bool kill_and_mrelease(int pidfd)
{
	if (sys_pidfd_kill(pidfd) != 0) {
		report_error(true, "pidfd_send_signal", errno, "cannot SIGKILL the victim");
		return false;
	}
	long r = sys_mrelease(pidfd);
	int e = errno;
	announce_reap();
	if (r == 0)
		return true;
	if (e == ESRCH) /* the victim finished exiting first: nothing left to reap */
		g_reap_gone++;
	else if (e == ENOSYS || e == EPERM)
		report_error(true, "process_mrelease", e, "process_mrelease refused");
	else if (g_reap_other++ < 8) /* EAGAIN (mm busy), EINVAL (not dying yet): lost races */
		report_error(false, "process_mrelease", e, "process_mrelease failed on a dying victim");
	return true;
}

static void mrelease_iteration(uint32_t iteration)
{
	pid_t pid = fork_victim(iteration, NULL);
	if (pid < 0)
		return;
	long fd = sys_pidfd_open(pid);
	if (fd < 0) {
		report_error(true, "pidfd_open", errno, "cannot open a pidfd for the victim");
		kill_and_reap(pid, NULL);
		g_worker_pid = 0;
		return;
	}
	if (wait_victim_ready(pid)) {
		int st;
		if (!kill_and_mrelease((int)fd)) {
			kill_and_reap(pid, NULL);
		} else if (!wait_child_until(pid, &st, wait_deadline_ns(), true)) {
			if (!g_signalled)
				report_error(true, "waitpid", ETIMEDOUT, "victim did not exit after SIGKILL");
			kill_and_reap(pid, NULL);
		} else {
			ADD(sh->iterations, 1);
		}
		g_worker_pid = 0;
	}
	close((int)fd);
}

static void run_mrelease(void)
{
	int64_t next = now_ns() + (int64_t)(opt.progress_s * 1e9);
	if (!probe_mrelease())
		return;
	for (uint32_t it = 1; !should_stop() && !iterations_done(LOAD(sh->iterations)); it++) {
		mrelease_iteration(it);
		maybe_progress(&next);
	}
}

/* ------------------------------------------------------------------ oom */

static bool cgroup_file(char *out, size_t size, const char *dir, const char *name)
{
	return (size_t)snprintf(out, size, "%s/%s", dir, name) < size;
}

/* Make /sys/fs/cgroup/oomrace-<pid>-<n> with memory.max just above the victim's
 * memory, so growing past it triggers the memcg OOM killer and oom_reaper. */
static bool cgroup_setup(void)
{
	const char *root = opt.cgroup_root;
	char path[PATH_MAX], buf[512];
	struct statfs fs;

	if (statfs(root, &fs) != 0) {
		report_error(true, "statfs", errno, "cannot stat the cgroup root %s", root);
		return false;
	}
	if ((unsigned long)fs.f_type != CGROUP2_MAGIC) {
		report_error(true, "statfs", ENOTSUP,
			     "%s is not a cgroup v2 mount (mount -t cgroup2 none %s)", root, root);
		return false;
	}
	cgroup_file(path, sizeof(path), root, "cgroup.controllers");
	if (!read_file(path, buf, sizeof(buf)) || !strstr(buf, "memory")) {
		report_error(true, "read cgroup.controllers", errno ? errno : ENODEV,
			     "the memory controller is not available in %s", root);
		return false;
	}
	cgroup_file(path, sizeof(path), root, "cgroup.subtree_control");
	if (!read_file(path, buf, sizeof(buf)) || !strstr(buf, "memory")) {
		if (!write_file(path, "+memory")) {
			report_error(true, "write cgroup.subtree_control", errno,
				     "cannot enable the memory controller in %s", path);
			return false;
		}
	}
	static unsigned generation; /* a new group after a victim was left behind */
	snprintf(buf, sizeof(buf), "oomrace-%d-%u", (int)getpid(), generation++);
	if (!cgroup_file(g_cgroup_dir, sizeof(g_cgroup_dir), root, buf) ||
	    (mkdir(g_cgroup_dir, 0755) != 0 && errno != EEXIST)) {
		report_error(true, "mkdir", errno, "cannot create cgroup %s", g_cgroup_dir);
		g_cgroup_dir[0] = 0;
		return false;
	}
	cgroup_file(path, sizeof(path), g_cgroup_dir, "memory.max");
	snprintf(buf, sizeof(buf), "%zu\n", region_bytes() + ((size_t)OOM_SLACK_MB << 20));
	if (!write_file(path, buf)) {
		report_error(true, "write memory.max", errno, "cannot set %s", path);
		return false;
	}
	cgroup_file(path, sizeof(path), g_cgroup_dir, "memory.swap.max");
	if (access(path, F_OK) == 0 && !write_file(path, "0"))
		report_error(false, "write memory.swap.max", errno, "cannot set %s", path);
	return true;
}

static uint64_t cgroup_oom_kills(void)
{
	char path[PATH_MAX], buf[1024];
	if (!g_cgroup_dir[0] || !cgroup_file(path, sizeof(path), g_cgroup_dir, "memory.events") ||
	    !read_file(path, buf, sizeof(buf)))
		return 0;
	char *p = strstr(buf, "oom_kill ");
	return p ? strtoull(p + 9, NULL, 10) : 0;
}

/* Leave the current group to a victim that would not die; go on in a new one. */
static void cgroup_renew(char *procs, size_t procs_size)
{
	g_oom_kills_before += cgroup_oom_kills();
	g_cgroup_dir[0] = 0;
	if (cgroup_setup())
		cgroup_file(procs, procs_size, g_cgroup_dir, "cgroup.procs");
}

/* The cgroup can only go once its last process is reaped: retry briefly. */
static void cgroup_cleanup(void)
{
	if (!g_cgroup_dir[0])
		return;
	g_oom_kills = g_oom_kills_before + cgroup_oom_kills();
	for (int i = 0; i < 100; i++) {
		if (rmdir(g_cgroup_dir) == 0 || errno == ENOENT) {
			g_cgroup_dir[0] = 0;
			return;
		}
		sleep_us(20000);
	}
	report_error(false, "rmdir", errno, "cannot remove cgroup %s", g_cgroup_dir);
	g_cgroup_dir[0] = 0;
}

/* A victim the OOM killer did not end in time: kill it ourselves and go on. One that
 * does not die even then is left behind in its cgroup (the next victims get a new one);
 * both are the kernel's behaviour, counted and reported, not harness failures. */
static bool end_late_victim(pid_t pid, uint64_t kills_before)
{
	int st;
	bool oom_killed = cgroup_oom_kills() > kills_before;
	g_oom_late++;
	report_error(false, "oom", ETIMEDOUT,
		     oom_killed ? "victim %d was OOM-killed but had not exited after %d s"
				: "victim %d was not OOM-killed within %d s; killed it", (int)pid,
		     VICTIM_KILL_S);
	kill(pid, SIGKILL);
	if (wait_child_until(pid, &st, now_ns() + (int64_t)VICTIM_EXIT_S * 1000000000LL, false))
		return true;
	g_stuck++;
	report_error(g_stuck >= MAX_STUCK, "oom", ETIMEDOUT,
		     "victim %d did not exit %d s after SIGKILL; left behind in %s", (int)pid,
		     VICTIM_EXIT_S, g_cgroup_dir);
	return false;
}

static void oom_iteration(uint32_t iteration, char *procs, size_t procs_size)
{
	uint64_t kills_before = cgroup_oom_kills();
	pid_t pid = fork_victim(iteration, procs);
	if (pid < 0)
		return;
	int st = 0;
	int64_t deadline = now_ns() + (int64_t)VICTIM_KILL_S * 1000000000LL;
	bool exited = wait_child_until(pid, &st, deadline, true);
	g_worker_pid = 0;
	set_reap_active(false);
	announce_reap();
	if (!exited) {
		if (g_signalled)
			kill_and_reap(pid, NULL);
		else if (!end_late_victim(pid, kills_before) && !LOAD(sh->stop))
			cgroup_renew(procs, procs_size);
		return;
	}
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
		ADD(sh->iterations, 1);
	else
		report_child_death("oom victim", st);
}

static void run_oom(void)
{
	char procs[PATH_MAX];
	int64_t next = now_ns() + (int64_t)(opt.progress_s * 1e9);
	if (!cgroup_setup())
		return;
	cgroup_file(procs, sizeof(procs), g_cgroup_dir, "cgroup.procs");
	for (uint32_t it = 1; !should_stop() && !iterations_done(LOAD(sh->iterations)); it++) {
		oom_iteration(it, procs, sizeof(procs));
		maybe_progress(&next);
	}
}

/* ------------------------------------------------------------------ munmap / madvise */

/* Free a random run of one writer's hot pages under its feet. */
static void mutate_once(uint64_t *region, uint64_t *rng)
{
	int w = (int)(xorshift64(rng) % (uint64_t)opt.writers);
	int first = (int)(xorshift64(rng) % (uint64_t)opt.hot_pages);
	int count = 1 + (int)(xorshift64(rng) % (uint64_t)(opt.hot_pages - first));
	char *addr = (char *)(region + ((size_t)w * (size_t)opt.hot_pages + (size_t)first) * page_words);
	size_t len = (size_t)count * (size_t)page_size;

	if (opt.scenario == SC_MADVISE) {
		if (madvise(addr, len, MADV_DONTNEED) != 0)
			child_fail("madvise(MADV_DONTNEED)", errno);
		announce_reap();
		return;
	}
	if (munmap(addr, len) != 0)
		child_fail("munmap", errno);
	announce_reap();
	sleep_us(opt.pause_us / 4 + 1); /* let writers run into the hole */
	/* Nothing else in this process maps memory while it runs, so the hole is
	 * still ours and MAP_FIXED cannot clobber anything. */
	void *p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p == MAP_FAILED)
		child_fail("mmap(MAP_FIXED)", errno);
}

/* The mutator process: writer threads plus the main thread freeing their pages. */
static void mutator_main(void)
{
	static struct writer ws[MAX_WRITERS];
	install_fault_handler();

	uint64_t *region = map_region(region_bytes());
	if (!region)
		child_fail("mmap mutator region", errno);
	g_region_lo = (uintptr_t)region;
	g_region_hi = g_region_lo + region_bytes();
	memset(region, 0, region_bytes());
	STORE(sh->iteration, 1);
	start_writers(ws, region, 1, true, mutate_writer);
	while (!writers_running(2) && !LOAD(sh->stop))
		sleep_us(100);

	pin_to(reap_cpu);
	set_reap_active(true); /* reaps come back to back: the checker runs throughout */
	uint64_t rng = opt.seed ? opt.seed : 1;
	for (uint32_t it = 1; !LOAD(sh->stop) && !iterations_done(LOAD(sh->iterations)); it++) {
		STORE(sh->iteration, it);
		mutate_once(region, &rng);
		ADD(sh->iterations, 1);
		sleep_us(opt.pause_us);
	}
	set_reap_active(false);
	STORE(sh->stop, 1);
	for (int i = 0; i < opt.writers; i++)
		pthread_join(ws[i].thread, NULL);
	_exit(EXIT_CLEAN);
}

/* Run `child_main` in a child process and wait for it, printing progress. */
static void run_in_child(void (*child_main)(void), const char *name)
{
	pid_t parent = getpid();
	int64_t next = now_ns() + (int64_t)(opt.progress_s * 1e9);
	pid_t pid = fork();
	if (pid < 0) {
		report_error(true, "fork", errno, "cannot fork the %s", name);
		return;
	}
	if (pid == 0) {
		become_child(parent);
		child_main();
	}
	g_worker_pid = pid;
	for (;;) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			g_worker_pid = 0;
			if (LOAD(sh->child_errno) || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
				report_child_death(name, st);
			return;
		}
		if (should_stop())
			return; /* main() stops the child */
		maybe_progress(&next);
		sleep_us(10000);
	}
}

static void run_mutate(void) { run_in_child(mutator_main, "mutator"); }

/* ------------------------------------------------------------------ mremap: stale reads */

/*
 * CVE-2018-18281: move_ptes() moved clean PTEs and left the old range's TLB flush to the end
 * of move_page_tables(), after the page-table locks were dropped. A punch hole that runs in
 * between zaps the page at its NEW address, flushes only that address and frees the page,
 * while a reader still holds a TLB entry for the OLD one. A clean PTE's entry is read-only in
 * practice (x86 walks the tables to set the dirty bit; arm64 without DBM maps it read-only),
 * so the evidence is a stale READ of the freed page through the old address.
 *
 * What a correct kernel can show a reader of the old address, and so what proves nothing:
 *  - the page's own tag (its PTE not moved yet, or moved and flushed in time);
 *  - a fault: after the move the old address has no vma (SIGSEGV), counted;
 *  - zero: a punch that beat the move to the mmap lock lets a read fault map a fresh page
 *    (shmem fills holes), so zeros are counted apart (zero_reads), never as a detection.
 * Everything else is proof: page poison (the freed page, with page_poison=1), the checker's
 * tag (the page reused), another file page's tag, a writer's word, or any other value.
 *
 * Traps avoided:
 *  - the mapping moves through MREMAP_SLOTS address slots kept reserved (PROT_NONE) between
 *    uses, and a reader drops any pass during which the round changed: a reader descheduled
 *    across rounds cannot read a later round's legitimately punched page as stale;
 *  - the file is filled with pwrite(), never through the mapping, so every PTE stays clean
 *    (a dirty PTE takes the flush-under-lock path and hides the bug);
 *  - consecutive slots sit at different offsets within a PMD, so the kernel's whole-PMD
 *    moves (move_normal_pmd, 4.20 and later) never apply and every move runs move_ptes;
 *  - punches are single pages (a range flush stays a range flush: x86 flushes the whole mm
 *    past 33 pages, arm64 past 1024) and go to the readers' pages, which the move takes first.
 */
#define FILE_MAGIC 0xf11eULL
#define POISON_WORD 0xaaaaaaaaaaaaaaaaULL /* PAGE_POISON (0xaa) in every byte */
#define MREMAP_DEFAULT_MB 4096 /* the mapping's size; mostly holes (see mremap_setup) */
#define MREMAP_SPARSE_STEP (2UL << 20) /* one present page per PMD outside the readers' pages */
#define MREMAP_SLOTS 4
#define MREMAP_CHECKER_MB 2
#define PUNCHES_PER_MOVE 16
#define READ_STRIDE 8          /* one word per 64-byte line: every line keeps the entry hot */
#define MAX_PUNCHED PUNCHES_PER_MOVE
#define SUSPECTS_MAX 8
/* Pages each reader also touches per pass. QEMU's TCG sizes each vCPU's TLB by its use and
 * turns a one-page flush into a flush of the whole TLB when the page is larger than the
 * TLB's index mask (arm64's TLBI by address takes that path: it ignores the top byte):
 * a reader of a few pages keeps a 64-entry TLB, and the punch's own flush of the NEW
 * address would wipe its stale entry for the old one. 1024 more pages keep it big. */
#define READER_BALLAST_PAGES 1024

static inline uint64_t file_word(size_t page, size_t word)
{
	return FILE_MAGIC << 48 | (uint64_t)(page & 0xffffff) << 24 | (uint64_t)(word & 0xffffff);
}

static inline bool is_file_word(uint64_t w) { return w >> 48 == FILE_MAGIC; }

/* The mover process's state; readers and the puncher are its threads. */
static struct {
	int fd;
	size_t bytes;
	char *slot0;
	size_t stride;
	int readers;
	size_t reader_pages;      /* pages each reader scans, from the mapping's start */
	uint32_t seq;             /* seqlock over base: odd while it changes */
	char *base;               /* where the mapping is this round */
	uint32_t round;
	uint32_t move_seq;        /* futex word: bumped when a move starts */
	uint32_t moving;
	int64_t move_start_ns;
	int64_t move_est_ns;      /* how long the last move took */
	uint32_t punch_ack;       /* the move_seq the puncher has finished with */
	size_t punched[MAX_PUNCHED];
	uint32_t n_punched;
	uint32_t punch_seq;       /* the move_seq of the last punch */
	size_t locked_punched[MAX_PUNCHED]; /* pages punched while the move held the mmap lock */
	uint32_t n_locked_punches;
	pid_t sensor_tid;
	uint64_t sensor_page[PAGE_WORDS_MAX] __attribute__((aligned(65536)));
	uint64_t passes[MAX_WRITERS];
	char *ballast;            /* READER_BALLAST_PAGES pages per reader */
} mv;

static char *mremap_slot(uint32_t round) { return mv.slot0 + (size_t)(round % MREMAP_SLOTS) * mv.stride; }

static void fill_file_page(size_t page)
{
	static __thread uint64_t buf[PAGE_WORDS_MAX];
	for (size_t i = 0; i < page_words; i++)
		buf[i] = file_word(page, i);
	if (pwrite(mv.fd, buf, (size_t)page_size, (off_t)(page * (size_t)page_size)) != page_size)
		child_fail("pwrite", errno);
}

static const char *stale_evidence(uint64_t w)
{
	if (w == 0) /* only reported when zero_is_proof(): a freed page reused zeroed */
		return "zero_after_punch";
	if (w == POISON_WORD)
		return "page_poison";
	if (w >> 48 == CHECK_MAGIC)
		return "checker_page";
	if (is_file_word(w))
		return "other_file_page";
	if (is_writer_word(w))
		return "writer_page";
	return "unknown_owner";
}

/* One line per stale page read: what was read through the old address, and when. */
static void report_stale_read(uintptr_t addr, uint64_t expected, uint64_t found, uint64_t bad_words,
			      uint32_t round)
{
	ADD(sh->corrupt_pages, 1);
	ADD(sh->corrupt_words, bad_words);
	if (ADD(sh->reports, 1) > MAX_REPORTS)
		return;
	int64_t now = now_ns(), punch = LOAD(sh->last_reap_ns), move = LOAD(mv.move_start_ns);
	struct line l;
	line_begin(&l, "corruption");
	line_str(&l, "source", "reader");
	line_str(&l, "evidence", stale_evidence(found));
	line_hex(&l, "address", addr);
	line_hex(&l, "expected", expected);
	line_hex(&l, "found", found);
	line_obj_begin(&l, "expected_owner");
	line_u64(&l, "file_page", (expected >> 24) & 0xffffff);
	line_u64(&l, "word", expected & 0xffffff);
	line_obj_end(&l);
	line_provenance(&l, found);
	if (is_file_word(found)) {
		line_obj_begin(&l, "found_owner");
		line_u64(&l, "file_page", (found >> 24) & 0xffffff);
		line_u64(&l, "word", found & 0xffffff);
		line_obj_end(&l);
	}
	line_key(&l, "seconds_since_reap"); /* the last punch: the page's free */
	if (punch)
		line_put(&l, "%.6f", (double)(now - punch) / 1e9);
	else
		line_put(&l, "null");
	line_f64(&l, "seconds_since_remap", (double)(now - move) / 1e9);
	line_u64(&l, "bad_words", bad_words);
	line_u64(&l, "round", round);
	line_i64(&l, "pass", 0);
	line_i64(&l, "pid", getpid());
	line_emit(&l);
}

/* Before 6.4 every page fault takes the mmap lock; from 6.4 a fault may take only its vma's
 * lock, so a blocked sensor no longer proves that faults wait: zero proves nothing there. */
static bool g_faults_need_mmap_lock;

static bool kernel_older_than(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;
	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma < major || (ma == major && mi < minor);
}

/* True when `pg` was punched during the current move while the mmap lock was held (or
 * wanted) by the move: from then on no fault at the old address can complete before the
 * move ends, so nothing a fault maps can be read there. */
static bool zero_is_proof(size_t pg)
{
	if (!g_faults_need_mmap_lock)
		return false;
	uint32_t n = LOAD(mv.n_locked_punches);
	for (uint32_t i = 0; i < n && i < MAX_PUNCHED; i++)
		if (mv.locked_punched[i] == pg)
			return true;
	return false;
}

struct suspect {
	const volatile uint64_t *addr;
	uint64_t expected, found, bad;
};

/* One pass over a reader's pages at `base`; the suspects are kept, not judged yet. */
static int read_pass(const char *base, size_t first, struct suspect *sus)
{
	int n = 0;
	for (size_t pg = first; pg < first + mv.reader_pages; pg++) {
		const volatile uint64_t *p = (const volatile uint64_t *)(base + pg * (size_t)page_size);
		struct suspect *cur = NULL;
		for (size_t i = 0; i < page_words; i += READ_STRIDE) {
			uint64_t w = p[i], want = file_word(pg, i);
			if (w == want)
				continue;
			/* Zero is a freed page that was reused zeroed only when this page was
			 * punched after the move held the mmap lock (see zero_is_proof);
			 * otherwise a legitimate fault may have mapped a fresh page. */
			if (w == 0 && !zero_is_proof(pg)) {
				ADD(sh->zero_reads, 1);
				continue;
			}
			if (!cur && n < SUSPECTS_MAX) {
				cur = &sus[n++];
				*cur = (struct suspect){ &p[i], want, w, 0 };
			}
			if (cur)
				cur->bad++;
		}
	}
	return n;
}

static void touch_ballast(int idx)
{
	const char *b = mv.ballast + (size_t)idx * READER_BALLAST_PAGES * (size_t)page_size;
	uint64_t sink = 0;
	for (size_t pg = 0; pg < READER_BALLAST_PAGES; pg++)
		sink += *(const volatile uint64_t *)(b + pg * (size_t)page_size);
	(void)sink;
}

static void *reader_main(void *arg)
{
	int idx = (int)(intptr_t)arg;
	size_t first = (size_t)idx * mv.reader_pages;
	struct suspect sus[SUSPECTS_MAX];
	if (n_other_cpus > 1)
		pin_to(other_cpus[1 + idx % (n_other_cpus - 1)]);
	static __thread volatile uint32_t pass_seq;
	if (sigsetjmp(t_jmp, 0) != 0) {
		/* The old address faulted: its vma is gone. Wait for the base the pass began
		 * with to be replaced (it may be already). */
		ADD(sh->faults, 1);
		while (LOAD(mv.seq) == pass_seq && !LOAD(sh->stop))
			sleep_us(20);
	}
	t_armed = 1;
	while (!LOAD(sh->stop)) {
		uint32_t s1 = LOAD(mv.seq);
		if (s1 & 1)
			continue;
		pass_seq = s1;
		const char *base = LOAD(mv.base);
		uint32_t round = LOAD(mv.round);
		bool moving = LOAD(mv.moving);
		bool exposed = moving && LOAD(mv.punch_seq) == LOAD(mv.move_seq);
		int n = read_pass(base, first, sus);
		touch_ballast(idx);
		if (exposed && LOAD(mv.moving))
			ADD(sh->exposed_passes, 1);
		if (LOAD(mv.seq) != s1) {
			ADD(sh->dropped_passes, 1); /* the base moved on: no read of it can be judged */
			continue;
		}
		for (int i = 0; i < n; i++)
			report_stale_read((uintptr_t)sus[i].addr, sus[i].expected, sus[i].found, sus[i].bad,
					  round);
		ADD(mv.passes[idx], 1);
		ADD(sh->reader_passes, 1);
	}
	t_armed = 0;
	return NULL;
}

/* A reader page not punched yet during this move (random), or SIZE_MAX. */
static size_t pick_punch_page(uint64_t *rng)
{
	size_t total = (size_t)mv.readers * mv.reader_pages;
	for (int tries = 0; tries < 16; tries++) {
		size_t pg = (size_t)(xorshift64(rng) % total);
		bool seen = false;
		for (uint32_t i = 0; i < mv.n_punched; i++)
			seen |= mv.punched[i] == pg;
		if (!seen)
			return pg;
	}
	return SIZE_MAX;
}

/* The lock sensor: a thread that asks for the mmap lock for reading again and again
 * (mincore takes it). While a writer holds it or waits for it, the sensor sleeps in
 * state D; a writer that holds or waits for it during a move is the move itself. */
static void *sensor_main(void *arg)
{
	(void)arg;
	unsigned char vec;
	STORE(mv.sensor_tid, (pid_t)syscall(SYS_gettid));
	if (n_other_cpus)
		pin_to(other_cpus[0]);
	while (!LOAD(sh->stop))
		mincore(mv.sensor_page, (size_t)page_size, &vec);
	return NULL;
}

static bool sensor_blocked(void)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)LOAD(mv.sensor_tid));
	if (!read_file(path, buf, sizeof(buf)))
		return false;
	const char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' && paren[2] == 'D';
}

/* Punch single reader pages, one after another, for as long as a move runs. Timing proves
 * nothing either way: a punch that comes before a page's PTE has moved is flushed properly
 * (the reader faults), so only punches after it can expose poison, and the earlier the
 * punch, the longer the stale window that follows. So no delay, and no sleep. */
static void *puncher_main(void *arg)
{
	(void)arg;
	uint64_t rng = opt.seed ^ 0x9e3779b9ULL;
	uint32_t seen = LOAD(mv.move_seq);
	if (n_other_cpus)
		pin_to(other_cpus[0]);
	while (!LOAD(sh->stop)) {
		futex_wait_ms(&mv.move_seq, seen, 100);
		uint32_t m = LOAD(mv.move_seq);
		if (m == seen)
			continue;
		seen = m;
		bool locked = false;
		while (LOAD(mv.moving) && mv.n_punched < PUNCHES_PER_MOVE) {
			locked = locked || sensor_blocked();
			size_t pg = pick_punch_page(&rng);
			if (pg == SIZE_MAX)
				break;
			if (fallocate(mv.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(pg * (size_t)page_size), (off_t)page_size) != 0)
				child_fail("fallocate(FALLOC_FL_PUNCH_HOLE)", errno);
			mv.punched[mv.n_punched++] = pg;
			if (locked) {
				uint32_t i = LOAD(mv.n_locked_punches);
				mv.locked_punched[i] = pg;
				STORE(mv.n_locked_punches, i + 1);
			}
			STORE(mv.punch_seq, m);
			ADD(sh->punches, 1);
			announce_reap(); /* the checker allocates: the freed page may become its own */
		}
		STORE(mv.punch_ack, m);
	}
	return NULL;
}

/* Wait (bounded) until every reader has made `passes` more passes over the current base. */
static void wait_reader_passes(uint64_t passes)
{
	uint64_t start[MAX_WRITERS];
	for (int i = 0; i < mv.readers; i++)
		start[i] = LOAD(mv.passes[i]);
	int64_t deadline = now_ns() + 500000000LL;
	for (int i = 0; i < mv.readers && !LOAD(sh->stop); i++)
		while (LOAD(mv.passes[i]) < start[i] + passes && now_ns() < deadline && !LOAD(sh->stop))
			sleep_us(50);
}

/* The destination of the next move must be a hole: unmapping a reservation there inside
 * mremap() would flush the whole mm (the range is past every per-page flush limit) right
 * before the move, and readers that did not run again in time would fault instead of
 * reading through their old entries. So it is unreserved a round early, while readers can
 * still refill their TLBs from the present PTEs. */
static void unreserve_slot(uint32_t round)
{
	if (munmap(mremap_slot(round), mv.bytes) != 0)
		child_fail("munmap slot reservation", errno);
}

static void mremap_setup(void)
{
	g_faults_need_mmap_lock = kernel_older_than(6, 4);
	mv.bytes = region_bytes();
	mv.readers = opt.writers > 1 ? opt.writers - 1 : 1; /* one thread punches */
	mv.reader_pages = (size_t)opt.hot_pages;
	if ((size_t)mv.readers * mv.reader_pages * (size_t)page_size > mv.bytes)
		child_fail("mremap: --writers x --hot-pages exceed --region-mb", EINVAL);
	mv.fd = memfd_create("oomrace-mremap", 0);
	if (mv.fd < 0)
		child_fail("memfd_create", errno);
	if (ftruncate(mv.fd, (off_t)mv.bytes) != 0)
		child_fail("ftruncate", errno);
	/* The stale window lasts as long as the move, and under TCG it must outlast the host's
	 * scheduling slices (a dense 128 MiB move takes ~1.5 ms when the mover runs alone: the
	 * readers' vCPUs never run during it). A move's cost is the page-table entries it walks,
	 * present or not, so the mapping is large and sparse: the readers' pages dense at the
	 * start, then one page per PMD, which makes every PTE table exist. */
	size_t dense = (size_t)mv.readers * mv.reader_pages;
	for (size_t pg = 0; pg < dense; pg++)
		fill_file_page(pg);
	size_t step = MREMAP_SPARSE_STEP / (size_t)page_size;
	for (size_t pg = step; pg < mv.bytes / (size_t)page_size; pg += step)
		fill_file_page(pg);

	size_t pmd = 2UL << 20; /* covers arm64 4K (2 MiB) and x86_64 PMDs; any PMD size works */
	mv.stride = mv.bytes + pmd + (size_t)page_size;
	size_t span = MREMAP_SLOTS * mv.stride + pmd;
	char *res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		child_fail("mmap slot reservation", errno);
	mv.slot0 = (char *)(((uintptr_t)res + pmd - 1) & ~(pmd - 1));
	g_region_lo = (uintptr_t)res;
	g_region_hi = (uintptr_t)res + span;
	if (mmap(mv.slot0, mv.bytes, PROT_READ, MAP_SHARED | MAP_FIXED, mv.fd, 0) == MAP_FAILED)
		child_fail("mmap(MAP_SHARED) of the memfd", errno);
	/* Read faults map the written pages clean; holes are never touched (a read of one would
	 * allocate a zero page). The sparse pages are then zapped again: their PTE tables stay,
	 * so every move still walks them, but a fixed kernel has nothing there to flush (one
	 * flush per 64-entry chunk made a move on a fixed arm64 kernel take tens of seconds
	 * under TCG, each one-page TLBI a stop of every vCPU). */
	volatile uint64_t sink = 0;
	for (size_t pg = 0; pg < dense; pg++)
		sink += *(volatile uint64_t *)(mv.slot0 + pg * (size_t)page_size);
	for (size_t pg = step; pg < mv.bytes / (size_t)page_size; pg += step) {
		char *at = mv.slot0 + pg * (size_t)page_size;
		sink += *(volatile uint64_t *)at;
		if (madvise(at, (size_t)page_size, MADV_DONTNEED) != 0)
			child_fail("madvise(MADV_DONTNEED) of a sparse page", errno);
	}
	(void)sink;
	mv.base = mv.slot0;
	size_t ballast = (size_t)mv.readers * READER_BALLAST_PAGES * (size_t)page_size;
	mv.ballast = mmap(NULL, ballast, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mv.ballast == MAP_FAILED)
		child_fail("mmap reader ballast", errno);
}

/* One round: move the mapping to the next slot while the puncher frees pages under it. */
static void mremap_round(uint32_t round)
{
	char *cur = mremap_slot(round), *next = mremap_slot(round + 1);
	wait_reader_passes(2); /* every reader's entries for `cur` are in its TLB */
	mv.n_punched = 0;
	STORE(mv.n_locked_punches, 0u);
	STORE(mv.move_start_ns, now_ns());
	STORE(mv.moving, 1u);
	uint32_t m = ADD(mv.move_seq, 1);
	futex_wake_all(&mv.move_seq);
	void *p = mremap(cur, mv.bytes, mv.bytes, MREMAP_MAYMOVE | MREMAP_FIXED, next);
	int e = errno;
	int64_t took = now_ns() - LOAD(mv.move_start_ns);
	STORE(mv.moving, 0u);
	if (p == MAP_FAILED)
		child_fail("mremap", e);
	STORE(mv.move_est_ns, took);
	ADD(sh->move_ns, (uint64_t)took);
	ADD(sh->moves, 1);
	int64_t deadline = now_ns() + 2000000000LL;
	while (LOAD(mv.punch_ack) != m && now_ns() < deadline && !LOAD(sh->stop))
		sleep_us(50);
	/* Keep the old slot reserved (it is a hole now: no flush), open the next destination,
	 * and give punched pages their tags back, before readers are pointed at the new slot
	 * (a fault on a hole would map a zero page). */
	if (mmap(cur, mv.bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
		child_fail("mmap slot re-reservation", errno);
	unreserve_slot(round + 2);
	for (uint32_t i = 0; i < mv.n_punched; i++)
		fill_file_page(mv.punched[i]);
	uint32_t s = LOAD(mv.seq);
	STORE(mv.seq, s + 1);
	STORE(mv.base, next);
	STORE(mv.round, round + 1);
	STORE(mv.seq, s + 2);
}

static void mover_main(void)
{
	install_fault_handler();
	mremap_setup();

	pthread_t punch, sensor, readers[MAX_WRITERS];
	int e = pthread_create(&punch, NULL, puncher_main, NULL);
	if (!e)
		e = pthread_create(&sensor, NULL, sensor_main, NULL);
	for (int i = 0; !e && i < mv.readers; i++)
		e = pthread_create(&readers[i], NULL, reader_main, (void *)(intptr_t)i);
	if (e)
		child_fail("pthread_create", e);
	/* Only now: a hole open while threads start could take a thread's stack, and the
	 * move onto it (MREMAP_FIXED) would unmap that stack. Nothing in this process maps
	 * memory from here on. */
	unreserve_slot(1);
	pin_to(reap_cpu);
	for (uint32_t r = 0; !LOAD(sh->stop) && !iterations_done(LOAD(sh->iterations)); r++) {
		STORE(sh->iteration, r + 1);
		mremap_round(r);
		ADD(sh->iterations, 1);
	}
	STORE(sh->stop, 1);
	futex_wake_all(&mv.move_seq);
	pthread_join(punch, NULL);
	pthread_join(sensor, NULL);
	for (int i = 0; i < mv.readers; i++)
		pthread_join(readers[i], NULL);
	_exit(EXIT_CLEAN);
}

static void run_mremap(void) { run_in_child(mover_main, "mover"); }
/* ------------------------------------------------------------------ scenarios */

struct scenario {
	const char *name;
	void (*run)(void);
	const char *what;
};

static const struct scenario scenarios[] = {
	[SC_MRELEASE] = { "mrelease", run_mrelease,
			  "SIGKILL a victim through a pidfd, then process_mrelease() it at once" },
	[SC_OOM] = { "oom", run_oom,
		     "grow a victim past its cgroup v2 memory.max: memcg OOM killer + oom_reaper" },
	[SC_MUNMAP] = { "munmap", run_mutate,
			"munmap/re-mmap pages other threads of the same process are storing to" },
	[SC_MADVISE] = { "madvise", run_mutate,
			 "MADV_DONTNEED pages other threads of the same process are storing to" },
	[SC_MREMAP] = { "mremap", run_mremap,
			"mremap a clean shmem mapping while holes are punched in it; readers of the old address" },
};
#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* ------------------------------------------------------------------ CLI */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: oomrace-stress [--scenario NAME] [--iterations N] [--duration SECONDS]\n"
		"                      [--writers N] [--region-mb M] [--hot-pages N] [--seed S]\n"
		"                      [--checker | --no-checker] [--checker-mb M] [--window-ms MS]\n"
		"                      [--pause-us US] [--no-pin] [--progress-interval SECONDS]\n"
		"                      [--cgroup-root PATH] [--inject-corruption] [--json]\n"
		"\n"
		"scenarios:\n");
	for (size_t i = 0; i < N_SCENARIOS; i++)
		fprintf(f, "  %-9s %s\n", scenarios[i].name, scenarios[i].what);
	fprintf(f,
		"\n"
		"--inject-corruption plants one foreign word in the checker's memory to test\n"
		"the detector (expect exit 1 and provenance pid 4242 thread 7 iteration 99).\n"
		"Prints JSON lines (start, progress, corruption, error, summary) on stdout.\n"
		"Exit status: 0 clean, 1 corrupted, 2 usage error, 3 runtime error.\n");
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "oomrace-stress: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(EXIT_USAGE);
}

static long parse_long(const char *name, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || end == s || *end || v < lo || v > hi)
		usage_error("--%s wants an integer in [%ld, %ld], got '%s'", name, lo, hi, s);
	return v;
}

static double parse_seconds(const char *name, const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1e6)
		usage_error("--%s wants a positive number of seconds, got '%s'", name, s);
	return v;
}

static int default_writers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN) - 1; /* one CPU for reaper + checker */
	return n < 2 ? 2 : n > 16 ? 16 : (int)n;
}

enum { O_SCENARIO = 256, O_ITER, O_DUR, O_WRITERS, O_REGION, O_HOT, O_SEED, O_CHECK, O_NOCHECK,
       O_CHECK_MB, O_WINDOW, O_PAUSE, O_NOPIN, O_PROGRESS, O_CGROUP, O_INJECT, O_JSON, O_HELP };

static void parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "scenario", required_argument, 0, O_SCENARIO },
		{ "iterations", required_argument, 0, O_ITER },
		{ "duration", required_argument, 0, O_DUR },
		{ "writers", required_argument, 0, O_WRITERS },
		{ "region-mb", required_argument, 0, O_REGION },
		{ "hot-pages", required_argument, 0, O_HOT },
		{ "seed", required_argument, 0, O_SEED },
		{ "checker", no_argument, 0, O_CHECK },
		{ "no-checker", no_argument, 0, O_NOCHECK },
		{ "checker-mb", required_argument, 0, O_CHECK_MB },
		{ "window-ms", required_argument, 0, O_WINDOW },
		{ "pause-us", required_argument, 0, O_PAUSE },
		{ "no-pin", no_argument, 0, O_NOPIN },
		{ "progress-interval", required_argument, 0, O_PROGRESS },
		{ "cgroup-root", required_argument, 0, O_CGROUP },
		{ "inject-corruption", no_argument, 0, O_INJECT },
		{ "json", no_argument, 0, O_JSON },
		{ "help", no_argument, 0, O_HELP },
		{ 0, 0, 0, 0 },
	};
	opt = (struct options){
		.scenario = SC_MRELEASE, .iterations = 0, .duration_s = 10.0,
		.writers = default_writers(), .region_mb = 16, .hot_pages = 8,
		.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20), .checker = true,
		.checker_mb = 16, .window_ms = 50, .pause_us = 200, .pin = true,
		.progress_s = 1.0, .cgroup_root = "/sys/fs/cgroup",
	};
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_SCENARIO: {
			size_t i = 0;
			while (i < N_SCENARIOS && strcmp(optarg, scenarios[i].name) != 0)
				i++;
			if (i == N_SCENARIOS)
				usage_error("unknown scenario '%s'", optarg);
			opt.scenario = (enum scenario_id)i;
			break;
		}
		case O_ITER: opt.iterations = parse_long("iterations", optarg, 0, 0xffffff); break;
		case O_DUR: opt.duration_s = parse_seconds("duration", optarg); break;
		case O_WRITERS: opt.writers = (int)parse_long("writers", optarg, 1, MAX_WRITERS); break;
		case O_REGION: opt.region_mb = parse_long("region-mb", optarg, 1, 1 << 16); opt.region_given = true; break;
		case O_HOT: opt.hot_pages = (int)parse_long("hot-pages", optarg, 1, 4096); break;
		case O_SEED: opt.seed = (uint64_t)parse_long("seed", optarg, 0, LONG_MAX); break;
		case O_CHECK: opt.checker = true; break;
		case O_NOCHECK: opt.checker = false; break;
		case O_CHECK_MB: opt.checker_mb = parse_long("checker-mb", optarg, 1, 1 << 14); opt.checker_mb_given = true; break;
		case O_WINDOW: opt.window_ms = (int)parse_long("window-ms", optarg, 1, 60000); break;
		case O_PAUSE: opt.pause_us = (int)parse_long("pause-us", optarg, 0, 1000000); break;
		case O_NOPIN: opt.pin = false; break;
		case O_PROGRESS: opt.progress_s = parse_seconds("progress-interval", optarg); break;
		case O_CGROUP:
			if (strlen(optarg) > CGROUP_ROOT_MAX)
				usage_error("--cgroup-root is longer than %d bytes", CGROUP_ROOT_MAX);
			opt.cgroup_root = optarg;
			break;
		case O_INJECT: opt.inject = true; break;
		case O_JSON: break; /* the only output format */
		case O_HELP: usage(stdout); exit(EXIT_CLEAN);
		default:
			usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (opt.scenario == SC_MREMAP && !opt.region_given)
		opt.region_mb = MREMAP_DEFAULT_MB;
	/* arm64 flushes a munmap of more than 4 MiB by ASID, and TCG turns an ASID flush into
	 * a flush of every vCPU's TLB (its entries carry no ASID): a bigger checker would wipe
	 * the very stale entries the mremap readers look for. Hardware keeps them apart. */
	if (opt.scenario == SC_MREMAP && !opt.checker_mb_given)
		opt.checker_mb = MREMAP_CHECKER_MB;
	if ((size_t)opt.writers * (size_t)opt.hot_pages * (size_t)page_size > region_bytes())
		usage_error("--writers x --hot-pages pages do not fit in --region-mb %ld", opt.region_mb);
}

/* ------------------------------------------------------------------ signals */

static void on_stop_signal(int sig)
{
	(void)sig;
	g_signalled = 1;
	if (sh)
		__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
}

/* Last resort when something hangs past every bound: kill, clean, leave. */
static void on_alarm(int sig)
{
	static const char msg[] =
		"{\"event\":\"error\",\"message\":\"watchdog alarm: run did not finish in time\","
		"\"syscall\":\"alarm\",\"errno\":62,\"errno_name\":\"ETIMEDOUT\",\"fatal\":true}\n";
	(void)sig;
	if (g_worker_pid > 0)
		kill(g_worker_pid, SIGKILL);
	if (g_checker_pid > 0)
		kill(g_checker_pid, SIGKILL);
	if (g_cgroup_dir[0])
		rmdir(g_cgroup_dir);
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(EXIT_RUNTIME);
	_exit(EXIT_RUNTIME);
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)opt.duration_s + (unsigned)WAIT_GRACE_S + ALARM_GRACE_S);
}

/* ------------------------------------------------------------------ main */

static void emit_start(void)
{
	struct utsname u;
	if (uname(&u) != 0)
		memset(&u, 0, sizeof(u));
	struct line l;
	line_begin(&l, "start");
	line_str(&l, "scenario", scenarios[opt.scenario].name);
	line_i64(&l, "iterations", opt.iterations);
	line_f64(&l, "duration", opt.duration_s);
	line_i64(&l, "writers", opt.writers);
	line_i64(&l, "region_mb", opt.region_mb);
	line_i64(&l, "hot_pages", opt.hot_pages);
	line_u64(&l, "seed", opt.seed);
	line_bool(&l, "checker", opt.checker);
	line_i64(&l, "checker_mb", opt.checker_mb);
	line_i64(&l, "window_ms", opt.window_ms);
	line_bool(&l, "inject_corruption", opt.inject);
	line_i64(&l, "pid", getpid());
	line_str(&l, "kernel", u.release);
	line_str(&l, "machine", u.machine);
	line_i64(&l, "cpus", sysconf(_SC_NPROCESSORS_ONLN));
	line_i64(&l, "page_size", page_size);
	line_i64(&l, "reap_cpu", reap_cpu);
	line_emit(&l);
}

static int emit_summary(void)
{
	uint64_t corrupt = LOAD(sh->corrupt_pages);
	int code = corrupt ? EXIT_CORRUPTED : g_error ? EXIT_RUNTIME : EXIT_CLEAN;
	const char *status = corrupt ? "corrupted" : g_error ? "error" : "clean";
	struct line l;
	line_begin(&l, "summary");
	line_str(&l, "scenario", scenarios[opt.scenario].name);
	line_str(&l, "status", status);
	line_i64(&l, "exit_code", code);
	line_f64(&l, "elapsed", since_s(t_start_ns));
	line_u64(&l, "iterations", LOAD(sh->iterations));
	line_u64(&l, "reaps", LOAD(sh->reaps));
	line_u64(&l, "reap_failures_gone", g_reap_gone);
	line_u64(&l, "reap_failures_other", g_reap_other);
	line_u64(&l, "oom_kills", g_oom_kills);
	line_u64(&l, "oom_late", g_oom_late);
	line_u64(&l, "stuck_victims", g_stuck);
	line_u64(&l, "faults", LOAD(sh->faults));
	line_u64(&l, "writer_passes", total_writer_passes());
	line_u64(&l, "checker_rounds", LOAD(sh->checker_rounds));
	line_u64(&l, "checker_pages_checked", LOAD(sh->checker_pages));
	line_u64(&l, "checker_alloc_failures", LOAD(sh->checker_alloc_failures));
	line_u64(&l, "corruptions", corrupt);
	line_u64(&l, "corrupted_words", LOAD(sh->corrupt_words));
	if (opt.scenario == SC_MREMAP) {
		line_u64(&l, "moves", LOAD(sh->moves));
		line_u64(&l, "punches", LOAD(sh->punches));
		line_u64(&l, "reader_passes", LOAD(sh->reader_passes));
		line_u64(&l, "dropped_passes", LOAD(sh->dropped_passes));
		line_u64(&l, "zero_reads", LOAD(sh->zero_reads));
		line_u64(&l, "exposed_passes", LOAD(sh->exposed_passes));

		line_f64(&l, "move_seconds", (double)LOAD(sh->move_ns) / 1e9);
	}
	line_u64(&l, "corruption_reports", LOAD(sh->reports) < MAX_REPORTS ? LOAD(sh->reports) : MAX_REPORTS);
	line_u64(&l, "errors", g_errors);
	line_bool(&l, "interrupted", g_signalled != 0);
	line_emit(&l);
	return code;
}

int main(int argc, char **argv)
{
	page_size = sysconf(_SC_PAGESIZE);
	page_words = (size_t)page_size / sizeof(uint64_t);
	if (page_words > PAGE_WORDS_MAX || page_words % 8) {
		fprintf(stderr, "oomrace-stress: unsupported page size %ld\n", page_size);
		return EXIT_RUNTIME;
	}
	parse_options(argc, argv);

	void *m = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		fprintf(stderr, "oomrace-stress: mmap shared state: %s\n", strerror(errno));
		return EXIT_RUNTIME;
	}
	sh = m;
	t_start_ns = now_ns();
	init_cpus();
	install_signals();
	emit_start();

	pin_to(reap_cpu);
	if (opt.checker)
		start_checker();
	if (!g_error)
		scenarios[opt.scenario].run();

	/* Stop everything before the summary so its counters are final. */
	STORE(sh->stop, 1);
	if (g_worker_pid > 0) {
		if (opt.scenario == SC_MUNMAP || opt.scenario == SC_MADVISE || opt.scenario == SC_MREMAP)
			stop_child(&g_worker_pid, opt.scenario == SC_MREMAP ? "mover" : "mutator");
		else
			kill_and_reap(g_worker_pid, NULL);
		g_worker_pid = 0;
	}
	stop_child(&g_checker_pid, "checker");
	cgroup_cleanup();
	alarm(0);
	return emit_summary();
}
