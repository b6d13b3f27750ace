/* FrontEnd: es_frontend for Python, plus small functions exposing single stages to the tests. */
#include <stddef.h>
#include <string.h>

#include "binding.h"

/* Holds the buffers that global CMVN statistics point into while the config is in use. */
typedef struct {
  Py_buffer mean, stddev;
  int has_mean, has_stddev;
} config_buffers;

static void release_config_buffers(config_buffers *b) {
  if (b->has_mean) PyBuffer_Release(&b->mean);
  if (b->has_stddev) PyBuffer_Release(&b->stddev);
  b->has_mean = b->has_stddev = 0;
}

static int get_float_vector(PyObject *obj, const char *name, Py_buffer *view) {
  if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
  if (view->ndim != 1 || view->itemsize != 4 || strcmp(view->format, "f") != 0) {
    PyBuffer_Release(view);
    PyErr_Format(PyExc_TypeError, "%s must be a 1-D float32 buffer", name);
    return -1;
  }
  return 0;
}

/* Fills *config from a dict of config-table names (enums by name or value), plus the global CMVN
 * statistics cmvn_mean / cmvn_std as float32 buffers; unknown keys are an error. */
static int config_from_dict(PyObject *dict, es_frontend_config *config, config_buffers *buffers) {
  static const char *const statistics[] = {"cmvn_mean", "cmvn_std", NULL};
  memset(buffers, 0, sizeof(*buffers));
  *config = es_frontend_config_default();
  if (es_config_from_dict(es_frontend_config_table(), dict, config, statistics, "front end") < 0) return -1;
  for (int i = 0; i < 2; i++) {
    PyObject *value = PyDict_GetItemString(dict, statistics[i]); /* borrowed */
    if (value == NULL || value == Py_None) continue;
    Py_buffer *view = i == 0 ? &buffers->mean : &buffers->stddev;
    if (get_float_vector(value, statistics[i], view) < 0) goto fail;
    if (i == 0) {
      buffers->has_mean = 1;
      config->cmvn.mean = view->buf;
    } else {
      buffers->has_stddev = 1;
      config->cmvn.stddev = view->buf;
    }
  }
  int dim = es_frontend_config_dim(config);
  if ((buffers->has_mean && buffers->mean.shape[0] != dim) ||
      (buffers->has_stddev && buffers->stddev.shape[0] != dim)) {
    PyErr_Format(PyExc_ValueError, "CMVN statistics must have the feature dimension %d", dim);
    goto fail;
  }
  return 0;
fail:
  release_config_buffers(buffers);
  return -1;
}

typedef struct {
  PyObject_HEAD
  es_frontend fe;
  int ready;
  int busy; /* set while a call runs without the GIL: a second thread gets an error, not a race */
} FrontEndObject;

static int frontend_init(FrontEndObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"config", NULL};
  PyObject *dict;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:FrontEnd", kwlist, &dict)) return -1;
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "FrontEnd is in use by another thread");
    return -1;
  }
  if (self->ready) es_frontend_free(&self->fe);
  self->ready = 0;
  es_frontend_config config;
  config_buffers buffers;
  if (config_from_dict(dict, &config, &buffers) < 0) return -1;
  char why[256] = "";
  es_status s = es_frontend_init(&self->fe, &config);
  if (s == ES_ERR_INVALID_CONFIG) es_frontend_config_check(&config, why, sizeof why); /* only to explain */
  release_config_buffers(&buffers);
  if (s != ES_OK) {
    es_raise(s, why);
    return -1;
  }
  self->ready = 1;
  return 0;
}

static void frontend_dealloc(FrontEndObject *self) {
  es_frontend_free(&self->fe);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static int enter(FrontEndObject *self) {
  if (!self->ready) {
    PyErr_SetString(PyExc_RuntimeError, "FrontEnd is not initialised");
    return -1;
  }
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError,
                    "FrontEnd is in use by another thread; use one stream per thread");
    return -1;
  }
  self->busy = 1;
  return 0;
}

static int samples_from_buffer(PyObject *obj, Py_buffer *view, es_samples *samples) {
  if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return -1;
  const char *fmt = view->format ? view->format : "B";
  if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@') fmt++;
  es_sample_format format;
  if (strcmp(fmt, "f") == 0 && view->itemsize == 4) format = ES_SAMPLE_F32;
  else if (strcmp(fmt, "d") == 0 && view->itemsize == 8) format = ES_SAMPLE_F64;
  else if (strcmp(fmt, "h") == 0 && view->itemsize == 2) format = ES_SAMPLE_S16;
  else {
    PyBuffer_Release(view);
    PyErr_Format(PyExc_TypeError, "samples must be float32, float64 or int16, got buffer format '%s'", fmt);
    return -1;
  }
  if (view->ndim != 1 || view->strides[0] % view->itemsize != 0) {
    PyBuffer_Release(view);
    PyErr_SetString(PyExc_ValueError, "samples must be a 1-D buffer with whole-element strides");
    return -1;
  }
  samples->data = view->buf;
  samples->count = (size_t)view->shape[0];
  samples->stride = view->strides[0] / view->itemsize;
  samples->format = format;
  return 0;
}

/* Runs accept (samples != NULL), then finish (if finishing), into one new bytearray holding
 * exactly the frames produced. */
static PyObject *run_frontend(FrontEndObject *self, const es_samples *samples, int finishing) {
  size_t frames = es_frontend_frames_after(&self->fe, samples ? samples->count : 0, finishing);
  const size_t dim = (size_t)self->fe.dim;
  char *data = NULL;
  PyObject *out = es_new_bytes((Py_ssize_t)(frames * dim * sizeof(float)), &data);
  if (out == NULL) return NULL;
  float *frames_out = (float *)data;
  size_t accepted = 0, flushed = 0;
  es_status s = ES_OK;
  Py_BEGIN_ALLOW_THREADS
  if (samples) s = es_frontend_accept(&self->fe, samples, frames_out, frames, &accepted);
  if (s == ES_OK && finishing)
    s = es_frontend_finish(&self->fe, frames_out + accepted * dim, frames - accepted, &flushed);
  if (s == ES_OK && samples && finishing) /* a whole signal from a fresh front end (checked by the caller) */
    es_frontend_clamp_utterance(&self->fe, frames_out, accepted + flushed);
  Py_END_ALLOW_THREADS
  if (s != ES_OK) {
    Py_DECREF(out);
    return es_raise(s, s == ES_ERR_NON_FINITE_INPUT ? "check the audio for NaN/Inf values" : NULL);
  }
  return out;
}

/* The utterance clamp needs every frame of the signal in one call: only accept_and_finish on a
 * fresh (or reset) front end gives them. */
static int check_whole_signal(FrontEndObject *self, int whole_signal) {
  if (self->fe.config.output_clamp != ES_OUTPUT_CLAMP_UTTERANCE) return 0;
  if (whole_signal && self->fe.framer.samples_seen == 0 && !self->fe.framer.finished) return 0;
  PyErr_SetString(PyExc_ValueError,
                  "output_clamp='utterance' needs the whole signal at once (accept_and_finish after reset); "
                  "streaming needs output_clamp='fixed'");
  return -1;
}

static PyObject *accept_samples(FrontEndObject *self, PyObject *obj, int finishing) {
  Py_buffer view;
  es_samples samples;
  if (enter(self) < 0) return NULL;
  if (check_whole_signal(self, finishing) < 0) {
    self->busy = 0;
    return NULL;
  }
  PyObject *out = NULL;
  if (samples_from_buffer(obj, &view, &samples) == 0) {
    out = run_frontend(self, &samples, finishing);
    PyBuffer_Release(&view);
  }
  self->busy = 0;
  return out;
}

static PyObject *frontend_accept(FrontEndObject *self, PyObject *obj) { return accept_samples(self, obj, 0); }

static PyObject *frontend_accept_and_finish(FrontEndObject *self, PyObject *obj) {
  return accept_samples(self, obj, 1);
}

static PyObject *frontend_finish(FrontEndObject *self, PyObject *unused) {
  if (enter(self) < 0) return NULL;
  if (check_whole_signal(self, 0) < 0) {
    self->busy = 0;
    return NULL;
  }
  PyObject *out = run_frontend(self, NULL, 1);
  self->busy = 0;
  return out;
}

static PyObject *frontend_reset(FrontEndObject *self, PyObject *unused) {
  if (enter(self) < 0) return NULL;
  es_frontend_reset(&self->fe);
  self->busy = 0;
  Py_RETURN_NONE;
}

static PyObject *frontend_frames_after(FrontEndObject *self, PyObject *args) {
  Py_ssize_t n;
  int finishing = 0;
  if (!PyArg_ParseTuple(args, "n|p", &n, &finishing)) return NULL;
  if (!self->ready || n < 0) return es_raise(ES_ERR_INVALID_ARGUMENT, NULL);
  return PyLong_FromSize_t(es_frontend_frames_after(&self->fe, (size_t)n, finishing));
}

static PyObject *frontend_get(FrontEndObject *self, void *which) {
  if (!self->ready) return es_raise(ES_ERR_STATE, NULL);
  switch ((int)(intptr_t)which) {
    case 0: return PyLong_FromLong(self->fe.dim);
    case 1: return PyLong_FromLongLong(es_frontend_frames_done(&self->fe));
    case 2: return PyLong_FromLong(self->fe.frame_length);
    case 3: return PyLong_FromLong(self->fe.framer.shift);
    case 4: return PyLong_FromLong(self->fe.fft_size);
    default: return PyLong_FromLong(self->fe.framer.finished);
  }
}

static PyMethodDef frontend_methods[] = {
    {"accept", (PyCFunction)frontend_accept, METH_O,
     "accept(samples) -> bytearray: consume a 1-D float32/float64/int16 buffer, return new frames"},
    {"accept_and_finish", (PyCFunction)frontend_accept_and_finish, METH_O,
     "accept_and_finish(samples) -> bytearray: accept, then finish, into one buffer"},
    {"finish", (PyCFunction)frontend_finish, METH_NOARGS,
     "finish() -> bytearray: end the signal, return the frames that overhang its end"},
    {"reset", (PyCFunction)frontend_reset, METH_NOARGS, "reset(): forget all input"},
    {"frames_after", (PyCFunction)frontend_frames_after, METH_VARARGS,
     "frames_after(num_samples, finishing=False) -> int"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef frontend_getset[] = {
    {"dim", (getter)frontend_get, NULL, "feature dimension", (void *)0},
    {"frames_done", (getter)frontend_get, NULL, "frames produced since reset", (void *)1},
    {"frame_length", (getter)frontend_get, NULL, "samples per frame", (void *)2},
    {"frame_shift", (getter)frontend_get, NULL, "samples between frame starts", (void *)3},
    {"fft_size", (getter)frontend_get, NULL, "FFT size", (void *)4},
    {"finished", (getter)frontend_get, NULL, "whether finish() was called", (void *)5},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject FrontEndType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edge_speech._native.FrontEnd",
    .tp_basicsize = sizeof(FrontEndObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FrontEnd(config: dict): the native streaming feature front end",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)frontend_init,
    .tp_dealloc = (destructor)frontend_dealloc,
    .tp_methods = frontend_methods,
    .tp_getset = frontend_getset,
};

static PyObject *check_config(PyObject *module, PyObject *dict) {
  es_frontend_config config;
  config_buffers buffers;
  if (config_from_dict(dict, &config, &buffers) < 0) return NULL;
  char why[256] = "";
  es_status s = es_frontend_config_check(&config, why, sizeof why);
  release_config_buffers(&buffers);
  if (s != ES_OK) return es_raise(s, why);
  Py_RETURN_NONE;
}

static PyObject *mel_weights(PyObject *module, PyObject *args) {
  PyObject *dict;
  int fft_size;
  if (!PyArg_ParseTuple(args, "Oi", &dict, &fft_size)) return NULL;
  es_frontend_config config;
  config_buffers buffers;
  if (config_from_dict(dict, &config, &buffers) < 0) return NULL;
  release_config_buffers(&buffers);
  char why[256] = "";
  es_status s = es_fft_mixed_radix_size_is_supported(fft_size)
                    ? es_mel_config_check(&config.mel, config.sample_rate_hz, fft_size, why, sizeof why)
                    : ES_ERR_INVALID_CONFIG;
  es_mel_filterbank bank;
  if (s == ES_OK) s = es_mel_init(&bank, &config.mel, config.sample_rate_hz, fft_size);
  if (s != ES_OK) return es_raise(s, why);
  char *data;
  PyObject *out = es_new_bytes((Py_ssize_t)sizeof(float) * bank.num_bins * bank.num_fft_bins, &data);
  if (out) es_mel_dense(&bank, (float *)data);
  es_mel_free(&bank);
  return out;
}

static PyObject *window(PyObject *module, PyObject *args) {
  int type, periodic, length;
  if (!PyArg_ParseTuple(args, "iii", &type, &periodic, &length)) return NULL;
  if (length < 1 || length > (1 << 24)) return es_raise(ES_ERR_INVALID_ARGUMENT, "window length");
  char *data;
  PyObject *out = es_new_bytes((Py_ssize_t)sizeof(float) * length, &data);
  if (out == NULL) return NULL;
  es_status s = es_window_fill((es_window_type)type, periodic, length, (float *)data);
  if (s != ES_OK) {
    Py_DECREF(out);
    return es_raise(s, "window type");
  }
  return out;
}

/* rfft (powers of two) and rfft_mixed_radix share this; mixed != 0 takes the wider size set. */
static PyObject *rfft_of(PyObject *obj, int mixed) {
  Py_buffer view;
  if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
  PyObject *out = NULL;
  if (view.ndim != 1 || view.itemsize != 4 || strcmp(view.format, "f") != 0) {
    PyErr_SetString(PyExc_TypeError, "rfft takes a 1-D float32 buffer");
  } else if (view.shape[0] > 65536 || (mixed ? !es_fft_mixed_radix_size_is_supported((int)view.shape[0])
                                             : !es_fft_size_is_supported((int)view.shape[0]))) {
    PyErr_SetString(PyExc_ValueError, mixed ? "rfft_mixed_radix size must be even in 4..65536 with no prime "
                                              "factor above 7 in its half"
                                            : "rfft size must be a power of two in 4..65536");
  } else {
    es_rfft plan;
    es_status s = mixed ? es_rfft_init_mixed_radix(&plan, (int)view.shape[0]) : es_rfft_init(&plan, (int)view.shape[0]);
    char *data;
    if (s != ES_OK) {
      es_raise(s, NULL);
    } else if ((out = es_new_bytes((Py_ssize_t)sizeof(float) * (plan.size + 2), &data)) != NULL) {
      Py_BEGIN_ALLOW_THREADS
      es_rfft_forward(&plan, view.buf, (float *)data);
      Py_END_ALLOW_THREADS
    }
    es_rfft_free(&plan);
  }
  PyBuffer_Release(&view);
  return out;
}

static PyObject *rfft(PyObject *module, PyObject *obj) { return rfft_of(obj, 0); }
static PyObject *rfft_mixed_radix(PyObject *module, PyObject *obj) { return rfft_of(obj, 1); }

static PyMethodDef functions[] = {
    {"check_config", check_config, METH_O, "check_config(dict): raise ValueError naming the problem"},
    {"mel_weights", mel_weights, METH_VARARGS, "mel_weights(dict, fft_size) -> bytearray (bins x fft/2+1)"},
    {"window", window, METH_VARARGS, "window(type, periodic, length) -> bytearray of float32"},
    {"rfft", rfft, METH_O, "rfft(float32 buffer) -> bytearray of N/2+1 interleaved complex float32"},
    {"rfft_mixed_radix", rfft_mixed_radix, METH_O,
     "rfft_mixed_radix(float32 buffer) -> as rfft, for even N whose half factors into 2, 3, 5, 7"},
    {NULL, NULL, 0, NULL}};

int es_register_frontend(PyObject *module) {
  if (PyType_Ready(&FrontEndType) < 0) return -1;
  Py_INCREF(&FrontEndType);
  if (PyModule_AddObject(module, "FrontEnd", (PyObject *)&FrontEndType) < 0) {
    Py_DECREF(&FrontEndType);
    return -1;
  }
  return PyModule_AddFunctions(module, functions);
}
