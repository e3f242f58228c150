/* A user's reproducer for the bug of drop-caches-names-what.patch: writing 4 (only
 * "stop printing") to vm.drop_caches. Exits 0 when the write went through; on the buggy
 * kernel the oops kills it before that. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	if (fd < 0) {
		perror("open /proc/sys/vm/drop_caches");
		return 2;
	}
	if (write(fd, "4\n", 2) != 2) {
		perror("write");
		return 1;
	}
	close(fd);
	return 0;
}
