/* Fuzz-style robustness: random mutations of a valid ARPA file (byte flips, insertions, deletions,
 * truncation, spliced lines, random tokens) must parse or fail with ES_ERR_PARSE, never crash or
 * leak (run under AddressSanitizer in CI); whatever parses must score without reading out of
 * bounds. Deterministic: a fixed-seed generator. ES_FUZZ_ITERATIONS overrides the count. */
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_lm.h"
#include "es_test.h"

static const char SEED[] =
    "\\data\\\nngram 1=6\nngram 2=4\nngram 3=2\n\n"
    "\\1-grams:\n-1.0\t<unk>\t-0.3\n-99\t<s>\t-0.5\n-0.7\t</s>\n-0.6\ta\t-0.25\n-0.8\tb\t-0.2\n-1.2 ab -0.1\n\n"
    "\\2-grams:\n-0.3 <s> a -0.15\n-0.4 a b -0.05\n-0.2 b a\n-0.5 a </s>\n\n"
    "\\3-grams:\n-0.1 <s> a b\n-0.15 a b a\n\n\\end\\\n";

static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint32_t next_random(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return (uint32_t)(state >> 16);
}

static const char *const PIECES[] = {"\\data\\", "\\end\\", "\\1-grams:", "\\2-grams:", "\\3-grams:", "\\9-grams:",
                                     "ngram 1=", "ngram 3=999999999", "-inf", "nan", "1e40", "-0.5", " ", "\t",
                                     "\n", "\r\n", "<s>", "</s>", "=", "-", "\\", "ngram 7=1", "\0"};

int main(void) {
  const char *env = getenv("ES_FUZZ_ITERATIONS");
  long iterations = env ? atol(env) : 20000;
  const size_t seed_len = sizeof SEED - 1;
  char *buf = malloc(4 * seed_len + 256);
  char why[256];
  long parsed = 0, rejected = 0, other = 0;
  for (long it = 0; it < iterations; it++) {
    size_t len = seed_len;
    memcpy(buf, SEED, seed_len);
    int mutations = 1 + (int)(next_random() % 6);
    for (int m = 0; m < mutations; m++) {
      uint32_t r = next_random();
      size_t pos = len ? next_random() % len : 0;
      switch (r % 6) {
        case 0: if (len) buf[pos] = (char)(next_random() & 0xff); break;             /* byte flip */
        case 1: if (len) { memmove(buf + pos, buf + pos + 1, len - pos - 1); len--; } break; /* delete */
        case 2: len = pos; break;                                                     /* truncate */
        case 3: {                                                                     /* insert a piece */
          const char *piece = PIECES[next_random() % (sizeof PIECES / sizeof PIECES[0])];
          size_t n = strlen(piece) ? strlen(piece) : 1;
          if (len + n < 4 * seed_len) {
            memmove(buf + pos + n, buf + pos, len - pos);
            memcpy(buf + pos, piece, n);
            len += n;
          }
          break;
        }
        case 4: {                                                                     /* duplicate a span */
          size_t n = next_random() % 40;
          if (pos + n <= len && len + n < 4 * seed_len) {
            memmove(buf + pos + n, buf + pos, len - pos);
            len += n;
          }
          break;
        }
        default: if (len) buf[pos] = "0123456789 -.\n\\abs<>"[next_random() % 21]; break;
      }
    }
    es_lm lm;
    es_status s = es_lm_init_arpa(&lm, buf, len, why, sizeof why);
    if (s == ES_OK) {
      parsed++;
      /* score every unigram after every unigram, and an unknown word */
      int32_t ctx[ES_LM_MAX_ORDER];
      int n = es_lm_begin(&lm, ctx);
      for (int32_t w = -1; w < lm.num_words && w < 50; w++) {
        float lp = es_lm_score(&lm, ctx, n, w, ctx, &n);
        if (!(lp <= 1e30f && lp >= -1e31f)) other++;
      }
    } else if (s == ES_ERR_PARSE) {
      rejected++;
      if (why[0] == '\0') other++;
    } else {
      other++;
    }
    es_lm_free(&lm);
  }
  free(buf);
  printf("%ld parsed, %ld rejected\n", parsed, rejected);
  CHECK(other == 0);
  CHECK(parsed > 0 && rejected > 0);
  ES_TEST_MAIN_END();
}
