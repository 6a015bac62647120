"""What a prompt's text says about why it was sent: reasoning elicitation, template, task kind.

Prompt text is read here, reduced to a few flags and fingerprints, and never stored or emitted.
Only the first and last :data:`SCAN_CHARS` characters are read: instructions sit at the ends of
a prompt and pasted content in the middle, and the cost stays flat however long the prompt is.
Keyword sets are matched against the set of words, not with one regex per family: the regexes
cost ~60-170 µs per prompt here, the set look-ups a few µs.
"""

from __future__ import annotations

import re
import zlib
from typing import NamedTuple

SCAN_CHARS = 240
TEMPLATE_WORDS = 12

_REASONING_WORDS = frozenset(  # bytes, as produced by the word splitter
    "step steps reasoning think thinking thought chain cot rationale justify scratchpad "
    "derivation working logic monologue reason talk each every skip skipping just how".encode().split()
)
REASONING_ELICITATION = re.compile(
    r"step[\s-]*by[\s-]*step"
    r"|chain[\s-]of[\s-]thought|\bcot\b"
    r"|think(?:ing)? (?:through|aloud|out loud|carefully|it through)"
    r"|(?:show|explain|describe|outline|detail|write out|spell out|walk (?:me )?through|include)"
    r" (?:your |all (?:of )?(?:your |the )?|the |each |every |in detail (?:your |the )?)?"
    r"(?:full |complete |detailed |internal |intermediate )?"
    r"(?:work|working|reasoning|thought process|thinking|steps|derivation|rationale|logic)"
    r"|reasoning (?:behind|process|trace|steps)"
    r"|internal (?:reasoning|monologue|thoughts)"
    r"|thought process|scratch ?pad|<think>|let'?s think"
    r"|justify (?:each|every|your) step|before (?:answering|you answer)[^.]{0,40}reason"
    r"|reason (?:carefully|step|through)"
    r"|talk(?:ing)? (?:me )?through"
    r"|(?:full|complete|detailed|whole) (?:derivation|solution path|working|reasoning|explanation)"
    r"|(?:explain|justify|show|describe) (?:why |how )?(?:each|every) step|(?:each|every) step of your"
    r"|(?:don'?t|do not|without) skip(?:ping)? (?:any )?steps"
    r"|not just the (?:final )?answer"
    r"|how you (?:get|got|arrive|arrived|reach|reached) (?:there|at|the)"
)
"""Phrases (in lower case) that ask the model to spell out its reasoning: what distillers harvest."""

TASK_KINDS = ("coding", "math", "agentic", "extraction", "writing", "translation", "summary", "other")
"""Coarse capability families; extraction campaigns concentrate on one of the first three."""

_TASK_WORDS = tuple(
    frozenset(words.encode().split())
    for words in (
        "python javascript typescript java rust golang sql bash regex function class method compile "
        "debug bug stacktrace traceback algorithm code script endpoint refactor implement program",
        "solve equation prove proof integral derivative probability theorem calculate compute math "
        "maths mathematics geometry algebra lemma arithmetic",
        "tool tools agent observation action actions plan schema invoke api",
        "classify classification extract sentiment label categorize categorise entities",
        "write draft compose rewrite poem story essay email letter blog",
        "translate translation translated",
        "summarize summarise summary tldr",
    )
)

_QUOTED = re.compile(r"\"[^\"]{0,200}\"|'[^'\s][^']{0,200}'|`[^`]{0,200}`|“[^”]{0,200}”")
_DIGIT_RUN = re.compile(rb"#+")
_CLAUSE_END = re.compile(r"[:.?!;\n]")
_WORD_BYTES = bytes(c if 97 <= c <= 122 or 48 <= c <= 57 else 32 for c in range(256))
"""Lower-case ASCII letters and digits kept, everything else a space: a word splitter ~3x faster than re."""
_SKELETON_BYTES = bytes(
    c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 35 if 48 <= c <= 57 else 32 for c in range(256)
)
"""Letters lower-cased, digits masked to ``#``, everything else a space."""


class PromptTraits(NamedTuple):
    """What one prompt reveals, with its text already thrown away."""

    elicits_reasoning: bool
    task_kind: int
    """Index into :data:`TASK_KINDS`."""
    opening_fingerprint: int
    """CRC-32 of the masked skeleton of the opening clause (up to ``:``, ``.``, ``?`` or a newline)."""
    closing_fingerprint: int
    """CRC-32 of the masked skeleton of the closing clause."""
    content_fingerprint: int
    """CRC-32 of the whole text: equal only when the filled-in content repeats."""


def template_skeleton(clause: str) -> str:
    """Mask what varies between fills of one template: quoted spans, numbers, names.

    >>> template_skeleton('Solve "x+1=3" for Alice in 2 steps, then 10 more')
    'solve q for n in # steps then # more'
    """
    words = _QUOTED.sub(" q ", clause).split()[: TEMPLATE_WORDS + 4]
    words[1:] = ["n" if word[:1].isupper() else word for word in words[1:]]
    skeleton = _DIGIT_RUN.sub(b"#", " ".join(words).encode().translate(_SKELETON_BYTES))
    return " ".join(skeleton.decode("ascii").split()[:TEMPLATE_WORDS])


def _clause_fingerprint(clause: str) -> int:
    return zlib.crc32(template_skeleton(clause).encode())


def analyse_prompt(text: str) -> PromptTraits:
    """Reduce a prompt to its traits.

    Templates are recognised by their ends: an opening instruction ("Solve the following
    problem step by step: ...") or a closing one ("... Explain your reasoning."), so the first
    and the last clause are fingerprinted apart, each capped at :data:`TEMPLATE_WORDS` words.

    >>> a = analyse_prompt("Solve step by step: a train leaves Paris at 9 and travels 80 km")
    >>> b = analyse_prompt("Solve step by step: a tank holds 30 litres and leaks 2 an hour")
    >>> a.elicits_reasoning, a.opening_fingerprint == b.opening_fingerprint
    (True, True)
    >>> a.content_fingerprint == b.content_fingerprint, TASK_KINDS[a.task_kind]
    (False, 'math')
    """
    if len(text) > 2 * SCAN_CHARS:
        head, tail = text[:SCAN_CHARS], text[-SCAN_CHARS:]
        scanned = (head + "\n" + tail).lower()
    else:
        head = tail = text
        scanned = text.lower()
    words = set(scanned.encode().translate(_WORD_BYTES).split())
    task_kind = len(TASK_KINDS) - 1
    if "```" in scanned:  # a fenced code block is the surest sign of a coding task
        task_kind = 0
    else:
        for index, keywords in enumerate(_TASK_WORDS):
            if not words.isdisjoint(keywords):
                task_kind = index
                break
    elicits_reasoning = (
        not words.isdisjoint(_REASONING_WORDS) and REASONING_ELICITATION.search(scanned) is not None
    )
    opening = _CLAUSE_END.split(head.lstrip()[:200], 1)[0]
    closing = tail.rstrip(" \t\r\n.?!:;")[-200:]
    closing = closing[closing.rfind("\n") + 1 :]
    closing_at = max(closing.rfind("."), closing.rfind("?"), closing.rfind(":"), closing.rfind("!"))
    closing = closing[closing_at + 1 :]
    opening_fingerprint = _clause_fingerprint(opening)
    return PromptTraits(
        elicits_reasoning=elicits_reasoning,
        task_kind=task_kind,
        opening_fingerprint=opening_fingerprint,
        closing_fingerprint=opening_fingerprint if closing.strip() == opening.strip() else _clause_fingerprint(closing),
        content_fingerprint=zlib.crc32(text.encode("utf-8", "surrogatepass")),
    )
