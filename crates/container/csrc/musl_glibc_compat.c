/*
 * Built only for the musl target (build.rs).
 *
 * podrun's static musl binary links Debian's libseccomp.a, which was compiled against
 * glibc with _FORTIFY_SOURCE. Every C library function it imports is in musl too, but
 * one: glibc's fortified fprintf, used by libseccomp's PFC text export (seccomp_export_pfc,
 * which podrun does not call). This is that function, as glibc defines it: the `flag`
 * argument only asks for extra checks, and the call is vfprintf's.
 */
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *stream, int flag, const char *format, ...)
{
	va_list ap;
	int r;

	(void)flag;
	va_start(ap, format);
	r = vfprintf(stream, format, ap);
	va_end(ap);
	return r;
}
