#ifndef DROVER_CDROVERSYS_H
#define DROVER_CDROVERSYS_H
#include <spawn.h>

// glibc declares these only under _GNU_SOURCE, which Swift's Glibc module does not set.

// Close every descriptor >= lowfd in the child: a replica must not inherit the agent's
// broker socket, or the broker would not notice the agent dying and never send its will.
int drover_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowfd);
int drover_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);
// POSIX_SPAWN_SETSID: the child starts a session of its own (and so a process group).
short drover_spawn_setsid_flag(void);
// Makes the calling process a child subreaper: orphans of its replicas are reparented to it.
int drover_set_child_subreaper(void);

// accept(2) with the new descriptor close-on-exec from the start (no window for a fork).
int drover_accept_cloexec(int fd);

// Starts `path` as a child that receives `deathsig` when this process dies (PR_SET_PDEATHSIG),
// with default signal dispositions, an empty signal mask, stdin from /dev/null, stdout and
// stderr appended to `output`, and no other descriptor. The fork happens on one thread
// that lives as long as the process: the parent-death signal follows the thread that forked,
// and the threads of Swift's pool come and go. Returns the pid, or -1 with errno set (also
// when exec failed in the child).
int drover_spawn_tied(const char *path, char *const argv[], char *const envp[], const char *output, int deathsig);

#include <sys/types.h>

// A replica started as another user: `drover_spawn_as` forks, and the child sets default
// signal dispositions and an empty mask, its own process group when asked, stdin from
// `stdin_path`, stdout and stderr appended to `output`, the working directory, then drops to
// `groups`, `gid` and `uid` (all of real, effective and saved ids) and execs with no other
// descriptor. `path` is used as it is (no PATH search). Returns the pid, or -1 with errno set (also when anything failed in the child).
struct drover_spawn_as_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *stdin_path;
    const char *output;
    const char *directory;
    int new_process_group;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
};
pid_t drover_spawn_as(const struct drover_spawn_as_request *request);

// The agent's working-set trim. This kernel reads a whole executable into the page cache at
// exec, and maps 64 KiB around each fault from it, so after a start nearly all of the agent's
// code and constants are mapped (and count in its PSS), though idle it runs a few percent.
// Drops this process's mappings of the read-only segments of its program and of every
// library it loaded: later use maps again, from the page cache, only what runs. Refused
// (ENOTSUP) for a program with text relocations, whose code pages are patched copies (a
// library with them is left alone). Returns the bytes advised, or -1 with errno set.
long drover_unmap_own_code(void);
#endif
