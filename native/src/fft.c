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

/* Number of twiddle floats: a radix-2 first stage when log2(half) is odd (no twiddles), then
 * radix-4 stages of span h = 1 or 2, times 4, ..., each with 3 complex twiddles per k < h. */
static size_t twiddle_floats(int half) {
  size_t total = 0;
  int h = (half & 0x55555555) ? 1 : 2; /* half a power of 4: start at span 1 */
  for (; 4 * h <= half; h *= 4) total += 6 * (size_t)h;
  return total;
}

es_status es_rfft_init(es_rfft *fft, int size) {
  if (fft == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(fft, 0, sizeof(*fft));
  if (!es_fft_size_is_supported(size)) return ES_ERR_INVALID_CONFIG;
  const int half = size / 2;
  fft->size = size;
  fft->twiddles = malloc(sizeof(float) * (twiddle_floats(half) + 1));
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
  /* Per radix-4 stage of span h: W^k, W^2k, W^3k for k < h, W = e^{-2 pi i / 4h}; each as h
   * cosines then h sines (split layout, like the data). */
  float *t = fft->twiddles;
  for (int h = (half & 0x55555555) ? 1 : 2; 4 * h <= half; h *= 4) {
    for (int p = 1; p <= 3; p++) {
      for (int k = 0; k < h; k++) {
        double angle = -2.0 * ES_PI * p * k / (4.0 * h);
        t[k] = (float)cos(angle);
        t[h + k] = (float)sin(angle);
      }
      t += 2 * h;
    }
  }
  for (int k = 0; k <= half; k++) {
    double angle = -2.0 * ES_PI * k / size;
    fft->unpack[2 * k] = (float)cos(angle);
    fft->unpack[2 * k + 1] = (float)sin(angle);
  }
  return ES_OK;
}

/* One block of a radix-4 stage: quarters q0..q3 of span h. With binary bit reversal the second
 * and third quarters hold the sub-DFTs of residues 2 and 1 (mod 4), so they swap roles. */
static void radix4_butterflies(float *restrict r0, float *restrict i0, float *restrict r1,
                               float *restrict i1, float *restrict r2, float *restrict i2,
                               float *restrict r3, float *restrict i3, const float *restrict w, int h) {
  const float *restrict w1r = w, *restrict w1i = w + h, *restrict w2r = w + 2 * h;
  const float *restrict w2i = w + 3 * h, *restrict w3r = w + 4 * h, *restrict w3i = w + 5 * h;
  for (int k = 0; k < h; k++) {
    float t1r = r2[k] * w1r[k] - i2[k] * w1i[k], t1i = r2[k] * w1i[k] + i2[k] * w1r[k];
    float t2r = r1[k] * w2r[k] - i1[k] * w2i[k], t2i = r1[k] * w2i[k] + i1[k] * w2r[k];
    float t3r = r3[k] * w3r[k] - i3[k] * w3i[k], t3i = r3[k] * w3i[k] + i3[k] * w3r[k];
    float s0r = r0[k] + t2r, s0i = i0[k] + t2i, s1r = r0[k] - t2r, s1i = i0[k] - t2i;
    float s2r = t1r + t3r, s2i = t1i + t3i, s3r = t1r - t3r, s3i = t1i - t3i;
    r0[k] = s0r + s2r; i0[k] = s0i + s2i;
    r2[k] = s0r - s2r; i2[k] = s0i - s2i;
    r1[k] = s1r + s3i; i1[k] = s1i - s3r;
    r3[k] = s1r - s3i; i3[k] = s1i + s3r;
  }
}

/* In-place complex FFT of bit-reversed split data: radix-4 stages, each merging four length-h
 * DFTs, after one radix-2 stage when n is not a power of 4. */
static void complex_fft_split(float *restrict re, float *restrict im, int n, const float *twiddles) {
  int h = 1;
  if (!(n & 0x55555555)) { /* n = 2 * 4^k: one radix-2 stage first */
    for (int i = 0; i < n; i += 2) {
      float ar = re[i], ai = im[i], br = re[i + 1], bi = im[i + 1];
      re[i] = ar + br; im[i] = ai + bi;
      re[i + 1] = ar - br; im[i + 1] = ai - bi;
    }
    h = 2;
  } else if (n >= 4) { /* span 1: no twiddles */
    for (int i = 0; i < n; i += 4) {
      float ar = re[i], ai = im[i], cr = re[i + 1], ci = im[i + 1];
      float br = re[i + 2], bi = im[i + 2], dr = re[i + 3], di = im[i + 3];
      float s0r = ar + cr, s0i = ai + ci, s1r = ar - cr, s1i = ai - ci;
      float s2r = br + dr, s2i = bi + di, s3r = br - dr, s3i = bi - di;
      re[i] = s0r + s2r; im[i] = s0i + s2i;
      re[i + 2] = s0r - s2r; im[i + 2] = s0i - s2i;
      re[i + 1] = s1r + s3i; im[i + 1] = s1i - s3r;
      re[i + 3] = s1r - s3i; im[i + 3] = s1i + s3r;
    }
    h = 4;
    twiddles += 6;
  }
  for (; 4 * h <= n; h *= 4) {
    for (int block = 0; block < n; block += 4 * h)
      radix4_butterflies(re + block, im + block, re + block + h, im + block + h, re + block + 2 * h,
                         im + block + 2 * h, re + block + 3 * h, im + block + 3 * h, twiddles, h);
    twiddles += 6 * h;
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
