/*
 * Phrase biasing: a byte-level Aho-Corasick automaton over hotword phrases. A decoder feeds it
 * the text of a hypothesis as it grows (a space at each word start) and adds the credit of the
 * state it is in: a partial match earns the phrase's boost in proportion to the bytes matched,
 * a complete match keeps the whole boost, and when the text leaves a phrase the partial credit is
 * taken back (the state falls back along the failure links). Phrases match whole words from a word
 * start; a phrase that is a prefix of a longer one completes first.
 *
 *   es_hotwords hw;
 *   es_hotwords_init(&hw, phrases, boosts, count, why, sizeof why);   // copies the phrases
 *   int32_t s = es_hotwords_start(&hw); float locked = 0;
 *   s = es_hotwords_advance(&hw, s, " hello", 6, &locked);           // credit = locked + es_hotwords_credit(&hw, s)
 *   es_hotwords_free(&hw);
 *
 * Read-only after init: decoders in several threads may share one.
 */
#ifndef EDGE_SPEECH_ES_HOTWORDS_H
#define EDGE_SPEECH_ES_HOTWORDS_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_hotword_node {
  int32_t first_child, next_sibling, fail;
  uint8_t byte;
  uint8_t is_end;
  float credit;      /* partial credit for having matched up to here */
} es_hotword_node;

typedef struct es_hotwords {
  es_hotword_node *nodes;
  int32_t num_nodes;
} es_hotwords;

/* phrases: UTF-8, words separated by single spaces (runs of spaces are collapsed, ends trimmed);
 * boosts: natural-log bonus for a complete match, in (0, ES_HOTWORDS_MAX_BOOST]. */
#define ES_HOTWORDS_MAX_BOOST 100.0f /* per phrase: outweighs any acoustic evidence; bounded scores stay finite */
es_status es_hotwords_init(es_hotwords *hw, const char *const *phrases, const float *boosts, int count, char *why,
                           size_t why_size);
void es_hotwords_free(es_hotwords *hw);
/* The state before any text (as if just after a word boundary). */
int32_t es_hotwords_start(const es_hotwords *hw);
/* Advances over n bytes; adds the credit of completed phrases to *locked. */
int32_t es_hotwords_advance(const es_hotwords *hw, int32_t state, const char *bytes, size_t n, float *locked);
/* The partial credit held in a state (taken back if the phrase is not completed). */
static inline float es_hotwords_credit(const es_hotwords *hw, int32_t state) { return hw->nodes[state].credit; }

#ifdef __cplusplus
}
#endif
#endif
