"""Point it at a table: each column's role inferred from its values, a preset's models trained within a time
limit, a leaderboard, predictions (:class:`~mmlightning.auto.predictor.Predictor`, ``mmlightning auto``)."""
