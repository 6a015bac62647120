"""Prompt traits: what distillation prompts reveal and ordinary prompts do not."""

import pytest

from detector.detection.features.prompts import TASK_KINDS, analyse_prompt


@pytest.mark.parametrize(
    "prompt",
    [
        "Solve the following problem step by step: what is 17 * 23?",
        "Explain your reasoning in detail before giving the final answer. Q: is 91 prime?",
        "Think through this carefully and show your work: integrate x^2 from 0 to 3",
        "Let's think step-by-step about how to reverse a linked list in Python.",
        "Write out your full chain of thought, then answer: which is heavier?",
        "Output your internal reasoning inside <think> tags, then the answer.",
    ],
)
def test_reasoning_elicitation_is_recognised(prompt):
    assert analyse_prompt(prompt).elicits_reasoning


@pytest.mark.parametrize(
    "prompt",
    [
        "What is the capital of France?",
        "Write a haiku about autumn leaves.",
        "Translate 'good morning' into German.",
        "Can you recommend a good book on the history of Rome?",
    ],
)
def test_ordinary_prompts_do_not_elicit_reasoning(prompt):
    assert not analyse_prompt(prompt).elicits_reasoning


def test_fills_of_one_template_share_a_fingerprint_but_not_content():
    a = analyse_prompt("Solve the following problem and explain each step: A tank holds 30 litres.")
    b = analyse_prompt("Solve the following problem and explain each step: Bob reads 12 pages a day.")
    assert a.opening_fingerprint == b.opening_fingerprint
    assert a.content_fingerprint != b.content_fingerprint


def test_closing_instructions_are_fingerprinted_too():
    a = analyse_prompt("Here is a function that sorts a list.\nExplain how it works, step by step.")
    b = analyse_prompt("A rocket burns fuel at a constant rate.\nExplain how it works, step by step.")
    assert a.closing_fingerprint == b.closing_fingerprint
    assert a.opening_fingerprint != b.opening_fingerprint


def test_numbers_names_and_quotes_are_masked_in_templates():
    a = analyse_prompt('Write a biography of Alice Smith born 1901 titled "The Path": keep it short')
    b = analyse_prompt('Write a biography of Marco Rossi born 1950 titled "Wings": keep it short')
    assert a.opening_fingerprint == b.opening_fingerprint


@pytest.mark.parametrize(
    "prompt, kind",
    [
        ("Fix the bug in this Python function that parses dates", "coding"),
        ("```js\nconsole.log(1)\n```", "coding"),
        ("Prove that the square root of 2 is irrational", "math"),
        ("You have access to these tools: search, calculator. Plan the steps.", "agentic"),
        ("Classify the sentiment of this review: great phone", "extraction"),
        ("Translate this paragraph into Spanish", "translation"),
        ("Tell me a fun fact", "other"),
    ],
)
def test_task_kind(prompt, kind):
    assert TASK_KINDS[analyse_prompt(prompt).task_kind] == kind


def test_long_prompts_are_read_only_at_their_ends():
    filler = "lorem ipsum " * 5000
    traits = analyse_prompt("Explain step by step: " + filler + " What is the result?")
    assert traits.elicits_reasoning
