/* EnergyVad: es_vad for Python. */
#include <string.h>

#include "binding.h"

typedef struct {
  PyObject_HEAD
  es_vad vad;
  int busy;
} EnergyVadObject;

static int vad_init(EnergyVadObject *self, PyObject *args, PyObject *kwargs) {
  if (PyTuple_GET_SIZE(args) != 0) {
    PyErr_SetString(PyExc_TypeError, "EnergyVad takes keyword arguments only (the fields of es_vad_config)");
    return -1;
  }
  es_vad_config c = es_vad_config_default();
  if (kwargs != NULL && es_config_from_dict(es_vad_config_table(), kwargs, &c, NULL, "EnergyVad") < 0) return -1;
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "EnergyVad is in use by another thread");
    return -1;
  }
  es_vad_free(&self->vad);
  char why[200] = "";
  es_status s = es_vad_config_check(&c, why, sizeof why);
  if (s == ES_OK) s = es_vad_init(&self->vad, &c);
  if (s != ES_OK) {
    es_raise(s, why);
    return -1;
  }
  return 0;
}

static void vad_dealloc(EnergyVadObject *self) {
  es_vad_free(&self->vad);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *vad_accept(EnergyVadObject *self, PyObject *obj) {
  if (self->vad.frame == NULL) return es_raise(ES_ERR_STATE, NULL);
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "EnergyVad is in use by another thread");
    return NULL;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
  if (view.ndim != 1 || view.itemsize != 4 || strcmp(view.format, "f") != 0) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_TypeError, "EnergyVad.accept takes a contiguous 1-D float32 buffer");
    return NULL;
  }
  size_t count = (size_t)view.shape[0], frames = es_vad_frames_after(&self->vad, count), written = 0;
  char *data;
  PyObject *out = es_new_bytes((Py_ssize_t)frames, &data);
  if (out != NULL) {
    es_status s;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    s = es_vad_accept(&self->vad, view.buf, count, (uint8_t *)data, frames, &written);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (s != ES_OK) {
      Py_CLEAR(out);
      es_raise(s, s == ES_ERR_NON_FINITE_INPUT ? "check the audio for NaN/Inf values" : NULL);
    }
  }
  PyBuffer_Release(&view);
  return out;
}

static PyObject *vad_reset(EnergyVadObject *self, PyObject *unused) {
  if (self->vad.frame == NULL) return es_raise(ES_ERR_STATE, NULL);
  es_vad_reset(&self->vad);
  Py_RETURN_NONE;
}

static PyObject *vad_get(EnergyVadObject *self, void *which) {
  if (self->vad.frame == NULL) return es_raise(ES_ERR_STATE, NULL);
  switch ((int)(intptr_t)which) {
    case 0: return PyLong_FromLong(self->vad.frame_length);
    case 1: return PyFloat_FromDouble(self->vad.noise_floor_db);
    case 3: return PyFloat_FromDouble(self->vad.frame_length / (double)self->vad.config.sample_rate_hz);
    case 4: return PyFloat_FromDouble(self->vad.level_db);
    default: return PyLong_FromLongLong(self->vad.frames_done);
  }
}

static PyMethodDef vad_methods[] = {
    {"accept", (PyCFunction)vad_accept, METH_O, "accept(float32 samples) -> bytes: one 0/1 decision per frame"},
    {"reset", (PyCFunction)vad_reset, METH_NOARGS, "reset()"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef vad_getset[] = {
    {"frame_length", (getter)vad_get, NULL, "samples per decision", (void *)0},
    {"noise_floor_db", (getter)vad_get, NULL, "tracked noise floor (dBFS; NaN until a non-silent frame)", (void *)1},
    {"level_db", (getter)vad_get, NULL, "smoothed level of the last non-silent frame (dBFS; NaN before)", (void *)4},
    {"frame_seconds", (getter)vad_get, NULL, "seconds per decision", (void *)3},
    {"frames_done", (getter)vad_get, NULL, "decisions made since reset", (void *)2},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject EnergyVadType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edge_speech._native.EnergyVad",
    .tp_basicsize = sizeof(EnergyVadObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "EnergyVad(**options): the native energy VAD (es_vad.h); options and defaults: "
               "config_fields('vad')",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)vad_init,
    .tp_dealloc = (destructor)vad_dealloc,
    .tp_methods = vad_methods,
    .tp_getset = vad_getset,
};

int es_register_vad(PyObject *module) {
  if (PyType_Ready(&EnergyVadType) < 0) return -1;
  Py_INCREF(&EnergyVadType);
  if (PyModule_AddObject(module, "EnergyVad", (PyObject *)&EnergyVadType) < 0) {
    Py_DECREF(&EnergyVadType);
    return -1;
  }
  return 0;
}
