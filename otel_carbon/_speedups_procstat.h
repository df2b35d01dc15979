/* The cpu line of /proc/stat, shared by the span-path module and the sampler's tick. */
#ifndef OTEL_CARBON_PROCSTAT_H
#define OTEL_CARBON_PROCSTAT_H

#include <Python.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Busy and total clock ticks of all CPUs from the first line of /proc/stat, read with
 * pread on a kept-open fd. busy = user + nice + system + irq + softirq; total adds idle,
 * iowait and steal (the Python _ProcStat.read is the reference). The GIL stays held: the
 * read is a few tens of microseconds in the kernel, and giving the GIL away and back costs
 * a hand-off when application threads are busy. Returns 0, or -1 with an exception set. */
static inline int
read_proc_stat_cpu(int fd, unsigned long long *busy, unsigned long long *total)
{
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    buf[n] = '\0';
    if (strncmp(buf, "cpu ", 4) != 0) {
        PyErr_SetString(PyExc_ValueError, "/proc/stat does not start with a 'cpu' line");
        return -1;
    }
    unsigned long long v[8]; /* user nice system idle iowait irq softirq steal */
    char *p = buf + 4;
    for (int i = 0; i < 8; i++) {
        char *end;
        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '9') {
            PyErr_SetString(PyExc_ValueError, "/proc/stat: fewer than 8 numbers on the cpu line");
            return -1;
        }
        v[i] = strtoull(p, &end, 10);
        p = end;
    }
    *busy = v[0] + v[1] + v[2] + v[5] + v[6];
    *total = *busy + v[3] + v[4] + v[7];
    return 0;
}

/* Defined in _speedups_tick.c: adds the TickCore type to the module. */
int add_tick_core(PyObject *module);

#endif
