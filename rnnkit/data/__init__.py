"""The data layer: vocabularies, corpora (named, local, stdin, the stdlib) and language-model batchers."""
from rnnkit.data.batching import RandomBatcher, SequentialBatcher
from rnnkit.data.corpora import CORPORA, Corpus, download_file, known_corpora, load_corpus, resolve_named
from rnnkit.data.textio import encode_file, read_text
from rnnkit.data.vocab import CharVocab, Vocab, WordVocab, load_vocab, normalize, tokenize

__all__ = [
    "CORPORA", "CharVocab", "Corpus", "RandomBatcher", "SequentialBatcher", "Vocab", "WordVocab",
    "download_file", "encode_file", "known_corpora", "load_corpus", "load_vocab", "normalize",
    "read_text", "resolve_named", "tokenize",
]
