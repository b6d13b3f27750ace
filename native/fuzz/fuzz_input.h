/* Reading structured values out of a libFuzzer input. Every take_* consumes bytes from the front
 * and returns a fixed value (0) once the input runs out, so a harness never reads past the end and
 * a short input still decodes to something the library must handle. */
#ifndef EDGE_SPEECH_FUZZ_INPUT_H
#define EDGE_SPEECH_FUZZ_INPUT_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_config.h"

typedef struct fuzz_input {
  const uint8_t *data;
  size_t size;
} fuzz_input;

/* A broken invariant is a finding: abort so libFuzzer saves the input. */
#define FUZZ_REQUIRE(cond) \
  do {                     \
    if (!(cond)) abort();  \
  } while (0)

static inline uint8_t take_u8(fuzz_input *in) {
  if (in->size == 0) return 0;
  in->size--;
  return *in->data++;
}

static inline uint16_t take_u16(fuzz_input *in) { return (uint16_t)(take_u8(in) | (take_u8(in) << 8)); }

/* Any float bit pattern: NaN, infinities, subnormals and all. */
static inline float take_raw_float(fuzz_input *in) {
  uint32_t bits = 0;
  for (int i = 0; i < 4; i++) bits |= (uint32_t)take_u8(in) << (8 * i);
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* A log-probability as a model would emit it (<= 0, or a rounding error above), with the
 * non-finite values a broken model can. */
static inline float take_log_prob(fuzz_input *in) {
  const uint8_t b = take_u8(in);
  switch (b) {
    case 255: return NAN;
    case 254: return INFINITY;
    case 253: return -INFINITY;
    case 252: return -fabsf(take_raw_float(in)); /* any magnitude, subnormals included */
    case 251: return -FLT_MAX;
    case 250: return 1e-6f;
    default: return -(float)b / 16.0f;
  }
}

/* A value for a config field: mostly in its range (its default, its bounds, a point between),
 * sometimes the hostile values a caller can pass (NaN, infinities, huge, negative). */
static inline double take_field_value(fuzz_input *in, const es_config_field *field) {
  static const double hostile[] = {0.0, -1.0, 1.0, 2.0, 3.0, 7.0, 0.5, 1e-30, 1e30, -1e30, 3.4e38, 1e300,
                                   NAN, INFINITY, -INFINITY, 2147483648.0, -2147483649.0, 65537.0};
  const double lo = isfinite(field->min) ? field->min : -1e6, hi = isfinite(field->max) ? field->max : 1e6;
  const uint8_t how = take_u8(in);
  switch (how % 8) {
    case 0:
    case 1: return field->default_value;
    case 2: return field->min;
    case 3: return field->max;
    case 4: return hostile[take_u8(in) % (sizeof hostile / sizeof hostile[0])];
    case 5: return take_raw_float(in);
    default: return lo + (hi - lo) * (take_u16(in) / 65535.0); /* evenly between the bounds */
  }
}

/* Sets a field to `value` the way a binding would: the table's range check first. Out-of-range
 * values that would be undefined to convert (an int field given 1e30) are refused here, as the
 * Python binding refuses them; in-range or representable ones reach the C checks. */
static inline void set_field(const es_config_field *field, void *config, double value) {
  if (field->type != ES_FIELD_FLOAT) {
    const double lo = field->type == ES_FIELD_U64 ? 0.0 : (double)INT32_MIN;
    const double hi = field->type == ES_FIELD_U64 ? 18446744073709549568.0 : (double)INT32_MAX;
    if (!(value >= lo && value <= hi)) return; /* not representable: keep the default */
  }
  es_config_set(field, config, value);
}

#endif
