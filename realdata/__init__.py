"""realdata package."""


def evaluate_model(model, preprocess, tokenizer, data_root, **kwargs):
    """A CLIP already in memory on CounterAnimal; returns the results document (:mod:`realdata.api`)."""
    from realdata.api import evaluate_model as _evaluate_model

    return _evaluate_model(model, preprocess, tokenizer, data_root, **kwargs)
