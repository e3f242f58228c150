/* Smallest guest program: proves static cross-compilation and reports the guest's view. */
#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void)
{
	struct utsname u;

	if (uname(&u) != 0) {
		perror("uname");
		return 1;
	}
	printf("{\"event\":\"hello\",\"machine\":\"%s\",\"release\":\"%s\",\"cpus\":%ld}\n",
	       u.machine, u.release, sysconf(_SC_NPROCESSORS_ONLN));
	return 0;
}
