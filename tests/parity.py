"""Comparing a fastbert model's outputs with transformers', field by field, for the family parity tests."""


def max_errors(a, b, mask) -> dict[str, float]:
    """Max abs error of every output field of ``b`` (fastbert) against ``a`` (transformers), which must have the
    same fields. ``mask`` is the padding mask the encoder saw: ``(rows, seq_len)``, or ``(batch, choices,
    seq_len)`` for multiple choice (taken as its rows); per-token fields are compared at real tokens only.
    ``attentions`` is left out (neither side returns weights in these tests)."""
    assert list(a.keys()) == list(b.keys()), (list(a.keys()), list(b.keys()))
    rows = mask.reshape(-1, mask.shape[-1]).bool()
    errors = {}
    for key in (k for k in a.keys() if k != "attentions"):
        ta, tb = a[key], b[key]
        if key == "hidden_states":
            assert len(ta) == len(tb), (len(ta), len(tb))
            errors[key] = max((x[rows] - y[rows]).abs().max().item() for x, y in zip(ta, tb))
            continue
        assert ta.shape == tb.shape, key
        if ta.dim() >= 2 and ta.shape[:2] == rows.shape:
            ta, tb = ta[rows], tb[rows]
        errors[key] = (ta - tb).abs().max().item()
    return errors
