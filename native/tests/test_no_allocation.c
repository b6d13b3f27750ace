/* After init, the per-frame path never calls the allocator: malloc, calloc, realloc and free are
 * wrapped at link time (see CMakeLists.txt) and counted. */
#include <stdlib.h>

#include "edge_speech/es_frontend.h"
#include "es_test.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);

static long allocator_calls;
void *__wrap_malloc(size_t size) { allocator_calls++; return __real_malloc(size); }
void *__wrap_calloc(size_t n, size_t size) { allocator_calls++; return __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t size) { allocator_calls++; return __real_realloc(p, size); }
void __wrap_free(void *p) { allocator_calls++; __real_free(p); }

static float samples[16000];
static float frames[200 * 40];

int main(void) {
  for (int i = 0; i < 16000; i++) samples[i] = 0.3f * (float)sin(i * 0.05);
  es_frontend_config configs[2] = {es_frontend_config_default(), es_frontend_config_default()};
  configs[1].padding = ES_PADDING_REFLECT;
  configs[1].kind = ES_FEATURES_FBANK;
  configs[1].mel.num_bins = 40;
  configs[1].dither = 1e-3f;
  configs[1].cmvn.mode = ES_CMVN_SLIDING;
  for (int c = 0; c < 2; c++) {
    es_frontend fe;
    long before_init = allocator_calls;
    CHECK(es_frontend_init(&fe, &configs[c]) == ES_OK);
    CHECK(allocator_calls > before_init); /* the wrap is live: init does allocate */
    long after_init = allocator_calls;
    for (int round = 0; round < 3; round++) {
      size_t pos = 0, written, chunk = 37 + 100 * round;
      while (pos < 16000) {
        size_t n = pos + chunk <= 16000 ? chunk : 16000 - pos;
        es_samples s = {samples + pos, n, 1, ES_SAMPLE_F32};
        CHECK(es_frontend_accept(&fe, &s, frames, 200, &written) == ES_OK);
        pos += n;
      }
      CHECK(es_frontend_finish(&fe, frames, 200, &written) == ES_OK);
      es_frontend_reset(&fe);
    }
    CHECK(allocator_calls == after_init);
    es_frontend_free(&fe);
  }
  ES_TEST_MAIN_END();
}
