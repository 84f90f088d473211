#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "CDroverSys.h"

static void as_fail(int report) {
    int e = errno;
    (void)!write(report, &e, sizeof e);
    _exit(127);
}

// Runs in the forked child: only async-signal-safe calls until exec. The output file and the
// directory are opened while still privileged (they live in the agent's owner-only data dir);
// then the groups, the group and the user are dropped, in that order, for good.
static void as_child(const struct drover_spawn_as_request *r, int report) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (r->new_process_group && setpgid(0, 0) != 0) as_fail(report);
    if (report < 3) {
        int moved = fcntl(report, F_DUPFD_CLOEXEC, 3);
        if (moved < 0) _exit(127);
        report = moved;
    }
    int in = open(r->stdin_path, O_RDONLY);
    int out = open(r->output, O_WRONLY | O_CREAT | O_APPEND, 0640);
    if (in < 0 || out < 0) as_fail(report);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) as_fail(report);
    if (r->directory != NULL && chdir(r->directory) != 0) as_fail(report);
    if (setgroups((size_t)r->group_count, r->groups) != 0) as_fail(report);
    if (setresgid(r->gid, r->gid, r->gid) != 0) as_fail(report);
    if (setresuid(r->uid, r->uid, r->uid) != 0) as_fail(report);
    // Dropped for good: a process that could become root again must not run.
    if (r->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) { errno = EPERM; as_fail(report); }
    if (report > 3) syscall(SYS_close_range, 3U, (unsigned)report - 1, 0U);
    syscall(SYS_close_range, (unsigned)report + 1, ~0U, 0U);
    execve(r->path, r->argv, r->envp);
    as_fail(report);
}

pid_t drover_spawn_as(const struct drover_spawn_as_request *r) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        as_child(r, pipefd[1]);
    }
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
