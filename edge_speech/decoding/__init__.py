"""CTC decoding in the native core: greedy, prefix beam search, ARPA n-gram LM fusion, hotwords.

A CTC model gives, per frame, natural-log probabilities over its tokens (blank included). The
decoder turns them into text, tokens with frame timestamps, and words with times::

    from edge_speech import decoding
    dec = decoding.CTCDecoder(tokens, blank_id=0, beam_width=16)
    res = dec.decode(log_probs)                 # float32 [T, V]
    res.text, res.tokens, res.score, res.words, res.nbest

    lm = decoding.ArpaLM.from_file("words.arpa")
    dec = decoding.CTCDecoder(tokens, lm=lm, lm_weight=0.5, word_bonus=1.0,
                              hotwords={"edge speech": 4.0})

    stream = dec.create_stream()                # the same result, chunk by chunk
    stream.accept(chunk); stream.partial; res = stream.finish()

    grammar = decoding.Grammar.from_yaml(intents_yaml)     # or Grammar.from_jsgf(text)
    dec = decoding.CTCDecoder(tokens, grammar=grammar)     # grammar_threshold=0.5, grammar_min_evidence=0.55
    res = dec.decode(log_probs)
    res.intent, res.slots, res.text, res.confidence        # intent None: rejected

Tokens are characters (``" "`` or ``"|"`` separate words) or SentencePiece-style subwords (a
``"▁"`` prefix begins a word); ``kind="auto"`` tells them apart. ``beam_width=1`` selects greedy
decoding (the argmax path, repeats merged, blanks removed). Decoders hold no global state: use one
stream per thread, as many threads as you like (the native work releases the GIL); an ``ArpaLM``
may be shared by any number of decoders.

Modules: ``decoder`` (the :class:`CTCDecoder` facade), one stream class per search over the
:class:`DecoderStream` interface of ``stream`` (``greedy``, ``beam``, ``grammar``), ``results``,
``vocabulary``, ``lm``, ``hotwords`` and ``config``. A grammar is spelled with the tokens by
:mod:`edge_speech.grammar_tokens`.
"""

from edge_speech.decoding.beam import BeamStream
from edge_speech.decoding.config import BeamConfig
from edge_speech.decoding.decoder import CTCDecoder
from edge_speech.decoding.grammar import GRAMMAR_MIN_EVIDENCE, GrammarStream
from edge_speech.decoding.greedy import GreedyStream
from edge_speech.decoding.hotwords import MAX_HOTWORD_BOOST
from edge_speech.decoding.lm import ArpaLM
from edge_speech.decoding.results import Hypothesis, Result, Word
from edge_speech.decoding.stream import DecoderStream
from edge_speech.decoding.vocabulary import Vocabulary
from edge_speech.grammars import Grammar

__all__ = [
    "ArpaLM",
    "BeamConfig",
    "BeamStream",
    "CTCDecoder",
    "DecoderStream",
    "GRAMMAR_MIN_EVIDENCE",
    "Grammar",
    "GrammarStream",
    "GreedyStream",
    "Hypothesis",
    "MAX_HOTWORD_BOOST",
    "Result",
    "Vocabulary",
    "Word",
]
