#include "edge_speech/es_framer.h"

#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

void es_framer_free(es_framer *framer) {
  if (framer == NULL) return;
  free(framer->buffer);
  memset(framer, 0, sizeof(*framer));
}

es_status es_framer_init(es_framer *framer, int length, int shift, es_padding padding, int centred_span,
                         float scale) {
  if (framer == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(framer, 0, sizeof(*framer));
  if (length < 1 || shift < 1 || (unsigned)padding > ES_PADDING_CONSTANT) return ES_ERR_INVALID_CONFIG;
  if (padding != ES_PADDING_NONE && centred_span < length) return ES_ERR_INVALID_CONFIG;
  framer->length = length;
  framer->shift = shift;
  framer->padding = padding;
  framer->span = padding == ES_PADDING_NONE ? length : centred_span;
  /* A window of `length` sits in the middle of a `span` frame centred on t * shift. */
  framer->offset = padding == ES_PADDING_NONE ? 0 : centred_span / 2 - (centred_span - length) / 2;
  framer->scale = scale;
  /* Pending frames need at most length + 1 samples kept (see compact); the rest is room for input. */
  framer->capacity = 2 * (length + framer->offset + 1) + 4 * shift;
  framer->buffer = malloc(sizeof(float) * (size_t)framer->capacity);
  if (framer->buffer == NULL) return ES_ERR_OUT_OF_MEMORY;
  return ES_OK;
}

void es_framer_reset(es_framer *framer) {
  framer->buffer_start = 0;
  framer->samples_seen = 0;
  framer->next_frame = 0;
  framer->finished = 0;
}

void es_framer_set_drop_last(es_framer *framer, int drop_last) { framer->drop_last = drop_last != 0; }

/* Frames that n samples allow, before any drop_last. */
static int64_t frames_for(const es_framer *f, int64_t n, int finishing) {
  if (f->padding == ES_PADDING_NONE) return n >= f->length ? 1 + (n - f->length) / f->shift : 0;
  if (finishing || f->finished) {
    if (n == 0) return 0;
    return 1 + (n + 2 * (f->span / 2) - f->span) / f->shift;
  }
  /* Mid-stream, a frame is ready once its last sample has arrived and, when its start hangs
   * off the beginning, the samples it mirrors have too. */
  if (f->padding == ES_PADDING_REFLECT && n <= f->offset) return 0;
  const int64_t reach = n - f->length + f->offset;
  return reach >= 0 ? 1 + reach / f->shift : 0;
}

int64_t es_framer_total_frames(const es_framer *f, uint64_t extra, int finishing) {
  const int64_t n = f->samples_seen + (int64_t)extra;
  const int64_t frames = frames_for(f, n, finishing);
  if (!f->drop_last) return frames;
  /* Never more than the count if the signal ended here: that count only grows with n. */
  return ES_MIN(frames, ES_MAX(frames_for(f, n, 1) - 1, (int64_t)0));
}

int es_framer_frame_ready(const es_framer *f) {
  return f->next_frame < es_framer_total_frames(f, 0, 0);
}

/* Drops samples no pending frame can need: everything before the next frame's start, except
 * the last length + 1 samples, which a reflecting end of signal may mirror. */
static void compact(es_framer *f) {
  int64_t keep_from = ES_MIN(ES_MAX(f->next_frame * f->shift - f->offset, (int64_t)0),
                             f->samples_seen - (f->length + 1));
  if (keep_from <= f->buffer_start) return;
  int64_t kept = f->samples_seen - keep_from;
  memmove(f->buffer, f->buffer + (keep_from - f->buffer_start), sizeof(float) * (size_t)kept);
  f->buffer_start = keep_from;
}

size_t es_framer_push(es_framer *f, const es_samples *in, size_t first) {
  if (f->samples_seen - f->buffer_start == f->capacity) compact(f);
  size_t room = (size_t)(f->capacity - (f->samples_seen - f->buffer_start));
  size_t take = ES_MIN(room, in->count - first);
  float *dst = f->buffer + (f->samples_seen - f->buffer_start);
  const float scale = f->scale;
  switch (in->format) {
    case ES_SAMPLE_F32: {
      const float *src = (const float *)in->data + (ptrdiff_t)first * in->stride;
      if (in->stride == 1) {
        for (size_t i = 0; i < take; i++) dst[i] = src[i] * scale;
      } else {
        for (size_t i = 0; i < take; i++) dst[i] = src[(ptrdiff_t)i * in->stride] * scale;
      }
      break;
    }
    case ES_SAMPLE_F64: {
      const double *src = (const double *)in->data + (ptrdiff_t)first * in->stride;
      for (size_t i = 0; i < take; i++) dst[i] = (float)src[(ptrdiff_t)i * in->stride] * scale;
      break;
    }
    case ES_SAMPLE_S16: {
      const int16_t *src = (const int16_t *)in->data + (ptrdiff_t)first * in->stride;
      const float s16 = scale / 32768.0f;
      for (size_t i = 0; i < take; i++) dst[i] = (float)src[(ptrdiff_t)i * in->stride] * s16;
      break;
    }
  }
  f->samples_seen += (int64_t)take;
  return take;
}

void es_framer_finish(es_framer *f) { f->finished = 1; }

/* numpy's 'reflect' for an index outside [0, n): the signal mirrored about its end samples,
 * repeatedly for indices further away than n - 1. */
static int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

void es_framer_pop(es_framer *f, float *out) {
  const int64_t start = f->next_frame * f->shift - f->offset;
  const int64_t n = f->samples_seen;
  if (start >= f->buffer_start && start + f->length <= n) {
    memcpy(out, f->buffer + (start - f->buffer_start), sizeof(float) * (size_t)f->length);
  } else {
    for (int j = 0; j < f->length; j++) {
      int64_t i = start + j;
      if (i < 0 || i >= n) {
        if (f->padding != ES_PADDING_REFLECT) {
          out[j] = 0.0f;
          continue;
        }
        i = reflect_index(i, n);
      }
      out[j] = f->buffer[i - f->buffer_start];
    }
  }
  f->next_frame++;
}
