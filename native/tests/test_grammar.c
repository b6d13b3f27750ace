/* Grammar-constrained Viterbi: against enumeration of every alignment of a tiny problem, the
 * CTC rule that a token repeats only through a blank, streaming == one shot, and bad automata. */
#include <math.h>
#include <string.h>

#include "edge_speech/es_grammar.h"
#include "es_test.h"

#define V 3 /* blank, a, b */
#define T 6


/* The language: "a b" or "a a" (token ids 1 2 / 1 1), arc weights -0.5 on the second "a". */
static int accepted(const int *labels, int n, float *weight) {
  if (n == 2 && labels[0] == 1 && labels[1] == 2) return *weight = 0.0f, 1;
  if (n == 2 && labels[0] == 1 && labels[1] == 1) return *weight = -0.5f, 1;
  return 0;
}

int main(void) {
  es_test_seed(0x2545F4914F6CDD1Dull);
  /* states: 0 -a-> 1 -b-> 2 (final), 1 -a/-0.5-> 2 */
  es_grammar_arc arcs[] = {{0, 1, 1, 0.0f, 10}, {1, 2, 2, 0.0f, 11}, {1, 2, 1, -0.5f, 12}};
  int32_t finals[] = {2};
  es_grammar g;
  char why[200];
  CHECK(es_grammar_init(&g, arcs, 3, 3, 0, finals, 1, V, 0, why, sizeof why) == ES_OK);
  float lp[T * V];
  for (int trial = 0; trial < 50; trial++) {
    for (int t = 0; t < T; t++) {
      double s = 0, x[V];
      for (int v = 0; v < V; v++) s += x[v] = exp(3 * es_test_uniform());
      for (int v = 0; v < V; v++) lp[t * V + v] = (float)log(x[v] / s);
    }
    /* reference: the best alignment whose collapse is in the language */
    double best = -INFINITY;
    int best_labels[T], best_n = 0;
    for (long code = 0; code < 729; code++) { /* 3^6 */
      int path[T], labels[T], n = 0, prev = -1;
      long c = code;
      double s = 0;
      for (int t = 0; t < T; t++) {
        path[t] = (int)(c % V);
        c /= V;
        s += lp[t * V + path[t]];
        if (path[t] != 0 && path[t] != prev) labels[n++] = path[t];
        prev = path[t];
      }
      float w;
      if (accepted(labels, n, &w) && s + w > best) {
        best = s + w;
        best_n = n;
        memcpy(best_labels, labels, sizeof labels);
      }
    }
    es_grammar_decoder d, d2;
    CHECK(es_grammar_decoder_init(&d, &g) == ES_OK);
    CHECK(es_grammar_decoder_init(&d2, &g) == ES_OK);
    CHECK(es_grammar_decoder_accept(&d, lp, T) == ES_OK);
    for (int t = 0; t < T; t++) CHECK(es_grammar_decoder_accept(&d2, lp + t * V, 1) == ES_OK);
    es_grammar_step steps[T], steps2[T];
    size_t n = 0, n2 = 0;
    float score, score2, free_score;
    CHECK(es_grammar_decoder_result(&d, steps, T, &n, &score, &free_score) == ES_OK);
    CHECK(es_grammar_decoder_result(&d2, steps2, T, &n2, &score2, NULL) == ES_OK);
    CHECK_NEAR(score, best, 1e-4);
    CHECK(score == score2 && n == n2);
    CHECK(free_score >= score - 1e-4); /* equal up to float rounding when the best path is in-grammar */
    CHECK((int)n == best_n);
    for (size_t i = 0; i < n && (int)i < best_n; i++) CHECK(steps[i].token == best_labels[i]);
    CHECK(n == 2 && steps[0].label == 10 && (steps[1].label == 11 || steps[1].label == 12));
    CHECK(steps[0].frame < steps[1].frame);
    /* the exact search (infinite beam) gives the same; a narrow beam never beats it and what it
     * finds is still in the language */
    es_grammar_decoder exact, narrow;
    CHECK(es_grammar_decoder_init(&exact, &g) == ES_OK && es_grammar_decoder_init(&narrow, &g) == ES_OK);
    CHECK(es_grammar_decoder_set_beam(&exact, INFINITY) == ES_OK);
    CHECK(es_grammar_decoder_set_beam(&narrow, 0.5f) == ES_OK);
    CHECK(es_grammar_decoder_accept(&exact, lp, T) == ES_OK && es_grammar_decoder_accept(&narrow, lp, T) == ES_OK);
    float exact_score, narrow_score;
    size_t exact_n, narrow_n;
    es_grammar_step narrow_steps[T];
    CHECK(es_grammar_decoder_result(&exact, steps2, T, &exact_n, &exact_score, NULL) == ES_OK);
    CHECK(exact_score == score && exact_n == n);
    CHECK(es_grammar_decoder_result(&narrow, narrow_steps, T, &narrow_n, &narrow_score, NULL) == ES_OK);
    CHECK(narrow_score <= exact_score);
    if (narrow_score > -INFINITY) {
      int labels[T];
      float w;
      for (size_t i = 0; i < narrow_n; i++) labels[i] = narrow_steps[i].token;
      CHECK(accepted(labels, (int)narrow_n, &w));
    }
    es_grammar_decoder_free(&exact);
    es_grammar_decoder_free(&narrow);
    es_grammar_decoder_free(&d);
    es_grammar_decoder_free(&d2);
  }
  /* a beam must be positive */
  {
    es_grammar_decoder d;
    CHECK(es_grammar_decoder_init(&d, &g) == ES_OK);
    CHECK(es_grammar_decoder_set_beam(&d, 0.0f) == ES_ERR_INVALID_ARGUMENT);
    CHECK(es_grammar_decoder_set_beam(&d, NAN) == ES_ERR_INVALID_ARGUMENT);
    CHECK(es_grammar_decoder_set_beam(&d, -1.0f) == ES_ERR_INVALID_ARGUMENT);
    CHECK(d.beam == ES_GRAMMAR_DEFAULT_BEAM);
    es_grammar_decoder_free(&d);
  }
  /* too few frames for "a a" (needs a blank between): only "a b" is possible in 2 frames */
  es_grammar_decoder d;
  CHECK(es_grammar_decoder_init(&d, &g) == ES_OK);
  float two[2 * V] = {-5, -0.01f, -5, -5, -0.01f, -5}; /* "a a" acoustically */
  CHECK(es_grammar_decoder_accept(&d, two, 2) == ES_OK);
  es_grammar_step steps[4];
  size_t n;
  float score;
  CHECK(es_grammar_decoder_result(&d, steps, 4, &n, &score, NULL) == ES_OK);
  CHECK(n == 2 && steps[1].token == 2);
  es_grammar_decoder_reset(&d);
  CHECK(es_grammar_decoder_result(&d, steps, 4, &n, &score, NULL) == ES_OK);
  CHECK(n == 0 && score == -INFINITY);
  es_grammar_decoder_free(&d);
  es_grammar_decoder_free(&d);
  /* bad automata */
  es_grammar_free(&g);
  es_grammar_arc bad[] = {{0, 1, 0, 0.0f, -1}}; /* uses the blank */
  CHECK(es_grammar_init(&g, bad, 1, 2, 0, finals, 0, V, 0, why, sizeof why) == ES_ERR_INVALID_CONFIG);
  CHECK(strstr(why, "arc 0") != NULL);
  es_grammar_free(&g);
  ES_TEST_MAIN_END();
}
