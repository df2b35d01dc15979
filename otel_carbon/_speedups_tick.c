/*
 * TickCore: the sampler's tick in C for the built-in model sensors (optional part of
 * otel_carbon._speedups; Sampler._tick with the sensors' read() and Ledger.append_reading
 * is the reference, and gives the same figures bit for bit -- tests/test_tick_core.py).
 *
 * Why: the sampler thread wakes every 0.1 s and finds its caches cold, so each Python call
 * in a tick costs several times its warm price (BENCHMARKS.md: a 16 us tick costs ~170 us
 * of CPU after the sleep). On hosts without readable energy counters -- the CPU model (ccf
 * or tdp curve) plus constant-power sensors (the memory model, OTEL_CARBON_POWER_W), no GPU
 * -- one call here does the whole tick: /proc/stat and the clocks, the models' energy, the
 * ledger arithmetic, the Tick (built by the Python class, so every reader sees the same
 * object), the ledger's rings, the span counters and the tick listeners.
 *
 * The core owns the models' running energy (each sensor object stays untouched), so a
 * sampler uses either the core or the sensors for its whole life, never both. It holds the
 * GIL throughout; an error propagates to Sampler.tick, which drops that tick and logs once,
 * as it does for the Python path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

#include "_speedups_procstat.h"

#define MAX_COMPONENTS 8
#define TEADS_POINTS 4

enum { MODEL_CCF = 0, MODEL_TDP = 1, MODEL_CONSTANT = 2 };

/* Tick's slots in the order of its __init__ arguments, then the three it sets itself. */
static const char *slot_names[] = {
    "t_ns", "energy_j", "active_j", "idle_j", "busy_s", "total_s", "proc_cpu_s", "price_j_per_cpu_s",
    "idle_price_j_per_cpu_s", "charged_j", "gpu_proc_j", "gpu_per_span_j", "gpu_per_span_w",
    "gpu_unattributed_j", "intensity", "method", "charged_by_j", "charged_idle_j", "wall_s_per_busy_s",
    "charged_wall_s", "seq", "g_per_j",
};
#define N_ARGS 20
#define N_SLOTS 22
#define SLOT_SEQ 20
#define SLOT_G_PER_J 21

typedef struct {
    PyObject_HEAD
    PyObject *ledger, *ticks, *times, *price_base, *lock, *tick_type, *method;
    int fd;
    double hz;
    double gap_ns;
    long long price_window_ns, max_price_window_ns;
    double min_price_busy_s;
    Py_ssize_t n;
    int kind[MAX_COMPONENTS];
    double a[MAX_COMPONENTS], b[MAX_COMPONENTS]; /* ccf: static W, W per busy CPU-s; tdp: TDP W; constant: W */
    double idle_w[MAX_COMPONENTS];
    double energy_j[MAX_COMPONENTS];
    double teads_load[TEADS_POINTS], teads_frac[TEADS_POINTS];
    int have_last;
    long long last_t_ns;
    double last_busy_s, last_total_s;
    PyMemberDef *slot[N_SLOTS]; /* Tick's __slots__, filled without running its __init__ */
    PyObject *intensity, *g_per_j; /* the last intensity and its g_per_joule (it is frozen) */
} TickCore;

static PyObject *s_latest, *s_t_ns, *s_energy_j, *s_active_j, *s_idle_j, *s_busy_s, *s_proc_cpu_s,
    *s_price, *s_idle_price, *s_charged_j, *s_charged_by_j, *s_charged_idle_j, *s_wall_per_busy,
    *s_charged_wall_s, *s_gpu_proc_j, *s_gpu_per_span_j, *s_gpu_per_span_w, *s_gpu_unattributed_j,
    *s_nominal, *s_span_counters, *s_tick_listeners, *s_intensity, *s_current, *s_quiet,
    *s_ticks_count, *s_listener_failed, *s_append, *s_popleft, *s_acquire, *s_release;

/* -- reading Python values --------------------------------------------------------------- */

static int
attr_double(PyObject *o, PyObject *name, double *out)
{
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static int
attr_ll(PyObject *o, PyObject *name, long long *out)
{
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* The first n numbers of a sequence attribute; *len gets its length. Like Python indexing:
 * an IndexError when it holds fewer than `need`. */
static int
attr_doubles(PyObject *o, PyObject *name, double *out, Py_ssize_t need, Py_ssize_t *len)
{
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    PyObject *seq = PySequence_Fast(v, "a tick's per-component figures must be a sequence");
    Py_DECREF(v);
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (len != NULL)
        *len = n;
    if (n < need) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t m = n < MAX_COMPONENTS ? n : MAX_COMPONENTS;
    for (Py_ssize_t i = 0; i < m; i++) {
        out[i] = PyFloat_AsDouble(items[i]);
        if (out[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static PyObject *
float_tuple(const double *v, Py_ssize_t n)
{
    PyObject *t = PyTuple_New(n);
    if (t == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(v[i]);
        if (f == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, f);
    }
    return t;
}

static inline double
max0(double x) /* Python's max(x, 0.0) */
{
    return 0.0 > x ? 0.0 : x;
}

/* -- the models (cpu_model.py, constant.py) ---------------------------------------------- */

static double
teads_fraction(TickCore *self, double load_pct)
{
    double load = load_pct < 0.0 ? 0.0 : load_pct;
    if (load > 100.0)
        load = 100.0;
    for (int i = 1; i < TEADS_POINTS; i++) {
        double x0 = self->teads_load[i - 1], x1 = self->teads_load[i];
        if (load <= x1) {
            double y0 = self->teads_frac[i - 1], y1 = self->teads_frac[i];
            return y0 + (y1 - y0) * (load - x0) / (x1 - x0);
        }
    }
    return self->teads_frac[TEADS_POINTS - 1];
}

/* Each sensor's read(): the first sets the origin; later ones integrate forward in time. */
static void
step_models(TickCore *self, long long t_ns, double busy_s, double total_s)
{
    if (self->have_last && t_ns > self->last_t_ns) {
        long long d_ns = t_ns - self->last_t_ns;
        double dt_s = (double)d_ns / 1e9;
        double d_busy = max0(busy_s - self->last_busy_s);
        double d_total = max0(total_s - self->last_total_s);
        for (Py_ssize_t i = 0; i < self->n; i++) {
            switch (self->kind[i]) {
            case MODEL_CCF:
                self->energy_j[i] += self->a[i] * dt_s + self->b[i] * d_busy;
                break;
            case MODEL_TDP: {
                double load_pct = d_total > 0 ? 100.0 * d_busy / d_total : 0.0;
                self->energy_j[i] += self->a[i] * teads_fraction(self, load_pct) * dt_s;
                break;
            }
            default:
                self->energy_j[i] += self->a[i] * (double)d_ns / 1e9;
            }
        }
    }
    self->have_last = 1;
    self->last_t_ns = t_ns;
    self->last_busy_s = busy_s;
    self->last_total_s = total_s;
}

/* -- the ledger (Ledger.append_reading, _trailing_prices) -------------------------------- */

typedef struct {
    long long t_ns;
    double energy[MAX_COMPONENTS], active[MAX_COMPONENTS], idle[MAX_COMPONENTS];
    double price[MAX_COMPONENTS], charged_by[MAX_COMPONENTS];
    Py_ssize_t charged_by_len, price_len;
    double busy_s, proc_cpu_s, idle_price, charged_j, charged_idle_j, wall_per_busy, charged_wall_s;
    double gpu_proc_j, gpu_per_span_j, gpu_per_span_w, gpu_unattributed_j;
} prev_tick;

/* The previous tick's figures, read once per tick. */
static int
read_prev(TickCore *self, PyObject *prev, prev_tick *p)
{
    Py_ssize_t n = self->n;
    if (attr_ll(prev, s_t_ns, &p->t_ns) < 0 || attr_doubles(prev, s_energy_j, p->energy, n, NULL) < 0 ||
        attr_doubles(prev, s_active_j, p->active, n, NULL) < 0 || attr_doubles(prev, s_idle_j, p->idle, n, NULL) < 0 ||
        attr_doubles(prev, s_price, p->price, 0, &p->price_len) < 0 ||
        attr_doubles(prev, s_charged_by_j, p->charged_by, 0, &p->charged_by_len) < 0 ||
        attr_double(prev, s_busy_s, &p->busy_s) < 0 || attr_double(prev, s_proc_cpu_s, &p->proc_cpu_s) < 0 ||
        attr_double(prev, s_idle_price, &p->idle_price) < 0 || attr_double(prev, s_charged_j, &p->charged_j) < 0 ||
        attr_double(prev, s_charged_idle_j, &p->charged_idle_j) < 0 ||
        attr_double(prev, s_wall_per_busy, &p->wall_per_busy) < 0 ||
        attr_double(prev, s_charged_wall_s, &p->charged_wall_s) < 0 ||
        attr_double(prev, s_gpu_proc_j, &p->gpu_proc_j) < 0 || attr_double(prev, s_gpu_per_span_j, &p->gpu_per_span_j) < 0 ||
        attr_double(prev, s_gpu_per_span_w, &p->gpu_per_span_w) < 0 ||
        attr_double(prev, s_gpu_unattributed_j, &p->gpu_unattributed_j) < 0)
        return -1;
    if (p->price_len > MAX_COMPONENTS || p->charged_by_len > MAX_COMPONENTS) {
        PyErr_SetString(PyExc_ValueError, "a tick has more components than the compiled tick handles");
        return -1;
    }
    return 0;
}

/* Prices over the shortest trailing window of >= price_window_ns with enough busy time
 * (Ledger._trailing_prices). Returns the price tuple (a new reference; prev's own when the
 * window holds too little busy time), or NULL. */
static PyObject *
trailing_prices(TickCore *self, PyObject *prev, const prev_tick *p, long long t_ns, const double *active,
                const double *idle, double busy_s, double *idle_price, double *wall_per_busy)
{
    PyObject *window = self->price_base;
    for (;;) {
        Py_ssize_t len = PySequence_Size(window);
        if (len < 0)
            return NULL;
        if (len < 2)
            break;
        PyObject *first = PySequence_GetItem(window, 0), *second = PySequence_GetItem(window, 1);
        long long t1 = 0, t2 = 0;
        double busy2 = 0.0;
        int rc = (first == NULL || second == NULL || attr_ll(first, s_t_ns, &t1) < 0 || attr_ll(second, s_t_ns, &t2) < 0 ||
                  attr_double(second, s_busy_s, &busy2) < 0) ? -1 : 0;
        Py_XDECREF(first);
        Py_XDECREF(second);
        if (rc < 0)
            return NULL;
        if ((t_ns - t2 >= self->price_window_ns && busy_s - busy2 >= self->min_price_busy_s) ||
            t_ns - t1 > self->max_price_window_ns) {
            PyObject *r = PyObject_CallMethodNoArgs(window, s_popleft);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        } else {
            break;
        }
    }
    Py_ssize_t len = PySequence_Size(window);
    if (len < 0)
        return NULL;
    PyObject *base = len > 0 ? PySequence_GetItem(window, 0) : (Py_INCREF(prev), prev);
    if (base == NULL)
        return NULL;
    long long base_t = 0;
    double base_busy = 0.0, base_active[MAX_COMPONENTS], base_idle[MAX_COMPONENTS];
    Py_ssize_t idle_len = 0;
    int rc = (attr_double(base, s_busy_s, &base_busy) < 0) ? -1 : 0;
    double d_busy = busy_s - base_busy;
    if (rc == 0 && d_busy < self->min_price_busy_s) {
        Py_DECREF(base);
        *idle_price = p->idle_price;
        *wall_per_busy = p->wall_per_busy;
        return PyObject_GetAttr(prev, s_price);
    }
    if (rc == 0)
        rc = (attr_ll(base, s_t_ns, &base_t) < 0 || attr_doubles(base, s_active_j, base_active, self->n, NULL) < 0 ||
              attr_doubles(base, s_idle_j, base_idle, 0, &idle_len) < 0) ? -1 : 0;
    Py_DECREF(base);
    if (rc < 0)
        return NULL;
    double price[MAX_COMPONENTS];
    for (Py_ssize_t i = 0; i < self->n; i++)
        price[i] = (active[i] - base_active[i]) / d_busy;
    double idle_sum = 0.0, base_idle_sum = 0.0;
    for (Py_ssize_t i = 0; i < self->n; i++)
        idle_sum += idle[i];
    for (Py_ssize_t i = 0; i < idle_len && i < MAX_COMPONENTS; i++)
        base_idle_sum += base_idle[i];
    *idle_price = (idle_sum - base_idle_sum) / d_busy;
    *wall_per_busy = (double)(t_ns - base_t) / 1e9 / d_busy;
    return float_tuple(price, self->n);
}

/* A Tick with these 20 __init__ arguments, seq 0 and g_per_j from the intensity: what
 * Tick(*args) makes, without a Python frame (tests compare every slot). */
static PyObject *
new_tick(TickCore *self, PyObject **args)
{
    PyObject *intensity = args[14];
    if (intensity != self->intensity) {
        PyObject *g = PyObject_GetAttrString(intensity, "g_per_joule");
        if (g == NULL)
            return NULL;
        Py_INCREF(intensity);
        Py_XSETREF(self->intensity, intensity);
        Py_XSETREF(self->g_per_j, g);
    }
    PyTypeObject *type = (PyTypeObject *)self->tick_type;
    PyObject *tick = type->tp_alloc(type, 0);
    if (tick == NULL)
        return NULL;
    for (int i = 0; i < N_ARGS; i++) {
        if (PyMember_SetOne((char *)tick, self->slot[i], args[i]) < 0) {
            Py_DECREF(tick);
            return NULL;
        }
    }
    PyObject *zero = PyLong_FromLong(0);
    int rc = zero == NULL ? -1 : PyMember_SetOne((char *)tick, self->slot[SLOT_SEQ], zero);
    Py_XDECREF(zero);
    if (rc < 0 || PyMember_SetOne((char *)tick, self->slot[SLOT_G_PER_J], self->g_per_j) < 0) {
        Py_DECREF(tick);
        return NULL;
    }
    return tick;
}

/* The new tick (a new reference), as Ledger.append_reading builds it. */
static PyObject *
build_tick(TickCore *self, PyObject *prev, const prev_tick *p, PyObject *t_obj, long long t_ns, double busy_s,
           double total_s, double proc_cpu_s, long active_spans, PyObject *intensity)
{
    Py_ssize_t n = self->n;
    PyObject *energy = float_tuple(self->energy_j, n);
    if (energy == NULL)
        return NULL;
    PyObject *args[N_ARGS];
    PyObject *owned[12];
    int n_owned = 0;
    PyObject *tick = NULL;
    owned[n_owned++] = energy;
    if (prev == Py_None) {
        double zeros[MAX_COMPONENTS] = {0};
        PyObject *z = float_tuple(zeros, n), *nominal = PyObject_GetAttr(self->ledger, s_nominal);
        if (z != NULL)
            owned[n_owned++] = z;
        if (nominal != NULL)
            owned[n_owned++] = nominal;
        PyObject *f[5] = {PyFloat_FromDouble(busy_s), PyFloat_FromDouble(total_s), PyFloat_FromDouble(proc_cpu_s),
                          PyFloat_FromDouble(0.0), NULL};
        for (int i = 0; i < 4; i++)
            if (f[i] != NULL)
                owned[n_owned++] = f[i];
        if (z == NULL || nominal == NULL || f[0] == NULL || f[1] == NULL || f[2] == NULL || f[3] == NULL)
            goto done;
        PyObject *a[N_ARGS] = {t_obj, energy, z, z, f[0], f[1], f[2], nominal, f[3], f[3], f[3], f[3], f[3], f[3],
                               intensity, self->method, z, f[3], f[3], f[3]};
        tick = new_tick(self, a);
        goto done;
    }
    double dt_s = max0((double)(t_ns - p->t_ns) / 1e9);
    double d_busy = max0(busy_s - p->busy_s);
    double active[MAX_COMPONENTS], idle[MAX_COMPONENTS];
    for (Py_ssize_t i = 0; i < n; i++) {
        double d_e = max0(self->energy_j[i] - p->energy[i]);
        double cap = self->idle_w[i] * dt_s;
        double d_idle = cap < d_e ? cap : d_e;
        double d_active = d_e - d_idle;
        if (d_active < 1e-9 * d_e) { /* float noise of an all-static component */
            d_active = 0.0;
            d_idle = d_e;
        }
        idle[i] = p->idle[i] + d_idle;
        active[i] = p->active[i] + d_active;
    }
    double busy_cum = p->busy_s + d_busy;
    double idle_price, wall_per_busy;
    PyObject *price = trailing_prices(self, prev, p, t_ns, active, idle, busy_cum, &idle_price, &wall_per_busy);
    if (price == NULL)
        goto done;
    owned[n_owned++] = price;
    double d_proc = max0(proc_cpu_s - p->proc_cpu_s);
    double price_sum = 0.0;
    for (Py_ssize_t i = 0; i < p->price_len; i++)
        price_sum += p->price[i];
    double charged = p->charged_j + d_proc * price_sum;
    Py_ssize_t nb = p->charged_by_len < p->price_len ? p->charged_by_len : p->price_len;
    double charged_by[MAX_COMPONENTS];
    for (Py_ssize_t i = 0; i < nb; i++)
        charged_by[i] = p->charged_by[i] + d_proc * p->price[i];
    double charged_idle = p->charged_idle_j + d_proc * p->idle_price;
    double charged_wall = p->charged_wall_s + d_proc * p->wall_per_busy;
    double d_gpu = max0(0.0 - p->gpu_proc_j), per_span, per_span_w, unattributed;
    if (active_spans > 0) {
        per_span = p->gpu_per_span_j + d_gpu / (double)active_spans;
        per_span_w = dt_s > 0 ? d_gpu / (double)active_spans / dt_s : p->gpu_per_span_w;
        unattributed = p->gpu_unattributed_j;
    } else {
        per_span = p->gpu_per_span_j;
        per_span_w = 0.0;
        unattributed = p->gpu_unattributed_j + d_gpu;
    }
    double nums[12] = {busy_cum,   total_s,    p->proc_cpu_s > proc_cpu_s ? p->proc_cpu_s : proc_cpu_s,
                       idle_price, charged,    p->gpu_proc_j > 0.0 ? p->gpu_proc_j : 0.0,
                       per_span,   per_span_w, unattributed,
                       charged_idle, wall_per_busy, charged_wall};
    PyObject *active_t = float_tuple(active, n), *idle_t = float_tuple(idle, n), *by_t = float_tuple(charged_by, nb);
    if (active_t != NULL)
        owned[n_owned++] = active_t;
    if (idle_t != NULL)
        owned[n_owned++] = idle_t;
    if (by_t != NULL)
        owned[n_owned++] = by_t;
    if (active_t == NULL || idle_t == NULL || by_t == NULL)
        goto done;
    PyObject *f[12];
    for (int i = 0; i < 12; i++) {
        f[i] = PyFloat_FromDouble(nums[i]);
        if (f[i] == NULL) {
            for (int j = 0; j < i; j++)
                Py_DECREF(f[j]);
            goto done;
        }
    }
    /* Tick(t_ns, energy_j, active_j, idle_j, busy_s, total_s, proc_cpu_s, price, idle_price,
     *      charged_j, gpu_proc_j, gpu_per_span_j, gpu_per_span_w, gpu_unattributed_j,
     *      intensity, method, charged_by_j, charged_idle_j, wall_s_per_busy_s, charged_wall_s) */
    args[0] = t_obj;
    args[1] = energy;
    args[2] = active_t;
    args[3] = idle_t;
    args[4] = f[0];
    args[5] = f[1];
    args[6] = f[2];
    args[7] = price;
    args[8] = f[3];
    args[9] = f[4];
    args[10] = f[5];
    args[11] = f[6];
    args[12] = f[7];
    args[13] = f[8];
    args[14] = intensity;
    args[15] = self->method;
    args[16] = by_t;
    args[17] = f[9];
    args[18] = f[10];
    args[19] = f[11];
    tick = new_tick(self, args);
    for (int i = 0; i < 12; i++)
        Py_DECREF(f[i]);
done:
    for (int i = 0; i < n_owned; i++)
        Py_DECREF(owned[i]);
    return tick;
}

/* Append to the ledger as Ledger.append_reading does: seq, the rings under the ledger's
 * lock, the price window, latest. */
static int
append_tick(TickCore *self, PyObject *prev, PyObject *tick, PyObject *t_obj)
{
    PyObject *seq;
    if (prev == Py_None) {
        seq = PyLong_FromLong(0);
    } else {
        PyObject *prev_seq = PyMember_GetOne((char *)prev, self->slot[SLOT_SEQ]);
        if (prev_seq == NULL)
            return -1;
        PyObject *one = PyLong_FromLong(1);
        seq = one == NULL ? NULL : PyNumber_Add(prev_seq, one);
        Py_XDECREF(one);
        Py_DECREF(prev_seq);
    }
    if (seq == NULL)
        return -1;
    int rc = PyMember_SetOne((char *)tick, self->slot[SLOT_SEQ], seq);
    Py_DECREF(seq);
    if (rc < 0)
        return -1;
    PyObject *r = PyObject_CallMethodNoArgs(self->lock, s_acquire);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    PyObject *r1 = PyObject_CallMethodOneArg(self->ticks, s_append, tick);
    PyObject *r2 = r1 == NULL ? NULL : PyObject_CallMethodOneArg(self->times, s_append, t_obj);
    /* release whatever happened, keeping the first error */
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *r3 = PyObject_CallMethodNoArgs(self->lock, s_release);
    Py_XDECREF(r3);
    if (et != NULL)
        PyErr_Restore(et, ev, tb);
    Py_XDECREF(r1);
    Py_XDECREF(r2);
    if (r1 == NULL || r2 == NULL || r3 == NULL)
        return -1;
    r = PyObject_CallMethodOneArg(self->price_base, s_append, tick);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return PyObject_SetAttr(self->ledger, s_latest, tick);
}

/* -- the tick (Sampler._tick) ------------------------------------------------------------- */

static long
count_open_spans(PyObject *sampler)
{
    PyObject *counters = PyObject_GetAttr(sampler, s_span_counters);
    if (counters == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *seq = PySequence_Fast(counters, "");
    Py_DECREF(counters);
    if (seq == NULL) {
        PyErr_Clear();
        return 0;
    }
    long active = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *r = PyObject_CallNoArgs(PySequence_Fast_GET_ITEM(seq, i));
        PyObject *as_int = r == NULL ? NULL : PyNumber_Long(r);
        Py_XDECREF(r);
        long v = as_int == NULL ? 0 : PyLong_AsLong(as_int);
        Py_XDECREF(as_int);
        if (PyErr_Occurred()) {
            PyErr_Clear(); /* a counter that fails counts nothing, as in Python */
            continue;
        }
        active += v;
    }
    Py_DECREF(seq);
    return active;
}

static int
call_listeners(PyObject *sampler, PyObject *tick)
{
    PyObject *listeners = PyObject_GetAttr(sampler, s_tick_listeners);
    if (listeners == NULL)
        return -1;
    PyObject *seq = PySequence_Fast(listeners, "tick listeners must be a sequence");
    Py_DECREF(listeners);
    if (seq == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *listener = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *r = PyObject_CallOneArg(listener, tick);
        if (r != NULL) {
            Py_DECREF(r);
            continue;
        }
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyErr_NormalizeException(&et, &ev, &tb);
        if (ev == NULL) {
            Py_INCREF(Py_None);
            ev = Py_None;
        }
        PyObject *report = PyObject_CallMethodObjArgs(sampler, s_listener_failed, listener, ev, NULL);
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(tb);
        if (report == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        Py_DECREF(report);
    }
    Py_DECREF(seq);
    return 0;
}

static PyObject *
core_step(TickCore *self, PyObject *sampler, long long t_ns, double busy_s, double total_s, double proc_cpu_s)
{
    PyObject *prev = PyObject_GetAttr(self->ledger, s_latest);
    if (prev == NULL)
        return NULL;
    PyObject *t_obj = NULL, *intensity = NULL, *tick = NULL;
    if (prev != Py_None && Py_TYPE(prev) != (PyTypeObject *)self->tick_type) {
        PyErr_SetString(PyExc_TypeError, "TickCore: the ledger's latest tick is not a Tick");
        goto done;
    }
    step_models(self, t_ns, busy_s, total_s);
    prev_tick p = {0};
    if (prev != Py_None) {
        if (read_prev(self, prev, &p) < 0)
            goto done;
        if ((double)(t_ns - p.t_ns) > self->gap_ns) {
            PyObject *r = PyObject_CallMethod(sampler, "_long_gap", "L", t_ns - p.t_ns);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
    }
    long active = count_open_spans(sampler);
    int quiet = active == 0 && (prev == Py_None || (proc_cpu_s - p.proc_cpu_s) * 1e9 < 0.01 * (double)(t_ns - p.t_ns));
    if (PyObject_SetAttr(sampler, s_quiet, quiet ? Py_True : Py_False) < 0)
        goto done;
    PyObject *source = PyObject_GetAttr(sampler, s_intensity);
    if (source == NULL)
        goto done;
    intensity = PyObject_CallMethodNoArgs(source, s_current);
    Py_DECREF(source);
    if (intensity == NULL || (t_obj = PyLong_FromLongLong(t_ns)) == NULL)
        goto done;
    tick = build_tick(self, prev, &p, t_obj, t_ns, busy_s, total_s, proc_cpu_s, active, intensity);
    if (tick == NULL || append_tick(self, prev, tick, t_obj) < 0)
        goto fail;
    PyObject *count = PyObject_GetAttr(sampler, s_ticks_count);
    PyObject *one = count == NULL ? NULL : PyLong_FromLong(1);
    PyObject *more = one == NULL ? NULL : PyNumber_Add(count, one);
    int rc = more == NULL ? -1 : PyObject_SetAttr(sampler, s_ticks_count, more);
    Py_XDECREF(count);
    Py_XDECREF(one);
    Py_XDECREF(more);
    if (rc < 0 || call_listeners(sampler, tick) < 0)
        goto fail;
    goto done;
fail:
    Py_CLEAR(tick);
done:
    Py_DECREF(prev);
    Py_XDECREF(t_obj);
    Py_XDECREF(intensity);
    return tick;
}

/* tick(sampler) -> Tick: read /proc/stat, the process CPU clock and the monotonic clock,
 * then step. NotImplemented, with nothing changed, when /proc/stat cannot be read through
 * the kept fd (closed by a daemonising fork, say): the sampler then reads the host in
 * Python (psutil) and calls step() with it. */
static PyObject *
TickCore_tick(TickCore *self, PyObject *sampler)
{
    unsigned long long busy, total;
    struct timespec proc, mono;
    if (read_proc_stat_cpu(self->fd, &busy, &total) < 0) {
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &proc) != 0 || clock_gettime(CLOCK_MONOTONIC, &mono) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    long long proc_ns = (long long)proc.tv_sec * 1000000000LL + proc.tv_nsec;
    long long t_ns = (long long)mono.tv_sec * 1000000000LL + mono.tv_nsec;
    return core_step(self, sampler, t_ns, (double)busy / self->hz, (double)total / self->hz, (double)proc_ns / 1e9);
}

/* step(sampler, t_ns, busy_s, total_s, proc_cpu_s) -> Tick: the tick for given readings. */
static PyObject *
TickCore_step(TickCore *self, PyObject *args)
{
    PyObject *sampler;
    long long t_ns;
    double busy_s, total_s, proc_cpu_s;
    if (!PyArg_ParseTuple(args, "OLddd", &sampler, &t_ns, &busy_s, &total_s, &proc_cpu_s))
        return NULL;
    return core_step(self, sampler, t_ns, busy_s, total_s, proc_cpu_s);
}

/* TickCore(ledger, tick_type, method, fd, hz, gap_ns, models, teads, window):
 *   models: one (kind, a, b) per component, kind 0 ccf (a static W, b W per busy CPU-s),
 *           1 tdp (a TDP W), 2 constant (a W);
 *   teads:  (load %, fraction of TDP) for the tdp curve's four points;
 *   window: (price_window_ns, max_price_window_ns, min_price_busy_s). */
static int
TickCore_init(TickCore *self, PyObject *args, PyObject *kwds)
{
    PyObject *ledger, *tick_type, *method, *models, *teads;
    int fd;
    double hz, gap_ns;
    long long pw, maxpw;
    double minbusy;
    if (!PyArg_ParseTuple(args, "OOUiddOO(LLd)", &ledger, &tick_type, &method, &fd, &hz, &gap_ns, &models, &teads,
                          &pw, &maxpw, &minbusy))
        return -1;
    Py_ssize_t n = PySequence_Size(models);
    if (n < 1 || n > MAX_COMPONENTS || hz <= 0) {
        PyErr_SetString(PyExc_ValueError, "TickCore: 1 to 8 models and a clock rate > 0 are needed");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PySequence_GetItem(models, i);
        if (m == NULL)
            return -1;
        int ok = PyArg_ParseTuple(m, "idd", &self->kind[i], &self->a[i], &self->b[i]);
        Py_DECREF(m);
        if (!ok)
            return -1;
        if (self->kind[i] < MODEL_CCF || self->kind[i] > MODEL_CONSTANT) {
            PyErr_SetString(PyExc_ValueError, "TickCore: model kind must be 0 (ccf), 1 (tdp) or 2 (constant)");
            return -1;
        }
        self->energy_j[i] = 0.0;
    }
    PyObject *loads, *fracs;
    if (!PyArg_ParseTuple(teads, "OO", &loads, &fracs))
        return -1;
    for (int i = 0; i < TEADS_POINTS; i++) {
        PyObject *x = PySequence_GetItem(loads, i), *y = x == NULL ? NULL : PySequence_GetItem(fracs, i);
        self->teads_load[i] = x == NULL ? -1.0 : PyFloat_AsDouble(x);
        self->teads_frac[i] = y == NULL ? -1.0 : PyFloat_AsDouble(y);
        Py_XDECREF(x);
        Py_XDECREF(y);
        if (PyErr_Occurred())
            return -1;
    }
    if (!PyType_Check(tick_type)) {
        PyErr_SetString(PyExc_TypeError, "TickCore: tick_type must be the Tick class");
        return -1;
    }
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *d = PyObject_GetAttrString(tick_type, slot_names[i]);
        if (d == NULL)
            return -1;
        int is_member = Py_IS_TYPE(d, &PyMemberDescr_Type);
        self->slot[i] = is_member ? ((PyMemberDescrObject *)d)->d_member : NULL;
        Py_DECREF(d); /* the class keeps its descriptors alive */
        if (!is_member) {
            PyErr_Format(PyExc_TypeError, "TickCore: Tick.%s is not a slot", slot_names[i]);
            return -1;
        }
    }
    PyObject *idle_name = PyUnicode_InternFromString("idle_power_w");
    int idle_rc = idle_name == NULL ? -1 : attr_doubles(ledger, idle_name, self->idle_w, n, NULL);
    Py_XDECREF(idle_name);
    if (idle_rc < 0)
        return -1;
    PyObject *ticks = PyObject_GetAttrString(ledger, "_ticks"), *times = PyObject_GetAttrString(ledger, "_times"),
             *base = PyObject_GetAttrString(ledger, "_price_base"), *lock = PyObject_GetAttrString(ledger, "_lock");
    if (ticks == NULL || times == NULL || base == NULL || lock == NULL) {
        Py_XDECREF(ticks);
        Py_XDECREF(times);
        Py_XDECREF(base);
        Py_XDECREF(lock);
        return -1;
    }
    Py_INCREF(ledger);
    Py_INCREF(tick_type);
    Py_INCREF(method);
    Py_XSETREF(self->ledger, ledger);
    Py_XSETREF(self->tick_type, tick_type);
    Py_XSETREF(self->method, method);
    Py_XSETREF(self->ticks, ticks);
    Py_XSETREF(self->times, times);
    Py_XSETREF(self->price_base, base);
    Py_XSETREF(self->lock, lock);
    self->fd = fd;
    self->hz = hz;
    self->gap_ns = gap_ns;
    self->price_window_ns = pw;
    self->max_price_window_ns = maxpw;
    self->min_price_busy_s = minbusy;
    self->n = n;
    self->have_last = 0;
    return 0;
}

static void
TickCore_dealloc(TickCore *self)
{
    Py_XDECREF(self->ledger);
    Py_XDECREF(self->ticks);
    Py_XDECREF(self->times);
    Py_XDECREF(self->price_base);
    Py_XDECREF(self->lock);
    Py_XDECREF(self->tick_type);
    Py_XDECREF(self->method);
    Py_XDECREF(self->intensity);
    Py_XDECREF(self->g_per_j);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef TickCore_methods[] = {
    {"tick", (PyCFunction)TickCore_tick, METH_O, "tick(sampler) -> Tick: read the host and append a tick."},
    {"step", (PyCFunction)TickCore_step, METH_VARARGS,
     "step(sampler, t_ns, busy_s, total_s, proc_cpu_s) -> Tick: append the tick of these readings."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TickCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "otel_carbon._speedups.TickCore",
    .tp_basicsize = sizeof(TickCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The sampler's tick for the built-in model sensors, in C.",
    .tp_dealloc = (destructor)TickCore_dealloc,
    .tp_init = (initproc)TickCore_init,
    .tp_new = PyType_GenericNew,
    .tp_methods = TickCore_methods,
};

#define INTERN(var, text)                                     \
    if ((var = PyUnicode_InternFromString(text)) == NULL)     \
        return -1;

int
add_tick_core(PyObject *module)
{
    INTERN(s_latest, "latest");
    INTERN(s_t_ns, "t_ns");
    INTERN(s_energy_j, "energy_j");
    INTERN(s_active_j, "active_j");
    INTERN(s_idle_j, "idle_j");
    INTERN(s_busy_s, "busy_s");
    INTERN(s_proc_cpu_s, "proc_cpu_s");
    INTERN(s_price, "price_j_per_cpu_s");
    INTERN(s_idle_price, "idle_price_j_per_cpu_s");
    INTERN(s_charged_j, "charged_j");
    INTERN(s_charged_by_j, "charged_by_j");
    INTERN(s_charged_idle_j, "charged_idle_j");
    INTERN(s_wall_per_busy, "wall_s_per_busy_s");
    INTERN(s_charged_wall_s, "charged_wall_s");
    INTERN(s_gpu_proc_j, "gpu_proc_j");
    INTERN(s_gpu_per_span_j, "gpu_per_span_j");
    INTERN(s_gpu_per_span_w, "gpu_per_span_w");
    INTERN(s_gpu_unattributed_j, "gpu_unattributed_j");
    INTERN(s_nominal, "nominal_price_j_per_cpu_s");
    INTERN(s_span_counters, "_span_counters");
    INTERN(s_tick_listeners, "_tick_listeners");
    INTERN(s_intensity, "_intensity");
    INTERN(s_current, "current");
    INTERN(s_quiet, "_quiet");
    INTERN(s_ticks_count, "ticks");
    INTERN(s_listener_failed, "_listener_failed");
    INTERN(s_append, "append");
    INTERN(s_popleft, "popleft");
    INTERN(s_acquire, "acquire");
    INTERN(s_release, "release");
    if (PyType_Ready(&TickCoreType) < 0)
        return -1;
    Py_INCREF(&TickCoreType);
    if (PyModule_AddObject(module, "TickCore", (PyObject *)&TickCoreType) < 0) {
        Py_DECREF(&TickCoreType);
        return -1;
    }
    return 0;
}
