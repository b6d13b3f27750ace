/* One stage of the always-on pipeline over a recording, as the runtime runs it live (20 ms
 * chunks), for instruction counting (benchmarks/bench_instructions.py): callgrind on x86 and an
 * instruction-counting qemu on Arm. Stage "none" reads the inputs and stops: its count is the
 * baseline the others subtract.
 *
 *   pipeline_cost STAGE AUDIO.f32 [LOG_PROBS.f32 VOCAB_SIZE]
 *   STAGE: none | vad | features | greedy | beam
 * AUDIO.f32: float32 mono samples at 16 kHz; LOG_PROBS.f32: float32 [frames, VOCAB_SIZE] (blank 0),
 * the model's output on that audio (greedy and beam decode it in 2-frame pieces, as 20 ms chunks
 * of a model with 40 ms output frames arrive). Prints what the stage produced, so a stage that did
 * nothing shows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_speech.h"

static float *read_floats(const char *path, size_t *count) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  float *data = malloc((size_t)bytes + 4);
  *count = fread(data, sizeof(float), (size_t)bytes / sizeof(float), f);
  fclose(f);
  return data;
}

static int fail(const char *what) {
  fprintf(stderr, "pipeline_cost: %s\n", what);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 3) return fail("usage: pipeline_cost none|vad|features|greedy|beam AUDIO.f32 [LOG_PROBS.f32 VOCAB]");
  const char *stage = argv[1];
  size_t num_samples = 0, num_values = 0;
  float *samples = read_floats(argv[2], &num_samples);
  if (samples == NULL) return fail("cannot read the audio");
  float *log_probs = NULL;
  int vocab_size = 0;
  if (argc >= 5) {
    log_probs = read_floats(argv[3], &num_values);
    vocab_size = atoi(argv[4]);
    if (log_probs == NULL || vocab_size < 2) return fail("cannot read the log-probs");
  }
  const size_t chunk = 320; /* 20 ms at 16 kHz */
  long produced = 0;
  if (strcmp(stage, "vad") == 0) {
    es_vad_config config = es_vad_config_default();
    es_vad vad;
    if (es_vad_init(&vad, &config) != ES_OK) return fail("vad init");
    uint8_t decisions[64];
    for (size_t i = 0; i < num_samples; i += chunk) {
      size_t n = num_samples - i < chunk ? num_samples - i : chunk, written = 0;
      es_vad_accept(&vad, samples + i, n, decisions, sizeof decisions, &written);
      for (size_t k = 0; k < written; k++) produced += decisions[k];
    }
    es_vad_free(&vad);
  } else if (strcmp(stage, "features") == 0) {
    es_frontend_config config = es_frontend_config_default();
    es_frontend fe;
    if (es_frontend_init(&fe, &config) != ES_OK) return fail("front end init");
    const int dim = es_frontend_dim(&fe);
    float *out = malloc(sizeof(float) * (size_t)dim * 64);
    for (size_t i = 0; i < num_samples; i += chunk) {
      size_t n = num_samples - i < chunk ? num_samples - i : chunk, written = 0;
      es_samples input = {samples + i, n, 1, ES_SAMPLE_F32};
      es_frontend_accept(&fe, &input, out, 64, &written);
      produced += (long)written;
    }
    size_t written = 0;
    es_frontend_finish(&fe, out, 64, &written);
    produced += (long)written;
    free(out);
    es_frontend_free(&fe);
  } else if (strcmp(stage, "greedy") == 0 || strcmp(stage, "beam") == 0) {
    if (log_probs == NULL) return fail("greedy and beam need LOG_PROBS.f32 VOCAB_SIZE");
    const size_t frames = num_values / (size_t)vocab_size;
    es_ctc_token tokens[4096];
    if (stage[0] == 'g') {
      es_ctc_greedy greedy;
      if (es_ctc_greedy_init(&greedy, vocab_size, 0) != ES_OK) return fail("greedy init");
      for (size_t t = 0; t < frames; t += 2) {
        size_t n = frames - t < 2 ? frames - t : 2, written = 0;
        es_ctc_greedy_accept(&greedy, log_probs + t * (size_t)vocab_size, n, tokens, 4096, &written);
        produced += (long)written;
      }
      es_ctc_greedy_free(&greedy);
    } else {
      /* a character vocabulary: blank, space, then letters and the apostrophe (en-small's shape) */
      char names[64][2];
      const char *table[64];
      const char *letters = " abcdefghijklmnopqrstuvwxyz'";
      for (int i = 0; i < vocab_size && i < 64; i++) {
        names[i][0] = i == 0 ? '#' : (i - 1 < (int)strlen(letters) ? letters[i - 1] : (char)('0' + i % 10));
        names[i][1] = '\0';
        table[i] = names[i];
      }
      es_vocab vocab;
      es_vocab_config vocab_config = es_vocab_config_default();
      char why[200];
      if (es_vocab_init(&vocab, table, vocab_size, &vocab_config, why, sizeof why) != ES_OK) return fail(why);
      es_ctc_beam_config config = es_ctc_beam_config_default();
      es_ctc_beam beam;
      if (es_ctc_beam_init(&beam, &config, &vocab, NULL, NULL, why, sizeof why) != ES_OK) return fail(why);
      for (size_t t = 0; t < frames; t += 2) es_ctc_beam_accept(&beam, log_probs + t * (size_t)vocab_size, frames - t < 2 ? frames - t : 2);
      es_ctc_beam_finish(&beam);
      size_t length = 0;
      es_ctc_beam_hypothesis(&beam, 0, tokens, 4096, &length, NULL);
      produced = (long)length;
      es_ctc_beam_free(&beam);
      es_vocab_free(&vocab);
    }
  } else if (strcmp(stage, "none") != 0) {
    return fail("unknown stage");
  }
  printf("%s %ld\n", stage, produced);
  free(samples);
  free(log_probs);
  return 0;
}
