# Optimizer updates, weight constraints, gradient clipping (csrc/optim.c).
# Hyper-parameters arrive validated from fastnn.optim; the arrays are checked
# here (cheap flag tests) because Parameter.data/.grad are user-assignable.

cdef extern from "fastnn.h" nogil:
    ctypedef struct fnn_optim_reg:
        float weight_decay
        float l1
        float decay_mult
        float prox
        int maximize
    void fnn_sgd_step(float *p, const float *g, float *buf, Py_ssize_t n, double lr,
                      double momentum, double dampening, int nesterov, int init_buf,
                      fnn_optim_reg reg)
    void fnn_adagrad_step(float *p, const float *g, float *sum, Py_ssize_t n,
                          double clr, double eps, fnn_optim_reg reg)
    void fnn_rmsprop_step(float *p, const float *g, float *square_avg,
                          float *grad_avg, float *buf, Py_ssize_t n, double lr,
                          double alpha, double eps, double momentum, fnn_optim_reg reg)
    void fnn_adadelta_step(float *p, const float *g, float *square_avg,
                           float *acc_delta, Py_ssize_t n, double lr, double rho,
                           double eps, fnn_optim_reg reg)
    void fnn_adam_step(float *p, const float *g, float *exp_avg, float *exp_avg_sq,
                       float *max_exp_avg_sq, Py_ssize_t n, double beta1, double beta2,
                       double step_size, double bc2_sqrt, double eps, fnn_optim_reg reg)
    void fnn_soft_threshold(float *p, Py_ssize_t n, float t)
    void fnn_max_norm_rows(float *w, Py_ssize_t rows, Py_ssize_t cols, float max_norm)
    double fnn_grad_norm_pow(const float *x, Py_ssize_t n, double p)
    void fnn_scale_inplace(float *x, Py_ssize_t n, float c)
    void fnn_clamp_inplace(float *x, Py_ssize_t n, float lo, float hi)


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
        return <float *>&_opt_dummy
    return ptr


cdef int _opt_disjoint(list ptrs, Py_ssize_t n, str who) except -1:
    """No two of the arrays (each n floats) overlap."""
    cdef Py_ssize_t i, j
    cdef size_t a, b, nb = <size_t>n * 4
    if n == 0:
        return 0
    for i in range(len(ptrs)):
        for j in range(i + 1, len(ptrs)):
            a = <size_t>ptrs[i][0]
            b = <size_t>ptrs[j][0]
            if a < b + nb and b < a + nb:
                raise ValueError(f"{who}: {ptrs[i][1]} and {ptrs[j][1]} share memory")
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


cdef inline Py_ssize_t _opt_n(object p, str who) except -1:
    if not isinstance(p, cnp.ndarray):
        raise TypeError(f"{who}: param must be a numpy float32 array, got {type(p).__name__}")
    return cnp.PyArray_SIZE(<cnp.ndarray>p)


def sgd_step(p, g, buf, double lr, double momentum, double dampening, bint nesterov,
             bint init_buf, double weight_decay, double l1, double decay_mult,
             double prox, bint maximize, str who="SGD"):
    """One fused SGD update of p (in place) from g; buf is the momentum buffer
    (None without momentum)."""
    cdef Py_ssize_t n = _opt_n(p, who)
    cdef float *pp = _opt_buf(p, n, who, "param", True)
    cdef float *pg = _opt_buf(g, n, who, "grad", False)
    cdef float *pb = NULL
    if buf is not None:
        pb = _opt_buf(buf, n, who, "momentum_buffer", True)
        _opt_disjoint([(<size_t>pp, "param"), (<size_t>pg, "grad"), (<size_t>pb, "momentum_buffer")], n, who)
    else:
        _opt_disjoint([(<size_t>pp, "param"), (<size_t>pg, "grad")], n, who)
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_sgd_step(pp, pg, pb, n, lr, momentum, dampening,
                     nesterov, init_buf, r)


def adagrad_step(p, g, state_sum, double clr, double eps, double weight_decay,
                 double l1, double decay_mult, double prox, bint maximize,
                 str who="Adagrad"):
    cdef Py_ssize_t n = _opt_n(p, who)
    cdef float *pp = _opt_buf(p, n, who, "param", True)
    cdef float *pg = _opt_buf(g, n, who, "grad", False)
    cdef float *ps = _opt_buf(state_sum, n, who, "sum", True)
    _opt_disjoint([(<size_t>pp, "param"), (<size_t>pg, "grad"), (<size_t>ps, "sum")], n, who)
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_adagrad_step(pp, pg, ps, n, clr, eps, r)


def rmsprop_step(p, g, square_avg, grad_avg, buf, double lr, double alpha, double eps,
                 double momentum, double weight_decay, double l1, double decay_mult,
                 double prox, bint maximize, str who="RMSprop"):
    """grad_avg is None unless centered; buf is None unless momentum > 0."""
    cdef Py_ssize_t n = _opt_n(p, who)
    cdef float *pp = _opt_buf(p, n, who, "param", True)
    cdef float *pg = _opt_buf(g, n, who, "grad", False)
    cdef float *ps = _opt_buf(square_avg, n, who, "square_avg", True)
    cdef float *pa = NULL
    cdef float *pb = NULL
    cdef list ptrs = [(<size_t>pp, "param"), (<size_t>pg, "grad"), (<size_t>ps, "square_avg")]
    if grad_avg is not None:
        pa = _opt_buf(grad_avg, n, who, "grad_avg", True)
        ptrs.append((<size_t>pa, "grad_avg"))
    if buf is not None:
        pb = _opt_buf(buf, n, who, "momentum_buffer", True)
        ptrs.append((<size_t>pb, "momentum_buffer"))
    _opt_disjoint(ptrs, n, who)
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_rmsprop_step(pp, pg, ps, pa, pb, n, lr, alpha, eps,
                         momentum, r)


def adadelta_step(p, g, square_avg, acc_delta, double lr, double rho, double eps,
                  double weight_decay, double l1, double decay_mult, double prox,
                  bint maximize, str who="Adadelta"):
    cdef Py_ssize_t n = _opt_n(p, who)
    cdef float *pp = _opt_buf(p, n, who, "param", True)
    cdef float *pg = _opt_buf(g, n, who, "grad", False)
    cdef float *ps = _opt_buf(square_avg, n, who, "square_avg", True)
    cdef float *pa = _opt_buf(acc_delta, n, who, "acc_delta", True)
    _opt_disjoint([(<size_t>pp, "param"), (<size_t>pg, "grad"), (<size_t>ps, "square_avg"),
                   (<size_t>pa, "acc_delta")], n, who)
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_adadelta_step(pp, pg, ps, pa, n, lr, rho, eps, r)


def adam_step(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, double beta1, double beta2,
              double step_size, double bc2_sqrt, double eps, double weight_decay,
              double l1, double decay_mult, double prox, bint maximize, str who="Adam"):
    """max_exp_avg_sq is None unless amsgrad. step_size = lr / (1 - beta1**t),
    bc2_sqrt = sqrt(1 - beta2**t), computed by the caller in float64."""
    cdef Py_ssize_t n = _opt_n(p, who)
    cdef float *pp = _opt_buf(p, n, who, "param", True)
    cdef float *pg = _opt_buf(g, n, who, "grad", False)
    cdef float *pm = _opt_buf(exp_avg, n, who, "exp_avg", True)
    cdef float *pv = _opt_buf(exp_avg_sq, n, who, "exp_avg_sq", True)
    cdef float *px = NULL
    cdef list ptrs = [(<size_t>pp, "param"), (<size_t>pg, "grad"), (<size_t>pm, "exp_avg"),
                      (<size_t>pv, "exp_avg_sq")]
    if max_exp_avg_sq is not None:
        px = _opt_buf(max_exp_avg_sq, n, who, "max_exp_avg_sq", True)
        ptrs.append((<size_t>px, "max_exp_avg_sq"))
    _opt_disjoint(ptrs, n, who)
    cdef fnn_optim_reg r = _opt_reg(weight_decay, l1, decay_mult, prox, maximize)
    with nogil:
        fnn_adam_step(pp, pg, pm, pv, px, n, beta1, beta2, step_size,
                      bc2_sqrt, eps, r)


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


def grad_norm_pow(x, double p, str who="clip_grad_norm_"):
    """sum |x|^p (float64), or max |x| when p is inf."""
    cdef Py_ssize_t n = _opt_n(x, who)
    cdef const float *px = _opt_buf(x, n, who, "grad", False)
    cdef double out
    with nogil:
        out = fnn_grad_norm_pow(px, n, p)
    return out


def scale_inplace(x, double c, str who="clip_grad_norm_"):
    cdef Py_ssize_t n = _opt_n(x, who)
    cdef float *px = _opt_buf(x, n, who, "grad", True)
    with nogil:
        fnn_scale_inplace(px, n, <float>c)


def clamp_inplace(x, double lo, double hi, str who="clip_grad_value_"):
    cdef Py_ssize_t n = _opt_n(x, who)
    cdef float *px = _opt_buf(x, n, who, "grad", True)
    with nogil:
        fnn_clamp_inplace(px, n, <float>lo, <float>hi)
