/* Analysis windows. Formulas follow Kaldi (povey, symmetric hann/hamming/blackman) and
 * scipy.signal.get_window (periodic variants, used by librosa). */
#ifndef EDGE_SPEECH_ES_WINDOW_H
#define EDGE_SPEECH_ES_WINDOW_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum es_window_type {
  ES_WINDOW_POVEY = 0,        /* Kaldi's default: (0.5 - 0.5 cos)^0.85 */
  ES_WINDOW_HANN = 1,
  ES_WINDOW_HAMMING = 2,
  ES_WINDOW_RECTANGULAR = 3,
  ES_WINDOW_BLACKMAN = 4      /* Kaldi's, with blackman_coeff 0.42 */
} es_window_type;

/* Fills `out[0..length)`. periodic != 0 gives the DFT-even window (period `length`, as
 * scipy's fftbins=True); 0 gives the symmetric one (period length - 1, as Kaldi). */
es_status es_window_fill(es_window_type type, int periodic, int length, float *out);

#ifdef __cplusplus
}
#endif
#endif
