"""A WordPiece vocabulary learnt deterministically: the same text gives the same vocabulary, ids included.

The algorithm is the one ``tokenizers``' WordPiece trainer runs (BPE merges over words split into a first
character and ``##``-prefixed continuations), but ties between equally frequent pairs go to the pair whose text
sorts first, where the Rust trainer breaks them in hash-map order, which differs from process to process: two
fits of the same text there give different vocabularies, so two same-seed runs differ from their first step.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

PREFIX = "##"


def split(word: str) -> list[str]:
    return [word[0]] + [PREFIX + ch for ch in word[1:]]


def join(left: str, right: str) -> str:
    return left + right[len(PREFIX) :] if right.startswith(PREFIX) else left + right


def learn_vocab(words: Counter[str], vocab_size: int, special: Iterable[str]) -> dict[str, int]:
    """``{token: id}``: the special tokens, the alphabet (sorted), then merges in the order they were learnt."""
    splits = {word: split(word) for word in sorted(words) if word}
    alphabet = {s for symbols in splits.values() for s in symbols} | {ch for word in splits for ch in word}
    tokens = list(dict.fromkeys([*special, *sorted(alphabet)]))  # every character plain too, as tokenizers does
    pairs: Counter[tuple[str, str]] = Counter()
    where: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for word, symbols in splits.items():
        for pair in zip(symbols, symbols[1:]):
            pairs[pair] += words[word]
            where[pair].add(word)
    heap = [(-count, pair) for pair, count in pairs.items()]
    heapq.heapify(heap)
    known = set(tokens)
    while len(tokens) < vocab_size and heap:
        count, pair = heapq.heappop(heap)
        if pairs.get(pair, 0) != -count or count == 0:
            continue  # stale: the pair's count changed since it was pushed
        merged = join(*pair)
        if merged not in known:
            tokens.append(merged)
            known.add(merged)
        touched = _merge(pair, merged, splits, words, pairs, where)
        for other in touched:
            if pairs.get(other, 0) > 0:
                heapq.heappush(heap, (-pairs[other], other))
    return {token: i for i, token in enumerate(tokens)}


def _merge(pair, merged, splits, words, pairs, where) -> set[tuple[str, str]]:
    """Replace ``pair`` by ``merged`` in every word that has it, updating the pair counts; the pairs touched."""
    touched = set()
    for word in sorted(where.pop(pair, ())):
        symbols, count = splits[word], words[word]
        for old in zip(symbols, symbols[1:]):
            pairs[old] -= count
            touched.add(old)
        new, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                new.append(merged)
                i += 2
            else:
                new.append(symbols[i])
                i += 1
        splits[word] = new
        for fresh in zip(new, new[1:]):
            pairs[fresh] += count
            where[fresh].add(word)
            touched.add(fresh)
    pairs.pop(pair, None)
    touched.discard(pair)
    return touched
