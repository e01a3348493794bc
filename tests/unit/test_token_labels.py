"""Generated tokens are marked on every page's axes: ui.session.token_labels against the prompt's own tokens."""

from types import SimpleNamespace

import numpy as np

from explorer.figures.tokens import GENERATED_MARK
from explorer.ui.session import token_labels


def _cap(ids):
    texts = [f"t{i}" for i in ids]
    return SimpleNamespace(
        token_ids=np.asarray(ids), labels=lambda: [f"{i}:{t}" for i, t in enumerate(texts)]
    )


def test_tokens_past_the_prompt_are_marked():
    cap = _cap([5, 6, 7, 8, 9])
    labels = token_labels(cap, SimpleNamespace(prompt_ids=(5, 6, 7)))
    assert labels == ["0:t5", "1:t6", "2:t7", f"3:t8{GENERATED_MARK}", f"4:t9{GENERATED_MARK}"]


def test_a_merge_across_the_seam_counts_as_generated():
    # The prompt's last token (7) merged with the continuation into another token (70): generated from there.
    labels = token_labels(_cap([5, 6, 70, 8]), SimpleNamespace(prompt_ids=(5, 6, 7)))
    assert [label.endswith(GENERATED_MARK) for label in labels] == [False, False, True, True]


def test_no_continuation_marks_nothing():
    cap = _cap([1, 2, 3])
    assert token_labels(cap, SimpleNamespace(prompt_ids=None)) == cap.labels()
