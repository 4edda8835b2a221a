/* SOCK_SEQPACKET sockets [gnu][macro]: listen, connect, accept, SCM_RIGHTS, SO_PEERCRED (bus1_linux.h). */
#include "b1l_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define B1L_SO_PEERPIDFD 77

static int fill_address(struct sockaddr_un *addr, const char *path) {
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path))
		return -ENAMETOOLONG;
	strcpy(addr->sun_path, path);
	return 0;
}

int b1l_listen_seqpacket(const char *path, int backlog) {
	KEEP_ERRNO();
	struct sockaddr_un addr;
	int ret = fill_address(&addr, path);
	if (ret < 0)
		return ret;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NEG_ERRNO();
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, backlog) < 0) {
		ret = NEG_ERRNO();
		close(fd);
		return ret;
	}
	return fd;
}

int b1l_socket_set_timeouts(int fd, int64_t timeout_ns) {
	KEEP_ERRNO();
	struct timeval tv = { 0, 0 };
	if (timeout_ns > 0) {
		tv.tv_sec = timeout_ns / 1000000000;
		tv.tv_usec = (timeout_ns % 1000000000) / 1000;
		if (tv.tv_sec == 0 && tv.tv_usec == 0)
			tv.tv_usec = 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return NEG_ERRNO();
	return 0;
}

int b1l_connect_seqpacket(const char *path, int64_t timeout_ns) {
	KEEP_ERRNO();
	struct sockaddr_un addr;
	int ret = fill_address(&addr, path);
	if (ret < 0)
		return ret;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NEG_ERRNO();
	if (timeout_ns > 0 && (ret = b1l_socket_set_timeouts(fd, timeout_ns)) < 0) {
		close(fd);
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = NEG_ERRNO();
		close(fd);
		return ret;
	}
	return fd;
}

int b1l_accept(int fd) {
	KEEP_ERRNO();
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	return c < 0 ? NEG_ERRNO() : c;
}

ssize_t b1l_send_with_fds(int fd, const void *buf, size_t len, const int *fds, int nfds, int flags) {
	KEEP_ERRNO();
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} control;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds < 0 || nfds > 8)
		return -EINVAL;
	if (nfds > 0) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}
	ssize_t n = sendmsg(fd, &msg, flags | MSG_NOSIGNAL);
	return n < 0 ? NEG_ERRNO() : n;
}

ssize_t b1l_recv_with_fds(int fd, void *buf, size_t len, int *fds, int max_fds, int *nfds, int *truncated, int flags) {
	KEEP_ERRNO();
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} control;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	*nfds = 0;
	*truncated = 0;
	ssize_t n = recvmsg(fd, &msg, flags | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return NEG_ERRNO();
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *received = (int *)CMSG_DATA(c);
		for (int i = 0; i < count; i++) {
			if (*nfds < max_fds)
				fds[(*nfds)++] = received[i];
			else
				close(received[i]); /* never leak fds a peer pushes at us */
		}
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		*truncated = 1;
	return n;
}

int b1l_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
	KEEP_ERRNO();
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return NEG_ERRNO();
	*pid = cred.pid;
	*uid = cred.uid;
	*gid = cred.gid;
	return 0;
}

int b1l_peer_pidfd(int fd) {
	KEEP_ERRNO();
	int pidfd = -1;
	socklen_t len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, B1L_SO_PEERPIDFD, &pidfd, &len) < 0)
		return NEG_ERRNO();
	return pidfd;
}
