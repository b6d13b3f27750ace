#include "edge_speech/es_window.h"

#include <math.h>

#include "es_internal.h"

es_status es_window_fill(es_window_type type, int periodic, int length, float *out) {
  if (out == NULL || length <= 0) return ES_ERR_INVALID_ARGUMENT;
  if (length == 1) {  /* every formula degenerates; scipy and Kaldi both give 1 */
    out[0] = 1.0f;
    return ES_OK;
  }
  const double a = 2.0 * ES_PI / (periodic ? length : length - 1);
  for (int i = 0; i < length; i++) {
    double c = cos(a * i), w;
    switch (type) {
      case ES_WINDOW_POVEY: w = pow(0.5 - 0.5 * c, 0.85); break;
      case ES_WINDOW_HANN: w = 0.5 - 0.5 * c; break;
      case ES_WINDOW_HAMMING: w = 0.54 - 0.46 * c; break;
      case ES_WINDOW_RECTANGULAR: w = 1.0; break;
      case ES_WINDOW_BLACKMAN: w = 0.42 - 0.5 * c + 0.08 * cos(2.0 * a * i); break;
      default: return ES_ERR_INVALID_ARGUMENT;
    }
    out[i] = (float)w;
  }
  return ES_OK;
}
