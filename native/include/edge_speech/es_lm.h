/*
 * A word n-gram language model read from an ARPA file, held in sorted arrays with backoff.
 *
 *   es_lm lm;
 *   char why[256];
 *   if (es_lm_init_arpa(&lm, text, length, why, sizeof why) != ES_OK) ...;  // why has the line
 *   int32_t ctx[ES_LM_MAX_ORDER - 1]; int n = es_lm_begin(&lm, ctx);       // "<s>"
 *   float log10p = es_lm_score(&lm, ctx, n, es_lm_word_id(&lm, "hello", 5), ctx, &n);
 *   es_lm_free(&lm);
 *
 * Scores are log10 probabilities, as in the file. p(w | h) is the longest n-gram (h', w) present,
 * h' a suffix of h, plus the backoff weights of the contexts that were skipped. A word missing from
 * the unigrams maps to "<unk>" when the model has it; otherwise it scores ES_LM_OOV_LOG10 and clears
 * the context. The model is read-only after init: any number of threads and decoders may share it.
 */
#ifndef EDGE_SPEECH_ES_LM_H
#define EDGE_SPEECH_ES_LM_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_LM_MAX_ORDER 6
#define ES_LM_OOV_LOG10 (-100.0f)
/* Probabilities and backoffs beyond this magnitude are refused as malformed (ARPA's zero is -99):
 * bounded values keep every sum of LM scores in a decoder finite. */
#define ES_LM_MAX_ABS_LOG10 1e4

typedef struct es_lm_order_table {
  size_t count;
  int32_t *ids;       /* count x order word ids, sorted lexicographically */
  float *log10_prob;
  float *log10_backoff;
} es_lm_order_table;

typedef struct es_lm {
  int order;
  int32_t num_words;
  char *word_text;          /* unigram strings, NUL-terminated, back to back */
  size_t *word_offset;      /* num_words offsets into word_text */
  int32_t *hash;            /* open addressing word -> id (-1 empty) */
  size_t hash_mask;
  int32_t bos, eos, unk;    /* "<s>", "</s>", "<unk>" ids, -1 where absent */
  es_lm_order_table table[ES_LM_MAX_ORDER];
} es_lm;

/* Parses `length` bytes of ARPA text (need not be NUL-terminated). On a malformed file returns
 * ES_ERR_PARSE and writes "line N: what is wrong" into why. */
es_status es_lm_init_arpa(es_lm *lm, const char *text, size_t length, char *why, size_t why_size);
void es_lm_free(es_lm *lm);

/* The id of a word (length bytes), or -1 if it is not a unigram. */
int32_t es_lm_word_id(const es_lm *lm, const char *word, size_t length);
/* Sets ctx to the sentence-start context ("<s>" if the model has it) and returns its length. */
int es_lm_begin(const es_lm *lm, int32_t *ctx);
/* log10 p(word | ctx[0..ctx_len-1]) (oldest first; only the last order-1 are used). word -1 means
 * out of vocabulary. Writes the next context to new_ctx (may alias ctx). */
float es_lm_score(const es_lm *lm, const int32_t *ctx, int ctx_len, int32_t word, int32_t *new_ctx,
                  int *new_len);
/* The n-gram's entry: 1 and its log10 prob and backoff if present, else 0. */
int es_lm_lookup(const es_lm *lm, const int32_t *ids, int n, float *log10_prob, float *log10_backoff);

#ifdef __cplusplus
}
#endif
#endif
