# Recurrent layers (csrc/rnn.c): one layer and one direction per call, each
# way. Every array is checked here (dtype, C-contiguity, size, writeable
# outputs); lengths are checked to lie in [1, T] so C never reads past x.
from libc.stdint cimport int32_t

cdef extern from "fastnn.h" nogil:
    int FNN_RNN_TANH
    int FNN_RNN_RELU
    int FNN_LSTM
    int FNN_GRU
    int fnn_rnn_forward(int mode, int T, int N, int In, int H, int reverse, const float *x,
                        const float *w_ih, const float *w_hh, const float *b_ih,
                        const float *b_hh, const int32_t *lengths, float *h, float *c,
                        float *y, Py_ssize_t ldy, float *gates, float *hprev, float *aux1,
                        float *aux2, int naive)
    int fnn_rnn_backward(int mode, int T, int N, int In, int H, int reverse, const float *x,
                         const float *w_ih, const float *w_hh, const int32_t *lengths,
                         const float *gates, const float *hprev, const float *aux1,
                         const float *aux2, const float *dy, Py_ssize_t ldy, float *dh,
                         float *dc, float *dx, int dx_acc, float *dw_ih, float *dw_hh,
                         float *db_ih, float *db_hh, int acc, int need_dh0, int naive)

RNN_MODES = {"RNN_TANH": 0, "RNN_RELU": 1, "LSTM": 2, "GRU": 3}


cdef int _rnn_gates(int mode) except -1:
    if mode < 0 or mode > 3:
        raise ValueError(f"rnn: mode must be 0..3, got {mode}")
    return 4 if mode == FNN_LSTM else (3 if mode == FNN_GRU else 1)


cdef const int32_t *_rnn_lengths(object lengths, int T, int N) except? NULL:
    if lengths is None:
        return NULL
    cdef cnp.ndarray L = _arr(lengths, "lengths", cnp.NPY_INT32, N, False, 1)
    if N and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths: every length must be in [1, {T}]")
    return <const int32_t *>cnp.PyArray_DATA(L)


cdef float *_rnn_rows(object a, str name, int T, int N, int H, Py_ssize_t off,
                      Py_ssize_t *ld, bint out) except? NULL:
    """A (T, N, ld) float32 array of which columns [off, off+H) are used."""
    if a is None:
        ld[0] = 0
        return NULL
    cdef cnp.ndarray arr = _arr(a, name, cnp.NPY_FLOAT32, -1, out, 3)
    if arr.shape[0] != T or arr.shape[1] != N or off < 0 or arr.shape[2] < off + H:
        raise ValueError(f"{name}: expected shape ({T}, {N}, >= {off + H}), "
                         f"got {(<object>arr).shape}")
    ld[0] = arr.shape[2]
    return <float *>cnp.PyArray_DATA(arr) + off


def rnn_forward(int mode, int T, int N, int I, int H, bint reverse, x, w_ih, w_hh, b_ih,
                b_hh, lengths, h, c, y, Py_ssize_t y_off, gates, hprev, aux1, aux2,
                bint naive=False):
    """One layer, one direction: see fnn_rnn_forward. h (and c for the LSTM)
    hold h0 (c0) and receive h_n (c_n). The saves are all None (inference)
    or all given."""
    cdef int G = _rnn_gates(mode)
    if T < 0 or N < 0 or I < 1 or H < 1:
        raise ValueError(f"rnn_forward: bad sizes T={T}, N={N}, I={I}, H={H}")
    cdef Py_ssize_t TN = <Py_ssize_t>T * N, NH = <Py_ssize_t>N * H, ldy
    _as_int(TN * G * H, "rnn_forward: T*N*gates*H")
    cdef const float *px = _f32(x, "x", TN * I)
    cdef const float *pwi = _f32(w_ih, "w_ih", <Py_ssize_t>G * H * I)
    cdef const float *pwh = _f32(w_hh, "w_hh", <Py_ssize_t>G * H * H)
    cdef const float *pbi = _f32(b_ih, "b_ih", G * H, False, True)
    cdef const float *pbh = _f32(b_hh, "b_hh", G * H, False, True)
    cdef const int32_t *pl = _rnn_lengths(lengths, T, N)
    cdef float *ph = _f32(h, "h", NH, True)
    cdef float *pc = NULL
    if mode == FNN_LSTM:
        pc = _f32(c, "c", NH, True)
    cdef float *py = _rnn_rows(y, "y", T, N, H, y_off, &ldy, True)
    cdef float *pg = NULL
    cdef float *php = NULL
    cdef float *pa1 = NULL
    cdef float *pa2 = NULL
    if gates is not None:
        pg = _f32(gates, "gates", TN * G * H, True)
        php = _f32(hprev, "hprev", TN * H, True)
        if mode == FNN_LSTM or mode == FNN_GRU:
            pa1 = _f32(aux1, "aux1", TN * H, True)
        if mode == FNN_LSTM:
            pa2 = _f32(aux2, "aux2", TN * H, True)
    cdef int st
    with nogil:
        st = fnn_rnn_forward(mode, T, N, I, H, reverse, px, pwi, pwh, pbi, pbh, pl, ph, pc,
                             py, ldy, pg, php, pa1, pa2, naive)
    check_status(st)


def rnn_backward(int mode, int T, int N, int I, int H, bint reverse, x, w_ih, w_hh, lengths,
                 gates, hprev, aux1, aux2, dy, Py_ssize_t dy_off, dh, dc, dx, bint dx_acc,
                 dw_ih, dw_hh, db_ih, db_hh, int acc, bint need_dh0=True, bint naive=False):
    """Backward of rnn_forward from its saves: see fnn_rnn_backward. dh (dc)
    hold dL/dh_n (dL/dc_n) and receive dL/dh0 (dL/dc0)."""
    cdef int G = _rnn_gates(mode)
    if T < 0 or N < 0 or I < 1 or H < 1:
        raise ValueError(f"rnn_backward: bad sizes T={T}, N={N}, I={I}, H={H}")
    cdef Py_ssize_t TN = <Py_ssize_t>T * N, NH = <Py_ssize_t>N * H, GH = <Py_ssize_t>G * H, ldy
    _as_int(TN * GH, "rnn_backward: T*N*gates*H")
    cdef const float *px = _f32(x, "x", TN * I)
    cdef const float *pwi = _f32(w_ih, "w_ih", GH * I)
    cdef const float *pwh = _f32(w_hh, "w_hh", GH * H)
    cdef const int32_t *pl = _rnn_lengths(lengths, T, N)
    cdef const float *pg = _f32(gates, "gates", TN * GH)
    cdef const float *php = _f32(hprev, "hprev", TN * H)
    cdef const float *pa1 = NULL
    cdef const float *pa2 = NULL
    if mode == FNN_LSTM or mode == FNN_GRU:
        pa1 = _f32(aux1, "aux1", TN * H)
    if mode == FNN_LSTM:
        pa2 = _f32(aux2, "aux2", TN * H)
    cdef const float *pdy = _rnn_rows(dy, "dy", T, N, H, dy_off, &ldy, False)
    cdef float *pdh = _f32(dh, "dh", NH, True)
    cdef float *pdc = NULL
    if mode == FNN_LSTM:
        pdc = _f32(dc, "dc", NH, True)
    cdef float *pdx = _f32(dx, "dx", TN * I, True, True)
    cdef float *pdwi = _f32(dw_ih, "dw_ih", GH * I, True, True)
    cdef float *pdwh = _f32(dw_hh, "dw_hh", GH * H, True, True)
    cdef float *pdbi = _f32(db_ih, "db_ih", GH, True, True)
    cdef float *pdbh = _f32(db_hh, "db_hh", GH, True, True)
    cdef int st
    with nogil:
        st = fnn_rnn_backward(mode, T, N, I, H, reverse, px, pwi, pwh, pl, pg, php, pa1, pa2,
                              pdy, ldy, pdh, pdc, pdx, dx_acc, pdwi, pdwh, pdbi, pdbh, acc,
                              need_dh0, naive)
    check_status(st)
