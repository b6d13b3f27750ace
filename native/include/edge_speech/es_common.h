/*
 * edge_speech native core: shared types.
 *
 * Thread safety: every state object is independent; one object must not be used from two threads
 * at once, different objects may. Nothing in the core holds global mutable state.
 * Ownership: objects are initialised into caller-owned structs (`es_x_init(&state, &config)`),
 * and `es_x_free` releases what init allocated. Free is safe on a zeroed struct and on one whose
 * init failed halfway, and may be called twice. The core never prints, aborts or exits.
 * Allocation after init: see edge_speech.h (only the beam and grammar decoders' accept grow pools).
 */
#ifndef EDGE_SPEECH_ES_COMMON_H
#define EDGE_SPEECH_ES_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum es_status {
  ES_OK = 0,
  ES_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer or an argument out of range */
  ES_ERR_INVALID_CONFIG = 2,   /* a config that cannot work; *_config_check says why */
  ES_ERR_OUT_OF_MEMORY = 3,
  ES_ERR_NON_FINITE_INPUT = 4, /* NaN or Inf among the input samples; nothing was consumed */
  ES_ERR_BUFFER_TOO_SMALL = 5, /* the caller's output buffer cannot hold the result */
  ES_ERR_FINISHED = 6,         /* input after the stream was finished; reset it first */
  ES_ERR_PARSE = 7,            /* malformed text input (grammar, LM, stats file) */
  ES_ERR_STATE = 8             /* the object was used before init or after free */
} es_status;

/* A static, never-NULL English description of a status. */
const char *es_status_message(es_status status);

/* Sample encodings the front end accepts directly, without a conversion copy by the caller. */
typedef enum es_sample_format {
  ES_SAMPLE_F32 = 0, /* float, nominally in [-1, 1] */
  ES_SAMPLE_F64 = 1, /* double, nominally in [-1, 1] */
  ES_SAMPLE_S16 = 2  /* int16, scaled by 1/32768 */
} es_sample_format;

/* A read-only view of `count` samples, `stride` elements apart (1 for contiguous; may be < 0). */
typedef struct es_samples {
  const void *data;
  size_t count;
  ptrdiff_t stride;
  es_sample_format format;
} es_samples;

/* Copies `why` (truncated) into `out` if out is not NULL; used by *_config_check. */
void es_explain(char *out, size_t out_size, const char *why);

#ifdef __cplusplus
}
#endif
#endif
