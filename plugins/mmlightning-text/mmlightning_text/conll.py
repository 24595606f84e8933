"""CoNLL column files (one token per line, blank lines between sentences) as manifest rows."""

from __future__ import annotations

from pathlib import Path

from mmlightning.contracts import Reader
from mmlightning.data.manifest import BadRow, Row


class ConllReader(Reader):
    """CoNLL column files (NER data): a sentence per row, with ``tokens`` and ``tags`` lists.

    ``tokens`` is the first column, ``tags`` the last, and any columns between are ``column2``, ``column3``,
    ... (CoNLL-2003: part of speech and chunk). ``-DOCSTART-`` lines are skipped.

    A row's line is the sentence's first line; a line with a different number of columns from the rest of
    its sentence makes the sentence a bad row, reported with that line.
    """

    suffixes = (".conll", ".conllu", ".bio", ".iob")

    def read(self, path: Path) -> tuple[list[Row], list[BadRow]]:
        rows, bad = [], []
        sentence: list[list[str]] = []
        start, problem = 0, ""
        with Path(path).open(encoding="utf-8") as handle:
            for number, line in enumerate([*handle, "\n"], start=1):
                parts = line.split()
                if parts and parts[0] == "-DOCSTART-":
                    continue
                if parts:
                    if not sentence:
                        start, problem = number, ""
                    if sentence and len(parts) != len(sentence[0]) and not problem:
                        problem = (
                            f"line {number} has {len(parts)} columns, the sentence's first line {len(sentence[0])}"
                        )
                    if len(parts) < 2 and not problem:
                        problem = f"line {number} has {len(parts)} column; expected a token and a tag at least"
                    sentence.append(parts)
                    continue
                if sentence:
                    if problem:
                        bad.append(BadRow(str(path), start, problem, [" ".join(p) for p in sentence]))
                    else:
                        rows.append(Row(start, self.row(sentence)))
                    sentence = []
        return rows, bad

    @staticmethod
    def row(sentence: list[list[str]]) -> dict:
        columns = list(zip(*sentence))
        values = {"tokens": list(columns[0]), "tags": list(columns[-1])}
        values.update({f"column{i + 1}": list(col) for i, col in enumerate(columns[1:-1], start=1)})
        return values
