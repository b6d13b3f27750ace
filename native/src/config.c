#include "edge_speech/es_config.h"

#include <math.h>
#include <string.h>

void es_config_set_defaults(const es_config_table *table, void *config) {
  for (int i = 0; i < table->num_fields; i++) es_config_set(&table->fields[i], config, table->fields[i].default_value);
}

const es_config_field *es_config_find(const es_config_table *table, const char *name) {
  for (int i = 0; i < table->num_fields; i++)
    if (strcmp(table->fields[i].name, name) == 0) return &table->fields[i];
  return NULL;
}

double es_config_get(const es_config_field *field, const void *config) {
  const char *slot = (const char *)config + field->offset;
  switch (field->type) {
    case ES_FIELD_FLOAT: return *(const float *)slot;
    case ES_FIELD_U64: return (double)*(const uint64_t *)slot;
    default: return *(const int *)slot;
  }
}

void es_config_set(const es_config_field *field, void *config, double value) {
  char *slot = (char *)config + field->offset;
  switch (field->type) {
    case ES_FIELD_FLOAT: *(float *)slot = (float)value; break;
    case ES_FIELD_U64: *(uint64_t *)slot = (uint64_t)value; break;
    default: *(int *)slot = (int)value; break;
  }
}

int es_config_in_range(const es_config_field *field, double value) {
  if (isnan(value)) return 0;
  if (field->flags & ES_FIELD_MIN_EXCLUSIVE ? !(value > field->min) : !(value >= field->min)) return 0;
  if (field->flags & ES_FIELD_MAX_EXCLUSIVE ? !(value < field->max) : !(value <= field->max)) return 0;
  return 1;
}

int es_config_enum_value(const es_config_field *field, const char *name) {
  if (field->type != ES_FIELD_ENUM || field->enum_names == NULL) return -1;
  for (int v = 0; v <= (int)field->max; v++)
    if (strcmp(field->enum_names[v], name) == 0) return v;
  return -1;
}
