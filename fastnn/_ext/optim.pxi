# Optimizer updates, weight constraints, gradient clipping (csrc/optim.c).
# Hyper-parameters arrive validated from fastnn.optim; the arrays are checked
# here (cheap flag tests) because Parameter.data/.grad are user-assignable.

from libc.stdlib cimport malloc, free, qsort

cdef extern from "fastnn.h" nogil:
    ctypedef struct fnn_optim_reg:
        float weight_decay
        float l1
        float decay_mult
        float prox
        int maximize
    void fnn_sgd_step(int count, float **p, const float **g, float **buf,
                      const int *init_buf, const Py_ssize_t *n, double lr, double momentum,
                      double dampening, int nesterov, fnn_optim_reg reg)
    void fnn_adagrad_step(int count, float **p, const float **g, float **sum,
                          const Py_ssize_t *n, const double *clr, double eps,
                          fnn_optim_reg reg)
    void fnn_rmsprop_step(int count, float **p, const float **g, float **square_avg,
                          float **grad_avg, float **buf, const Py_ssize_t *n, double lr,
                          double alpha, double eps, double momentum, fnn_optim_reg reg)
    void fnn_adadelta_step(int count, float **p, const float **g, float **square_avg,
                           float **acc_delta, const Py_ssize_t *n, double lr, double rho,
                           double eps, fnn_optim_reg reg)
    void fnn_adam_step(int count, float **p, const float **g, float **exp_avg,
                       float **exp_avg_sq, float **max_exp_avg_sq, const Py_ssize_t *n,
                       const double *step_size, const double *bc2_sqrt, double beta1,
                       double beta2, double eps, fnn_optim_reg reg)
    void fnn_soft_threshold(float *p, Py_ssize_t n, float t)
    void fnn_max_norm_rows(float *w, Py_ssize_t rows, Py_ssize_t cols, float max_norm)
    int fnn_grad_norm_pow(int count, const float **x, const Py_ssize_t *n, double p,
                          double *out)
    void fnn_scale_inplace(int count, float **x, const Py_ssize_t *n, float c)
    void fnn_clamp_inplace(int count, float **x, const Py_ssize_t *n, float lo, float hi)


cdef float _opt_dummy = 0.0


cdef float *_opt_buf(object x, Py_ssize_t n, str who, str name, bint write) except NULL:
    """Data pointer of x after checking: float32 ndarray, C-contiguous, n
    elements, writeable when written."""
    if not isinstance(x, cnp.ndarray):
        raise TypeError(f"{who}: {name} must be a numpy float32 array, got {type(x).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>x
    if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32:
        raise TypeError(f"{who}: {name} must be float32, got dtype {a.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{who}: {name} must be C-contiguous")
    if cnp.PyArray_SIZE(a) != n:
        raise ValueError(f"{who}: {name} has {cnp.PyArray_SIZE(a)} elements, expected {n}")
    if write and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{who}: {name} is read-only")
    cdef float *ptr = <float *>cnp.PyArray_DATA(a)
    if ptr == NULL:                      # zero-size arrays may have no buffer
        return &_opt_dummy
    return ptr


cdef inline Py_ssize_t _opt_n(object p, str who) except -1:
    if not isinstance(p, cnp.ndarray):
        raise TypeError(f"{who}: param must be a numpy float32 array, got {type(p).__name__}")
    return cnp.PyArray_SIZE(<cnp.ndarray>p)


cdef struct _OptSpan:
    size_t lo
    size_t hi
    int slot
    int k


cdef int _opt_span_cmp(const void *a, const void *b) noexcept nogil:
    cdef size_t x = (<const _OptSpan *>a).lo, y = (<const _OptSpan *>b).lo
    return -1 if x < y else (1 if x > y else 0)


cdef class _OptBatch:
    """The arrays of one param group's update as C pointer tables: slot 0 the
    parameters, slot 1 the gradients, then the state arrays; each array
    checked (dtype, layout, size) and all checked not to overlap."""
    cdef int count, nslots, filled
    cdef float **ptr
    cdef Py_ssize_t *n
    cdef double *d            # two per-array scalars
    cdef int *iv              # one per-array flag
    cdef list names

    def __cinit__(self, int count, int nslots):
        self.count = count
        self.nslots = nslots
        self.filled = 0
        self.names = []
        cdef size_t c = <size_t>(count if count > 0 else 1)
        self.ptr = <float **>malloc(c * nslots * sizeof(float *))
        self.n = <Py_ssize_t *>malloc(c * sizeof(Py_ssize_t))
        self.d = <double *>malloc(c * 2 * sizeof(double))
        self.iv = <int *>malloc(c * sizeof(int))
        if not (self.ptr and self.n and self.d and self.iv):
            raise MemoryError()

    def __dealloc__(self):
        free(self.ptr)
        free(self.n)
        free(self.d)
        free(self.iv)

    cdef float **slot(self, int s) noexcept nogil:
        return self.ptr + <size_t>s * self.count

    cdef int add(self, list arrays, str who, str name, bint write) except -1:
        """The next slot: one array per parameter (slot 0 sets the sizes)."""
        cdef int s = self.filled, k
        if len(arrays) != self.count:
            raise ValueError(f"{who}: {len(arrays)} {name} arrays for {self.count} parameters")
        cdef float **dst = self.slot(s)
        for k in range(self.count):
            x = arrays[k]
            if s == 0:
                self.n[k] = _opt_n(x, who)
            dst[k] = _opt_buf(x, self.n[k], who, f"{name}[{k}]" if self.count > 1 else name, write)
        self.names.append(name)
        self.filled += 1
        return 0

    cdef int disjoint(self, str who) except -1:
        """No two arrays of the batch overlap (sort the spans, compare
        neighbours)."""
        cdef size_t total = 0, i, m = 0
        cdef int s, k
        for k in range(self.count):
            if self.n[k] > 0:
                total += self.filled
        if total < 2:
            return 0
        cdef _OptSpan *sp = <_OptSpan *>malloc(total * sizeof(_OptSpan))
        if sp == NULL:
            raise MemoryError()
        try:
            for s in range(self.filled):
                for k in range(self.count):
                    if self.n[k] > 0:
                        sp[m].lo = <size_t>self.slot(s)[k]
                        sp[m].hi = sp[m].lo + <size_t>self.n[k] * sizeof(float)
                        sp[m].slot = s
                        sp[m].k = k
                        m += 1
            qsort(sp, m, sizeof(_OptSpan), _opt_span_cmp)
            for i in range(1, m):
                if sp[i].lo < sp[i - 1].hi:
                    a = self._label(sp[i - 1].slot, sp[i - 1].k)
                    b = self._label(sp[i].slot, sp[i].k)
                    raise ValueError(f"{who}: {a} and {b} share memory")
        finally:
            free(sp)
        return 0

    cdef str _label(self, int s, int k):
        return f"{self.names[s]}[{k}]" if self.count > 1 else self.names[s]

    cdef int doubles(self, list a, list b) except -1:
        cdef int k
        for k in range(self.count):
            self.d[k] = a[k]
            if b is not None:
                self.d[self.count + k] = b[k]
        return 0


cdef inline fnn_optim_reg _opt_reg(double weight_decay, double l1, double decay_mult,
                                   double prox, bint maximize):
    cdef fnn_optim_reg r
    r.weight_decay = <float>weight_decay
    r.l1 = <float>l1
    r.decay_mult = <float>decay_mult
    r.prox = <float>prox
    r.maximize = maximize
    return r


def sgd_step(list params, list grads, list bufs, list init_buf, double lr, double momentum,
             double dampening, bint nesterov, double weight_decay, double l1,
             double decay_mult, double prox, bint maximize, str who="SGD"):
    """One fused SGD update of a param group (arrays updated in place).
    bufs: the momentum buffers, or None without momentum; init_buf: per
    array, True on its first step (buf = g)."""
    cdef int count = len(params), k
    cdef _OptBatch b = _OptBatch(count, 3)
    b.add(params, who, "param", True)
    b.add(grads, who, "grad", False)
    if bufs is not None:
        b.add(bufs, who, "momentum_buffer", True)
        for k in range(count):
            b.iv[k] = 1 if init_buf[k] else 0
    b.disjoint(who)
    cdef float **pbuf = b.slot(2) if bufs is not None else NULL
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_sgd_step(count, b.slot(0), <const float **>b.slot(1), pbuf, b.iv, b.n, lr,
                     momentum, dampening, nesterov, r)


def adagrad_step(list params, list grads, list sums, list clr, double eps,
                 double weight_decay, double l1, double decay_mult, double prox,
                 bint maximize, str who="Adagrad"):
    """clr: per array, lr / (1 + (step - 1) * lr_decay)."""
    cdef int count = len(params)
    cdef _OptBatch b = _OptBatch(count, 3)
    b.add(params, who, "param", True)
    b.add(grads, who, "grad", False)
    b.add(sums, who, "sum", True)
    b.disjoint(who)
    b.doubles(clr, None)
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_adagrad_step(count, b.slot(0), <const float **>b.slot(1), b.slot(2), b.n, b.d,
                         eps, r)


def rmsprop_step(list params, list grads, list square_avgs, list grad_avgs, list bufs,
                 double lr, double alpha, double eps, double momentum, double weight_decay,
                 double l1, double decay_mult, double prox, bint maximize, str who="RMSprop"):
    """grad_avgs is None unless centered; bufs is None unless momentum > 0."""
    cdef int count = len(params)
    cdef _OptBatch b = _OptBatch(count, 5)
    b.add(params, who, "param", True)
    b.add(grads, who, "grad", False)
    b.add(square_avgs, who, "square_avg", True)
    cdef int ga = -1, mb = -1
    if grad_avgs is not None:
        ga = b.filled
        b.add(grad_avgs, who, "grad_avg", True)
    if bufs is not None:
        mb = b.filled
        b.add(bufs, who, "momentum_buffer", True)
    b.disjoint(who)
    cdef float **pga = b.slot(ga) if ga >= 0 else NULL
    cdef float **pmb = b.slot(mb) if mb >= 0 else NULL
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_rmsprop_step(count, b.slot(0), <const float **>b.slot(1), b.slot(2), pga, pmb,
                         b.n, lr, alpha, eps, momentum, r)


def adadelta_step(list params, list grads, list square_avgs, list acc_deltas, double lr,
                  double rho, double eps, double weight_decay, double l1, double decay_mult,
                  double prox, bint maximize, str who="Adadelta"):
    cdef int count = len(params)
    cdef _OptBatch b = _OptBatch(count, 4)
    b.add(params, who, "param", True)
    b.add(grads, who, "grad", False)
    b.add(square_avgs, who, "square_avg", True)
    b.add(acc_deltas, who, "acc_delta", True)
    b.disjoint(who)
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_adadelta_step(count, b.slot(0), <const float **>b.slot(1), b.slot(2), b.slot(3),
                          b.n, lr, rho, eps, r)


def adam_step(list params, list grads, list exp_avgs, list exp_avg_sqs, list max_exp_avg_sqs,
              list step_size, list bc2_sqrt, double beta1, double beta2, double eps,
              double weight_decay, double l1, double decay_mult, double prox, bint maximize,
              str who="Adam"):
    """max_exp_avg_sqs is None unless amsgrad. Per array at its step t:
    step_size = lr / (1 - beta1**t), bc2_sqrt = sqrt(1 - beta2**t), computed
    by the caller in float64."""
    cdef int count = len(params)
    cdef _OptBatch b = _OptBatch(count, 5)
    b.add(params, who, "param", True)
    b.add(grads, who, "grad", False)
    b.add(exp_avgs, who, "exp_avg", True)
    b.add(exp_avg_sqs, who, "exp_avg_sq", True)
    if max_exp_avg_sqs is not None:
        b.add(max_exp_avg_sqs, who, "max_exp_avg_sq", True)
    b.disjoint(who)
    b.doubles(step_size, bc2_sqrt)
    cdef float **pmax = b.slot(4) if max_exp_avg_sqs is not None else NULL
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_adam_step(count, b.slot(0), <const float **>b.slot(1), b.slot(2), b.slot(3), pmax,
                      b.n, b.d, b.d + count, beta1, beta2, eps, r)


def soft_threshold(p, double t, str who="soft_threshold_"):
    """p = sign(p) * max(|p| - t, 0), in place."""
    cdef Py_ssize_t n = _opt_n(p, who)
    cdef float *pp = _opt_buf(p, n, who, "param", True)
    with nogil:
        fnn_soft_threshold(pp, n, <float>t)


def max_norm_rows(w, Py_ssize_t rows, Py_ssize_t cols, double max_norm, str who="max_norm_"):
    """Rescale each of the rows of w (rows * cols elements, C order) whose L2
    norm exceeds max_norm, in place."""
    cdef float *pw = _opt_buf(w, rows * cols, who, "param", True)
    with nogil:
        fnn_max_norm_rows(pw, rows, cols, <float>max_norm)


def grad_norm_pow(list grads, double p, str who="clip_grad_norm_"):
    """Over all the arrays together: sum |x|^p (float64), or max |x| when p
    is inf."""
    cdef int count = len(grads)
    cdef _OptBatch b = _OptBatch(count, 1)
    b.add(grads, who, "grad", False)
    cdef double out = 0.0
    cdef int status
    with nogil:
        status = fnn_grad_norm_pow(count, <const float **>b.slot(0), b.n, p, &out)
    check_status(status)
    return out


def scale_inplace(list grads, double c, str who="clip_grad_norm_"):
    """Every array *= c, in place."""
    cdef int count = len(grads)
    cdef _OptBatch b = _OptBatch(count, 1)
    b.add(grads, who, "grad", True)
    b.disjoint(who)
    with nogil:
        fnn_scale_inplace(count, b.slot(0), b.n, <float>c)


def clamp_inplace(list grads, double lo, double hi, str who="clip_grad_value_"):
    """Every array clamped to [lo, hi], in place (NaN stays NaN)."""
    cdef int count = len(grads)
    cdef _OptBatch b = _OptBatch(count, 1)
    b.add(grads, who, "grad", True)
    b.disjoint(who)
    with nogil:
        fnn_clamp_inplace(count, b.slot(0), b.n, <float>lo, <float>hi)
