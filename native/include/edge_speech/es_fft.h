/* Real FFT of power-of-two size, written for the per-frame path: tables are built once by init,
 * es_rfft_forward allocates nothing and keeps no per-call state (a plan may be shared by threads). */
#ifndef EDGE_SPEECH_ES_FFT_H
#define EDGE_SPEECH_ES_FFT_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_rfft {
  int size;          /* N, the number of real inputs: a power of two, 4 .. 65536 */
  float *twiddles;   /* complex exponentials for the N/2-point complex stages, per stage */
  float *unpack;     /* e^{-2 pi i k / N}, k < N/4, to split the half-size transform */
  int *bit_reverse;  /* N/2-point bit reversal permutation */
  float *scratch;    /* N floats: the half-size complex transform; makes a plan single-thread */
} es_rfft;

int es_fft_size_is_supported(int size);
es_status es_rfft_init(es_rfft *fft, int size);
void es_rfft_free(es_rfft *fft);

/* Transforms `input` (N real samples) into `spectrum`, N/2 + 1 complex bins interleaved as
 * re, im (N + 2 floats). input and spectrum may not overlap. Uses fft->scratch. */
void es_rfft_forward(es_rfft *fft, const float *input, float *spectrum);

#ifdef __cplusplus
}
#endif
#endif
