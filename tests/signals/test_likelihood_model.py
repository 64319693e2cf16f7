"""The llamacpp backend's likelihood against a value computed here with llama-cpp-python's
public API: the logits of every position (Llama(logits_all=True).eval), each token's
log-softmax taken one by one in Python. (Decoding one token at a time instead gives a mean
0.006 nats/token off on this text: llama.cpp's batched and single-token kernels round
differently; the signal is defined by one forward pass.)"""
from __future__ import annotations

import math

import pytest

TEXT = "Once upon a time, there was a little girl named Lily. She loved to play in the park with her red ball."


@pytest.mark.model
def test_score_matches_a_hand_computed_mean_logprob():
    from llama_cpp import Llama

    from factory.backends.llamacpp import LlamaCppBackend, model_path

    llm = Llama(model_path=str(model_path("smollm2-135m-instruct-q4_1")), n_ctx=256, logits_all=True,
                n_threads=1, n_threads_batch=1, verbose=False)
    tokens = [llm.token_bos(), *llm.tokenize(TEXT.encode(), add_bos=False)]
    llm.eval(tokens)
    logprobs = []
    for position in range(len(tokens) - 1):
        row = [float(x) for x in llm.scores[position]]
        top = max(row)
        log_z = top + math.log(sum(math.exp(x - top) for x in row))
        logprobs.append(row[tokens[position + 1]] - log_z)
    expected = sum(logprobs) / len(logprobs)

    backend = LlamaCppBackend("smollm2-135m-instruct-q4_1")
    (mean, n), (salad, _) = backend.score([TEXT, "ball red the park in Lily loved girl named play"])
    assert n == len(tokens) - 1
    assert abs(mean - expected) < 1e-3, (mean, expected)
    assert salad < mean - 2  # word salad is far less likely than the story
    # Scoring leaves no state behind: the same text scores the same again.
    assert backend.score([TEXT])[0] == pytest.approx((mean, n), abs=1e-9)


STORY = ("Tom had a happy dog named Max. Max liked to jump and catch his red ball. One day the ball "
         "rolled into the pond. Max swam out and brought it back. Tom gave him a big hug.")


@pytest.mark.model
def test_the_zlib_ratio_does_not_reward_a_repeated_sentence_as_the_likelihood_does():
    """Issue 21: on SmolLM2 a story with a middle sentence said 3 times has the higher mean
    token log-likelihood (18 of 21 demo pairs); likelihood_zlib ranks the original higher."""
    from factory.backends.llamacpp import LlamaCppBackend
    from factory.decide import decision_score
    from factory.recipes.corruptions import sentence_repeated

    class Middle:  # the corruption draws the sentence to repeat: take the second
        @staticmethod
        def randint(low, high):
            return 1

    repeated = sentence_repeated(STORY, Middle(), None)
    assert repeated.count("Max liked to jump and catch his red ball.") == 3
    (original, n), (looped, m) = LlamaCppBackend("smollm2-135m-instruct-q4_1").score([STORY, repeated])
    assert looped > original  # what the likelihood rewards
    assert decision_score("likelihood_zlib", None, original, [], STORY, n) > \
        decision_score("likelihood_zlib", None, looped, [], repeated, m)
