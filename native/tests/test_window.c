/* Window formulas at known points (Kaldi's symmetric windows, scipy's periodic ones). */
#include "edge_speech/es_window.h"
#include "es_test.h"

int main(void) {
  float w[400];
  CHECK(es_window_fill(ES_WINDOW_POVEY, 0, 400, w) == ES_OK);
  CHECK_NEAR(w[0], 0.0, 1e-7);
  CHECK_NEAR(w[399], 0.0, 1e-6);
  /* symmetric: w[i] == w[n-1-i]; povey = hann^0.85 */
  CHECK_NEAR(w[100], w[299], 1e-6);
  double a = 2 * 3.14159265358979323846 / 399;
  CHECK_NEAR(w[100], pow(0.5 - 0.5 * cos(a * 100), 0.85), 1e-6);

  CHECK(es_window_fill(ES_WINDOW_HANN, 1, 400, w) == ES_OK); /* periodic: peak at n/2, exactly 1 */
  CHECK_NEAR(w[200], 1.0, 1e-7);
  CHECK_NEAR(w[0], 0.0, 1e-7);
  CHECK_NEAR(w[1], w[399], 1e-6);
  CHECK_NEAR(w[100], 0.5, 1e-6);

  CHECK(es_window_fill(ES_WINDOW_HAMMING, 0, 400, w) == ES_OK);
  CHECK_NEAR(w[0], 0.08, 1e-6);
  CHECK_NEAR(w[399], 0.08, 1e-6);

  CHECK(es_window_fill(ES_WINDOW_BLACKMAN, 0, 400, w) == ES_OK);
  CHECK_NEAR(w[0], 0.0, 1e-6);

  CHECK(es_window_fill(ES_WINDOW_RECTANGULAR, 0, 400, w) == ES_OK);
  CHECK_NEAR(w[123], 1.0, 0);

  CHECK(es_window_fill(ES_WINDOW_HANN, 0, 1, w) == ES_OK);
  CHECK_NEAR(w[0], 1.0, 0);
  CHECK(es_window_fill(ES_WINDOW_HANN, 0, 0, w) == ES_ERR_INVALID_ARGUMENT);
  CHECK(es_window_fill((es_window_type)42, 0, 10, w) == ES_ERR_INVALID_ARGUMENT);
  ES_TEST_MAIN_END();
}
