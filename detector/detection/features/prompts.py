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
    b"step steps reasoning think thinking thought chain cot rationale justify scratchpad "
    b"derivation working logic monologue reason talk each every skip skipping just how".split()
)
"""A prompt without one of these words does not count as eliciting reasoning: two in three skip the regex."""

_SPELL_OUT = (
    r" (?:your |all (?:of )?(?:your |the )?|the |each |every |in detail (?:your |the )?)?"
    r"(?:full |complete |detailed |internal |intermediate )?"
    r"(?:work|working|reasoning|thought process|thinking|steps|derivation|rationale|logic)"
)
_REASONING_PHRASES = (
    r"step[\s-]*by[\s-]*step",
    r"chain[\s-]of[\s-]thought",
    r"c(?<!\wc)ot\b",  # the word "cot": \bcot\b, with the boundary checked after the literal c
    r"think(?:ing)? (?:through|aloud|out loud|carefully|it through)",
    *(
        verb + _SPELL_OUT
        for verb in (
            "show",
            "explain",
            "describe",
            "outline",
            "detail",
            "write out",
            "spell out",
            "walk (?:me )?through",
            "include",
        )
    ),
    r"reasoning (?:behind|process|trace|steps)",
    r"internal (?:reasoning|monologue|thoughts)",
    r"thought process",
    r"scratch ?pad",
    r"<think>",
    r"let'?s think",
    r"justify (?:each|every|your) step",
    r"before (?:answering|you answer)[^.]{0,40}reason",
    r"reason (?:carefully|step|through)",
    r"talk(?:ing)? (?:me )?through",
    *(
        adjective + r" (?:derivation|solution path|working|reasoning|explanation)"
        for adjective in ("full", "complete", "detailed", "whole")
    ),
    *(verb + r" (?:why |how )?(?:each|every) step" for verb in ("explain", "justify", "show", "describe")),
    r"each step of your",
    r"every step of your",
    *(verb + r" skip(?:ping)? (?:any )?steps" for verb in ("don'?t", "do not", "without")),
    r"not just the (?:final )?answer",
    r"how you (?:get|got|arrive|arrived|reach|reached) (?:there|at|the)",
)
"""Phrases (in lower case) that ask the model to spell out its reasoning: what distillers harvest.

Each starts with a literal character, so that :func:`_by_first_character` can group them."""


def _by_first_character(phrases: tuple[str, ...]) -> re.Pattern:
    """One regex for ``phrases``, grouped by their first character: ``s(?:tep..|how..)|c(?:hain..)``.

    ``re`` then scans in C for a character some phrase starts with and tries one group there,
    instead of every phrase at every position: ~7 µs per prompt instead of ~27 µs.
    """
    groups: dict[str, list[str]] = {}
    for phrase in phrases:
        groups.setdefault(phrase[0], []).append(phrase[1:])
    return re.compile("|".join(f"{first}(?:{'|'.join(rests)})" for first, rests in groups.items()))


REASONING_ELICITATION = _by_first_character(_REASONING_PHRASES)

_FOREIGN_REASONING = (
    "一步一步",
    "逐步",
    "分步",
    "推理过程",
    "思考过程",
    "详细解释",
    "詳細",
    "ステップ",
    "段階的",
    "推論",
    "考え方",
    "단계별",
    "단계적",
    "추론",
    "자세히",
    "шаг за шагом",
    "пошагов",
    "рассужден",
    "подробн",
    "paso a paso",
    "razonamiento",
    "detalladamente",
    "passo a passo",
    "raciocínio",
    "detalhadamente",
    "schritt für schritt",
    "schrittweise",
    "gedankengang",
    "begründe",
    "étape par étape",
    "raisonnement",
    "en détail",
    "passo dopo passo",
    "ragionamento",
    "adım adım",
    "từng bước",
    "خطوة بخطوة",
    "بالتفصيل",
    "चरण दर चरण",
)
"""Reasoning requests in other languages, as substrings (most of these scripts have no spaces to
split words on). Harvesting operators coerce reasoning traces in many languages; this list raises
confidence and explains an alert, it never decides one: the shape of the traffic does."""
_FOREIGN_COMPLETE_WORK = (
    "完整",
    "全部代码",
    "完全な",
    "完成した",
    "전체 코드",
    "완전한",
    "полное решение",
    "полный код",
    "целиком",
    "solución completa",
    "código completo",
    "solução completa",
    "vollständig",
    "solution complète",
    "code complet",
    "soluzione completa",
    "codice completo",
    "الحل الكامل",
)
_FOREIGN: tuple[tuple[str, ...], ...] = (_FOREIGN_REASONING, _FOREIGN_COMPLETE_WORK)
_FOREIGN_ASCII = tuple(tuple(phrase for phrase in phrases if phrase.isascii()) for phrases in _FOREIGN)
"""An ASCII prompt can only hold the ASCII phrases, and only when it has one of :data:`_FOREIGN_ASCII_WORDS`."""
_COMPLETE_WORK_PHRASES = (
    *(
        adjective + r" (?:\w+ )?(?:solution|implementation|code|program|answer|response|explanation|treatment|"
        r"walkthrough|write-?up|guide|analysis|essay|proof|module|script|app|application)"
        for adjective in (
            "complete",
            "full",
            "entire",
            "whole",
            "finished",
            "fully[ -]working",
            "working",
            "production[ -](?:ready|quality|grade)",
            "comprehensive",
            "exhaustive",
            "thorough",
            "detailed",
            "in[ -]depth",
            "polished",
            "end[ -]to[ -]end",
        )
    ),
    *(
        verb + r" (?:the|this|each|these|following)\b[^.]{0,60}(?:response|answer|output|essay|submission|completion)"
        for verb in ("grade", "score", "rate", "evaluate", "assess")
    ),
    r"rubric",
    r"tool[ _-]?call",
    r"function[ _-]?call",
    r"available tools",
    r"call the (?:tool|function)",
    r"do not (?:omit|truncate|abbreviate)",
    r"don'?t (?:omit|truncate|abbreviate|leave out)",
    r"no placeholders",
    r"leave nothing out",
    r"cover every",
)
_COMPLETE_WORK = _by_first_character(_COMPLETE_WORK_PHRASES)
_COMPLETE_WORK_WORDS = frozenset(
    b"complete full entire whole finished working production comprehensive exhaustive thorough detailed depth "
    b"polished end grade score rate evaluate assess rubric tool tools function omit truncate abbreviate "
    b"placeholders nothing cover".split()
)
"""A prompt without one of these words does not ask for finished work: most skip the regex."""
_FOREIGN_ASCII_WORDS = frozenset(
    b"paso passo razonamiento detalladamente detalhadamente schrittweise gedankengang ragionamento complet "
    b"completa completo".split()
)
"""Requests for finished work rather than reasoning: a complete solution, production code, a
thorough answer, a graded rubric, tool use. What operators harvest besides chains of thought."""

TASK_KINDS = ("coding", "math", "agentic", "extraction", "writing", "translation", "summary", "other")
"""Coarse capability families; extraction campaigns concentrate on one of the first three."""
_OTHER = len(TASK_KINDS) - 1

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

_KIND_OF_KEYWORD = {word: kind for kind in reversed(range(len(_TASK_WORDS))) for word in _TASK_WORDS[kind]}
"""Task keyword → the first family that lists it (the families are tried in order)."""
_KEYWORDS = frozenset(_KIND_OF_KEYWORD) | _REASONING_WORDS | _COMPLETE_WORK_WORDS | _FOREIGN_ASCII_WORDS
"""Every word the analysis looks for: one set intersection finds them all."""

_QUOTED = re.compile(r"\"[^\"]{0,200}\"|'[^'\s][^']{0,200}'|`[^`]{0,200}`|“[^”]{0,200}”")
_DIGIT_RUN = re.compile(rb"#+")
_OPENING_CLAUSE = re.compile(r"[^:.?!;\n]*")
_WORD_BYTES = bytes(c if 97 <= c <= 122 or 48 <= c <= 57 else 32 for c in range(256))
"""Lower-case ASCII letters and digits kept, everything else a space: a word splitter ~3x faster than re."""
_SKELETON_BYTES = bytes(
    c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 35 if 48 <= c <= 57 else 32 for c in range(256)
)
"""Letters lower-cased, digits masked to ``#``, everything else a space."""


class PromptTraits(NamedTuple):
    """What one prompt reveals, with its text already thrown away."""

    elicits_reasoning: bool
    """Asks for the reasoning to be spelled out, in English or another language."""
    asks_complete_work: bool
    """Asks for finished work: a complete solution or program, a thorough answer, a grading, tool use."""
    task_kind: int
    """Index into :data:`TASK_KINDS`."""
    opening_fingerprint: int
    """CRC-32 of the masked skeleton of the opening clause (up to ``:``, ``.``, ``?`` or a newline)."""
    closing_fingerprint: int
    """CRC-32 of the masked skeleton of the closing clause."""
    content_fingerprint: int
    """CRC-32 of the whole text: equal only when the filled-in content repeats."""


def template_skeleton(clause: str) -> bytes:
    """Mask what varies between fills of one template: quoted spans, numbers, names.

    >>> template_skeleton('Solve "x+1=3" for Alice in 2 steps, then 10 more')
    b'solve q for n in # steps then # more'
    """
    words = _QUOTED.sub(" q ", clause).split()[: TEMPLATE_WORDS + 4]
    joined = " ".join(words)
    after_first = joined[len(words[0]) if words else 0 :]
    # A name is a capitalised word after the first; ASCII text without capitals has none to mask.
    if not (after_first.isascii() and after_first == after_first.lower()):
        words[1:] = ["n" if word[:1].isupper() else word for word in words[1:]]
        joined = " ".join(words)
    skeleton = joined.encode().translate(_SKELETON_BYTES)
    if b"##" in skeleton:
        skeleton = _DIGIT_RUN.sub(b"#", skeleton)
    return b" ".join(skeleton.split()[:TEMPLATE_WORDS])


_MEMO_SIZE = 16_384
_fingerprint_memo: dict[int, int] = {}
"""``hash(clause)`` → its fingerprint, for recently seen clauses (~1.5 MB at most).

Templated traffic sends the same clause ends over and over (three in four in the bench
workload), and a look-up costs ~0.1 µs against ~4 µs for :func:`template_skeleton`. Keyed by
the string's 64-bit hash, not the clause, so no prompt text is kept."""


def clause_fingerprint(clause: str) -> int:
    """CRC-32 of the clause's :func:`template_skeleton`, remembered for recently seen clauses."""
    key = hash(clause)
    fingerprint = _fingerprint_memo.get(key)
    if fingerprint is None:
        if len(_fingerprint_memo) >= _MEMO_SIZE:
            _fingerprint_memo.clear()  # cheaper than tracking recency; the templates in use return at once
        fingerprint = _fingerprint_memo[key] = zlib.crc32(template_skeleton(clause))
    return fingerprint


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
    keywords = _KEYWORDS.intersection(scanned.encode().translate(_WORD_BYTES).split())
    if "```" in scanned:  # a fenced code block is the surest sign of a coding task
        task_kind = 0
    else:
        task_kind = min([_KIND_OF_KEYWORD.get(word, _OTHER) for word in keywords], default=_OTHER)
    elicits_reasoning = not keywords.isdisjoint(_REASONING_WORDS) and REASONING_ELICITATION.search(scanned) is not None
    asks_complete_work = not keywords.isdisjoint(_COMPLETE_WORK_WORDS) and _COMPLETE_WORK.search(scanned) is not None
    foreign: tuple[tuple[str, ...], ...] | None
    if not scanned.isascii():
        foreign = _FOREIGN
    elif not keywords.isdisjoint(_FOREIGN_ASCII_WORDS):
        foreign = _FOREIGN_ASCII
    else:
        foreign = None
    if foreign is not None:
        elicits_reasoning = elicits_reasoning or any(phrase in scanned for phrase in foreign[0])
        asks_complete_work = asks_complete_work or any(phrase in scanned for phrase in foreign[1])
    clause = _OPENING_CLAUSE.match(head.lstrip()[:200])
    assert clause is not None  # a run of zero or more characters: it matches any text
    opening = clause.group()
    closing = tail.rstrip(" \t\r\n.?!:;")[-200:]
    closing = closing[closing.rfind("\n") + 1 :]
    closing_at = max(closing.rfind("."), closing.rfind("?"), closing.rfind(":"), closing.rfind("!"))
    closing = closing[closing_at + 1 :]
    opening_fingerprint = clause_fingerprint(opening)
    closing_fingerprint = opening_fingerprint if closing.strip() == opening.strip() else clause_fingerprint(closing)
    return PromptTraits(
        elicits_reasoning,
        asks_complete_work,
        task_kind,
        opening_fingerprint,
        closing_fingerprint,
        zlib.crc32(text.encode("utf-8", "surrogatepass")),
    )
