/* The real FFT against a direct DFT in double precision, for every supported size up to 4096. */
#include <stdlib.h>

#include "edge_speech/es_fft.h"
#include "es_test.h"

static void naive_dft(const float *x, int n, double *out) {
  for (int k = 0; k <= n / 2; k++) {
    double re = 0, im = 0;
    for (int j = 0; j < n; j++) {
      double a = -2.0 * 3.14159265358979323846 * (double)k * j / n;
      re += x[j] * cos(a);
      im += x[j] * sin(a);
    }
    out[2 * k] = re;
    out[2 * k + 1] = im;
  }
}

int main(void) {
  srand(7);
  for (int n = 4; n <= 4096; n *= 2) {
    es_rfft fft;
    CHECK(es_rfft_init(&fft, n) == ES_OK);
    float *x = malloc(sizeof(float) * n), *spec = malloc(sizeof(float) * (n + 2));
    double *ref = malloc(sizeof(double) * (n + 2));
    for (int j = 0; j < n; j++) x[j] = (float)rand() / RAND_MAX - 0.5f;
    es_rfft_forward(&fft, x, spec);
    naive_dft(x, n, ref);
    double err = 0, norm = 0;
    for (int k = 0; k < n + 2; k++) {
      err += (spec[k] - ref[k]) * (spec[k] - ref[k]);
      norm += ref[k] * ref[k];
    }
    if (!(sqrt(err / norm) < 2e-6)) fprintf(stderr, "n=%d relative error %g\n", n, sqrt(err / norm));
    CHECK(sqrt(err / norm) < 2e-6);
    /* An impulse at 1 gives e^{-2 pi i k / n}: checks bin placement, not only energy. */
    for (int j = 0; j < n; j++) x[j] = j == 1 ? 1.0f : 0.0f;
    es_rfft_forward(&fft, x, spec);
    CHECK_NEAR(spec[2 * (n / 4)], 0.0, 1e-6);
    CHECK_NEAR(spec[2 * (n / 4) + 1], -1.0, 1e-6);
    free(x);
    free(spec);
    free(ref);
    es_rfft_free(&fft);
    es_rfft_free(&fft); /* free twice is safe */
  }
  es_rfft bad;
  CHECK(es_rfft_init(&bad, 400) == ES_ERR_INVALID_CONFIG);
  CHECK(es_rfft_init(&bad, 2) == ES_ERR_INVALID_CONFIG);
  es_rfft_free(&bad);
  ES_TEST_MAIN_END();
}
