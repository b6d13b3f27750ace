#include "edge_speech/es_lexicon.h"

#include <stdlib.h>
#include <string.h>

void es_lexicon_free(es_lexicon *lex) {
  if (lex == NULL) return;
  free(lex->nodes);
  memset(lex, 0, sizeof(*lex));
}

static int32_t child(const es_lexicon *lex, int32_t node, uint8_t byte) {
  for (int32_t c = lex->nodes[node].first_child; c >= 0; c = lex->nodes[c].next_sibling)
    if (lex->nodes[c].byte == byte) return c;
  return -1;
}

es_status es_lexicon_init(es_lexicon *lex, const char *const *words, int32_t count) {
  if (lex == NULL || count < 0 || (count > 0 && words == NULL)) return ES_ERR_INVALID_ARGUMENT;
  memset(lex, 0, sizeof(*lex));
  size_t total = 1;
  for (int32_t i = 0; i < count; i++) {
    if (words[i] == NULL) return ES_ERR_INVALID_ARGUMENT;
    total += strlen(words[i]);
  }
  if (total > INT32_MAX) return ES_ERR_INVALID_CONFIG;
  lex->nodes = malloc(sizeof(es_lexicon_node) * total);
  if (lex->nodes == NULL) return ES_ERR_OUT_OF_MEMORY;
  lex->nodes[0] = (es_lexicon_node){-1, -1, 0, 0};
  lex->num_nodes = 1;
  for (int32_t i = 0; i < count; i++) {
    const char *w = words[i];
    if (*w == '\0') continue;
    int32_t node = ES_LEXICON_ROOT;
    for (; *w; w++) {
      int32_t c = child(lex, node, (uint8_t)*w);
      if (c < 0) {
        c = lex->num_nodes++;
        lex->nodes[c] = (es_lexicon_node){-1, lex->nodes[node].first_child, (uint8_t)*w, 0};
        lex->nodes[node].first_child = c;
      }
      node = c;
    }
    if (!lex->nodes[node].is_word) lex->num_words++;
    lex->nodes[node].is_word = 1;
  }
  return ES_OK;
}

int32_t es_lexicon_advance(const es_lexicon *lex, int32_t state, const char *bytes, size_t n) {
  for (size_t i = 0; i < n && state >= 0; i++) state = child(lex, state, (uint8_t)bytes[i]);
  return state;
}
