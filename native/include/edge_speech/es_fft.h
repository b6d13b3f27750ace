/* Real FFT, written for the per-frame path: tables are built once by init, es_rfft_forward
 * allocates nothing. A plan's scratch buffer makes it single-thread: one plan per thread.
 *
 * es_rfft_init takes powers of two (the fast path). es_rfft_init_mixed_radix also takes even
 * sizes whose half has no prime factor above 7 (400 = Whisper's n_fft, 480, 600, 1200, ...), so
 * a frame need not be zero-padded to a power of two; a power of two given to it gets the fast path. */
#ifndef EDGE_SPEECH_ES_FFT_H
#define EDGE_SPEECH_ES_FFT_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_FFT_MAX_STAGES 32

typedef struct es_rfft {
  int size;          /* N, the number of real inputs, 4 .. 65536 */
  float *twiddles;   /* complex exponentials for the N/2-point complex stages, per stage */
  float *unpack;     /* e^{-2 pi i k / N}, k < N/4, to split the half-size transform */
  int *bit_reverse;  /* N/2-point bit reversal permutation */
  float *scratch;    /* N floats: the half-size complex transform; makes a plan single-thread */
  /* Mixed-radix plans only (num_stages > 0): the N/2-point transform as radix stages. */
  int num_stages;
  int radices[ES_FFT_MAX_STAGES];
} es_rfft;

/* Powers of two in 4 .. 65536. */
int es_fft_size_is_supported(int size);
/* Those, and even sizes in 4 .. 65536 whose half factors into 2, 3, 5 and 7. */
int es_fft_mixed_radix_size_is_supported(int size);
es_status es_rfft_init(es_rfft *fft, int size);
es_status es_rfft_init_mixed_radix(es_rfft *fft, int size);
void es_rfft_free(es_rfft *fft);

/* Transforms `input` (N real samples) into `spectrum`, N/2 + 1 complex bins interleaved as
 * re, im (N + 2 floats). input and spectrum may not overlap. Uses fft->scratch. */
void es_rfft_forward(es_rfft *fft, const float *input, float *spectrum);

#ifdef __cplusplus
}
#endif
#endif
