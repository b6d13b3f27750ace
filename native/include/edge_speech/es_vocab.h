/*
 * Token vocabularies for CTC decoding: the token strings a model emits, its blank id, and the
 * word boundaries they imply.
 *
 *   es_vocab_config cfg = es_vocab_config_default();          // blank 0, kind detected
 *   es_vocab v;
 *   es_vocab_init(&v, tokens, count, &cfg, why, sizeof why);  // copies the strings
 *   es_vocab_free(&v);
 *
 * Two kinds: characters, where the tokens " " and "|" separate words, and SentencePiece-style
 * subwords, where a token beginning with U+2581 ("▁") begins a new word and "▁" alone is a
 * separator. ES_VOCAB_AUTO picks SentencePiece when any token begins with "▁".
 * A token's display text is its string without the "▁" marker (empty for the blank and for
 * separators). Text is made of the display texts with one space at each word boundary.
 * The vocabulary is read-only after init: any number of threads may share it.
 */
#ifndef EDGE_SPEECH_ES_VOCAB_H
#define EDGE_SPEECH_ES_VOCAB_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum es_vocab_kind {
  ES_VOCAB_AUTO = 0,
  ES_VOCAB_CHARS = 1,         /* " " and "|" separate words */
  ES_VOCAB_SENTENCEPIECE = 2  /* "▁x" begins a word; "▁", " " and "|" are separators */
} es_vocab_kind;

enum {
  ES_TOKEN_BLANK = 1,       /* the CTC blank */
  ES_TOKEN_WORD_START = 2,  /* a word boundary comes before this token */
  ES_TOKEN_SEPARATOR = 4    /* a pure boundary: ends the current word, adds no characters */
};

typedef struct es_vocab_config {
  int blank_id;             /* 0..count-1 */
  es_vocab_kind kind;
} es_vocab_config;

es_vocab_config es_vocab_config_default(void);

typedef struct es_vocab {
  int size;
  int blank_id;
  es_vocab_kind kind;       /* resolved: never ES_VOCAB_AUTO after init */
  char *text;               /* display texts, each NUL-terminated */
  int32_t *offset;          /* size + 1 offsets into text; lengths are offset[i+1] - offset[i] - 1 */
  uint8_t *flags;           /* ES_TOKEN_* per token */
} es_vocab;

/* Copies `count` UTF-8 token strings. ES_ERR_INVALID_CONFIG (explained in why) for a blank id out
 * of range, no tokens, or a NULL token. */
es_status es_vocab_init(es_vocab *vocab, const char *const *tokens, int count, const es_vocab_config *config,
                        char *why, size_t why_size);
void es_vocab_free(es_vocab *vocab);

static inline const char *es_vocab_token_text(const es_vocab *v, int id) { return v->text + v->offset[id]; }
static inline int es_vocab_token_length(const es_vocab *v, int id) { return v->offset[id + 1] - v->offset[id] - 1; }

/* Writes the text of a token sequence (blanks ignored, one space per word boundary, none at the
 * ends) into out, NUL-terminated; *length gets its length without the NUL. ES_ERR_BUFFER_TOO_SMALL
 * when capacity is too small (*length still says how many bytes the text needs). */
es_status es_vocab_render(const es_vocab *vocab, const int32_t *ids, size_t count, char *out, size_t capacity,
                          size_t *length);

#ifdef __cplusplus
}
#endif
#endif
