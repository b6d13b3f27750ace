/*
 * Config tables: each config struct (front end, VAD, beam search) is described once, by a table
 * beside its es_<stage>_config_default(), which fills the struct from that table. A row names a
 * user-settable field and gives its type, offset, default, valid range and, for enums, the name of
 * each value. The Python binding parses config dicts and reports defaults, ranges and enum names
 * from these tables, so the C struct, the binding and the Python classes cannot drift apart.
 *
 * Ranges are the bounds a field has on its own; checks that involve several fields or the sample
 * rate stay in es_<stage>_config_check, which is what init enforces.
 */
#ifndef EDGE_SPEECH_ES_CONFIG_H
#define EDGE_SPEECH_ES_CONFIG_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum es_field_type {
  ES_FIELD_FLOAT = 0, /* float */
  ES_FIELD_INT = 1,   /* int */
  ES_FIELD_BOOL = 2,  /* int holding 0 or 1 */
  ES_FIELD_ENUM = 3,  /* an int-sized enum with values 0..max, each named in enum_names */
  ES_FIELD_U64 = 4    /* uint64_t */
} es_field_type;

/* Range flags: an exclusive bound is itself invalid. */
#define ES_FIELD_MIN_EXCLUSIVE 1u
#define ES_FIELD_MAX_EXCLUSIVE 2u

typedef struct es_config_field {
  const char *name;               /* the user-facing name (Python's field name) */
  es_field_type type;
  size_t offset;                  /* of the value within the config struct */
  double default_value;           /* an enum's default is its integer value */
  double min, max;                /* valid range; -INFINITY / INFINITY: unbounded */
  unsigned flags;                 /* ES_FIELD_MIN_EXCLUSIVE | ES_FIELD_MAX_EXCLUSIVE */
  const char *const *enum_names;  /* ES_FIELD_ENUM: max + 1 names, by value; else NULL */
} es_config_field;

typedef struct es_config_table {
  const char *name;               /* "frontend", "vad", "beam" */
  const es_config_field *fields;
  int num_fields;
} es_config_table;

/* The tables, static and read-only. */
const es_config_table *es_frontend_config_table(void);
const es_config_table *es_vad_config_table(void);
const es_config_table *es_ctc_beam_config_table(void);

/* Sets every field the table names to its default; other bytes are left alone. */
void es_config_set_defaults(const es_config_table *table, void *config);
/* The row called name, or NULL. */
const es_config_field *es_config_find(const es_config_table *table, const char *name);
/* A field's value as a double, and the reverse (set converts to the field's type, unchecked). */
double es_config_get(const es_config_field *field, const void *config);
void es_config_set(const es_config_field *field, void *config, double value);
/* 1 if value lies in the field's range (NaN never does), else 0. */
int es_config_in_range(const es_config_field *field, double value);
/* The value of an enum name, or -1 if the field has no such name. */
int es_config_enum_value(const es_config_field *field, const char *name);

#ifdef __cplusplus
}
#endif
#endif
