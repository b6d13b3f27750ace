/* Cuts a sample stream into overlapping frames. Samples arrive in chunks of any size; frame t
 * covers samples [t * shift - offset, t * shift - offset + length), with `offset` 0 for Kaldi's
 * snip_edges framing, and samples outside the signal taken from the padding rule. The framer keeps
 * only what pending frames need (a fixed buffer sized at init) and never allocates afterwards. */
#ifndef EDGE_SPEECH_ES_FRAMER_H
#define EDGE_SPEECH_ES_FRAMER_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum es_padding {
  ES_PADDING_NONE = 0,     /* only frames wholly inside the signal (Kaldi snip_edges=true) */
  ES_PADDING_REFLECT = 1,  /* frames centred on t * shift, the signal mirrored at its ends
                              (numpy 'reflect', librosa center=True) */
  ES_PADDING_CONSTANT = 2  /* centred frames, zeros outside the signal (librosa's default pad) */
} es_padding;

typedef struct es_framer {
  int length;              /* samples per frame */
  int shift;
  int offset;              /* frame t starts at t * shift - offset */
  int span;                /* centred modes: the span a frame is centred in (see init) */
  es_padding padding;
  float scale;             /* applied to every sample as it is stored */
  float *buffer;           /* samples [buffer_start, samples_seen) */
  int capacity;
  int64_t buffer_start;
  int64_t samples_seen;
  int64_t next_frame;      /* absolute index of the next frame to produce */
  int finished;
  int drop_last;           /* the signal's last frame is never produced (Whisper's STFT[..., :-1]) */
} es_framer;

/* centred_span: for padded modes, the span the frame is centred in (the FFT size for librosa,
 * whose window sits in the middle of an n_fft frame); ignored for ES_PADDING_NONE. */
es_status es_framer_init(es_framer *framer, int length, int shift, es_padding padding,
                         int centred_span, float scale);
/* drop_last != 0: one frame fewer in total. Mid-stream a frame is then held back until a later
 * one is due or the end is known, so streaming still never emits the frame that finish drops. */
void es_framer_set_drop_last(es_framer *framer, int drop_last);
void es_framer_free(es_framer *framer);
void es_framer_reset(es_framer *framer);

/* Copies samples into the buffer until it is full or the input is used up; returns how many
 * were taken (the caller extracts frames, then calls again with the rest). */
size_t es_framer_push(es_framer *framer, const es_samples *input, size_t first);
/* Marks the end of the signal; frames that overhang it become available (padded modes). */
void es_framer_finish(es_framer *framer);
/* Non-zero when frame `next_frame` can be extracted now. */
int es_framer_frame_ready(const es_framer *framer);
/* Writes frame `next_frame` (length samples) into out and advances. Call only when ready. */
void es_framer_pop(es_framer *framer, float *out);
/* Exact number of frames the framer would have produced in total after `extra` more samples
 * (and finish, if finishing != 0), counting those already produced. */
int64_t es_framer_total_frames(const es_framer *framer, uint64_t extra, int finishing);

#ifdef __cplusplus
}
#endif
#endif
