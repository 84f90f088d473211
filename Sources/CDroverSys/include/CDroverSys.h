#ifndef DROVER_CDROVERSYS_H
#define DROVER_CDROVERSYS_H
#include <spawn.h>

// glibc declares these only under _GNU_SOURCE, which Swift's Glibc module does not set.

// Close every descriptor >= lowfd in the child: a replica must not inherit the agent's
// broker socket, or the broker would not notice the agent dying and never send its will.
int drover_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowfd);
int drover_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);
// Makes the calling process a child subreaper: orphans of its replicas are reparented to it.
int drover_set_child_subreaper(void);
#endif
