#include "edge_speech/es_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char WORD_MARKER[] = "\xe2\x96\x81"; /* U+2581 in UTF-8 */

es_vocab_config es_vocab_config_default(void) {
  es_vocab_config c;
  memset(&c, 0, sizeof c);
  c.blank_id = 0;
  c.kind = ES_VOCAB_AUTO;
  return c;
}

void es_vocab_free(es_vocab *v) {
  if (v == NULL) return;
  free(v->text);
  free(v->offset);
  free(v->flags);
  memset(v, 0, sizeof(*v));
}

static int has_marker(const char *s) { return strncmp(s, WORD_MARKER, 3) == 0; }

es_status es_vocab_init(es_vocab *v, const char *const *tokens, int count, const es_vocab_config *c, char *why,
                        size_t why_size) {
  char msg[160];
  if (v == NULL || c == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(v, 0, sizeof(*v));
  if (tokens == NULL || count < 1) {
    es_explain(why, why_size, "the vocabulary needs at least one token");
    return ES_ERR_INVALID_CONFIG;
  }
  if (c->blank_id < 0 || c->blank_id >= count) {
    snprintf(msg, sizeof msg, "blank_id %d is outside the vocabulary of %d tokens", c->blank_id, count);
    es_explain(why, why_size, msg);
    return ES_ERR_INVALID_CONFIG;
  }
  if (c->kind != ES_VOCAB_AUTO && c->kind != ES_VOCAB_CHARS && c->kind != ES_VOCAB_SENTENCEPIECE) {
    es_explain(why, why_size, "unknown vocabulary kind");
    return ES_ERR_INVALID_CONFIG;
  }
  size_t total = 0;
  es_vocab_kind kind = c->kind;
  for (int i = 0; i < count; i++) {
    if (tokens[i] == NULL) {
      snprintf(msg, sizeof msg, "token %d is NULL", i);
      es_explain(why, why_size, msg);
      return ES_ERR_INVALID_CONFIG;
    }
    total += strlen(tokens[i]) + 1;
    if (c->kind == ES_VOCAB_AUTO && i != c->blank_id && has_marker(tokens[i])) kind = ES_VOCAB_SENTENCEPIECE;
  }
  if (kind == ES_VOCAB_AUTO) kind = ES_VOCAB_CHARS;
  v->text = malloc(total);
  v->offset = malloc(sizeof(int32_t) * ((size_t)count + 1));
  v->flags = calloc((size_t)count, 1);
  if (!v->text || !v->offset || !v->flags || total > INT32_MAX) {
    es_vocab_free(v);
    return ES_ERR_OUT_OF_MEMORY;
  }
  v->size = count;
  v->blank_id = c->blank_id;
  v->kind = kind;
  size_t pos = 0;
  for (int i = 0; i < count; i++) {
    const char *s = tokens[i];
    uint8_t flags = 0;
    if (i == c->blank_id) {
      flags = ES_TOKEN_BLANK;
      s = "";
    } else if (strcmp(s, " ") == 0 || strcmp(s, "|") == 0 ||
               (kind == ES_VOCAB_SENTENCEPIECE && strcmp(s, WORD_MARKER) == 0)) {
      flags = ES_TOKEN_WORD_START | ES_TOKEN_SEPARATOR;
      s = "";
    } else if (kind == ES_VOCAB_SENTENCEPIECE && has_marker(s)) {
      flags = ES_TOKEN_WORD_START;
      s += 3;
    }
    size_t n = strlen(s);
    v->offset[i] = (int32_t)pos;
    memcpy(v->text + pos, s, n + 1);
    pos += n + 1;
    v->flags[i] = flags;
  }
  v->offset[count] = (int32_t)pos;
  return ES_OK;
}

es_status es_vocab_render(const es_vocab *v, const int32_t *ids, size_t count, char *out, size_t capacity,
                          size_t *length) {
  if (v == NULL || (ids == NULL && count > 0) || length == NULL || (out == NULL && capacity > 0))
    return ES_ERR_INVALID_ARGUMENT;
  size_t n = 0;
  int boundary = 0;
  for (size_t i = 0; i < count; i++) {
    int id = ids[i];
    if (id < 0 || id >= v->size) return ES_ERR_INVALID_ARGUMENT;
    uint8_t f = v->flags[id];
    if (f & ES_TOKEN_BLANK) continue;
    if (f & ES_TOKEN_WORD_START) boundary = 1;
    int len = es_vocab_token_length(v, id);
    if (len == 0) continue;
    if (boundary && n > 0) {
      if (n + 1 < capacity) out[n] = ' ';
      n++;
    }
    boundary = 0;
    if (n + (size_t)len < capacity) memcpy(out + n, es_vocab_token_text(v, id), (size_t)len);
    n += (size_t)len;
  }
  *length = n;
  if (n >= capacity) {
    if (capacity > 0) out[0] = '\0';
    return ES_ERR_BUFFER_TOO_SMALL;
  }
  out[n] = '\0';
  return ES_OK;
}
