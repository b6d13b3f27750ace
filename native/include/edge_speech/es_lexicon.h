/*
 * A lexicon: the words a decoder may output, as a byte trie. With one attached, the beam search
 * only grows words that are prefixes of lexicon words and only ends words that are in it.
 *
 *   es_lexicon lex;
 *   es_lexicon_init(&lex, words, count);          // copies; duplicates are fine
 *   int32_t s = ES_LEXICON_ROOT;
 *   s = es_lexicon_advance(&lex, s, "he", 2);      // ES_LEXICON_DEAD once no word has the prefix
 *   es_lexicon_is_word(&lex, s);
 *   es_lexicon_free(&lex);
 *
 * Read-only after init: decoders in several threads may share one.
 */
#ifndef EDGE_SPEECH_ES_LEXICON_H
#define EDGE_SPEECH_ES_LEXICON_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_LEXICON_ROOT 0
#define ES_LEXICON_DEAD (-1)

typedef struct es_lexicon_node {
  int32_t first_child, next_sibling;
  uint8_t byte, is_word;
} es_lexicon_node;

typedef struct es_lexicon {
  es_lexicon_node *nodes;
  int32_t num_nodes;
  int32_t num_words;
} es_lexicon;

/* Words are UTF-8 byte strings; empty ones are ignored. */
es_status es_lexicon_init(es_lexicon *lex, const char *const *words, int32_t count);
void es_lexicon_free(es_lexicon *lex);
int32_t es_lexicon_advance(const es_lexicon *lex, int32_t state, const char *bytes, size_t n);
static inline int es_lexicon_is_word(const es_lexicon *lex, int32_t state) {
  return state >= 0 && lex->nodes[state].is_word;
}

#ifdef __cplusplus
}
#endif
#endif
