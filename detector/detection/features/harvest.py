"""Whether one answered request has the shape of harvesting, whatever its wording.

A distillation dataset is many *novel* prompts, each opening its own conversation and each
answered at length: that is what the operator gets, in any language and under any phrasing.
So a request is judged by its shape: it opens a conversation, its content was not sent before
by the account, and its answer is long for its question (or ran into ``max_tokens``). A request
that asks for reasoning or finished work counts too: wording adds evidence, the shape does not
need it. One request says little (people ask long single questions too); the share over an
account, and over the accounts behind one payment card, network or client, says a lot.
"""

from __future__ import annotations


def harvest_shaped(
    opening: bool,
    repeated: bool,
    input_tokens: int,
    output_tokens: int,
    at_limit: bool | None,
    asks_for_harvest: bool,
    long_answer_tokens: int,
) -> bool:
    """Whether the request opens a conversation with new content and gets a long answer out of it.

    >>> harvest_shaped(True, False, 120, 1400, None, False, 500)  # short question, long answer
    True
    >>> harvest_shaped(False, False, 120, 1400, None, False, 500)  # a follow-up in a conversation
    False
    >>> harvest_shaped(True, False, 3000, 600, None, False, 500)  # a long document, summarised
    False
    >>> harvest_shaped(True, True, 120, 1400, None, True, 500)  # an eval suite re-running a prompt
    False
    """
    if not opening or repeated:
        return False
    if at_limit or asks_for_harvest:
        return True
    return output_tokens >= long_answer_tokens and 2 * output_tokens >= input_tokens
