"""HuggingFace transformers built from configs (no weights can be downloaded), trained briefly: the line from
initialization to the trained model equals a plain per-α loop scored by the model's own loss, through the
vectorized path and the one-α-at-a-time path."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from losspath.lines import evaluate_line  # noqa: E402

ALPHAS = [-0.25, 0.0, 0.5, 1.0, 1.25]
VOCAB, T = 24, 12


def token_data(n, seed):
    """Sequences counting up modulo VOCAB from a random start (learnable), right-padded to random lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = (torch.randint(0, VOCAB, (n, 1), generator=g) + torch.arange(T)) % VOCAB
    lengths = torch.randint(4, T + 1, (n, 1), generator=g)
    mask = (torch.arange(T) < lengths).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def train_briefly(model, data, batch, steps=12):
    """A few Adam steps with the model's own loss on `data` cut into batches of `batch`; returns (state at init,
    state after training)."""
    n = len(data["input_ids"])
    batches = [{k: v[i : i + batch] for k, v in data.items()} for i in range(0, n, batch)]
    start = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(steps):
        loss = model(**batches[step % len(batches)]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return start, copy.deepcopy(model.state_dict())


def plain_loop(model, start, end, data):
    """θ(α) loaded with load_state_dict; the model's own loss on the whole data as one batch (a mean over
    every scored token or example), and its logits."""
    net = copy.deepcopy(model).eval()
    losses, logits = [], []
    with torch.no_grad():
        for a in ALPHAS:
            net.load_state_dict({k: (1 - a) * start[k] + a * end[k] if v.is_floating_point() else end[k]
                                 for k, v in start.items()})
            out = net(**data)
            losses.append(out.loss.item())
            logits.append(out.logits)
    return np.array(losses), logits


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=T, n_embd=32, n_layer=2, n_head=4,
                                     bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(config)
    data = token_data(24, seed=1)
    data["labels"] = torch.where(data["attention_mask"].bool(), data["input_ids"], -100)
    start, end = train_briefly(model, data, batch=8)
    return model, start, end, data


@pytest.mark.parametrize("vectorize", [True, False])
def test_gpt2_causal_lm_line_equals_the_models_own_loss_in_a_plain_loop(gpt2, vectorize):
    model, start, end, data = gpt2
    want, logits = plain_loop(model, start, end, data)
    assert want[3] < want[1] - 0.3  # training lowered the loss: the line has something to show
    result = evaluate_line(model, start, end, data, alphas=ALPHAS, loss="lm_cross_entropy", batch_size=10,
                           progress=False, vectorize=vectorize)
    np.testing.assert_allclose(result.loss, want, rtol=2e-5)
    labels = data["labels"][:, 1:]
    for i, lg in enumerate(logits):
        wrong = int(((lg[:, :-1].argmax(-1) != labels) & (labels != -100)).sum())
        assert result.error[i] == pytest.approx(wrong / int((labels != -100).sum()), abs=1e-12)
    assert result.info["path"] == ("vectorized" if vectorize else "one alpha at a time")


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=T, num_labels=3,
                                     attn_implementation="eager")
    model = transformers.BertForSequenceClassification(config)
    data = token_data(30, seed=2)
    data["labels"] = data["input_ids"][:, 0] % 3  # the class is the first token modulo 3
    start, end = train_briefly(model, data, batch=10)
    return model, start, end, data


@pytest.mark.parametrize("vectorize", [True, False])
def test_bert_classifier_line_on_dict_batches_equals_the_models_own_loss(bert, vectorize):
    model, start, end, data = bert
    want, logits = plain_loop(model, start, end, data)
    result = evaluate_line(model, start, end, data, alphas=ALPHAS, batch_size=8, progress=False,
                           vectorize=vectorize)
    np.testing.assert_allclose(result.loss, want, rtol=2e-5)
    for i, lg in enumerate(logits):
        assert result.error[i] == pytest.approx((lg.argmax(1) != data["labels"]).float().mean().item())
        np.testing.assert_array_equal(result.class_counts[i], torch.bincount(lg.argmax(1), minlength=3))
    assert result.info["path"] == ("vectorized" if vectorize else "one alpha at a time")
