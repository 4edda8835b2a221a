/* processes [gnu][macro]: pidfd, CPU affinity, pipes, wait status macros (bus1_linux.h). */
#include "b1l_internal.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int b1l_pidfd_open(int32_t pid) {
	KEEP_ERRNO();
	long fd = syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? NEG_ERRNO() : (int)fd;
}

int b1l_pin_to_cpu(int cpu) {
	KEEP_ERRNO();
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? NEG_ERRNO() : 0;
}

int b1l_allowed_cpus(int *cpus, int max_cpus) {
	KEEP_ERRNO();
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return NEG_ERRNO();
	int count = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		if (count < max_cpus)
			cpus[count] = cpu;
		count++;
	}
	return count;
}

int b1l_pipe_cloexec(int fds[2]) {
	KEEP_ERRNO();
	return pipe2(fds, O_CLOEXEC) < 0 ? NEG_ERRNO() : 0;
}

int b1l_wifexited(int status) { return WIFEXITED(status); }
int b1l_wexitstatus(int status) { return WEXITSTATUS(status); }
int b1l_wifsignaled(int status) { return WIFSIGNALED(status); }
int b1l_wtermsig(int status) { return WTERMSIG(status); }

_Static_assert(B1L_SEEK_DATA == SEEK_DATA && B1L_SEEK_HOLE == SEEK_HOLE, "lseek whence values");
