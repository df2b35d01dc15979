/*
 * otel_carbon._speedups: the span path in C (optional; the pure-Python code in
 * cpu_clock.py and processor.py is the reference and the fallback).
 *
 * What is here, and nothing more:
 *
 *   - the per-thread CPU clock with coalesced reads (cpu_clock.span_start_cpu_ns,
 *     read_cpu_ns, thread_clock_id): the same rule as the Python code, with the last real
 *     read kept in C thread-local storage;
 *   - TaskMeter, the per-task CPU meter of asyncio spans, and the step hooks that feed it
 *     (cpu_clock.TaskMeter, meter_for_span, _begin, _finish), with the same rules;
 *   - Hooks: on_start / _on_ending / on_end for a drop-in CarbonSpanProcessor, doing the
 *     common case only (a span on the thread clock, started and ended on one thread, or on
 *     its task's meter; priced by the tick current at its start; no work handed to other
 *     threads; room for its attributes within the span's limits; any number of components,
 *     no GPU, idle or embodied figures). Its arithmetic is attribute_c, the mirror of
 *     otel_carbon.attribution.attribute and nothing else. Anything else -- and
 *     any error -- is handed to the processor's Python methods, which do the same work in
 *     full and catch everything. The Python processor tells the hooks what they mirror
 *     (layout, listeners, whether the resource was seen) through Hooks.sync().
 *
 * Every function here holds the GIL throughout: eight dict stores into a span's attributes
 * are seen by other threads all at once, as the Python dict.update was.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* Member types: Python.h has the Py_T_* names from 3.12 (structmember.h's T_* are deprecated). */
#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_T_LONGLONG T_LONGLONG
#define Py_T_BOOL T_BOOL
#define Py_T_INT T_INT
#endif
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLOCK_REUSE_NS 50000LL

/* pthread_getcpuclockid is POSIX but macOS has none: there the thread's clock id stays
 * unknown, and every span takes the Python path (which times it with the thread clock).
 * OTEL_CARBON_NO_THREAD_CPUCLOCKID builds that variant anywhere (a test compiles it). */
#if defined(__APPLE__) || defined(OTEL_CARBON_NO_THREAD_CPUCLOCKID)
#define HAVE_THREAD_CPUCLOCKID 0
#else
#define HAVE_THREAD_CPUCLOCKID 1
#endif

/* This thread's last real CPU-clock read and its clock id. */
typedef struct {
    long long cpu_ns;  /* CPU ns at the last real read */
    long long wall_ns; /* CLOCK_MONOTONIC ns taken just before it */
    int clock_state;   /* 0: not asked yet, 1: clock_id valid, -1: the OS has none */
    clockid_t clock_id;
    long long offloaded_ns; /* cpu_clock.offloaded_ns: CPU ns spans ended here handed to other threads */
} thread_clock;

static _Thread_local thread_clock tc = {0, -CLOCK_REUSE_NS, 0, 0, 0};

/* The asyncio task step running on this thread (cpu_clock.current_owner), or NULL for None.
 * A strong reference; every swap_owner is undone in a finally, so a thread ends with NULL. */
static _Thread_local PyObject *owner_tls = NULL;

static inline long long
ns_of(const struct timespec *ts)
{
    return (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static inline long long
wall_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ns_of(&ts);
}

/* A real read of this thread's CPU clock, remembered for the next span start. */
static int
real_read(long long wall_ns, long long *cpu_ns)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    *cpu_ns = ns_of(&ts);
    tc.cpu_ns = *cpu_ns;
    tc.wall_ns = wall_ns;
    return 0;
}

/* The CPU clock for a span (or task step) starting now: the last real read plus the wall
 * time since, when that read is under CLOCK_REUSE_NS old (see cpu_clock.py). */
static int
coalesced_read(long long wall_ns, long long *cpu_ns)
{
    long long gap = wall_ns - tc.wall_ns;
    if (gap >= 0 && gap < CLOCK_REUSE_NS) {
        *cpu_ns = tc.cpu_ns + gap;
        return 0;
    }
    return real_read(wall_ns, cpu_ns);
}

static void
ensure_clock_id(void)
{
    if (tc.clock_state == 0) {
#if HAVE_THREAD_CPUCLOCKID
        clockid_t cid;
        if (pthread_getcpuclockid(pthread_self(), &cid) == 0) {
            tc.clock_id = cid;
            tc.clock_state = 1;
            return;
        }
#endif
        tc.clock_state = -1;
    }
}

static PyObject *
clock_id_object(void)
{
    ensure_clock_id();
    if (tc.clock_state == 1)
        return PyLong_FromLong((long)tc.clock_id);
    Py_RETURN_NONE;
}

/* -- module functions (the cpu_clock API; the argument is the Python TLS, unused) ---- */

static PyObject *
span_start_cpu_ns(PyObject *module, PyObject *unused)
{
    long long cpu_ns;
    if (coalesced_read(wall_now_ns(), &cpu_ns) < 0)
        return NULL;
    return PyLong_FromLongLong(cpu_ns);
}

static PyObject *
read_cpu_ns(PyObject *module, PyObject *unused)
{
    long long cpu_ns;
    if (real_read(wall_now_ns(), &cpu_ns) < 0)
        return NULL;
    return PyLong_FromLongLong(cpu_ns);
}

static PyObject *
thread_clock_id(PyObject *module, PyObject *unused)
{
    return clock_id_object();
}

static PyObject *
current_owner(PyObject *module, PyObject *unused)
{
    PyObject *owner = owner_tls ? owner_tls : Py_None;
    Py_INCREF(owner);
    return owner;
}

static PyObject *
swap_owner(PyObject *module, PyObject *owner)
{
    PyObject *previous = owner_tls ? owner_tls : Py_None; /* its reference goes to the caller */
    if (owner == Py_None) {
        owner_tls = NULL;
    }
    else {
        Py_INCREF(owner);
        owner_tls = owner;
    }
    if (previous == Py_None)
        Py_INCREF(previous);
    return previous;
}

static PyObject *
forget_thread_clock(PyObject *module, PyObject *unused)
{
    tc.cpu_ns = 0;
    tc.wall_ns = -CLOCK_REUSE_NS;
    tc.clock_state = 0;
    tc.offloaded_ns = 0;
    Py_RETURN_NONE;
}

static PyObject *
offloaded_ns(PyObject *module, PyObject *unused)
{
    return PyLong_FromLongLong(tc.offloaded_ns);
}

static PyObject *
add_offloaded_ns(PyObject *module, PyObject *arg)
{
    long long ns = PyLong_AsLongLong(arg);
    if (ns == -1 && PyErr_Occurred())
        return NULL;
    tc.offloaded_ns += ns;
    Py_RETURN_NONE;
}

/* -- TaskMeter ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the Context (or coroutine wrapper) whose steps are timed */
    long long acc_ns;
    long long step_t0_ns;
    char in_step;
    int open_spans;
    long long offloaded_ns; /* CPU ns this task's spans handed to other threads */
} TaskMeter;

/* Module state: the heap types and the context variable (no per-interpreter globals; the
 * thread clock and the running task step above are per thread). */
typedef struct {
    PyTypeObject *task_meter_type;
    PyTypeObject *hooks_type;
    PyObject *meter_var; /* ContextVar: the running task's meter */
    PyObject *get_running_loop; /* asyncio.events._get_running_loop, once asyncio is imported */
    PyObject *events_name;      /* "asyncio.events" */
} module_state;

static inline module_state *
state_of(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

static int
TaskMeter_traverse(TaskMeter *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self)); /* a heap type: its instances keep it alive */
    Py_VISIT(self->owner);
    return 0;
}

static int
TaskMeter_clear(TaskMeter *self)
{
    Py_CLEAR(self->owner);
    return 0;
}

static void
TaskMeter_dealloc(TaskMeter *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    TaskMeter_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* A fresh meter for `owner`: nothing counted, no step timed, no span open. */
static void
meter_reset(TaskMeter *m, PyObject *owner)
{
    Py_INCREF(owner);
    Py_XSETREF(m->owner, owner);
    m->acc_ns = 0;
    m->step_t0_ns = 0;
    m->in_step = 0;
    m->open_spans = 0;
    m->offloaded_ns = 0;
}

static int
TaskMeter_init(TaskMeter *self, PyObject *args, PyObject *kwds)
{
    PyObject *owner;
    if (!PyArg_ParseTuple(args, "O:TaskMeter", &owner))
        return -1;
    meter_reset(self, owner);
    return 0;
}

/* The meter's reading now (a real clock read when a step is being timed). */
static int
meter_now(TaskMeter *m, long long *out)
{
    if (!m->in_step) {
        *out = m->acc_ns;
        return 0;
    }
    long long cpu_ns;
    if (real_read(wall_now_ns(), &cpu_ns) < 0)
        return -1;
    long long d = cpu_ns - m->step_t0_ns; /* a coalesced step start may be ahead by < 50 us */
    *out = m->acc_ns + (d > 0 ? d : 0);
    return 0;
}

static PyObject *
TaskMeter_now_ns(TaskMeter *self, PyObject *unused)
{
    long long v;
    if (self->owner == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TaskMeter not initialised");
        return NULL;
    }
    if (meter_now(self, &v) < 0)
        return NULL;
    return PyLong_FromLongLong(v);
}

static PyMethodDef TaskMeter_methods[] = {
    {"now_ns", (PyCFunction)TaskMeter_now_ns, METH_NOARGS, "Cumulative CPU ns of the task's timed steps, now."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef TaskMeter_members[] = {
    {"owner", Py_T_OBJECT_EX, offsetof(TaskMeter, owner), 0, NULL},
    {"acc_ns", Py_T_LONGLONG, offsetof(TaskMeter, acc_ns), 0, NULL},
    {"step_t0_ns", Py_T_LONGLONG, offsetof(TaskMeter, step_t0_ns), 0, NULL},
    {"in_step", Py_T_BOOL, offsetof(TaskMeter, in_step), 0, NULL},
    {"open_spans", Py_T_INT, offsetof(TaskMeter, open_spans), 0, NULL},
    {"offloaded_ns", Py_T_LONGLONG, offsetof(TaskMeter, offloaded_ns), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot TaskMeter_slots[] = {
    {Py_tp_doc, (void *)"Cumulative CPU nanoseconds of one task's steps (while spans are open in it)."},
    {Py_tp_traverse, (void *)TaskMeter_traverse},
    {Py_tp_clear, (void *)TaskMeter_clear},
    {Py_tp_dealloc, (void *)TaskMeter_dealloc},
    {Py_tp_init, (void *)TaskMeter_init},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_methods, TaskMeter_methods},
    {Py_tp_members, TaskMeter_members},
    {0, NULL},
};

static PyType_Spec TaskMeter_spec = {
    .name = "otel_carbon._speedups.TaskMeter",
    .basicsize = sizeof(TaskMeter),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = TaskMeter_slots,
};

/* The running task's meter with one more open span (made and bound to the context if
 * needed) and its reading now: cpu_clock.meter_for_span. Only inside a timed step. */
static TaskMeter *
meter_for_span_c(module_state *st, long long *reading)
{
    PyObject *owner = owner_tls;
    PyObject *got;
    if (owner == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "meter_for_span outside a timed task step");
        return NULL;
    }
    if (PyContextVar_Get(st->meter_var, NULL, &got) < 0)
        return NULL;
    TaskMeter *m = (TaskMeter *)got; /* new reference, or NULL */
    if (m == NULL || Py_TYPE(m) != st->task_meter_type || m->owner != owner) {
        Py_XDECREF(got);
        m = PyObject_GC_New(TaskMeter, st->task_meter_type); /* takes a reference to the type */
        if (m == NULL)
            return NULL;
        m->owner = NULL;
        meter_reset(m, owner);
        PyObject_GC_Track(m);
        PyObject *token = PyContextVar_Set(st->meter_var, (PyObject *)m);
        if (token == NULL) {
            Py_DECREF(m);
            return NULL;
        }
        Py_DECREF(token);
    }
    m->open_spans += 1;
    long long now_ns;
    if (coalesced_read(wall_now_ns(), &now_ns) < 0) { /* a span start: coalesced */
        m->open_spans -= 1;
        Py_DECREF(m);
        return NULL;
    }
    if (!m->in_step) { /* first open span: time the rest of this step */
        m->step_t0_ns = now_ns;
        m->in_step = 1;
        *reading = m->acc_ns;
    }
    else {
        long long d = now_ns - m->step_t0_ns;
        *reading = m->acc_ns + (d > 0 ? d : 0);
    }
    return m;
}

static PyObject *
meter_for_span(PyObject *module, PyObject *unused)
{
    long long reading;
    TaskMeter *m = meter_for_span_c(state_of(module), &reading);
    if (m == NULL)
        return NULL;
    PyObject *r = Py_BuildValue("(NL)", (PyObject *)m, reading);
    return r;
}

/* cpu_clock.running_loop(): the loop running on this thread, or None -- also before asyncio
 * is imported (then no loop can run), without importing it. */
static PyObject *
running_loop(PyObject *module, PyObject *unused)
{
    module_state *st = state_of(module);
    if (st->get_running_loop == NULL) {
        PyObject *events = PyImport_GetModule(st->events_name); /* NULL, no error: not imported */
        if (events == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE;
        }
        st->get_running_loop = PyObject_GetAttrString(events, "_get_running_loop");
        Py_DECREF(events);
        if (st->get_running_loop == NULL)
            return NULL;
    }
    return PyObject_CallNoArgs(st->get_running_loop);
}

/* cpu_clock._begin(owner, meter): a step of `owner` starts; time it if it has open spans. */
static PyObject *
step_begin(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_begin(owner, meter)");
        return NULL;
    }
    TaskMeter *m = (TaskMeter *)args[1];
    if (Py_TYPE(m) == state_of(module)->task_meter_type && m->owner == args[0] && m->open_spans > 0) {
        long long now_ns;
        if (coalesced_read(wall_now_ns(), &now_ns) < 0) /* often right after another step ended */
            return NULL;
        m->step_t0_ns = now_ns;
        m->in_step = 1;
    }
    Py_RETURN_NONE;
}

/* cpu_clock._finish(owner, meter): the step ends; add its CPU time. */
static PyObject *
step_finish(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_finish(owner, meter)");
        return NULL;
    }
    TaskMeter *m = (TaskMeter *)args[1];
    if (Py_TYPE(m) == state_of(module)->task_meter_type && m->in_step && m->owner == args[0]) {
        long long cpu_ns;
        if (real_read(wall_now_ns(), &cpu_ns) < 0)
            return NULL;
        long long d = cpu_ns - m->step_t0_ns;
        m->acc_ns += d > 0 ? d : 0;
        m->in_step = 0;
    }
    Py_RETURN_NONE;
}

/* -- Hooks ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    module_state *st;         /* its module's (kept alive by the type, which the instance holds) */
    PyObject *open;           /* the processor's dict: id(span) -> (cpu0_ns, meter, clock_id, tick, offloaded0_ns) */
    PyObject *boxes;          /* the processor's dict: id(span) -> offload.Box, for spans that handed work off */
    PyObject *running_loop;   /* asyncio.events._get_running_loop */
    PyObject *slow_on_start;  /* the processor's Python methods */
    PyObject *slow_on_ending;
    PyObject *drop_oldest;
    PyObject *notify;
    PyObject *names;          /* attribute names and constants, in the order of the enum below */
    /* pushed by the processor's tick listener (set_tick) */
    PyObject *latest;         /* the sampler's latest tick, or None */
    int quiet;                /* the sampler is in its idle back-off */
    double stale_after_ns;
    /* pushed by the processor when it decides them (sync) */
    int ready;                /* the first span's resource was seen */
    int listeners;            /* span listeners (metrics): 0 none, 1 for every span, 2 local roots only */
    PyObject *components;     /* the layout's attribute names (a tuple), or NULL: not compiled */
    Py_ssize_t n_components;
    Py_ssize_t *component_index; /* each one's index in the tick's prices */
    Py_ssize_t max_open;
    /* the figures of `tick`, loaded on first use */
    int gpu;                  /* the layout shows the span's GPU share, */
    int idle;                 /* its idle share, */
    double embodied_g_per_s;  /* and its embodied carbon at this rate (0: not shown) */
    PyObject *tick;
    double *prices;           /* per component, layout order (and n_components doubles of scratch) */
    double gpu_per_span_w, idle_price, wall_s_per_busy_s; /* the tick's, where the layout shows them */
    double g_per_j;
    long long tick_t_ns;
    PyObject *figures;        /* the eight attributes; per span, the numbers are replaced */
    PyObject *figures_clock;  /* the carbon.cpu.clock value in `figures` now (borrowed name) */
    /* the one listener's table of sums (see table_cell), or NULL: pushed by sync */
    PyObject *table_cells;    /* dict: (span name, method, value of each name...) -> [J, g, count, ...] */
    PyObject *table_names;    /* tuple of attribute names */
} Hooks;

enum {
    N_CPU_TIME, N_CPU_CLOCK, N_ENERGY_TOTAL, N_EMISSIONS, N_INTENSITY, N_ZONE, N_METHOD,
    N_CLOCK_THREAD, N_CLOCK_TASK, N_UNAVAILABLE, N_ATTRIBUTES, N_DICT, N_PRICE, N_G_PER_J, N_T_NS,
    N_INTENSITY_ATTR, N_G_PER_KWH, N_ZONE_ATTR, N_METHOD_ATTR, N_MAXLEN, N_MAX_VALUE_LEN, N_PARENT, N_IS_REMOTE,
    N_ENERGY_GPU, N_ENERGY_IDLE, N_EMBODIED, N_GPU_PER_SPAN_W, N_IDLE_PRICE, N_WALL_PER_BUSY, N_START_TIME, N_END_TIME,
    N_NAME, N_RUN_SCOPE, N_COUNT
};

#define NAME(i) PyTuple_GET_ITEM(self->names, (i))

static int
Hooks_traverse(Hooks *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->open);
    Py_VISIT(self->boxes);
    Py_VISIT(self->running_loop);
    Py_VISIT(self->slow_on_start);
    Py_VISIT(self->slow_on_ending);
    Py_VISIT(self->drop_oldest);
    Py_VISIT(self->notify);
    Py_VISIT(self->names);
    Py_VISIT(self->latest);
    Py_VISIT(self->components);
    Py_VISIT(self->tick);
    Py_VISIT(self->figures);
    Py_VISIT(self->table_cells);
    Py_VISIT(self->table_names);
    return 0;
}

static int
Hooks_clear(Hooks *self)
{
    Py_CLEAR(self->open);
    Py_CLEAR(self->boxes);
    Py_CLEAR(self->running_loop);
    Py_CLEAR(self->slow_on_start);
    Py_CLEAR(self->slow_on_ending);
    Py_CLEAR(self->drop_oldest);
    Py_CLEAR(self->notify);
    Py_CLEAR(self->names);
    Py_CLEAR(self->latest);
    Py_CLEAR(self->components);
    Py_CLEAR(self->tick);
    Py_CLEAR(self->figures);
    Py_CLEAR(self->table_cells);
    Py_CLEAR(self->table_names);
    return 0;
}

static void
Hooks_dealloc(Hooks *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Hooks_clear(self);
    PyMem_Free(self->component_index);
    PyMem_Free(self->prices);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static void
set_ref(PyObject **slot, PyObject *value)
{
    Py_XINCREF(value);
    Py_XSETREF(*slot, value);
}

/* Hooks(open, boxes, running_loop, slow_on_start, slow_on_ending, drop_oldest, notify, names, max_open) */
static int
Hooks_init(Hooks *self, PyObject *args, PyObject *kwds)
{
    PyObject *open, *boxes, *running_loop, *son, *soe, *drop, *notify, *names;
    Py_ssize_t max_open;
    if (!PyArg_ParseTuple(args, "O!O!OOOOOO!n:Hooks", &PyDict_Type, &open, &PyDict_Type, &boxes, &running_loop, &son,
                          &soe, &drop, &notify, &PyTuple_Type, &names, &max_open))
        return -1;
    if (PyTuple_GET_SIZE(names) != N_COUNT) {
        PyErr_Format(PyExc_ValueError, "names must hold %d strings", (int)N_COUNT);
        return -1;
    }
    set_ref(&self->open, open);
    set_ref(&self->boxes, boxes);
    set_ref(&self->running_loop, running_loop);
    set_ref(&self->slow_on_start, son);
    set_ref(&self->slow_on_ending, soe);
    set_ref(&self->drop_oldest, drop);
    set_ref(&self->notify, notify);
    set_ref(&self->names, names);
    set_ref(&self->latest, Py_None);
    self->max_open = max_open;
    self->st = (module_state *)PyType_GetModuleState(Py_TYPE(self));
    return self->st == NULL ? -1 : 0;
}

/* sync(ready, components: ((name, index), ...) or None, listeners: 0 none, 1 every span, 2 local roots,
 *      gpu=False, idle=False, embodied_g_per_s=0.0, table=None: (cells dict, names tuple)) */
static PyObject *
Hooks_sync(Hooks *self, PyObject *args)
{
    int ready, listeners, gpu = 0, idle = 0;
    double embodied_g_per_s = 0.0;
    PyObject *layout, *table = Py_None, *cells = NULL, *table_names = NULL;
    if (!PyArg_ParseTuple(args, "pOi|ppdO:sync", &ready, &layout, &listeners, &gpu, &idle, &embodied_g_per_s, &table))
        return NULL;
    if (table != Py_None
        && !PyArg_ParseTuple(table, "O!O!:sync table", &PyDict_Type, &cells, &PyTuple_Type, &table_names))
        return NULL;
    if (!(embodied_g_per_s >= 0.0)) {
        PyErr_SetString(PyExc_ValueError, "embodied_g_per_s must be >= 0");
        return NULL;
    }
    if (listeners < 0 || listeners > 2) {
        PyErr_SetString(PyExc_ValueError, "listeners must be 0, 1 or 2");
        return NULL;
    }
    Py_CLEAR(self->tick); /* load the tick's figures again */
    Py_CLEAR(self->components);
    self->n_components = 0;
    if (layout != Py_None) {
        Py_ssize_t n = PyTuple_Check(layout) ? PyTuple_GET_SIZE(layout) : -1;
        if (n < 1) {
            PyErr_SetString(PyExc_ValueError, "components must be a non-empty tuple of (name, index)");
            return NULL;
        }
        PyObject *names = PyTuple_New(n);
        Py_ssize_t *index = PyMem_Realloc(self->component_index, n * sizeof(Py_ssize_t));
        /* the prices, then as many doubles of scratch for a span's energies */
        double *prices = index ? PyMem_Realloc(self->prices, 2 * n * sizeof(double)) : NULL;
        if (index)
            self->component_index = index;
        if (prices)
            self->prices = prices;
        if (names == NULL || index == NULL || prices == NULL) {
            Py_XDECREF(names);
            return PyErr_NoMemory();
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *name, *item = PyTuple_GET_ITEM(layout, i);
            if (!PyArg_ParseTuple(item, "Un:sync", &name, &index[i])) {
                Py_DECREF(names);
                return NULL;
            }
            Py_INCREF(name);
            PyTuple_SET_ITEM(names, i, name);
        }
        self->components = names;
        self->n_components = n;
    }
    self->ready = ready;
    self->listeners = listeners;
    set_ref(&self->table_cells, listeners == 2 ? cells : NULL);
    set_ref(&self->table_names, listeners == 2 ? table_names : NULL);
    self->gpu = gpu;
    self->idle = idle;
    self->embodied_g_per_s = embodied_g_per_s;
    Py_RETURN_NONE;
}

/* set_tick(latest tick or None, quiet, stale_after_ns) */
static PyObject *
Hooks_set_tick(Hooks *self, PyObject *args)
{
    PyObject *tick;
    int quiet;
    double stale_after_ns;
    if (self->open == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Hooks not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "Opd:set_tick", &tick, &quiet, &stale_after_ns))
        return NULL;
    set_ref(&self->latest, tick);
    self->quiet = quiet;
    self->stale_after_ns = stale_after_ns;
    Py_RETURN_NONE;
}

/* 1: fast path done; 0: not the common case (nothing changed); -1: error */
static int
fast_on_start(Hooks *self, PyObject *span)
{
    PyObject *v, *cpu, *state = NULL;
    if (!self->ready || self->quiet)
        return 0; /* first span, or idle back-off (the Python path wakes the sampler) */
    if (owner_tls != NULL) { /* inside a timed asyncio task step: the task's meter */
        long long reading;
        TaskMeter *m = meter_for_span_c(self->st, &reading);
        if (m == NULL)
            return -1;
        cpu = PyLong_FromLongLong(reading);
        PyObject *offl = PyLong_FromLongLong(m->offloaded_ns);
        if (cpu != NULL && offl != NULL)
            state = PyTuple_Pack(5, cpu, (PyObject *)m, Py_None, self->latest, offl);
        Py_XDECREF(cpu);
        Py_XDECREF(offl);
        Py_DECREF(m);
        if (state == NULL)
            return -1;
    }
    else {
        v = PyObject_CallNoArgs(self->running_loop);
        if (v == NULL)
            return -1;
        Py_DECREF(v);
        if (v != Py_None)
            return 0; /* a running loop: the Python path may install task timing */
        long long cpu_ns;
        if (coalesced_read(wall_now_ns(), &cpu_ns) < 0)
            return -1;
        cpu = PyLong_FromLongLong(cpu_ns);
        PyObject *clock = clock_id_object();
        PyObject *offl = PyLong_FromLongLong(tc.offloaded_ns);
        if (cpu != NULL && clock != NULL && offl != NULL)
            state = PyTuple_Pack(5, cpu, Py_None, clock, self->latest, offl);
        Py_XDECREF(cpu);
        Py_XDECREF(clock);
        Py_XDECREF(offl);
        if (state == NULL)
            return -1;
    }
    PyObject *key = PyLong_FromVoidPtr(span);
    if (key == NULL) {
        Py_DECREF(state);
        return -1;
    }
    int rc = PyDict_SetItem(self->open, key, state);
    Py_DECREF(key);
    Py_DECREF(state);
    if (rc < 0)
        return -1;
    if (PyDict_GET_SIZE(self->open) > self->max_open) {
        v = PyObject_CallNoArgs(self->drop_oldest);
        if (v == NULL)
            return -1;
        Py_DECREF(v);
    }
    return 1;
}

static PyObject *
Hooks_on_start(Hooks *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "on_start() needs the span");
        return NULL;
    }
    if (self->open == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Hooks not initialised");
        return NULL;
    }
    int rc = fast_on_start(self, args[0]);
    if (rc > 0)
        Py_RETURN_NONE;
    if (rc < 0)
        PyErr_Clear(); /* the Python path does the same work and reports what fails */
    return PyObject_Vectorcall(self->slow_on_start, args, nargs, kwnames);
}

static PyObject *
get_float_attr(PyObject *obj, PyObject *name, double *out)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v != NULL) {
        *out = PyFloat_AsDouble(v);
        if (*out == -1.0 && PyErr_Occurred())
            Py_CLEAR(v);
    }
    return v;
}

/* A tick's prices of the layout's components, in layout order, into `out`. */
static int
tick_prices(PyObject *tick, PyObject *price_name, const Py_ssize_t *index, Py_ssize_t n, double *out)
{
    PyObject *prices = PyObject_GetAttr(tick, price_name);
    if (prices == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *price = PySequence_GetItem(prices, index[i]);
        out[i] = price ? PyFloat_AsDouble(price) : -1.0;
        Py_XDECREF(price);
        if (price == NULL || (out[i] == -1.0 && PyErr_Occurred())) {
            Py_DECREF(prices);
            return -1;
        }
    }
    Py_DECREF(prices);
    return 0;
}

/* attribution.attribute() for work priced by the tick it started in: joules per component,
 * then the GPU share (when `gpu`) and the idle share (cpu_s x idle_price, when `idle`), all
 * added left to right into the total, and g CO2e. Returns whether the figure is unavailable:
 * a stale tick, or CPU time with no price. */
static int
attribute_c(double cpu_s, const double *prices, Py_ssize_t n, int gpu, double gpu_j, int idle, double idle_price,
            double g_per_j, int stale, double *energy_j, double *idle_j, double *total_j, double *emissions_g)
{
    double total = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        energy_j[i] = cpu_s * prices[i];
        total += energy_j[i];
    }
    if (gpu)
        total += gpu_j;
    *idle_j = idle ? cpu_s * idle_price : 0.0;
    if (idle)
        total += *idle_j;
    *total_j = total;
    *emissions_g = total * g_per_j;
    return stale || (cpu_s > 0 && !(total > 0));
}

/* A float attribute of the tick into *out; -1 with an error. */
static int
tick_float(PyObject *tick, PyObject *name, double *out)
{
    PyObject *v = get_float_attr(tick, name, out);
    if (v == NULL)
        return -1;
    Py_DECREF(v);
    return 0;
}

/* Load the figures of the latest tick: its prices for the layout's components, g CO2e per
 * J, time, and the constant attributes in `figures`. */
static int
load_tick(Hooks *self, PyObject *tick)
{
    PyObject *g = NULL, *t = NULL, *intensity = NULL;
    PyObject *g_per_kwh = NULL, *zone = NULL, *method = NULL, *figures = NULL;
    double g_d;
    long long t_ns;
    int ok = -1;

    if (tick_prices(tick, NAME(N_PRICE), self->component_index, self->n_components, self->prices) < 0
        || (g = get_float_attr(tick, NAME(N_G_PER_J), &g_d)) == NULL
        || (self->gpu && tick_float(tick, NAME(N_GPU_PER_SPAN_W), &self->gpu_per_span_w) < 0)
        || (self->idle && tick_float(tick, NAME(N_IDLE_PRICE), &self->idle_price) < 0)
        || (self->embodied_g_per_s > 0 && tick_float(tick, NAME(N_WALL_PER_BUSY), &self->wall_s_per_busy_s) < 0))
        goto done;
    if ((t = PyObject_GetAttr(tick, NAME(N_T_NS))) == NULL)
        goto done;
    t_ns = PyLong_AsLongLong(t);
    if ((t_ns == -1 && PyErr_Occurred()) || (intensity = PyObject_GetAttr(tick, NAME(N_INTENSITY_ATTR))) == NULL
        || (g_per_kwh = PyObject_GetAttr(intensity, NAME(N_G_PER_KWH))) == NULL
        || (zone = PyObject_GetAttr(intensity, NAME(N_ZONE_ATTR))) == NULL
        || (method = PyObject_GetAttr(tick, NAME(N_METHOD_ATTR))) == NULL)
        goto done;
    /* One insertion order for every span: the order of the Python path's dict literal. */
    if ((figures = PyDict_New()) == NULL || PyDict_SetItem(figures, NAME(N_CPU_TIME), Py_None) < 0
        || PyDict_SetItem(figures, NAME(N_CPU_CLOCK), NAME(N_CLOCK_THREAD)) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < self->n_components; i++) {
        if (PyDict_SetItem(figures, PyTuple_GET_ITEM(self->components, i), Py_None) < 0)
            goto done;
    }
    if ((self->gpu && PyDict_SetItem(figures, NAME(N_ENERGY_GPU), Py_None) < 0)
        || (self->idle && PyDict_SetItem(figures, NAME(N_ENERGY_IDLE), Py_None) < 0)
        || (self->embodied_g_per_s > 0 && PyDict_SetItem(figures, NAME(N_EMBODIED), Py_None) < 0))
        goto done;
    if (PyDict_SetItem(figures, NAME(N_ENERGY_TOTAL), Py_None) < 0
        || PyDict_SetItem(figures, NAME(N_EMISSIONS), Py_None) < 0
        || PyDict_SetItem(figures, NAME(N_INTENSITY), g_per_kwh) < 0
        || PyDict_SetItem(figures, NAME(N_ZONE), zone) < 0 || PyDict_SetItem(figures, NAME(N_METHOD), method) < 0)
        goto done;
    self->g_per_j = g_d;
    self->tick_t_ns = t_ns;
    Py_XSETREF(self->figures, figures);
    figures = NULL;
    self->figures_clock = NAME(N_CLOCK_THREAD);
    set_ref(&self->tick, tick);
    ok = 0;
done:
    Py_XDECREF(g);
    Py_XDECREF(t);
    Py_XDECREF(intensity);
    Py_XDECREF(g_per_kwh);
    Py_XDECREF(zone);
    Py_XDECREF(method);
    Py_XDECREF(figures);
    return ok;
}

static int
put_float(PyObject *dict, PyObject *key, double value)
{
    PyObject *v = PyFloat_FromDouble(value);
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItem(dict, key, v);
    Py_DECREF(v);
    return rc;
}

/* Copy the figures into the span's attributes (a plain dict in every SDK we support; a
 * mapping of another type gets them one by one, through its own __setitem__). */
static int
merge_into(PyObject *target, PyObject *figures)
{
    if (PyDict_CheckExact(target))
        return PyDict_Update(target, figures);
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(figures, &pos, &k, &v)) {
        if (PyObject_SetItem(target, k, v) < 0)
            return -1;
    }
    return 0;
}

/* The mapping behind the span's attributes when our figures fit in it whole: no count limit
 * or room for all of them, and no value-length limit. NULL without an error: limits to
 * apply (the Python path drops what does not fit and counts it); NULL with one: error. */
static PyObject *
span_attributes_with_room(Hooks *self, PyObject *span)
{
    PyObject *attributes = PyObject_GetAttr(span, NAME(N_ATTRIBUTES));
    if (attributes == NULL)
        return NULL;
    PyObject *target = NULL, *maxlen = PyObject_GetAttr(attributes, NAME(N_MAXLEN));
    PyObject *max_value_len = maxlen ? PyObject_GetAttr(attributes, NAME(N_MAX_VALUE_LEN)) : NULL;
    if (max_value_len == Py_None && (target = PyObject_GetAttr(attributes, NAME(N_DICT))) != NULL
        && maxlen != Py_None) {
        Py_ssize_t limit = PyLong_AsSsize_t(maxlen);
        Py_ssize_t needed = PyObject_Length(target);
        if ((limit == -1 || needed == -1) && PyErr_Occurred())
            Py_CLEAR(target);
        else if (needed + PyDict_GET_SIZE(self->figures) > limit)
            Py_CLEAR(target);
    }
    Py_DECREF(attributes);
    Py_XDECREF(maxlen);
    Py_XDECREF(max_value_len);
    return target;
}

/* Whether the span has no parent or a remote one (a listener for local roots wants it); 1 when
 * that cannot be told (the listener decides). */
static int
is_local_root(Hooks *self, PyObject *span)
{
    PyObject *parent = PyObject_GetAttr(span, NAME(N_PARENT));
    if (parent == NULL) {
        PyErr_Clear();
        return 1;
    }
    int root = 1;
    if (parent != Py_None) {
        PyObject *remote = PyObject_GetAttr(parent, NAME(N_IS_REMOTE));
        root = remote == NULL ? 1 : PyObject_IsTrue(remote);
        Py_XDECREF(remote);
        if (root < 0 || PyErr_Occurred()) {
            PyErr_Clear();
            root = 1;
        }
    }
    Py_DECREF(parent);
    return root;
}

/* A cell of the meter's table: [energy J (float), emissions g (float), spans (int), ...]. */
static int
is_cell(PyObject *cell)
{
    return PyList_CheckExact(cell) && PyList_GET_SIZE(cell) >= 3 && PyFloat_CheckExact(PyList_GET_ITEM(cell, 0))
           && PyFloat_CheckExact(PyList_GET_ITEM(cell, 1)) && PyLong_CheckExact(PyList_GET_ITEM(cell, 2));
}

/* The cell of `span` in the listener's table of sums, if its key is there: the key is what
 * otel_carbon.metrics.SpanRecorder.on_span builds, (span name, carbon.method, the span's value
 * of each table name or None). Sets *cell (a new reference) or leaves it NULL: not found, or
 * not a plain cell -- then the listener is called, and makes it. Runs no Python code. */
static int
table_cell(Hooks *self, PyObject *span, PyObject *target, int unavailable, PyObject **cell)
{
    *cell = NULL;
    PyObject *name = PyObject_GetAttr(span, NAME(N_NAME)); /* the SDK span's own field */
    if (name == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *method = unavailable ? NAME(N_UNAVAILABLE) : PyDict_GetItemWithError(self->figures, NAME(N_METHOD));
    Py_ssize_t n = PyTuple_GET_SIZE(self->table_names);
    PyObject *key = method != NULL ? PyTuple_New(n + 2) : NULL;
    if (key == NULL) {
        Py_DECREF(name);
        return PyErr_Occurred() ? -1 : 0;
    }
    PyTuple_SET_ITEM(key, 0, name);
    Py_INCREF(method);
    PyTuple_SET_ITEM(key, 1, method);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyDict_GetItemWithError(target, PyTuple_GET_ITEM(self->table_names, i));
        if (v == NULL && PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
        v = v != NULL ? v : Py_None;
        Py_INCREF(v);
        PyTuple_SET_ITEM(key, i + 2, v);
    }
    PyObject *found = PyDict_GetItemWithError(self->table_cells, key); /* borrowed */
    Py_DECREF(key);
    if (found == NULL) {
        PyErr_Clear(); /* not there, or an unhashable value: the listener decides */
        return 0;
    }
    if (is_cell(found)) {
        Py_INCREF(found);
        *cell = found;
    }
    return 0;
}

/* cell[0] += energy_j; cell[1] += emissions_g; cell[2] += 1, at once (no other thread sees
 * a half-made update, nor makes one in between). `cell` passed is_cell. */
static int
cell_add_c(PyObject *cell, double energy_j, double emissions_g)
{
    long long count = PyLong_AsLongLong(PyList_GET_ITEM(cell, 2));
    if (count == -1 && PyErr_Occurred())
        return -1;
    PyObject *e = PyFloat_FromDouble(PyFloat_AS_DOUBLE(PyList_GET_ITEM(cell, 0)) + energy_j);
    PyObject *g = PyFloat_FromDouble(PyFloat_AS_DOUBLE(PyList_GET_ITEM(cell, 1)) + emissions_g);
    PyObject *c = PyLong_FromLongLong(count + 1);
    if (e == NULL || g == NULL || c == NULL) {
        Py_XDECREF(e);
        Py_XDECREF(g);
        Py_XDECREF(c);
        return -1;
    }
    PyList_SetItem(cell, 0, e);
    PyList_SetItem(cell, 1, g);
    PyList_SetItem(cell, 2, c);
    return 0;
}

/* otel_carbon.metrics: cell_add(cell, energy_j, emissions_g) for the Python path's spans. */
static PyObject *
cell_add(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    double energy_j, emissions_g;
    if (nargs != 3 || !is_cell(args[0])) {
        PyErr_SetString(PyExc_TypeError, "cell_add(cell: [float, float, int, ...], energy_j, emissions_g)");
        return NULL;
    }
    if ((energy_j = PyFloat_AsDouble(args[1])) == -1.0 && PyErr_Occurred())
        return NULL;
    if ((emissions_g = PyFloat_AsDouble(args[2])) == -1.0 && PyErr_Occurred())
        return NULL;
    if (cell_add_c(args[0], energy_j, emissions_g) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* attribution.gpu_share_j() for a span inside the tick that prices it: the tick's GPU watts
 * per open span over the time since the tick, or over the span's own wall time if shorter. */
static int
span_gpu_j(Hooks *self, PyObject *span, long long now_ns, double *out)
{
    double since_ns = (double)(now_ns - self->tick_t_ns);
    PyObject *start = PyObject_GetAttr(span, NAME(N_START_TIME));
    PyObject *end = start ? PyObject_GetAttr(span, NAME(N_END_TIME)) : NULL;
    int rc = -1;
    if (end == NULL)
        goto done;
    int has_start = PyObject_IsTrue(start), has_end = has_start > 0 ? PyObject_IsTrue(end) : 0;
    if (has_start < 0 || has_end < 0)
        goto done;
    if (has_start && has_end) {
        long long s = PyLong_AsLongLong(start), e = s == -1 && PyErr_Occurred() ? 0 : PyLong_AsLongLong(end);
        if (PyErr_Occurred())
            goto done;
        double wall_ns = e > s ? (double)(e - s) : 0.0;
        if (wall_ns < since_ns)
            since_ns = wall_ns;
    }
    *out = self->gpu_per_span_w * since_ns / 1e9;
    rc = 0;
done:
    Py_XDECREF(start);
    Py_XDECREF(end);
    return rc;
}

/* 1: done; 0: not the common case (the span's state untouched); -1: error */
static int
fast_on_ending(Hooks *self, PyObject *span)
{
    PyObject *tick = self->latest;
    if (self->components == NULL || tick == Py_None)
        return 0;
    PyObject *key = PyLong_FromVoidPtr(span);
    if (key == NULL)
        return -1;
    PyObject *state = PyDict_GetItemWithError(self->open, key); /* borrowed */
    if (state == NULL) {
        Py_DECREF(key);
        return PyErr_Occurred() ? -1 : 0;
    }
    ensure_clock_id();
    TaskMeter *meter = NULL;
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != 5 || PyTuple_GET_ITEM(state, 3) != tick) {
        Py_DECREF(key);
        return 0; /* a tick since the span started: priced over its window by the Python path */
    }
    if (PyDict_GET_SIZE(self->boxes) > 0) {
        int handed_off = PyDict_Contains(self->boxes, key);
        if (handed_off != 0) {
            Py_DECREF(key);
            return handed_off > 0 ? 0 : -1; /* work handed to other threads: the Python path adds it */
        }
    }
    if (Py_TYPE(PyTuple_GET_ITEM(state, 1)) == self->st->task_meter_type) {
        meter = (TaskMeter *)PyTuple_GET_ITEM(state, 1);
    }
    else if (PyTuple_GET_ITEM(state, 1) != Py_None || tc.clock_state != 1
             || !PyLong_CheckExact(PyTuple_GET_ITEM(state, 2))
             || PyLong_AsLong(PyTuple_GET_ITEM(state, 2)) != (long)tc.clock_id) {
        Py_DECREF(key);
        return PyErr_Occurred() ? -1 : 0; /* started on another thread: the Python path */
    }
    long long cpu0_ns = PyLong_AsLongLong(PyTuple_GET_ITEM(state, 0));
    long long offl0_ns = PyLong_AsLongLong(PyTuple_GET_ITEM(state, 4));
    if ((cpu0_ns == -1 && PyErr_Occurred()) || (offl0_ns == -1 && PyErr_Occurred())
        || (tick != self->tick && load_tick(self, tick) < 0)) {
        Py_DECREF(key);
        return -1;
    }
    if ((meter != NULL ? meter->offloaded_ns : tc.offloaded_ns) != offl0_ns) {
        Py_DECREF(key);
        return 0; /* a child span handed work to other threads: the Python path adds it */
    }
    long long wall_ns = wall_now_ns(), cpu_ns = 0;
    if ((double)(wall_ns - self->tick_t_ns) > self->stale_after_ns) {
        Py_DECREF(key);
        return 0; /* a stale ledger: the Python path takes a reading itself, or says unavailable */
    }
    double gpu_j = 0.0;
    if (self->gpu && span_gpu_j(self, span, wall_ns, &gpu_j) < 0) {
        Py_DECREF(key);
        PyErr_Clear();
        return 0; /* odd span times: the Python path */
    }
    PyObject *target = span_attributes_with_room(self, span);
    if (target == NULL) {
        Py_DECREF(key);
        return PyErr_Occurred() ? -1 : 0; /* span limits to apply: the Python path */
    }
    int run = PyDict_Check(target) ? PyDict_Contains(target, NAME(N_RUN_SCOPE)) : PySequence_Contains(target, NAME(N_RUN_SCOPE));
    if (run != 0) {
        Py_DECREF(target);
        Py_DECREF(key);
        return run > 0 ? 0 : -1; /* a tracked run's span, priced by the run: the Python path keeps its figures */
    }
    /* From here on the span is ours: its state goes, whatever happens next. */
    Py_XINCREF(meter); /* the state tuple may go with the dict entry */
    int rc = PyDict_DelItem(self->open, key);
    Py_DECREF(key);
    PyObject *clock = NAME(N_CLOCK_THREAD);
    if (meter != NULL) {
        clock = NAME(N_CLOCK_TASK);
        rc = rc < 0 ? rc : meter_now(meter, &cpu_ns);
        meter->open_spans -= 1;
        Py_DECREF(meter);
    }
    else if (rc == 0) {
        rc = real_read(wall_ns, &cpu_ns);
    }
    if (rc < 0) {
        Py_DECREF(target);
        return -1;
    }
    cpu_ns -= cpu0_ns;
    double cpu_s = cpu_ns > 0 ? (double)cpu_ns / 1e9 : 0.0;
    Py_ssize_t n = self->n_components;
    double *energy_j = self->prices + n, idle_j, total_j, emissions_g;
    int unavailable = attribute_c(cpu_s, self->prices, n, self->gpu, gpu_j, self->idle, self->idle_price, self->g_per_j, 0,
                                  energy_j, &idle_j, &total_j, &emissions_g);
    /* The numbers go into the shared template only when it is merged at once into a plain
     * dict: no Python code runs in between, so no other thread can touch the template.
     * Otherwise (CPU time with no price, listeners that keep the figures, another mapping type)
     * they go into a copy. */
    int listeners = self->listeners;
    if (listeners == 2)
        listeners = is_local_root(self, span);
    /* A local root whose key is in the listener's table is added to it here: no listener call
     * (it runs no Python code, so the shared template stays usable). */
    PyObject *cell = NULL;
    if (listeners && self->table_cells != NULL) {
        if (table_cell(self, span, target, unavailable, &cell) < 0) {
            Py_DECREF(target);
            return -1;
        }
        if (cell != NULL)
            listeners = 0;
    }
    int shared = !unavailable && !listeners && PyDict_CheckExact(target);
    PyObject *figures = shared ? self->figures : PyDict_Copy(self->figures);
    if (figures == NULL) {
        Py_DECREF(target);
        Py_XDECREF(cell);
        return -1;
    }
    if (shared)
        Py_INCREF(figures);
    rc = -1;
    if (put_float(figures, NAME(N_CPU_TIME), cpu_s) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (put_float(figures, PyTuple_GET_ITEM(self->components, i), energy_j[i]) < 0)
            goto done;
    }
    if ((self->gpu && put_float(figures, NAME(N_ENERGY_GPU), gpu_j) < 0)
        || (self->idle && put_float(figures, NAME(N_ENERGY_IDLE), idle_j) < 0)
        || (self->embodied_g_per_s > 0
            && put_float(figures, NAME(N_EMBODIED), cpu_s * self->wall_s_per_busy_s * self->embodied_g_per_s) < 0))
        goto done;
    if (put_float(figures, NAME(N_ENERGY_TOTAL), total_j) < 0 || put_float(figures, NAME(N_EMISSIONS), emissions_g) < 0)
        goto done;
    if (clock != self->figures_clock) {
        if (PyDict_SetItem(figures, NAME(N_CPU_CLOCK), clock) < 0)
            goto done;
        if (shared)
            self->figures_clock = clock;
    }
    if (unavailable && PyDict_SetItem(figures, NAME(N_METHOD), NAME(N_UNAVAILABLE)) < 0)
        goto done;
    rc = merge_into(target, figures);
    if (rc == 0 && cell != NULL)
        rc = cell_add_c(cell, total_j, emissions_g);
    if (rc == 0 && listeners) {
        PyObject *r = PyObject_CallFunctionObjArgs(self->notify, span, figures, NULL);
        Py_XDECREF(r); /* _notify catches the listeners' errors itself */
        rc = r == NULL ? -1 : 0;
    }
done:
    Py_DECREF(target);
    Py_DECREF(figures);
    Py_XDECREF(cell);
    return rc < 0 ? -1 : 1;
}

static PyObject *
Hooks_on_ending(Hooks *self, PyObject *span)
{
    if (self->open == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Hooks not initialised");
        return NULL;
    }
    int rc = fast_on_ending(self, span);
    if (rc > 0)
        Py_RETURN_NONE;
    if (rc < 0) {
        /* Unexpected: the Python path reports it (it finds the span's state gone, or still
         * there, and marks the span accordingly); never raise into the SDK. */
        PyErr_Clear();
    }
    return PyObject_CallOneArg(self->slow_on_ending, span);
}

static PyObject *
Hooks_on_end(Hooks *self, PyObject *span)
{
    Py_RETURN_NONE; /* drop-in: the figures are in the span since _on_ending */
}

static int
tick_float_named(PyObject *tick, const char *name, double *out)
{
    PyObject *key = PyUnicode_FromString(name);
    if (key == NULL)
        return -1;
    int rc = tick_float(tick, key, out);
    Py_DECREF(key);
    return rc;
}

/* attribute(cpu_s, tick, indices, stale, gpu_j=None, idle=False, embodied_g_per_s=0.0)
 *   -> (energies, total_j, emissions_g, unavailable, idle_j or None, embodied_g or None):
 * the arithmetic of the span path's figures (attribute_c), on a tick, for the tests. */
static PyObject *
attribute_py(PyObject *module, PyObject *args)
{
    double cpu_s, g_per_j, gpu_j = 0.0, idle_price = 0.0, wall_per_busy = 0.0, embodied_g_per_s = 0.0;
    PyObject *tick, *indices, *price_name, *g_name, *gpu_arg = Py_None;
    int stale, idle = 0;
    if (!PyArg_ParseTuple(args, "dOO!p|Opd:attribute", &cpu_s, &tick, &PyTuple_Type, &indices, &stale, &gpu_arg, &idle,
                          &embodied_g_per_s))
        return NULL;
    if (gpu_arg != Py_None && (gpu_j = PyFloat_AsDouble(gpu_arg)) == -1.0 && PyErr_Occurred())
        return NULL;
    if ((idle && tick_float_named(tick, "idle_price_j_per_cpu_s", &idle_price) < 0)
        || (embodied_g_per_s > 0 && tick_float_named(tick, "wall_s_per_busy_s", &wall_per_busy) < 0))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(indices);
    Py_ssize_t *index = PyMem_Malloc((n ? n : 1) * sizeof(Py_ssize_t));
    double *buf = PyMem_Malloc((n ? 2 * n : 1) * sizeof(double));
    PyObject *result = NULL, *energies = NULL, *g = NULL;
    price_name = PyUnicode_InternFromString("price_j_per_cpu_s");
    g_name = PyUnicode_InternFromString("g_per_j");
    if (index == NULL || buf == NULL || price_name == NULL || g_name == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        index[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(indices, i));
        if (index[i] == -1 && PyErr_Occurred())
            goto done;
    }
    if (tick_prices(tick, price_name, index, n, buf) < 0 || (g = get_float_attr(tick, g_name, &g_per_j)) == NULL)
        goto done;
    double idle_j, total_j, emissions_g;
    int unavailable = attribute_c(cpu_s, buf, n, gpu_arg != Py_None, gpu_j, idle, idle_price, g_per_j, stale, buf + n,
                                  &idle_j, &total_j, &emissions_g);
    if ((energies = PyTuple_New(n)) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyFloat_FromDouble(buf[n + i]);
        if (v == NULL)
            goto done;
        PyTuple_SET_ITEM(energies, i, v);
    }
    PyObject *idle_v = idle ? PyFloat_FromDouble(idle_j) : (Py_INCREF(Py_None), Py_None);
    PyObject *embodied_v = embodied_g_per_s > 0 ? PyFloat_FromDouble(cpu_s * wall_per_busy * embodied_g_per_s)
                                                : (Py_INCREF(Py_None), Py_None);
    if (idle_v != NULL && embodied_v != NULL)
        result = Py_BuildValue("(OddiOO)", energies, total_j, emissions_g, unavailable, idle_v, embodied_v);
    Py_XDECREF(idle_v);
    Py_XDECREF(embodied_v);
done:
    PyMem_Free(index);
    PyMem_Free(buf);
    Py_XDECREF(price_name);
    Py_XDECREF(g_name);
    Py_XDECREF(energies);
    Py_XDECREF(g);
    return result;
}

static PyMethodDef Hooks_methods[] = {
    {"on_start", (PyCFunction)(void (*)(void))Hooks_on_start, METH_FASTCALL | METH_KEYWORDS,
     "SpanProcessor.on_start (common case in C)."},
    {"on_ending", (PyCFunction)Hooks_on_ending, METH_O, "SpanProcessor._on_ending (common case in C)."},
    {"on_end", (PyCFunction)Hooks_on_end, METH_O, "SpanProcessor.on_end (nothing to do in drop-in mode)."},
    {"sync", (PyCFunction)Hooks_sync, METH_VARARGS,
     "sync(ready, components, listeners): what the processor decided (listeners: 0 none, 1 every span, "
     "2 local roots only)."},
    {"set_tick", (PyCFunction)Hooks_set_tick, METH_VARARGS,
     "set_tick(tick, quiet, stale_after_ns): the sampler's latest tick and state."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Hooks_slots[] = {
    {Py_tp_doc, (void *)"The span path of a drop-in CarbonSpanProcessor, common case in C."},
    {Py_tp_traverse, (void *)Hooks_traverse},
    {Py_tp_clear, (void *)Hooks_clear},
    {Py_tp_dealloc, (void *)Hooks_dealloc},
    {Py_tp_init, (void *)Hooks_init},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_methods, Hooks_methods},
    {0, NULL},
};

static PyType_Spec Hooks_spec = {
    .name = "otel_carbon._speedups.Hooks",
    .basicsize = sizeof(Hooks),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = Hooks_slots,
};

static PyMethodDef module_methods[] = {
    {"span_start_cpu_ns", span_start_cpu_ns, METH_O, "This thread's CPU clock (ns) for a span starting now (coalesced)."},
    {"read_cpu_ns", read_cpu_ns, METH_O, "This thread's CPU clock (ns) now (a real read)."},
    {"thread_clock_id", thread_clock_id, METH_NOARGS, "This thread's CPU clock id, or None."},
    {"forget_thread_clock", forget_thread_clock, METH_NOARGS, "Forget this thread's clock (after fork)."},
    {"offloaded_ns", offloaded_ns, METH_NOARGS, "CPU ns that spans ended on this thread handed to other threads."},
    {"add_offloaded_ns", add_offloaded_ns, METH_O, "Add CPU ns handed to other threads by a span ending here."},
    {"current_owner", current_owner, METH_NOARGS, "The asyncio task step running on this thread, or None."},
    {"swap_owner", swap_owner, METH_O, "Set the task step running on this thread; returns the previous one."},
    {"running_loop", running_loop, METH_NOARGS, "The event loop running on this thread, or None (asyncio not imported)."},
    {"meter_for_span", meter_for_span, METH_NOARGS, "The running task's meter with one more open span, and its reading."},
    {"_begin", (PyCFunction)(void (*)(void))step_begin, METH_FASTCALL, "A task step starts (times it when spans are open)."},
    {"_finish", (PyCFunction)(void (*)(void))step_finish, METH_FASTCALL, "A task step ends (adds its CPU time)."},
    {"cell_add", (PyCFunction)(void (*)(void))cell_add, METH_FASTCALL,
     "cell_add(cell, energy_j, emissions_g): add one span to a cell of the metrics' table, at once."},
    {"attribute", attribute_py, METH_VARARGS,
     "attribute(cpu_s, tick, indices, stale, gpu_j=None, idle=False, embodied_g_per_s=0.0): the span path's figures."},
    {NULL, NULL, 0, NULL},
};

/* PyModule_AddObjectRef (3.10+) for 3.9 too: the module takes a new reference. */
static int
add_ref(PyObject *module, const char *name, PyObject *value)
{
    return PyObject_SetAttrString(module, name, value);
}

static int
module_exec(PyObject *module)
{
    module_state *st = state_of(module);
    st->task_meter_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &TaskMeter_spec, NULL);
    if (st->task_meter_type == NULL)
        return -1;
    st->hooks_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Hooks_spec, NULL);
    if (st->hooks_type == NULL)
        return -1;
    st->meter_var = PyContextVar_New("otel_carbon_task_meter", Py_None);
    if (st->meter_var == NULL)
        return -1;
    st->events_name = PyUnicode_InternFromString("asyncio.events");
    if (st->events_name == NULL)
        return -1;
    if (add_ref(module, "TaskMeter", (PyObject *)st->task_meter_type) < 0 || add_ref(module, "METER", st->meter_var) < 0
        || add_ref(module, "Hooks", (PyObject *)st->hooks_type) < 0
        || PyModule_AddIntConstant(module, "CLOCK_REUSE_NS", (long)CLOCK_REUSE_NS) < 0)
        return -1;
    return 0;
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = state_of(module);
    Py_VISIT(st->task_meter_type);
    Py_VISIT(st->hooks_type);
    Py_VISIT(st->meter_var);
    Py_VISIT(st->get_running_loop);
    Py_VISIT(st->events_name);
    return 0;
}

static int
module_clear(PyObject *module)
{
    module_state *st = state_of(module);
    Py_CLEAR(st->task_meter_type);
    Py_CLEAR(st->hooks_type);
    Py_CLEAR(st->meter_var);
    Py_CLEAR(st->get_running_loop);
    Py_CLEAR(st->events_name);
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

/* Multi-phase initialisation, heap types and module state. The thread-clock and owner state
 * is per thread, not per interpreter (a thread's running task step is a pointer into one
 * interpreter's objects): one interpreter only. The hooks rely on the GIL (their
 * stores into a span's attributes are seen all at once, as the Python dict.update was), so
 * the GIL is declared used; on a free-threaded build cpu_clock does not import this module
 * at all (the pure-Python path), so the host's GIL stays off. */
static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *)module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "otel_carbon._speedups",
    .m_doc = "The span path in C (optional).",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module_def);
}
