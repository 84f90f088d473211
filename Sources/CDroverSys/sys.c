#define _GNU_SOURCE
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <link.h>
#include <unistd.h>
#include "CDroverSys.h"

int drover_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowfd) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowfd);
}

int drover_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

short drover_spawn_setsid_flag(void) {
    return POSIX_SPAWN_SETSID;
}

int drover_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

// One request at a time, handed to the spawner thread under `lock`.
struct tied_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *output;
    int deathsig;
    int max_fd;
    pid_t result;
    int error;
    int pending;
};

static pthread_mutex_t tied_lock = PTHREAD_MUTEX_INITIALIZER;   // one caller at a time
static pthread_mutex_t tied_mutex = PTHREAD_MUTEX_INITIALIZER;  // guards `tied_slot`
static pthread_cond_t tied_cond = PTHREAD_COND_INITIALIZER;
static struct tied_request *tied_slot;
static pthread_once_t tied_once = PTHREAD_ONCE_INIT;
static int tied_thread_error;

static void child_fail(int report) {
    int e = errno;
    (void)!write(report, &e, sizeof e);
    _exit(127);
}

// The rest run in a forked child: only async-signal-safe calls until exec.

// Default dispositions and an empty mask: the parent may ignore or block signals
// (ServiceLifecycle handles SIGTERM itself), and the child would inherit that.
static void child_default_signals(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

// Moves the report pipe above stdio, then points stdin at `input` and stdout and stderr at
// `output` (appended). Returns the report descriptor.
static int child_stdio(int report, const char *input, const char *output) {
    if (report < 3) {
        int moved = fcntl(report, F_DUPFD_CLOEXEC, 3);
        if (moved < 0) _exit(127);
        report = moved;
    }
    int in = open(input, O_RDONLY);
    int out = open(output, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0640);
    if (in < 0 || out < 0) child_fail(report);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) child_fail(report);
    return report;
}

// The highest descriptor a process may hold, read in the parent before fork.
static int open_max(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > 1048576) return 1048576;
    return (int)limit.rlim_cur;
}

// Nothing else is inherited, except the pipe that reports a failed exec (close-on-exec).
// Kernels before 5.9 have no close_range: then each descriptor up to `max_fd` is closed.
static void child_exec(int report, int max_fd, const char *path, char *const argv[], char *const envp[]) {
    int ok = (report == 3 || syscall(SYS_close_range, 3U, (unsigned)report - 1, 0U) == 0)
        && syscall(SYS_close_range, (unsigned)report + 1, ~0U, 0U) == 0;
    if (!ok) {
        for (int fd = 3; fd < max_fd; fd++) if (fd != report) close(fd);
    }
    execve(path, argv, envp);
    child_fail(report);
}

// In the parent: the child's pid once it exec'd, or -1 with the child's errno (the child is
// reaped then, so no zombie remains).
static pid_t parent_await_exec(pid_t pid, int pipefd[2]) {
    int saved = errno;
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        errno = saved;
        return -1;
    }
    int childerr = 0;
    ssize_t n;
    do { n = read(pipefd[0], &childerr, sizeof childerr); } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n == (ssize_t)sizeof childerr) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        errno = childerr;
        return -1;
    }
    return pid;
}

static void tied_child(struct tied_request *r, pid_t parent, int report) {
    // Default dispositions first: an ignored death signal would be discarded.
    child_default_signals();
    if (prctl(PR_SET_PDEATHSIG, r->deathsig, 0, 0, 0) != 0) child_fail(report);
    // The parent may have died between fork and prctl: then nobody would send the signal.
    if (getppid() != parent) _exit(127);
    report = child_stdio(report, "/dev/null", r->output);
    child_exec(report, r->max_fd, r->path, r->argv, r->envp);
}

static void tied_run(struct tied_request *r) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        r->result = -1;
        r->error = errno;
        return;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        tied_child(r, parent, pipefd[1]);
    }
    r->result = parent_await_exec(pid, pipefd);
    r->error = r->result < 0 ? errno : 0;
}

static void *tied_thread(void *unused) {
    (void)unused;
    pthread_mutex_lock(&tied_mutex);
    for (;;) {
        while (tied_slot == NULL || !tied_slot->pending) pthread_cond_wait(&tied_cond, &tied_mutex);
        tied_run(tied_slot);
        tied_slot->pending = 0;
        pthread_cond_broadcast(&tied_cond);
    }
    return NULL;
}

static void tied_start(void) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    tied_thread_error = pthread_create(&thread, &attr, tied_thread, NULL);
    pthread_attr_destroy(&attr);
}

int drover_spawn_tied(const char *path, char *const argv[], char *const envp[], const char *output, int deathsig) {
    pthread_once(&tied_once, tied_start);
    if (tied_thread_error != 0) {
        errno = tied_thread_error;
        return -1;
    }
    struct tied_request r = {path, argv, envp, output, deathsig, open_max(), -1, 0, 1};
    pthread_mutex_lock(&tied_lock);
    pthread_mutex_lock(&tied_mutex);
    tied_slot = &r;
    pthread_cond_broadcast(&tied_cond);
    while (r.pending) pthread_cond_wait(&tied_cond, &tied_mutex);
    tied_slot = NULL;
    pthread_mutex_unlock(&tied_mutex);
    pthread_mutex_unlock(&tied_lock);
    if (r.result < 0) errno = r.error;
    return r.result;
}

// The output file and the directory are opened while still privileged (they live in the
// agent's owner-only data dir); then the groups, the group and the user are dropped, in that
// order, for good.
static void as_child(const struct drover_spawn_as_request *r, int max_fd, int report) {
    child_default_signals();
    // A session of its own (pgid = sid = pid): the group can be signalled at once, and no
    // terminal of the agent's is reachable from it.
    if (r->new_process_group && setsid() < 0) child_fail(report);
    report = child_stdio(report, r->stdin_path, r->output);
    if (r->directory != NULL && chdir(r->directory) != 0) child_fail(report);
    if (setgroups((size_t)r->group_count, r->groups) != 0) child_fail(report);
    if (setresgid(r->gid, r->gid, r->gid) != 0) child_fail(report);
    if (setresuid(r->uid, r->uid, r->uid) != 0) child_fail(report);
    // Dropped for good: a process that could become root again must not run.
    if (r->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) { errno = EPERM; child_fail(report); }
    child_exec(report, max_fd, r->path, r->argv, r->envp);
}

pid_t drover_spawn_as(const struct drover_spawn_as_request *r) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
    int max_fd = open_max();
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        as_child(r, max_fd, pipefd[1]);
    }
    return parent_await_exec(pid, pipefd);
}

#include <sys/socket.h>

int drover_accept_cloexec(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC);
}

/// Whether the program's dynamic section asks the loader to patch its code (text
/// relocations): such code pages are private copies that unmapping would lose.
static int has_text_relocations(struct dl_phdr_info *info) {
    for (int k = 0; k < info->dlpi_phnum; k++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
        if (ph->p_type != PT_DYNAMIC) continue;
        for (const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr); d->d_tag != DT_NULL; d++) {
            if (d->d_tag == DT_TEXTREL) return 1;
            if (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_TEXTREL)) return 1;
        }
    }
    return 0;
}

struct code_trim {
    uintptr_t page;
    int objects;
    int main_has_textrel;
    int failed;
    long advised;
};

/// Each loaded object's read-only segments (the program's, and its libraries': libcrypto,
/// which libmosquitto initialises at start, was a tenth of the agent's PSS). An object whose
/// code the loader patched (text relocations) is left alone; with the program itself, nothing is.
static int trim_code(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct code_trim *trim = data;
    int first = trim->objects++ == 0;
    // The vDSO is the kernel's, not a file's. (No library call here but madvise: what this
    // runs between advices maps itself again, 64 KiB at a time.)
    const char *vdso = "linux-vdso", *name = info->dlpi_name ? info->dlpi_name : "";
    int k = 0;
    while (vdso[k] && name[k] == vdso[k]) k++;
    if (!vdso[k]) return 0;
    if (has_text_relocations(info)) {
        if (first) {
            trim->main_has_textrel = 1;
            return 1;
        }
        return 0;
    }
    uintptr_t page = trim->page;
    for (k = 0; k < info->dlpi_phnum; k++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
        // Writable segments hold data (and relocated pointers, RELRO included: it is
        // writable in the program header): never touched.
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W)) continue;
        // Whole pages the file fills only: the loader zero-fills the last file page of a
        // segment whose memory runs past its file bytes, which makes that page a private copy.
        uintptr_t filled = ph->p_filesz < ph->p_memsz ? ph->p_filesz : ph->p_memsz;
        uintptr_t start = (info->dlpi_addr + ph->p_vaddr + page - 1) & ~(page - 1);
        uintptr_t end = (info->dlpi_addr + ph->p_vaddr + filled) & ~(page - 1);
        if (end <= start) continue;
        // Here, under the loader's lock (held through this callback): no object is unmapped
        // meanwhile, so the range cannot have been reused by another mapping.
        if (madvise((void *)start, end - start, MADV_DONTNEED) != 0) {
            trim->failed = errno;
            return 1;
        }
        trim->advised += (long)(end - start);
    }
    return 0;
}

long drover_unmap_own_code(void) {
    // MADV_DONTNEED drops this process's mappings only: the pages stay in the page cache,
    // and what runs next maps them again from there.
    struct code_trim trim = {0};
    trim.page = (uintptr_t)sysconf(_SC_PAGESIZE);
    dl_iterate_phdr(trim_code, &trim);
    if (trim.main_has_textrel) {
        errno = ENOTSUP;
        return -1;
    }
    if (trim.failed) {
        errno = trim.failed;
        return -1;
    }
    return trim.advised;
}
