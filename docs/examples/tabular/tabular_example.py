"""A tabular encoder for mmlightning: a token per column; numbers standardised, categories embedded."""

from torch import cat, nn, randn, tensor

from mmlightning import Encoder, Features, Processor, hookimpl
from mmlightning.processing import as_number as number


class TableProcessor(Processor):
    """A row ``{column: value}`` -> standardised ``numbers`` and category ``codes`` (0: unseen or missing)."""

    def __init__(self, numeric=None, categories=None):
        self.numeric, self.categories = numeric or {}, categories or {}  # column -> [mean, std] / its categories

    def __call__(self, row, root, train):  # also checks each row before training (the default check calls it)
        numbers = [0.0 if row.get(c) is None else (number(row[c], c) - m) / s for c, (m, s) in self.numeric.items()]
        codes = [cats.index(str(row[c])) + 1 if str(row.get(c)) in cats else 0 for c, cats in self.categories.items()]
        return {"numbers": tensor(numbers), "codes": tensor(codes).long()}

    def blank(self):  # a row without any value stands in for a missing modality
        return self({}, None, False)


class TableEncoder(Encoder):
    """Rows of a wide table (``--data.columns='{"table": ["age", "sex"]}'``): a token per column."""

    modality = "table"

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.dim = dim

    def fit(self, rows):  # the checked training rows: a column is numeric if every value in it is a number
        values = {c: [r[c] for r in rows if r.get(c) is not None] for c in rows[0]}
        numbers = {c: tensor([number(v) for v in vs]) for c, vs in values.items() if None not in map(number, vs)}
        numeric = {c: [x.mean().item(), x.std(unbiased=False).item() or 1.0] for c, x in numbers.items()}
        categories = {c: sorted(set(map(str, v))) for c, v in values.items() if c not in numeric}
        self.set_fitted({"numeric": numeric, "categories": categories})

    def set_fitted(self, state):  # after fit, and again when a checkpoint loads (before its weights do)
        super().set_fitted(state)
        self.scale = nn.Parameter(randn(len(state["numeric"]), self.dim))  # (N, D) a direction per number
        self.embeds = nn.ModuleList(nn.Embedding(len(c) + 1, self.dim) for c in state["categories"].values())

    def processor(self):
        return TableProcessor(**(self.fitted or {}))

    def forward(self, inputs):
        tokens = [inputs["numbers"][..., None] * self.scale]  # (B, N, D)
        tokens += [embed(inputs["codes"][:, i])[:, None] for i, embed in enumerate(self.embeds)]  # (B, 1, D) each
        return Features.from_tokens(cat(tokens, 1), present=inputs["present"])  # (B, N + C, D)


@hookimpl
def register_encoders(register):
    register(TableEncoder)
