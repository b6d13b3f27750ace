/* Shared by the binding's source files: one extension module, edge_speech._native. */
#ifndef EDGE_SPEECH_BINDING_H
#define EDGE_SPEECH_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "edge_speech.h"

/* Raises the Python exception for a failed status (ValueError for bad input or config, with
 * `why` appended when given); returns NULL for `return es_raise(...)`. */
PyObject *es_raise(es_status status, const char *why);

/* A new bytearray of n bytes, or NULL with MemoryError set. */
PyObject *es_new_bytes(Py_ssize_t n, char **data);

int es_register_frontend(PyObject *module);
int es_register_decoding(PyObject *module);
int es_register_vad(PyObject *module);

#endif
