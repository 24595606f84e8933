"""Training a WordPiece or BPE tokenizer on a text column, with [CLS] ... [SEP] around every text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from mmlightning_text.wordpiece import learn_vocab

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(
    texts: Iterable[str], kind: str = "wordpiece", vocab_size: int = 8000, lowercase: bool = True
) -> Tokenizer:
    """A tokenizer learnt from ``texts``; the same texts always give the same tokenizer."""
    if kind == "wordpiece":
        normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=lowercase), pre_tokenizers.BertPreTokenizer()
        words: Counter[str] = Counter()
        for text in texts:
            words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
        tokenizer = Tokenizer(models.WordPiece(vocab=learn_vocab(words, vocab_size, SPECIAL), unk_token="[UNK]"))
        tokenizer.normalizer, tokenizer.pre_tokenizer, tokenizer.decoder = (
            normalizer,
            pre_tokenizer,
            decoders.WordPiece(),
        )
        tokenizer.add_special_tokens(SPECIAL)
    elif kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
        steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
        tokenizer.normalizer = normalizers.Sequence(steps)
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
    else:
        raise ValueError(f"tokenizer must be 'wordpiece' or 'bpe', got {kind!r}")
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tokenizer


def pad_id(tokenizer: Tokenizer) -> int:
    """The padding token's id ([PAD], <pad>), or 0."""
    for token in ("[PAD]", "<pad>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    return 0
