/* Real FFT: an N/2-point complex radix-2 transform on split real/imaginary arrays (which the
 * compiler vectorises), then the standard split step that recovers N/2 + 1 real-input bins. */
#include "edge_speech/es_fft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

int es_fft_size_is_supported(int size) {
  return size >= 4 && size <= 65536 && (size & (size - 1)) == 0;
}

void es_rfft_free(es_rfft *fft) {
  if (fft == NULL) return;
  free(fft->twiddles);
  free(fft->unpack);
  free(fft->bit_reverse);
  free(fft->scratch);
  memset(fft, 0, sizeof(*fft));
}

es_status es_rfft_init(es_rfft *fft, int size) {
  if (fft == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(fft, 0, sizeof(*fft));
  if (!es_fft_size_is_supported(size)) return ES_ERR_INVALID_CONFIG;
  const int half = size / 2;
  fft->size = size;
  /* Stage with butterfly span h uses h twiddles; spans 1, 2, ..., half/2 sum to half - 1. */
  fft->twiddles = malloc(sizeof(float) * 2 * (size_t)half);
  fft->unpack = malloc(sizeof(float) * 2 * (size_t)(half + 1));
  fft->bit_reverse = malloc(sizeof(int) * (size_t)half);
  fft->scratch = malloc(sizeof(float) * 2 * (size_t)half);
  if (!fft->twiddles || !fft->unpack || !fft->bit_reverse || !fft->scratch) {
    es_rfft_free(fft);
    return ES_ERR_OUT_OF_MEMORY;
  }
  int bits = 0;
  while ((1 << bits) < half) bits++;
  for (int i = 0; i < half; i++) {
    int r = 0;
    for (int b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
    fft->bit_reverse[i] = r;
  }
  /* Per stage: h cosines, then h sines (split layout, like the data). */
  float *t = fft->twiddles;
  for (int h = 1; h < half; h *= 2) {
    for (int k = 0; k < h; k++) {
      double angle = -ES_PI * k / h;
      t[k] = (float)cos(angle);
      t[h + k] = (float)sin(angle);
    }
    t += 2 * h;
  }
  for (int k = 0; k <= half; k++) {
    double angle = -2.0 * ES_PI * k / size;
    fft->unpack[2 * k] = (float)cos(angle);
    fft->unpack[2 * k + 1] = (float)sin(angle);
  }
  return ES_OK;
}

static void complex_fft_split(float *restrict re, float *restrict im, int n, const float *twiddles) {
  /* Span 1: twiddle 1. */
  for (int i = 0; i < n; i += 2) {
    float ar = re[i], ai = im[i], br = re[i + 1], bi = im[i + 1];
    re[i] = ar + br; im[i] = ai + bi;
    re[i + 1] = ar - br; im[i + 1] = ai - bi;
  }
  twiddles += 2;
  if (n < 4) return;
  /* Span 2: twiddles 1 and -i. */
  for (int i = 0; i < n; i += 4) {
    float ar = re[i], ai = im[i], br = re[i + 2], bi = im[i + 2];
    re[i] = ar + br; im[i] = ai + bi;
    re[i + 2] = ar - br; im[i + 2] = ai - bi;
    ar = re[i + 1]; ai = im[i + 1]; br = im[i + 3]; bi = -re[i + 3];
    re[i + 1] = ar + br; im[i + 1] = ai + bi;
    re[i + 3] = ar - br; im[i + 3] = ai - bi;
  }
  twiddles += 4;
  for (int h = 4; h < n; h *= 2) {
    const float *restrict wr = twiddles, *restrict wi = twiddles + h;
    for (int block = 0; block < n; block += 2 * h) {
      float *restrict ar = re + block, *restrict ai = im + block;
      float *restrict br = re + block + h, *restrict bi = im + block + h;
      for (int k = 0; k < h; k++) {
        float tr = br[k] * wr[k] - bi[k] * wi[k];
        float ti = br[k] * wi[k] + bi[k] * wr[k];
        float xr = ar[k], xi = ai[k];
        ar[k] = xr + tr; ai[k] = xi + ti;
        br[k] = xr - tr; bi[k] = xi - ti;
      }
    }
    twiddles += 2 * h;
  }
}

void es_rfft_forward(es_rfft *fft, const float *input, float *spectrum) {
  const int half = fft->size / 2;
  float *re = fft->scratch, *im = fft->scratch + half;
  /* Pack even samples as real, odd as imaginary parts, in bit-reversed order. */
  for (int m = 0; m < half; m++) {
    int src = fft->bit_reverse[m];
    re[m] = input[2 * src];
    im[m] = input[2 * src + 1];
  }
  if (half >= 2) complex_fft_split(re, im, half, fft->twiddles);
  /* Split: X[k] = E[k] + W^k O[k], E = (Z[k] + conj Z[half-k]) / 2, O = (Z[k] - conj Z[half-k]) / 2i. */
  spectrum[0] = re[0] + im[0];
  spectrum[1] = 0.0f;
  spectrum[2 * half] = re[0] - im[0];
  spectrum[2 * half + 1] = 0.0f;
  const float *w = fft->unpack;
  for (int k = 1; k < half; k++) {
    float zr = re[k], zi = im[k], cr = re[half - k], ci = -im[half - k];
    float er = 0.5f * (zr + cr), ei = 0.5f * (zi + ci);
    float or_ = 0.5f * (zi - ci), oi = -0.5f * (zr - cr);
    float wr = w[2 * k], wi = w[2 * k + 1];
    spectrum[2 * k] = er + wr * or_ - wi * oi;
    spectrum[2 * k + 1] = ei + wr * oi + wi * or_;
  }
}
