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

/* Sets the fields of config named by dict's keys through the config table (enums by name or value,
 * bools as ints); keys listed in skip (NULL-terminated, or NULL) are left to the caller. An unknown
 * key is a ValueError naming `what`'s option. Fields not in dict keep their values. */
int es_config_from_dict(const es_config_table *table, PyObject *dict, void *config, const char *const *skip,
                        const char *what);

int es_register_config(PyObject *module);
int es_register_frontend(PyObject *module);
int es_register_decoding(PyObject *module);
int es_register_vad(PyObject *module);

#endif
