/* A minimal assertion harness for the C tests: each CHECK counts, failures print where, and
 * ES_TEST_MAIN_END prints "N passed, N failed" and sets the exit status for ctest. */
#ifndef EDGE_SPEECH_ES_TEST_H
#define EDGE_SPEECH_ES_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static int es_test_passed, es_test_failed;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (cond) {                                                                  \
      es_test_passed++;                                                          \
    } else {                                                                     \
      es_test_failed++;                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
    }                                                                            \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                    \
  do {                                                                                           \
    double a_ = (a), b_ = (b);                                                                   \
    if (fabs(a_ - b_) <= (tol)) {                                                                \
      es_test_passed++;                                                                          \
    } else {                                                                                     \
      es_test_failed++;                                                                          \
      fprintf(stderr, "%s:%d: %s = %.9g, expected %.9g (tol %g)\n", __FILE__, __LINE__, #a, a_, \
              b_, (double)(tol));                                                                \
    }                                                                                            \
  } while (0)

/* Reproducible uniform numbers in [0, 1) (xorshift64); es_test_seed picks the sequence. */
static uint64_t es_test_rng_state = 88172645463325252ull;
static inline void es_test_seed(uint64_t seed) { es_test_rng_state = seed; }
static inline double es_test_uniform(void) {
  es_test_rng_state ^= es_test_rng_state << 13;
  es_test_rng_state ^= es_test_rng_state >> 7;
  es_test_rng_state ^= es_test_rng_state << 17;
  return (double)(es_test_rng_state >> 11) / 9007199254740992.0;
}

#define ES_TEST_MAIN_END()                                                  \
  do {                                                                      \
    printf("%d passed, %d failed\n", es_test_passed, es_test_failed);       \
    return es_test_failed == 0 && es_test_passed > 0 ? 0 : 1;               \
  } while (0)

#endif
