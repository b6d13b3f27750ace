/* ARPA language models from arbitrary bytes: es_lm_init_arpa either parses or returns ES_ERR_PARSE
 * with a reason; whatever parses must answer lookups and scores for every word in and out of its
 * vocabulary without reading out of bounds, and a score is never NaN or +Inf. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "edge_speech/es_lm.h"
#include "fuzz_input.h"

static void score_everything(const es_lm *lm) {
  int32_t ctx[ES_LM_MAX_ORDER];
  int n = es_lm_begin(lm, ctx);
  FUZZ_REQUIRE(n >= 0 && n < ES_LM_MAX_ORDER);
  /* every word after every word (bounded), then out-of-vocabulary ids */
  for (int32_t w = 0; w < lm->num_words && w < 64; w++) {
    const float lp = es_lm_score(lm, ctx, n, w, ctx, &n);
    FUZZ_REQUIRE(!isnan(lp) && lp != INFINITY);
    FUZZ_REQUIRE(n >= 0 && n < ES_LM_MAX_ORDER);
  }
  const float oov = es_lm_score(lm, ctx, n, -1, ctx, &n);
  FUZZ_REQUIRE(!isnan(oov) && oov != INFINITY);
  if (lm->eos >= 0) (void)es_lm_score(lm, ctx, n, lm->eos, ctx, &n);
  for (int32_t w = 0; w < lm->num_words && w < 64; w++) {
    const char *text = lm->word_text + lm->word_offset[w];
    FUZZ_REQUIRE(es_lm_word_id(lm, text, strlen(text)) >= 0);
  }
  FUZZ_REQUIRE(es_lm_word_id(lm, "", 0) >= -1);
  for (int order = 1; order <= lm->order; order++) {
    const es_lm_order_table *t = &lm->table[order - 1];
    for (size_t i = 0; i < t->count && i < 16; i++) {
      float p, b;
      FUZZ_REQUIRE(es_lm_lookup(lm, t->ids + i * (size_t)order, order, &p, &b) == 1);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  es_lm lm;
  char why[256];
  why[0] = '\0';
  const es_status s = es_lm_init_arpa(&lm, (const char *)data, size, why, sizeof why);
  if (s == ES_OK) {
    score_everything(&lm);
  } else {
    FUZZ_REQUIRE(s == ES_ERR_PARSE);
    FUZZ_REQUIRE(why[0] != '\0');
  }
  es_lm_free(&lm);
  es_lm_free(&lm); /* free is idempotent */
  return 0;
}
