/* Config dicts for every binding, parsed through the core's config tables (es_config.h), and
 * config_fields(), which shows those tables to Python. */
#include <limits.h>
#include <string.h>

#include "binding.h"

static const es_config_table *table_named(const char *name) {
  if (strcmp(name, "frontend") == 0) return es_frontend_config_table();
  if (strcmp(name, "vad") == 0) return es_vad_config_table();
  if (strcmp(name, "beam") == 0) return es_ctc_beam_config_table();
  return NULL;
}

/* Stores value in one field: a number for floats, an int (or bool) for ints, an enum's name or value. */
static int set_field(const es_config_field *field, PyObject *value, void *config) {
  char *slot = (char *)config + field->offset;
  if (field->type == ES_FIELD_FLOAT) {
    double v = PyFloat_AsDouble(value);
    if (v == -1.0 && PyErr_Occurred()) return -1;
    *(float *)slot = (float)v;
    return 0;
  }
  if (field->type == ES_FIELD_U64) {
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (PyErr_Occurred()) return -1;
    *(uint64_t *)slot = (uint64_t)v;
    return 0;
  }
  long v;
  if (field->type == ES_FIELD_ENUM && PyUnicode_Check(value)) {
    const char *name = PyUnicode_AsUTF8(value);
    if (name == NULL) return -1;
    v = es_config_enum_value(field, name);
    if (v < 0) {
      PyErr_Format(PyExc_ValueError, "%s has no value %R", field->name, value);
      return -1;
    }
  } else {
    v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred()) return -1;
  }
  if (v < INT_MIN || v > INT_MAX) {
    PyErr_Format(PyExc_ValueError, "%s out of range", field->name);
    return -1;
  }
  *(int *)slot = field->type == ES_FIELD_BOOL ? v != 0 : (int)v;
  return 0;
}

int es_config_from_dict(const es_config_table *table, PyObject *dict, void *config, const char *const *skip,
                        const char *what) {
  if (!PyDict_Check(dict)) {
    PyErr_Format(PyExc_TypeError, "%s config must be a dict", what);
    return -1;
  }
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
    if (name == NULL) {
      if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s option names must be str, got %R", what, key);
      return -1;
    }
    int skipped = 0;
    for (const char *const *s = skip; s != NULL && *s != NULL && !skipped; s++) skipped = strcmp(*s, name) == 0;
    if (skipped) continue;
    const es_config_field *field = es_config_find(table, name);
    if (field == NULL) {
      PyErr_Format(PyExc_ValueError, "unknown %s option %R", what, key);
      return -1;
    }
    if (set_field(field, value, config) < 0) return -1;
  }
  return 0;
}

static PyObject *field_default(const es_config_field *field) {
  switch (field->type) {
    case ES_FIELD_FLOAT: return PyFloat_FromDouble(field->default_value);
    case ES_FIELD_BOOL: return PyBool_FromLong(field->default_value != 0.0);
    case ES_FIELD_ENUM: return PyUnicode_FromString(field->enum_names[(int)field->default_value]);
    case ES_FIELD_U64: return PyLong_FromUnsignedLongLong((unsigned long long)field->default_value);
    default: return PyLong_FromLong((long)field->default_value);
  }
}

static PyObject *field_description(const es_config_field *field) {
  static const char *const type_names[] = {"float", "int", "bool", "enum", "u64"};
  PyObject *names = Py_None;
  Py_INCREF(names);
  if (field->type == ES_FIELD_ENUM) {
    Py_DECREF(names);
    names = PyTuple_New((Py_ssize_t)field->max + 1);
    for (int v = 0; names != NULL && v <= (int)field->max; v++) {
      PyObject *name = PyUnicode_FromString(field->enum_names[v]);
      if (name == NULL) Py_CLEAR(names);
      else PyTuple_SET_ITEM(names, v, name);
    }
    if (names == NULL) return NULL;
  }
  PyObject *def = field_default(field);
  if (def == NULL) {
    Py_DECREF(names);
    return NULL;
  }
  return Py_BuildValue("{s:s,s:s,s:N,s:d,s:d,s:O,s:O,s:N}", "name", field->name, "type", type_names[field->type],
                       "default", def, "min", field->min, "max", field->max, "min_exclusive",
                       (field->flags & ES_FIELD_MIN_EXCLUSIVE) ? Py_True : Py_False, "max_exclusive",
                       (field->flags & ES_FIELD_MAX_EXCLUSIVE) ? Py_True : Py_False, "enum_names", names);
}

static PyObject *config_fields(PyObject *module, PyObject *arg) {
  const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
  if (name == NULL) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "config_fields takes a config name (str)");
    return NULL;
  }
  const es_config_table *table = table_named(name);
  if (table == NULL) {
    PyErr_Format(PyExc_ValueError, "unknown config %R; choose frontend, vad or beam", arg);
    return NULL;
  }
  PyObject *out = PyTuple_New(table->num_fields);
  for (int i = 0; out != NULL && i < table->num_fields; i++) {
    PyObject *row = field_description(&table->fields[i]);
    if (row == NULL) Py_CLEAR(out);
    else PyTuple_SET_ITEM(out, i, row);
  }
  return out;
}

static PyMethodDef functions[] = {
    {"config_fields", config_fields, METH_O,
     "config_fields(name) -> tuple of dicts (name, type, default, min, max, min_exclusive, max_exclusive, "
     "enum_names): the C description of the 'frontend', 'vad' or 'beam' config"},
    {NULL, NULL, 0, NULL}};

int es_register_config(PyObject *module) { return PyModule_AddFunctions(module, functions); }
