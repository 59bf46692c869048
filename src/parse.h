/* parse.h - strict number parsing shared by the config and file parsers. Pure. */
#ifndef QGS_PARSE_H
#define QGS_PARSE_H

/*
 * Parses s as ASCII decimal digits only (no sign, no spaces, no empty string)
 * within [min, max]. Returns 0 and the value in *out, or -1.
 */
int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif
