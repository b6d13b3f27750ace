/* Greedy and beam search in C: hand-checked tiny cases, an exhaustive check of the beam on a small
 * problem (every label sequence's probability summed over all alignments by enumeration),
 * streaming == one-shot, n-best order, the node pool surviving long inputs, and bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_ctc_beam.h"
#include "es_test.h"

#define V 3
#define T 5

static void log_softmax_rows(float *x, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    double m = -INFINITY, s = 0;
    for (int c = 0; c < cols; c++) m = fmax(m, x[r * cols + c]);
    for (int c = 0; c < cols; c++) s += exp(x[r * cols + c] - m);
    for (int c = 0; c < cols; c++) x[r * cols + c] = (float)(x[r * cols + c] - m - log(s));
  }
}


/* A label sequence's key: base-V digits and the length. */
static long label_key(const int *labels, int n) {
  long key = 0;
  for (int i = 0; i < n; i++) key = key * V + labels[i];
  return key * 16 + n;
}

/* Collapses an alignment (merge repeats, drop blanks) and returns its label key. */
static long collapse_key(const int *path, int n) {
  int labels[T], len = 0, prev = -1;
  for (int t = 0; t < n; t++) {
    if (path[t] != 0 && path[t] != prev) labels[len++] = path[t];
    prev = path[t];
  }
  return label_key(labels, len);
}

int main(void) {
  es_test_seed(88172645463325252ull);
  const char *tokens[] = {"_", "a", " "};
  es_vocab vocab;
  es_vocab_config vc = es_vocab_config_default();
  char why[256];
  CHECK(es_vocab_init(&vocab, tokens, V, &vc, why, sizeof why) == ES_OK);
  CHECK(vocab.kind == ES_VOCAB_CHARS);
  CHECK(vocab.flags[2] == (ES_TOKEN_WORD_START | ES_TOKEN_SEPARATOR));
  int32_t ids[] = {2, 1, 0, 1, 2, 2, 1};
  char text[32];
  size_t len;
  CHECK(es_vocab_render(&vocab, ids, 7, text, sizeof text, &len) == ES_OK);
  CHECK(strcmp(text, "aa a") == 0 && len == 4);
  CHECK(es_vocab_render(&vocab, ids, 7, text, 3, &len) == ES_ERR_BUFFER_TOO_SMALL && len == 4);

  float lp[T * V];
  for (int i = 0; i < T * V; i++) lp[i] = (float)(2.0 * (es_test_uniform() - 0.5) * 3);
  log_softmax_rows(lp, T, V);

  /* greedy: one shot and frame by frame */
  es_ctc_greedy g;
  es_ctc_token out[T], out2[T];
  size_t n1 = 0, n2 = 0, w;
  CHECK(es_ctc_greedy_init(&g, V, 0) == ES_OK);
  CHECK(es_ctc_greedy_accept(&g, lp, T, out, T, &n1) == ES_OK);
  CHECK(es_ctc_greedy_accept(&g, lp, T, out, T - 1, &w) == ES_ERR_BUFFER_TOO_SMALL);
  es_ctc_greedy_reset(&g);
  for (int t = 0; t < T; t++) {
    CHECK(es_ctc_greedy_accept(&g, lp + t * V, 1, out2 + n2, 1, &w) == ES_OK);
    n2 += w;
  }
  CHECK(n1 == n2);
  for (size_t i = 0; i < n1 && i < n2; i++) CHECK(out[i].id == out2[i].id && out[i].frame == out2[i].frame);

  /* exhaustive: every alignment of T frames over V symbols, summed per label sequence */
  static double by_key[1 << 14];
  for (int i = 0; i < (1 << 14); i++) by_key[i] = -INFINITY;
  int path[T];
  long best_key = -1;
  for (long code = 0; code < 243; code++) { /* 3^5 */
    long c = code;
    double s = 0;
    for (int t = 0; t < T; t++) {
      path[t] = (int)(c % V);
      c /= V;
      s += lp[t * V + path[t]];
    }
    long key = collapse_key(path, T);
    double *slot = &by_key[key];
    *slot = *slot == -INFINITY ? s : fmax(*slot, s) + log1p(exp(-fabs(*slot - s)));
  }
  for (long k = 0; k < (1 << 14); k++)
    if (by_key[k] > -INFINITY && (best_key < 0 || by_key[k] > by_key[best_key])) best_key = k;

  es_ctc_beam_config cfg = es_ctc_beam_config_default();
  cfg.beam_width = 1 + 2 + 4 + 8 + 16 + 32;
  cfg.token_min_log_prob = -INFINITY;
  cfg.blank_skip_log_prob = INFINITY;
  es_ctc_beam beam;
  CHECK(es_ctc_beam_init(&beam, &cfg, &vocab, NULL, NULL, why, sizeof why) == ES_OK);
  CHECK(es_ctc_beam_accept(&beam, lp, T) == ES_OK);
  CHECK(es_ctc_beam_finish(&beam) == ES_OK);
  CHECK(es_ctc_beam_accept(&beam, lp, 1) == ES_ERR_FINISHED);
  es_ctc_token toks[T];
  es_ctc_beam_score score;
  int hyps = es_ctc_beam_num_hypotheses(&beam);
  CHECK(hyps > 10);
  float previous = INFINITY;
  for (int r = 0; r < hyps; r++) {
    CHECK(es_ctc_beam_hypothesis(&beam, r, toks, T, &len, &score) == ES_OK);
    int p[T];
    for (size_t i = 0; i < len; i++) p[i] = toks[i].id;
    long key = label_key(p, (int)len);
    CHECK_NEAR(score.acoustic, by_key[key], 1e-4);
    CHECK(score.total <= previous);
    previous = score.total;
    if (r == 0) CHECK(key == best_key);
  }

  /* streaming == one shot on a long random input, with default pruning (the pool compacts) */
  enum { LONG = 3000 };
  float *big = malloc(sizeof(float) * LONG * V);
  for (int i = 0; i < LONG * V; i++) big[i] = (float)(4 * (es_test_uniform() - 0.5));
  log_softmax_rows(big, LONG, V);
  es_ctc_beam_config dc = es_ctc_beam_config_default();
  dc.beam_width = 8;
  es_ctc_beam b2;
  CHECK(es_ctc_beam_init(&b2, &dc, &vocab, NULL, NULL, why, sizeof why) == ES_OK);
  es_ctc_beam_reset(&beam);
  es_ctc_beam_free(&beam);
  CHECK(es_ctc_beam_init(&beam, &dc, &vocab, NULL, NULL, why, sizeof why) == ES_OK);
  CHECK(es_ctc_beam_accept(&beam, big, LONG) == ES_OK);
  for (int t = 0; t < LONG; t += 7) CHECK(es_ctc_beam_accept(&b2, big + t * V, t + 7 <= LONG ? 7 : LONG - t) == ES_OK);
  es_ctc_beam_finish(&beam);
  es_ctc_beam_finish(&b2);
  size_t l1, l2;
  es_ctc_beam_score s1, s2;
  es_ctc_token *t1 = malloc(sizeof(es_ctc_token) * LONG), *t2 = malloc(sizeof(es_ctc_token) * LONG);
  CHECK(es_ctc_beam_hypothesis(&beam, 0, t1, LONG, &l1, &s1) == ES_OK);
  CHECK(es_ctc_beam_hypothesis(&b2, 0, t2, LONG, &l2, &s2) == ES_OK);
  CHECK(l1 == l2 && l1 > 100);
  CHECK(s1.total == s2.total);
  int same = 1;
  for (size_t i = 0; i < l1 && i < l2; i++) same &= t1[i].id == t2[i].id && t1[i].frame == t2[i].frame;
  CHECK(same);
  CHECK(beam.node_capacity < LONG * 8); /* compaction keeps the pool near the live size */
  /* steady state: once the pool has grown, decoding again allocates nothing (same pool) */
  const void *pool = beam.nodes;
  const int32_t capacity = beam.node_capacity;
  for (int round = 0; round < 3; round++) {
    es_ctc_beam_reset(&beam);
    CHECK(es_ctc_beam_accept(&beam, big, LONG) == ES_OK);
    es_ctc_beam_finish(&beam);
  }
  CHECK(beam.nodes == pool && beam.node_capacity == capacity);

  /* bad input */
  big[5] = NAN;
  es_ctc_beam_reset(&b2);
  CHECK(es_ctc_beam_accept(&b2, big, 3) == ES_ERR_NON_FINITE_INPUT);
  CHECK(b2.frames_done == 0);
  CHECK(es_ctc_greedy_accept(&g, big, 3, out, T, &w) == ES_ERR_NON_FINITE_INPUT);
  es_ctc_beam_config bad = es_ctc_beam_config_default();
  bad.beam_width = 0;
  es_ctc_beam_free(&b2);
  CHECK(es_ctc_beam_init(&b2, &bad, &vocab, NULL, NULL, why, sizeof why) == ES_ERR_INVALID_CONFIG);
  CHECK(strstr(why, "beam_width") != NULL);
  es_ctc_beam_free(&b2); /* safe on the zeroed state a failed init leaves */
  es_ctc_beam_free(&b2);
  es_ctc_beam zero;
  memset(&zero, 0, sizeof zero);
  CHECK(es_ctc_beam_accept(&zero, lp, 1) == ES_ERR_STATE);
  es_ctc_beam_free(&zero);

  free(big), free(t1), free(t2);
  es_ctc_beam_free(&beam);
  es_vocab_free(&vocab);
  ES_TEST_MAIN_END();
}
