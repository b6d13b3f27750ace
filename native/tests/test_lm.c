/* ARPA parsing and back-off scoring, worked by hand; malformed files name their line. */
#include <string.h>

#include "edge_speech/es_lm.h"
#include "es_test.h"

static const char ARPA[] =
    "\\data\\\n"
    "ngram 1=5\n"
    "ngram 2=3\n"
    "ngram 3=1\n"
    "\n"
    "\\1-grams:\n"
    "-1.0 <unk>\n"
    "-99 <s> -0.5\n"
    "-0.7 </s>\n"
    "-0.6 a -0.25\n"
    "-0.8 b -0.2\n"
    "\n"
    "\\2-grams:\n"
    "-0.3 <s> a -0.15\n"
    "-0.4 a b -0.05\n"
    "-0.2 b a\n"
    "\n"
    "\\3-grams:\n"
    "-0.1 <s> a b\n"
    "\\end\\\n";

static es_status parse(const char *text, char *why, size_t why_size) {
  es_lm lm;
  es_status s = es_lm_init_arpa(&lm, text, strlen(text), why, why_size);
  es_lm_free(&lm);
  return s;
}

int main(void) {
  es_lm lm;
  char why[256] = "";
  CHECK(es_lm_init_arpa(&lm, ARPA, strlen(ARPA), why, sizeof why) == ES_OK);
  CHECK(lm.order == 3);
  CHECK(lm.table[0].count == 5 && lm.table[1].count == 3 && lm.table[2].count == 1);
  int32_t a = es_lm_word_id(&lm, "a", 1), b = es_lm_word_id(&lm, "b", 1);
  CHECK(a >= 0 && b >= 0 && a != b);
  CHECK(es_lm_word_id(&lm, "ab", 2) == -1);
  CHECK(es_lm_word_id(&lm, "abc", 1) == a); /* length-bounded */
  int32_t ctx[ES_LM_MAX_ORDER];
  int n = es_lm_begin(&lm, ctx);
  CHECK(n == 1 && ctx[0] == lm.bos);
  CHECK_NEAR(es_lm_score(&lm, ctx, n, a, ctx, &n), -0.3, 1e-6);           /* bigram <s> a */
  CHECK_NEAR(es_lm_score(&lm, ctx, n, b, ctx, &n), -0.1, 1e-6);           /* trigram <s> a b */
  /* a b a: trigram missing, bo(a b) -0.05 + bigram b a -0.2 */
  CHECK_NEAR(es_lm_score(&lm, ctx, n, a, ctx, &n), -0.25, 1e-6);
  CHECK(n == 2 && ctx[0] == b && ctx[1] == a);
  /* b a b: trigram missing, bo(b a) = 0 (absent), bigram a b -0.4 */
  CHECK_NEAR(es_lm_score(&lm, ctx, n, b, ctx, &n), -0.4, 1e-6);
  /* a b </s>: bo(a b) -0.05 + bo(b) -0.2 + p(</s>) -0.7 */
  CHECK_NEAR(es_lm_score(&lm, ctx, n, lm.eos, ctx, &n), -0.95, 1e-6);
  /* an unknown word is <unk> */
  n = es_lm_begin(&lm, ctx);
  CHECK_NEAR(es_lm_score(&lm, ctx, n, -1, ctx, &n), -1.5, 1e-6);
  es_lm_free(&lm);
  es_lm_free(&lm); /* twice is fine */

  /* malformed input: ES_ERR_PARSE and the line */
  CHECK(parse("", why, sizeof why) == ES_ERR_PARSE);
  CHECK(strstr(why, "no \\data\\") != NULL);
  CHECK(parse("\\data\\\nngram 1=1\n\n\\1-grams:\n-1 a\n", why, sizeof why) == ES_ERR_PARSE);
  CHECK(strstr(why, "line 5") != NULL && strstr(why, "\\end\\") != NULL);
  CHECK(parse("\\data\\\nngram 1=1\n\n\\1-grams:\n-1e999 a\n\\end\\\n", why, sizeof why) == ES_ERR_PARSE);
  CHECK(strstr(why, "line 5: bad log10 probability") != NULL);
  CHECK(parse("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 a\n\\end\\\n", why, sizeof why) == ES_ERR_PARSE);
  CHECK(strstr(why, "line 6") != NULL);
  /* A 48-byte file whose header claims 10^8 words once allocated 563 MB before failing. */
  CHECK(parse("\\data\\\nngram 1=100000000\n\n\\1-grams:\n-1 a\n\\end\\\n", why, sizeof why) == ES_ERR_PARSE);
  CHECK(strstr(why, "need at least 400000000 bytes") != NULL);
  CHECK(parse("\\data\\\nngram 1=1\nngram 2=300000000\n\n\\1-grams:\n-1 a\n\\end\\\n", why, sizeof why) ==
        ES_ERR_PARSE);
  CHECK(strstr(why, "header's counts are wrong") != NULL);
  CHECK(parse("\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1 a\n\n\\2-grams:\n-1 a a\n-1 a a\n\\end\\\n", why,
              sizeof why) == ES_ERR_PARSE);
  CHECK(parse("\\data\\\nngram 1=1\nngram 2=2\n\n\\1-grams:\n-1 a\n\n\\2-grams:\n-1 a a\n-1 a a\n\\end\\\n", why,
              sizeof why) == ES_ERR_PARSE);
  CHECK(strstr(why, "duplicate 2-gram") != NULL);
  /* not NUL-terminated: only `length` bytes are read */
  char buf[sizeof ARPA];
  memcpy(buf, ARPA, sizeof ARPA);
  CHECK(es_lm_init_arpa(&lm, buf, strlen(ARPA) - 7, why, sizeof why) == ES_ERR_PARSE);
  es_lm_free(&lm);
  ES_TEST_MAIN_END();
}
