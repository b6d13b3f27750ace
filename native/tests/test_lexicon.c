/* The lexicon trie: prefixes live, non-prefixes dead, words marked; empty words ignored. */
#include "edge_speech/es_lexicon.h"
#include "es_test.h"

int main(void) {
  const char *words[] = {"he", "hello", "help", "", "he"};
  es_lexicon lex;
  CHECK(es_lexicon_init(&lex, words, 5) == ES_OK);
  CHECK(lex.num_words == 3);
  int32_t s = es_lexicon_advance(&lex, ES_LEXICON_ROOT, "he", 2);
  CHECK(s > 0 && es_lexicon_is_word(&lex, s));
  s = es_lexicon_advance(&lex, s, "l", 1);
  CHECK(s > 0 && !es_lexicon_is_word(&lex, s));
  CHECK(es_lexicon_is_word(&lex, es_lexicon_advance(&lex, s, "p", 1)));
  CHECK(es_lexicon_advance(&lex, s, "x", 1) == ES_LEXICON_DEAD);
  CHECK(es_lexicon_advance(&lex, ES_LEXICON_DEAD, "h", 1) == ES_LEXICON_DEAD);
  CHECK(!es_lexicon_is_word(&lex, ES_LEXICON_DEAD));
  CHECK(!es_lexicon_is_word(&lex, ES_LEXICON_ROOT));
  es_lexicon_free(&lex);
  es_lexicon_free(&lex);
  ES_TEST_MAIN_END();
}
