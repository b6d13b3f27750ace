/* edge_speech._native: a thin binding. Buffers in, bytearrays out (wrapped by numpy in Python),
 * the GIL released around all C work; validation and friendly errors live in the Python layer. */
#include "binding.h"

PyObject *es_raise(es_status status, const char *why) {
  PyObject *type = PyExc_RuntimeError;
  switch (status) {
    case ES_ERR_INVALID_ARGUMENT:
    case ES_ERR_INVALID_CONFIG:
    case ES_ERR_NON_FINITE_INPUT:
    case ES_ERR_PARSE: type = PyExc_ValueError; break;
    case ES_ERR_OUT_OF_MEMORY: type = PyExc_MemoryError; break;
    default: break;
  }
  if (why != NULL && why[0] != '\0')
    PyErr_Format(type, "%s: %s", es_status_message(status), why);
  else
    PyErr_SetString(type, es_status_message(status));
  return NULL;
}

PyObject *es_new_bytes(Py_ssize_t n, char **data) {
  PyObject *bytes = PyByteArray_FromStringAndSize(NULL, n);
  if (bytes != NULL) *data = PyByteArray_AS_STRING(bytes);
  return bytes;
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_native", "edge_speech native core (C front end and decoders).", -1, NULL,
    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void) {
  PyObject *module = PyModule_Create(&module_def);
  if (module == NULL) return NULL;
  if (es_register_config(module) < 0 || es_register_frontend(module) < 0 || es_register_decoding(module) < 0 || es_register_vad(module) < 0) {
    Py_DECREF(module);
    return NULL;
  }
  return module;
}
