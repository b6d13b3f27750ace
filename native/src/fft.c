/* Real FFT: an N/2-point complex transform of z[m] = x[2m] + i x[2m+1], then the standard
 * split step that recovers N/2 + 1 real-input bins. The complex transform is a Stockham
 * (autosort) decimation in frequency on split real/imaginary arrays: no bit-reversal pass, and
 * every stage after the first reads and writes contiguous runs the compiler vectorises. */
#include "edge_speech/es_fft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

int es_fft_size_is_supported(int size) {
  return size >= 4 && size <= 65536 && (size & (size - 1)) == 0;
}

/* Splits n into radix stages, 4s first (fewest passes), then 2, 3, 5, 7. Returns the number of
 * stages, or 0 if another prime divides n or there would be too many stages. */
static int factor_into_radices(int n, int *radices) {
  static const int primes[] = {4, 2, 3, 5, 7};
  int count = 0;
  for (size_t i = 0; i < sizeof primes / sizeof primes[0]; i++) {
    while (n % primes[i] == 0) {
      if (count == ES_FFT_MAX_STAGES) return 0;
      radices[count++] = primes[i];
      n /= primes[i];
    }
  }
  return n == 1 ? count : 0;
}

int es_fft_mixed_radix_size_is_supported(int size) {
  int radices[ES_FFT_MAX_STAGES];
  if (es_fft_size_is_supported(size)) return 1;
  return size >= 4 && size <= 65536 && size % 2 == 0 && factor_into_radices(size / 2, radices) > 0;
}

void es_rfft_free(es_rfft *fft) {
  if (fft == NULL) return;
  free(fft->twiddles);
  free(fft->unpack);
  free(fft->bit_reverse);
  free(fft->scratch);
  memset(fft, 0, sizeof(*fft));
}

/* e^{-2 pi i k / size} for k <= size / 2: the split step's factors, for both kinds of plan. */
static void fill_unpack(es_rfft *fft) {
  for (int k = 0; k <= fft->size / 2; k++) {
    double angle = -2.0 * ES_PI * k / fft->size;
    fft->unpack[2 * k] = (float)cos(angle);
    fft->unpack[2 * k + 1] = (float)sin(angle);
  }
}

/* Twiddle floats: radix-4 stages of length L = half, half / 4, ... while L >= 4, each with
 * W^p, W^2p, W^3p (W = e^{-2 pi i / L}) for p < L / 4, as 6 runs of L / 4 floats. */
static size_t twiddle_floats(int half) {
  size_t total = 0;
  for (int len = half; len >= 4; len /= 4) total += 6 * (size_t)(len / 4);
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
  fft->bit_reverse = NULL; /* the autosort transform needs no permutation */
  fft->scratch = malloc(sizeof(float) * 2 * (size_t)half);
  if (!fft->twiddles || !fft->unpack || !fft->scratch) {
    es_rfft_free(fft);
    return ES_ERR_OUT_OF_MEMORY;
  }
  float *t = fft->twiddles;
  for (int len = half; len >= 4; len /= 4) {
    const int m = len / 4;
    for (int r = 1; r <= 3; r++) {
      for (int p = 0; p < m; p++) {
        double angle = -2.0 * ES_PI * r * p / len;
        t[p] = (float)cos(angle);
        t[m + p] = (float)sin(angle);
      }
      t += 2 * m;
    }
  }
  fill_unpack(fft);
  return ES_OK;
}

/* Mixed-radix stage tables, per stage of radix p after sub-length m (the product of the earlier
 * radices): the p roots e^{-2 pi i t / p}, then for j < m and s = 1 .. p-1 the twiddles
 * e^{-2 pi i j s / (p m)}, all as interleaved re, im. */
static size_t mixed_radix_table_floats(const es_rfft *fft) {
  size_t total = 0;
  int m = 1;
  for (int q = 0; q < fft->num_stages; q++) {
    const int p = fft->radices[q];
    total += 2 * (size_t)p + 2 * (size_t)m * (size_t)(p - 1);
    m *= p;
  }
  return total;
}

es_status es_rfft_init_mixed_radix(es_rfft *fft, int size) {
  if (fft == NULL) return ES_ERR_INVALID_ARGUMENT;
  if (es_fft_size_is_supported(size)) return es_rfft_init(fft, size);
  memset(fft, 0, sizeof(*fft));
  if (!es_fft_mixed_radix_size_is_supported(size)) return ES_ERR_INVALID_CONFIG;
  const int half = size / 2;
  fft->size = size;
  fft->num_stages = factor_into_radices(half, fft->radices);
  fft->twiddles = malloc(sizeof(float) * mixed_radix_table_floats(fft));
  fft->unpack = malloc(sizeof(float) * 2 * (size_t)(half + 1));
  fft->scratch = malloc(sizeof(float) * 2 * (size_t)half);
  if (!fft->twiddles || !fft->unpack || !fft->scratch) {
    es_rfft_free(fft);
    return ES_ERR_OUT_OF_MEMORY;
  }
  float *t = fft->twiddles;
  int m = 1;
  for (int q = 0; q < fft->num_stages; q++) {
    const int p = fft->radices[q];
    for (int r = 0; r < p; r++) {
      t[2 * r] = (float)cos(-2.0 * ES_PI * r / p);
      t[2 * r + 1] = (float)sin(-2.0 * ES_PI * r / p);
    }
    t += 2 * p;
    for (int j = 0; j < m; j++) {
      for (int s = 1; s < p; s++) {
        /* j * s < m * p <= 32768: exact in double, so the angle is as accurate as cos allows */
        double angle = -2.0 * ES_PI * (double)(j * s) / (double)(m * p);
        t[0] = (float)cos(angle);
        t[1] = (float)sin(angle);
        t += 2;
      }
    }
    m *= p;
  }
  fill_unpack(fft);
  return ES_OK;
}

/* One radix-4 butterfly: the 4-point DFT of a, b, c, d, outputs 1..3 times W^p, W^2p, W^3p. */
#define ES_RADIX4(ar, ai, br, bi, cr, ci, dr, di, w1r, w1i, w2r, w2i, w3r, w3i, y0r, y0i, y1r, y1i, \
                  y2r, y2i, y3r, y3i)                                                             \
  do {                                                                                            \
    float apcr = (ar) + (cr), apci = (ai) + (ci), amcr = (ar) - (cr), amci = (ai) - (ci);         \
    float bpdr = (br) + (dr), bpdi = (bi) + (di), bmdr = (br) - (dr), bmdi = (bi) - (di);         \
    float u1r = amcr + bmdi, u1i = amci - bmdr; /* (a - c) - i (b - d) */                         \
    float u2r = apcr - bpdr, u2i = apci - bpdi;                                                   \
    float u3r = amcr - bmdi, u3i = amci + bmdr; /* (a - c) + i (b - d) */                         \
    y0r = apcr + bpdr;                                                                            \
    y0i = apci + bpdi;                                                                            \
    y1r = u1r * (w1r) - u1i * (w1i);                                                              \
    y1i = u1r * (w1i) + u1i * (w1r);                                                              \
    y2r = u2r * (w2r) - u2i * (w2i);                                                              \
    y2i = u2r * (w2i) + u2i * (w2r);                                                              \
    y3r = u3r * (w3r) - u3i * (w3i);                                                              \
    y3i = u3r * (w3i) + u3i * (w3r);                                                              \
  } while (0)

/* Even samples as real parts, odd as imaginary: z[m] = x[2m] + i x[2m+1], split. */
static void deinterleave(const float *restrict in, float *restrict re, float *restrict im, int half) {
  for (int m = 0; m < half; m++) {
    re[m] = in[2 * m];
    im[m] = in[2 * m + 1];
  }
}

/* The first radix-4 stage (stride 1): contiguous loads, outputs interleaved by 4. Reading the
 * interleaved input here directly, GCC gives up ("complicated access pattern"). */
static void first_stage(const float *restrict xr, const float *restrict xi, float *restrict yr,
                        float *restrict yi, int m, const float *restrict w) {
  const float *w1r = w, *w1i = w + m, *w2r = w + 2 * m, *w2i = w + 3 * m, *w3r = w + 4 * m, *w3i = w + 5 * m;
  for (int p = 0; p < m; p++) {
    ES_RADIX4(xr[p], xi[p], xr[p + m], xi[p + m], xr[p + 2 * m], xi[p + 2 * m], xr[p + 3 * m], xi[p + 3 * m],
              w1r[p], w1i[p], w2r[p], w2i[p], w3r[p], w3i[p], yr[4 * p], yi[4 * p], yr[4 * p + 1],
              yi[4 * p + 1], yr[4 * p + 2], yi[4 * p + 2], yr[4 * p + 3], yi[4 * p + 3]);
  }
}

/* s butterflies sharing one set of twiddles: quarters a..d in, y0..y3 out, all contiguous.
 * Restrict parameters (not pointers derived inside one function) let GCC vectorise it. */
static inline void radix4_run(const float *restrict ar, const float *restrict ai, const float *restrict br,
                              const float *restrict bi, const float *restrict cr, const float *restrict ci,
                              const float *restrict dr, const float *restrict di, float *restrict y0r,
                              float *restrict y0i, float *restrict y1r, float *restrict y1i, float *restrict y2r,
                              float *restrict y2i, float *restrict y3r, float *restrict y3i,
                              const float *restrict tw, int m, int s) {
  const float c1r = tw[0], c1i = tw[m], c2r = tw[2 * m], c2i = tw[3 * m], c3r = tw[4 * m], c3i = tw[5 * m];
  for (int q = 0; q < s; q++)
    ES_RADIX4(ar[q], ai[q], br[q], bi[q], cr[q], ci[q], dr[q], di[q], c1r, c1i, c2r, c2i, c3r, c3i, y0r[q],
              y0i[q], y1r[q], y1i[q], y2r[q], y2i[q], y3r[q], y3i[q]);
}

/* A later radix-4 stage: n values as sequences of length 4m interleaved with stride s >= 4. */
static void radix4_stage(const float *xr, const float *xi, float *yr, float *yi, int n, int s, const float *w) {
  const int m = n / (4 * s), sm = s * m;
  for (int p = 0; p < m; p++) {
    const float *ar = xr + s * p, *ai = xi + s * p;
    float *y0r = yr + 4 * s * p, *y0i = yi + 4 * s * p;
    radix4_run(ar, ai, ar + sm, ai + sm, ar + 2 * sm, ai + 2 * sm, ar + 3 * sm, ai + 3 * sm, y0r, y0i, y0r + s,
               y0i + s, y0r + 2 * s, y0i + 2 * s, y0r + 3 * s, y0i + 3 * s, w + p, m, s);
  }
}

/* The closing radix-2 stage when half is 2 * 4^k: pairs s = half / 2 apart, no twiddles. */
static void radix2_last(const float *restrict xr, const float *restrict xi, float *restrict yr,
                        float *restrict yi, int s) {
  for (int q = 0; q < s; q++) {
    float ar = xr[q], ai = xi[q], br = xr[q + s], bi = xi[q + s];
    yr[q] = ar + br; yi[q] = ai + bi;
    yr[q + s] = ar - br; yi[q + s] = ai - bi;
  }
}

/* The half-size complex transform of input into scratch, in natural order. Passes ping-pong
 * between scratch and the caller's spectrum (N + 2 floats, about to be overwritten), starting
 * with whichever makes the last one land in scratch. */
static void complex_transform(es_rfft *fft, const float *input, float *spare) {
  const int half = fft->size / 2;
  float *const scratch = fft->scratch;
  if (half == 2) {
    scratch[0] = input[0] + input[2]; scratch[1] = input[0] - input[2];
    scratch[2] = input[1] + input[3]; scratch[3] = input[1] - input[3];
    return;
  }
  int radix4 = 0, len = half;
  for (; len >= 4; len /= 4) radix4++;
  const int passes = 1 + radix4 + (len == 2); /* deinterleave, then the stages */
  float *src = passes % 2 ? scratch : spare, *dst = src == scratch ? spare : scratch;
  const float *w = fft->twiddles;
  deinterleave(input, src, src + half, half);
  first_stage(src, src + half, dst, dst + half, half / 4, w);
  w += 6 * (half / 4);
  int s = 4;
  for (int i = 1; i < radix4; i++, s *= 4) {
    src = dst;
    dst = dst == scratch ? spare : scratch;
    radix4_stage(src, src + half, dst, dst + half, half, s, w);
    w += 6 * (half / (4 * s));
  }
  if (len == 2) {
    src = dst;
    dst = dst == scratch ? spare : scratch;
    radix2_last(src, src + half, dst, dst + half, half / 2);
  }
}

/* One Stockham decimation-in-time stage of radix p: from the m-point DFTs of the p * r
 * subsequences x[k + t r'] (r' = p r, stored at index j r' + k) to the (p m)-point DFTs of the
 * r subsequences (stored at j r + k). Output j + m u of sequence k is the p-point DFT over s of
 * twiddle(j, s) * input(j, k + s r). Autosorting: the last stage leaves natural order. */
static void mixed_radix_stage(const float *restrict xr, const float *restrict xi, float *restrict yr,
                              float *restrict yi, int half, int p, int m, const float *roots,
                              const float *twiddles) {
  const int r = half / (p * m);
  float ar[8], ai[8];
  for (int j = 0; j < m; j++) {
    const float *w = twiddles + 2 * (size_t)j * (size_t)(p - 1);
    for (int k = 0; k < r; k++) {
      ar[0] = xr[j * p * r + k];
      ai[0] = xi[j * p * r + k];
      for (int s = 1; s < p; s++) {
        const float vr = xr[(j * p + s) * r + k], vi = xi[(j * p + s) * r + k];
        const float wr = w[2 * (s - 1)], wi = w[2 * (s - 1) + 1];
        ar[s] = vr * wr - vi * wi;
        ai[s] = vr * wi + vi * wr;
      }
      for (int u = 0; u < p; u++) {
        float sr = ar[0], si = ai[0];
        for (int s = 1, t = u; s < p; s++, t = (t + u) % p) { /* t = u s mod p */
          sr += ar[s] * roots[2 * t] - ai[s] * roots[2 * t + 1];
          si += ar[s] * roots[2 * t + 1] + ai[s] * roots[2 * t];
        }
        yr[(j + m * u) * r + k] = sr;
        yi[(j + m * u) * r + k] = si;
      }
    }
  }
}

/* The half-size complex transform for a mixed-radix plan, into scratch in natural order, with
 * the same ping-pong between scratch and the caller's spectrum as complex_transform. */
static void mixed_radix_transform(es_rfft *fft, const float *input, float *spare) {
  const int half = fft->size / 2;
  float *const scratch = fft->scratch;
  const int passes = 1 + fft->num_stages;
  float *src = passes % 2 ? scratch : spare, *dst = src == scratch ? spare : scratch;
  deinterleave(input, src, src + half, half);
  const float *t = fft->twiddles;
  int m = 1;
  for (int q = 0; q < fft->num_stages; q++) {
    const int p = fft->radices[q];
    mixed_radix_stage(src, src + half, dst, dst + half, half, p, m, t, t + 2 * p);
    t += 2 * p + 2 * (size_t)m * (size_t)(p - 1);
    m *= p;
    float *done = dst;
    dst = src;
    src = done;
  }
}

void es_rfft_forward(es_rfft *fft, const float *input, float *spectrum) {
  const int half = fft->size / 2;
  if (fft->num_stages > 0)
    mixed_radix_transform(fft, input, spectrum);
  else
    complex_transform(fft, input, spectrum);
  const float *re = fft->scratch, *im = fft->scratch + half;
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
