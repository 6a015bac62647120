"""Text the simulated accounts send: real user prompts, fresh tasks, harvest wordings, wrappers.

Ordinary prompts are real first-turn and follow-up messages from ShareGPT, and token counts come
from Azure's 2023 LLM inference traces (sources and licences in ``detector/sim/data/README.md``).

What a distillation operator wants is the same whatever the wording: many *novel* tasks spread over
a capability area, each asked once, each answered at length. The tasks come from generators whose
space is large enough never to repeat (``CAPABILITIES``); the wording around them is drawn from the
tactic space (``HarvestPrompts``):

* ``reasoning``: asks for the chain of thought spelled out ("think step by step");
* ``plain_complete``: asks only for a complete solution, full production code, a thorough answer;
* ``tool_use``: an agent transcript (tools, calls, observations) to be continued to the end;
* ``rubric_grading``: a candidate answer to be graded criterion by criterion;

each with a paraphrase rate (fixed templates, some prompts reworded, every prompt reworded), an
optional wrapper (Markdown, JSON dataset rows, a system prompt) and, for some campaigns, asks in
other languages (Chinese, Russian, Spanish, German, French, Korean, Japanese, Arabic, Portuguese).

>>> from detector.sim.sampling import seeded
>>> rng = seeded(3, "doctest")
>>> prompts = HarvestPrompts.draw(rng, ("plain_complete",), ("coding",), "fixed_templates", "bare", ())
>>> "complete" in prompts.prompt(rng.random)[0].lower() or "full" in prompts.prompt(rng.random)[0].lower()
True
"""

from __future__ import annotations

import gzip
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import orjson

from detector.sim.sampling import between, hex_id, pick

_DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Corpus:
    """Real ShareGPT user messages and real Azure (context, generated) token pairs."""

    first_turn: tuple[str, ...]
    follow_up: tuple[str, ...]
    coding: tuple[str, ...]
    conv_tokens: tuple[tuple[int, int], ...]
    code_tokens: tuple[tuple[int, int], ...]


_CODING_WORDS = (
    "python", "javascript", "typescript", "code", "function", "error", "sql", "react", "java", "api",
    "bug", "class ", "script", "django", "flutter", "docker", "regex", "json", "c++", "rust",
)  # fmt: skip


@cache
def corpus() -> Corpus:
    """Loaded once per process: 1.2 MB of gzip."""
    prompts = orjson.loads(gzip.decompress((_DATA / "sharegpt_prompts.json.gz").read_bytes()))
    tokens = orjson.loads(gzip.decompress((_DATA / "azure_token_pairs.json.gz").read_bytes()))
    first = tuple(prompts["first_turn"])
    return Corpus(
        first_turn=first,
        follow_up=tuple(prompts["follow_up"]),
        coding=tuple(text for text in first if any(word in text.lower() for word in _CODING_WORDS)),
        conv_tokens=tuple(map(tuple, tokens["conv"])),
        code_tokens=tuple(map(tuple, tokens["code"])),
    )


# ---------------------------------------------------------------------------------------------
# Fresh tasks: the capability areas a distillation dataset spreads over

NAMES = (
    "Ava",
    "Ben",
    "Chen",
    "Dara",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lina",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
    "Zane",
    "Amara",
    "Bruno",
    "Carmen",
    "Dmitri",
    "Esra",
)
SURNAMES = (
    "Okafor",
    "Lindqvist",
    "Tanaka",
    "Moreau",
    "Silva",
    "Kowalski",
    "Haddad",
    "Nguyen",
    "Schmidt",
    "Rossi",
    "Patel",
    "Andersen",
    "Costa",
    "Yilmaz",
    "Murphy",
    "Ivanova",
)
_ITEMS = ("apples", "marbles", "tickets", "books", "coins", "stamps", "bottles", "pencils", "cards", "tiles")
CITIES = (
    "Lisbon",
    "Osaka",
    "Nairobi",
    "Denver",
    "Krakow",
    "Lima",
    "Hanoi",
    "Oslo",
    "Perth",
    "Montreal",
    "Seville",
    "Cairo",
    "Tallinn",
    "Busan",
    "Quito",
    "Accra",
)
PROGRAMMING_LANGUAGES = ("Python", "TypeScript", "Rust", "Go", "Java", "C++", "Kotlin", "C#")


def math_problem(rnd) -> str:
    """A word problem with fresh numbers: the space is large enough that contents never repeat."""
    kind = int(rnd() * 10)
    if kind == 0:
        n1, n2, n3 = pick(rnd, NAMES), pick(rnd, NAMES), pick(rnd, NAMES)
        item = pick(rnd, _ITEMS)
        return (
            f"{n1} has {between(rnd, 3, 900)} {item}. {n2} has {between(rnd, 2, 400)} more than {n1}, and {n3} "
            f"has {between(rnd, 2, 9)} times as many as {n2} minus {between(rnd, 1, 99)}. How many {item} do "
            f"they have together?"
        )
    if kind == 1:
        return (
            f"A tank holds {between(rnd, 200, 9000)} litres. It is filled at {between(rnd, 5, 90)} L/min and "
            f"drained at "
            f"{between(rnd, 1, 40)} L/min. Starting from {between(rnd, 0, 150)} litres, how long until it is full?"
        )
    if kind == 2:
        return (
            f"Find all pairs of non-negative integers (x, y) with {between(rnd, 2, 97)}x + {between(rnd, 2, 97)}y = "
            f"{between(rnd, 100, 999999)}."
        )
    if kind == 3:
        return (
            f"A bag holds {between(rnd, 1, 500)} red, {between(rnd, 1, 500)} green and {between(rnd, 1, 500)} "
            f"blue marbles. "
            f"{pick(rnd, NAMES)} draws {between(rnd, 3, 40)} without replacement. What is the probability that "
            f"exactly {between(rnd, 1, 3)} of them are red?"
        )
    if kind == 4:
        return (
            f"A coin lands heads with probability 0.{between(rnd, 100, 999)}. What is the probability of at least "
            f"{between(rnd, 2, 300)} heads in {between(rnd, 301, 5000)} tosses?"
        )
    if kind == 5:
        return (
            f"Let a_1 = {between(rnd, 1, 999)} and a_(n+1) = ({between(rnd, 2, 99)} * a_n + "
            f"{between(rnd, 1, 999)}) mod "
            f"{between(rnd, 101, 9973)}. Find a_{between(rnd, 10, 5000)}."
        )
    if kind == 6:
        return (
            f"A rectangle has perimeter {between(rnd, 20, 99999)} cm and its length is {between(rnd, 1, 9999)} "
            f"mm more than "
            f"its width. A square has the same area. Find the side of the square to {between(rnd, 2, 5)} "
            f"decimal places."
        )
    if kind == 7:
        return (
            f"Train A leaves {pick(rnd, CITIES)} at {between(rnd, 5, 11)}:{between(rnd, 0, 59):02d} at "
            f"{between(rnd, 60, 180)} km/h; "
            f"train B leaves {pick(rnd, CITIES)}, {between(rnd, 100, 2000)} km away, at {between(rnd, 6, 13)}:"
            f"{between(rnd, 0, 59):02d} at {between(rnd, 60, 180)} km/h towards A. When and where do they meet?"
        )
    if kind == 8:
        return (
            f"Solve the system: {between(rnd, 1, 30)}x + {between(rnd, 1, 30)}y - {between(rnd, 1, 30)}z = "
            f"{between(rnd, -99, 99)}, "
            f"{between(rnd, 1, 30)}x - {between(rnd, 1, 30)}y + {between(rnd, 1, 30)}z = {between(rnd, -99, 99)}, "
            f"x + y + z = {between(rnd, -50, 50)}."
        )
    return (
        f"An investment of ${between(rnd, 1, 900) * 100} grows at {between(rnd, 1, 12)}.{between(rnd, 0, 9)}% "
        f"compounded "
        f"{pick(rnd, ('monthly', 'quarterly', 'daily', 'yearly'))}. After how many years does it exceed "
        f"${between(rnd, 1000, 90000) * 10}?"
    )


CODING_TASKS = (
    "merges {k} sorted lists of integers into one sorted list",
    "parses a CSV line with quoted fields and escaped quotes and returns the fields",
    "returns the longest substring with at most {k} distinct characters",
    "implements an LRU cache with a capacity of {n} entries and O(1) operations",
    "finds the shortest path in a {k}x{n} grid with obstacles from the top-left to the bottom-right corner",
    "validates an IPv4 address and returns the reason when it is invalid",
    "computes the edit distance between two strings, counting adjacent transpositions as one edit",
    "schedules {n} jobs with deadlines and profits to maximise total profit",
    "serialises a binary tree to a string and parses it back",
    "rate-limits calls to {k} per {n} milliseconds with a token bucket",
    "detects a cycle in a directed graph of up to {n} nodes given as an adjacency list",
    "returns the {k}-th smallest element of an unsorted array in expected linear time",
    "computes a rolling median over a window of {k} values",
    "tokenises and evaluates arithmetic expressions with correct operator precedence and parentheses",
    "deduplicates customer records by fuzzy-matching names with a similarity threshold of 0.{k}",
    "splits a list of {n} tasks among {k} workers to minimise the maximum load",
    "finds all anagram groups in a list of up to {n} words",
    "implements a trie that supports insert, search and prefix counting for {n} words",
    "converts an integer below {n} to its English words representation",
    "computes the convex hull of {n} points in the plane",
)
_CODING_CONSTRAINTS = (
    "Aim for O(n log n) time.",
    "Do not use any third-party libraries.",
    "Include unit tests for the edge cases.",
    "It must handle inputs of up to {n} elements.",
    "Make it thread-safe.",
    "Avoid recursion.",
    "Use at most O({k}) extra memory.",
    "Add type annotations and docstrings.",
)
TOOLS = (
    "search_web(query)",
    "read_file(path)",
    "write_file(path, content)",
    "run_shell(cmd)",
    "http_get(url)",
    "sql_query(sql)",
    "send_email(to, subject, body)",
    "calendar_create(event)",
    "calculator(expression)",
    "browser_click(selector)",
)
TOOLSETS = tuple(", ".join(tools) for tools in itertools.combinations(TOOLS, 4))
_AGENT_TASKS = (
    "Find the three cheapest direct flights from {c1} to {c2} on 2026-{m:02d}-{d:02d} and book the one landing "
    "before {h}:00 within a budget of ${n}.",
    "The CI job 'test-{k}' fails on commit {sha}. Find the cause in the repository and propose a patch.",
    "Reconcile the {n} transactions in ledger_2025_{m:02d}.csv against the bank statement and list mismatches "
    "over ${k}.",
    "Migrate the table orders_{k} ({n} rows) to the new schema without downtime and verify the row counts.",
    "Plan a {d}-day trip to {c1} for {k} people with a budget of ${n} and create the calendar events.",
    "Triage issue #{n} in the payments-{k} repository: reproduce it, find the commit that introduced it and "
    "draft a fix.",
    "Collect the {k} most cited papers on {topic} since 20{d:02d}, summarise each and write a comparison table "
    "to report_{sha}.md.",
    "Monitor the endpoint /api/v{d}/status every {k} minutes and email on-call if the p95 latency exceeds {n} ms.",
)
TOPICS = (
    "speculative decoding",
    "graph neural networks",
    "battery chemistry",
    "protein folding",
    "carbon capture",
    "retrieval-augmented generation",
    "quantum error correction",
    "federated learning",
)


_SYSTEMS = (
    "a payments service",
    "a mobile game backend",
    "a log pipeline",
    "an inventory system",
    "a chat server",
    "a trading engine",
    "a hospital scheduling tool",
    "a web crawler",
    "a recommendation service",
    "a CLI tool",
)


def coding_task(rnd) -> str:
    size, count = between(rnd, 10, 100000), between(rnd, 2, 60)
    task = pick(rnd, CODING_TASKS).format(n=size, k=count)
    constraint = pick(rnd, _CODING_CONSTRAINTS).format(n=between(rnd, 1000, 10**7), k=count)
    return (
        f"Write a {pick(rnd, PROGRAMMING_LANGUAGES)} function that {task}. It runs in {pick(rnd, _SYSTEMS)}, "
        f"about {between(rnd, 2, 5000)} calls per second on inputs of up to {between(rnd, 100, 10**7)} items. "
        f"{constraint}"
    )


def agent_task(rnd) -> str:
    tools = pick(rnd, TOOLSETS)
    task = pick(rnd, _AGENT_TASKS).format(
        c1=pick(rnd, CITIES),
        c2=pick(rnd, CITIES),
        m=between(rnd, 1, 12),
        d=between(rnd, 1, 28),
        h=between(rnd, 8, 22),
        n=between(rnd, 100, 99999),
        k=between(rnd, 2, 99),
        sha=format(int(rnd() * 16**7), "07x"),
        topic=pick(rnd, TOPICS),
    )
    return f"Available tools: {tools}.\nTask: {task}"


_AUDIENCES = ("a beginner", "an expert", "a product manager", "a graduate student", "an interviewer", "a teenager")


def natural_task(rnd) -> str:
    """A real user's question, sometimes re-aimed: harvesting with natural data, not made-up tasks."""
    question = pick(rnd, corpus().first_turn)
    return question if rnd() < 0.5 else f"{question}\n(Answer for {pick(rnd, _AUDIENCES)}.)"


CAPABILITIES: dict[str, Callable] = {
    "math": math_problem,
    "coding": coding_task,
    "agentic": agent_task,
    "natural": natural_task,
}
"""Capability areas of harvested tasks: each generator gives a task that does not repeat."""


# ---------------------------------------------------------------------------------------------
# Harvest wordings

WORDINGS = ("reasoning", "plain_complete", "tool_use", "rubric_grading")

# Fixed English templates around a fresh task: what a scripted harvest sends.
HARVEST_TEMPLATES: dict[str, tuple[str, ...]] = {
    "reasoning": (
        "{content}\n\nThink step by step. Show your complete chain of thought, every intermediate step, "
        "before giving the final answer.",
        "Solve the following. First explain your reasoning in detail, step by step, then state the final answer."
        "\n\n{content}",
        "You are a world-class expert. {content}\nExplain the reasoning behind each decision and do not skip "
        "any steps.",
        "### Task\n{content}\n### Instructions\nReason step by step inside <thinking> tags, "
        "then give the answer inside <answer> tags.",
        "{content}\n\nWrite out your full reasoning process as a numbered list of steps, verify each step, "
        "then give the final answer.",
        "Let's think step by step.\n\n{content}\n\nShow all your work and justify every step.",
        "Provide a detailed, step-by-step solution with your reasoning for each step.\nProblem: {content}",
        "{content}\n\nRespond with: 1) your step-by-step reasoning, 2) the final solution, 3) a check of the solution.",
    ),
    "plain_complete": (
        "{content}\n\nGive the complete solution.",
        "Write the full production-ready code for this, no placeholders, no omissions.\n\n{content}",
        "{content}\n\nProvide a thorough, comprehensive answer covering every case.",
        "Task: {content}\nDeliver the complete, final implementation in one response.",
        "{content}\nAnswer fully and in detail. Do not summarise or leave anything out.",
        "Produce a complete, polished answer suitable for publication.\n\n{content}",
        "{content}\n\nI need the entire solution, end to end, with all code and explanations.",
        "Write a complete and exhaustive response to the following.\n{content}",
    ),
    "tool_use": (
        "{content}\n\nContinue this transcript to the end: every tool call with its arguments, then the final answer.",
        "You are an autonomous agent. {content}\nProduce the full sequence of tool calls and observations until done.",
        "{content}\n\nReply with the next tool calls as JSON, then the final result once the task is complete.",
        "Simulate a complete agent run for this task, including tool invocations and results.\n\n{content}",
        "{content}\nPlan, call the tools and finish the task. Show each call.",
    ),
    "rubric_grading": (
        "{content}\n\nGrade the response against each rubric criterion: a score and a justification for each, "
        "then the total.",
        "You are an expert grader. {content}\nScore every criterion from 0 to 5 with a detailed rationale.",
        "{content}\n\nEvaluate the candidate answer strictly by the rubric and explain each score.",
        "Act as a reviewer. Apply the rubric below and return per-criterion scores with reasons.\n\n{content}",
        "{content}\nWhich criteria does the response fail? Score it and justify every point.",
    ),
}

# The same asks in free wording, for paraphrased prompts.
HARVEST_ASKS: dict[str, tuple[str, ...]] = {
    "reasoning": (
        "walk me through your reasoning one step at a time",
        "explain each step of your thinking before you answer",
        "lay out your whole thought process and then give the answer",
        "reason it through carefully and show all the intermediate steps",
        "don't skip any steps, I want to see how you get there",
        "break it down and justify every step",
        "show how you'd think about it from first principles, step by step",
        "give me the full derivation, not just the answer",
        "think out loud and show me all of your reasoning",
        "go through it slowly and explain the logic at every stage",
    ),
    "plain_complete": (
        "give me the whole thing, complete and ready to use",
        "write it out in full, nothing left as an exercise",
        "make the answer as thorough as you can",
        "I need a finished, production-quality version",
        "cover it completely, with all the details",
        "send the full implementation, not a sketch",
        "answer comprehensively, as if for a textbook",
        "be exhaustive, I'll use this as reference material",
        "don't abbreviate anything, write the complete answer",
        "give a detailed and complete response",
    ),
    "tool_use": (
        "carry on as the agent until the task is done",
        "make the remaining tool calls and finish",
        "continue the run, showing each call and what came back",
        "act as the agent and complete the job with the tools listed",
        "keep calling tools until you can answer, then answer",
        "finish this agent trajectory",
    ),
    "rubric_grading": (
        "grade this against the rubric, criterion by criterion",
        "score the answer on each point and say why",
        "review the response with the rubric and justify the marks",
        "tell me how this answer does on every criterion",
        "mark it like an exam, explaining each deduction",
        "assess the response point by point against the criteria",
    ),
}
_OPENERS = ("", "", "", "Hey, ", "Hi! ", "Quick one: ", "I'm preparing for an interview. ", "Can you help? ",
            "Working on a side project. ", "For my notes: ")  # fmt: skip
_CLOSERS = ("", "", " Thanks!", " Put the final answer at the end.", " Be thorough.", " Take your time.",
            " Then double-check it.")  # fmt: skip

# Short asks in other languages: (reasoning, plain_complete, rubric_grading, tool_use), a few each.
HARVEST_LANGUAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "zh": {
        "reasoning": (
            "请一步一步地思考，写出完整的推理过程，然后给出最终答案。",
            "详细解释每一步的推理，不要跳过任何步骤。",
        ),
        "plain_complete": ("请给出完整的解决方案。", "请写出完整的生产级代码，不要省略任何部分。"),
        "rubric_grading": ("请根据评分标准逐项打分，并说明每一项的理由。",),
        "tool_use": ("请完成整个代理过程：列出每一次工具调用及其结果，最后给出答案。",),
    },
    "ru": {
        "reasoning": (
            "Рассуждай шаг за шагом и покажи весь ход мысли, затем дай окончательный ответ.",
            "Подробно объясни каждый шаг решения, ничего не пропуская.",
        ),
        "plain_complete": ("Дай полное решение.", "Напиши полный готовый к продакшену код без заглушек."),
        "rubric_grading": ("Оцени ответ по каждому критерию рубрики и обоснуй каждую оценку.",),
        "tool_use": ("Выполни задачу как агент: покажи каждый вызов инструмента и итоговый ответ.",),
    },
    "es": {
        "reasoning": (
            "Piensa paso a paso y muestra todo tu razonamiento antes de la respuesta final.",
            "Explica detalladamente cada paso, sin omitir nada.",
        ),
        "plain_complete": ("Dame la solución completa.", "Escribe el código completo, listo para producción."),
        "rubric_grading": ("Califica la respuesta según cada criterio de la rúbrica y justifica cada puntuación.",),
        "tool_use": ("Completa la tarea como agente: muestra cada llamada a herramientas y la respuesta final.",),
    },
    "de": {
        "reasoning": (
            "Denke Schritt für Schritt und zeige deinen vollständigen Gedankengang, bevor du antwortest.",
            "Erkläre jeden Schritt ausführlich und lass nichts aus.",
        ),
        "plain_complete": ("Gib die vollständige Lösung an.", "Schreibe den kompletten, produktionsreifen Code."),
        "rubric_grading": (
            "Bewerte die Antwort nach jedem Kriterium des Bewertungsschemas und begründe jede Punktzahl.",
        ),
        "tool_use": ("Löse die Aufgabe als Agent: zeige jeden Werkzeugaufruf und das Endergebnis.",),
    },
    "fr": {
        "reasoning": (
            "Réfléchis étape par étape et montre tout ton raisonnement avant la réponse finale.",
            "Explique chaque étape en détail, sans rien omettre.",
        ),
        "plain_complete": ("Donne la solution complète.", "Écris le code complet, prêt pour la production."),
        "rubric_grading": ("Note la réponse selon chaque critère de la grille et justifie chaque note.",),
        "tool_use": ("Réalise la tâche comme un agent : montre chaque appel d'outil et la réponse finale.",),
    },
    "ko": {
        "reasoning": (
            "단계별로 생각하고 전체 추론 과정을 보여준 뒤 최종 답을 제시하세요.",
            "각 단계를 자세히 설명하고 아무것도 생략하지 마세요.",
        ),
        "plain_complete": ("완전한 해답을 제시해 주세요.", "생략 없이 프로덕션 수준의 전체 코드를 작성해 주세요."),
        "rubric_grading": ("채점 기준의 각 항목별로 점수를 매기고 그 이유를 설명하세요.",),
        "tool_use": ("에이전트로서 작업을 완료하세요: 모든 도구 호출과 최종 답을 보여 주세요.",),
    },
    "ja": {
        "reasoning": (
            "ステップごとに考え、推論の過程をすべて示してから最終的な答えを書いてください。",
            "各ステップを省略せずに詳しく説明してください。",
        ),
        "plain_complete": ("完全な解答を示してください。", "省略のない本番品質のコードをすべて書いてください。"),
        "rubric_grading": ("評価基準の各項目について採点し、それぞれの理由を説明してください。",),
        "tool_use": ("エージェントとしてタスクを完了し、すべてのツール呼び出しと最終回答を示してください。",),
    },
    "ar": {
        "reasoning": (
            "فكّر خطوة بخطوة واعرض كامل خطوات استدلالك قبل الإجابة النهائية.",
            "اشرح كل خطوة بالتفصيل دون حذف أي شيء.",
        ),
        "plain_complete": ("أعطني الحل الكامل.", "اكتب الشيفرة الكاملة الجاهزة للإنتاج دون أي حذف."),
        "rubric_grading": ("قيّم الإجابة وفق كل معيار من معايير التقييم وبرّر كل درجة.",),
        "tool_use": ("نفّذ المهمة كوكيل: اعرض كل استدعاء للأدوات والإجابة النهائية.",),
    },
    "pt": {
        "reasoning": (
            "Pense passo a passo e mostre todo o seu raciocínio antes da resposta final.",
            "Explique cada etapa em detalhe, sem omitir nada.",
        ),
        "plain_complete": ("Dê a solução completa.", "Escreva o código completo, pronto para produção, sem omissões."),
        "rubric_grading": ("Avalie a resposta segundo cada critério da rubrica e justifique cada nota.",),
        "tool_use": ("Conclua a tarefa como um agente: mostre cada chamada de ferramenta e a resposta final.",),
    },
}

_RUBRIC_CRITERIA = (
    "Correctness of the final result (0-5)", "Completeness: every part of the task addressed (0-5)",
    "Clarity of the explanation (0-5)", "Efficiency of the approach (0-5)", "Handling of edge cases (0-5)",
    "Code style and readability (0-5)", "Use of evidence and sources (0-5)", "Safety and caveats (0-5)",
    "Faithfulness to the instructions (0-5)", "Conciseness (0-5)",
)  # fmt: skip
_CANDIDATE_OPENINGS = (
    "The answer is {n}. I started by restating the problem and then",
    "Here is my solution. The key observation is that",
    "def solve(xs):\n    # O(n) pass, {n} is the upper bound\n    return sorted(xs)[:{k}]",
    "First, note that the constraint gives {n}. Substituting back,",
    "I would call search_web first, then read the {k} top results and",
    "Result: {n}. This follows because the invariant holds after each of the {k} steps.",
)
_TRANSCRIPT_CALLS = (
    'search_web({{"query": "{topic} {n}"}})',
    'read_file({{"path": "src/{module}/{func}.py"}})',
    'run_shell({{"cmd": "pytest -q tests/test_{module}.py"}})',
    'http_get({{"url": "/api/v{k}/{module}"}})',
    'sql_query({{"sql": "SELECT count(*) FROM {module} WHERE id > {n}"}})',
    'calculator({{"expression": "{n} * {k}"}})',
)


def tool_transcript(rnd, task: str) -> str:
    """An agent transcript cut off mid-run: the continuation (calls and final answer) is what is harvested."""
    steps = []
    for _ in range(between(rnd, 1, 3)):
        call = pick(rnd, _TRANSCRIPT_CALLS).format(
            topic=pick(rnd, TOPICS), n=between(rnd, 2, 99999), k=between(rnd, 1, 9),
            module=pick(rnd, MODULES), func=pick(rnd, FUNCS),
        )  # fmt: skip
        steps.append(f"Assistant: <tool_call>{call}</tool_call>\nTool: {pick(rnd, tool_results())}")
    return f"System: tools available: {pick(rnd, TOOLSETS)}.\nUser: {task}\n" + "\n".join(steps)


def rubric_case(rnd, task: str) -> str:
    """A task, a candidate answer and a rubric: the grading, with its justifications, is what is harvested."""
    criteria = "\n".join(
        f"{i + 1}. {c}" for i, c in enumerate(random.Random(int(rnd() * 2**32)).sample(_RUBRIC_CRITERIA, 4))
    )
    candidate = pick(rnd, _CANDIDATE_OPENINGS).format(n=between(rnd, 2, 99999), k=between(rnd, 2, 50))
    return f"Task: {task}\n\nCandidate response:\n{candidate} ...\n\nRubric:\n{criteria}"


WRAPPERS = ("bare", "markdown", "json", "system_prompt")


def _wrap_markdown(rnd, prompt: str) -> str:
    return f"## Request\n{prompt}\n\n## Output\nMarkdown, complete, no truncation."


def _wrap_json(rnd, prompt: str) -> str:
    row = {"id": hex_id_from(rnd), "instruction": prompt, "response_format": "full"}
    return orjson.dumps(row).decode()


def hex_id_from(rnd) -> str:
    return format(int(rnd() * 2**40), "010x")


_WRAP = {"bare": None, "markdown": _wrap_markdown, "json": _wrap_json, "system_prompt": None}
PARAPHRASE_RATES = {"fixed_templates": 0.0, "some_reworded": 0.5, "all_reworded": 1.0}


class HarvestPrompts:
    """One campaign's way of asking: its wordings, templates, paraphrase rate, wrapper and languages.

    ``prompt(rnd)`` returns a prompt around a fresh task and the system prompt hash sent with it
    (or None): whatever the wording, each prompt asks for a long, complete answer to a new task.
    """

    __slots__ = ("wordings", "capabilities", "templates", "paraphrase", "wrap", "system_hashes", "languages",
                 "language_share", "foreign_asks")  # fmt: skip

    def __init__(self, wordings, capabilities, templates, paraphrase, wrapper, system_hashes, languages, share):
        self.wordings = wordings
        self.capabilities = tuple(CAPABILITIES[name] for name in capabilities)
        self.templates = templates
        self.paraphrase = paraphrase
        self.wrap = _WRAP[wrapper]
        self.system_hashes = system_hashes
        self.languages = languages
        self.language_share = share
        self.foreign_asks = {
            wording: tuple(ask for language in languages for ask in HARVEST_LANGUAGES[language][wording])
            for wording in wordings
        }

    @classmethod
    def draw(cls, rng: random.Random, wordings, capabilities, paraphrase: str, wrapper: str, languages):
        """The campaign's own template subset, system prompts and language share, drawn by ``rng``."""
        templates = {
            wording: tuple(rng.sample(HARVEST_TEMPLATES[wording], between(rng.random, 2, 4))) for wording in wordings
        }
        hashes = tuple(hex_id(rng, 16) for _ in range(between(rng.random, 1, 3))) if wrapper == "system_prompt" else ()
        share = 0.3 + 0.7 * rng.random() if languages else 0.0
        return cls(tuple(wordings), tuple(capabilities), templates, PARAPHRASE_RATES[paraphrase], wrapper, hashes,
                   tuple(languages), share)  # fmt: skip

    def prompt(self, rnd) -> tuple[str, str | None]:
        wording = pick(rnd, self.wordings)
        task = pick(rnd, self.capabilities)(rnd)
        if wording == "tool_use":
            task = tool_transcript(rnd, task)
        elif wording == "rubric_grading":
            task = rubric_case(rnd, task)
        if self.language_share and rnd() < self.language_share:
            ask = pick(rnd, self.foreign_asks[wording])
            text = f"{task}\n\n{ask}" if rnd() < 0.7 else f"{ask}\n\n{task}"
        elif self.paraphrase and rnd() < self.paraphrase:
            text = reword(rnd, pick(rnd, HARVEST_ASKS[wording]), task)
        else:
            text = pick(rnd, self.templates[wording]).replace("{content}", task)
        if self.wrap is not None:
            text = self.wrap(rnd, text)
        return text, (pick(rnd, self.system_hashes) if self.system_hashes else None)


def reword(rnd, ask: str, task: str) -> str:
    """One of several sentence shapes around an ask: no fixed prefix or suffix to match on."""
    opener, closer = pick(rnd, _OPENERS), pick(rnd, _CLOSERS)
    form = int(rnd() * 4)
    if form == 0:
        return f"{opener}{task} Please {ask}.{closer}"
    if form == 1:
        return f"{opener}Could you {ask}? {task}{closer}"
    if form == 2:
        return f"{task}\n\n{ask[0].upper()}{ask[1:]}.{closer}"
    return f"{opener}{ask[0].upper()}{ask[1:]}:\n{task}{closer}"


# ---------------------------------------------------------------------------------------------
# Benign text: homework, launch-day tests, product wrappers, agents' tool results, batch jobs, eval suites

# Benign requests for reasoning: homework and launch-day testing look like extraction in wording.
HOMEWORK_FORMS = (
    "Explain step by step how to solve this: {p}",
    "{p} Can you show your work?",
    "Can you walk me through this problem step by step? {p}",
    "{p}",
    "help me with my homework: {p}",
    "I got a different answer than the book. {p} Please explain the reasoning.",
)
HOMEWORK_FOLLOW_UPS = (
    "I don't get step 2, can you explain it differently?",
    "why did you multiply there?",
    "can you check my answer? I got a different number",
    "ok what if the numbers were different",
    "thanks! can you give me a similar practice problem",
    "explain it simpler please",
    "wait, where did that formula come from?",
    "is there a faster way to do this on the exam?",
)
LAUNCH_TESTS = (
    "What can you do that the previous version couldn't?",
    "Solve this step by step and show your reasoning: {m}",
    "{c}",
    "Give me a hard riddle and then explain the solution step by step.",
    "Write a short story in exactly 100 words about a lighthouse keeper.",
    "Explain {t} like I'm five.",
)

CHAT_WRAPPERS = (
    # (system prompt name, wrapper): shared by the users of one popular tool
    (
        "web-search-assistant",
        "Answer the question using only these search results. Cite them as [n].\n\n"
        "[1] {s1}\n[2] {s2}\n[3] {s3}\n\nQuestion: {q}",
    ),
    ("browser-extension-rewrite", "Rewrite the following to sound clear and professional. Keep the meaning.\n\n{q}"),
    ("notes-app-assistant", "You are a helpful assistant inside a notes app. The user's note:\n---\n{s1}\n---\n{q}"),
)

_TOOL_RESULTS = (
    "run_tests: {a} failed, {b} passed in {c}.{d}s\nFAILED tests/test_{m}.py::test_{f} - AssertionError: "
    "expected {a} == {b}",
    "read_file src/{m}/{f}.py ({b} lines)",
    'grep -rn "{f}" src/ -> {a} matches in {d} files',
    "run_shell: npm run build\nerror TS2345: Argument of type 'string' is not assignable to parameter of type "
    "'number'. ({m}/{f}.ts:{b}:{a})",
    "apply_patch: {a} hunks applied to src/{m}/{f}.py",
    "run_shell: pytest -x -q\n{b} passed, {a} warnings in {c}.{d}s",
    "git diff --stat: {a} files changed, {b} insertions(+), {c} deletions(-)",
    "read_file docs/{m}.md ({b} lines)",
)
MODULES = ("billing", "auth", "api", "models", "search", "ingest", "utils", "scheduler", "cache", "reports")
FUNCS = ("parse_header", "refresh_token", "retry", "to_json", "merge", "validate", "handler", "paginate", "render")
DEV_TASKS = (
    "Fix the failing tests in tests/test_{m}.py",
    "Add pagination to the /api/{m} endpoint",
    "Refactor src/{m}/{f}.py to remove the duplicated retry logic",
    "Why does {f} return None for empty input? Fix it.",
    "Add type hints to the {m} package and make mypy pass",
    "Write tests for {f} covering the edge cases",
    "Upgrade the {m} service to the new SDK and fix the breaking changes",
)


@cache
def tool_results() -> tuple[str, ...]:
    """Tool outputs fed back to coding agents; they repeat in real loops too, so a fixed pool will do."""
    rnd = random.Random(1999).random
    return tuple(
        pick(rnd, _TOOL_RESULTS).format(
            a=between(rnd, 1, 9),
            b=between(rnd, 10, 900),
            c=between(rnd, 1, 90),
            d=between(rnd, 0, 9),
            m=pick(rnd, MODULES),
            f=pick(rnd, FUNCS),
        )
        for _ in range(3000)
    )


# Enterprise batch templates: (name, template, output tokens (low, high), max_tokens)
BATCH_TASKS = (
    (
        "sentiment",
        "Classify the sentiment of this product review as positive, negative or neutral. Reply with one "
        "word.\n\nReview: {x}",
        (1, 2),
        5,
    ),
    (
        "invoice",
        "Extract the following fields from the invoice as JSON: vendor, invoice_number, date, total, "
        "currency.\n\nInvoice:\n{x}",
        (40, 90),
        256,
    ),
    (
        "ticket",
        "Route this support ticket to one of: billing, technical, account, sales, other. Answer with the "
        "category only.\n\nTicket: {x}",
        (1, 3),
        8,
    ),
    (
        "redact",
        "Redact all personal names and phone numbers in the text below, replacing each with [REDACTED]. Return "
        "only the text.\n\n{x}",
        (30, 90),
        200,
    ),
    (
        "category",
        "Assign the product to a category from our taxonomy (at most 3 levels, separated by ' > ').\n\n{x}",
        (6, 18),
        32,
    ),
    ("summary", "Summarise this customer call in at most two sentences.\n\n{x}", (25, 60), 120),
)
PRODUCTS = (
    "blender",
    "running shoes",
    "headphones",
    "desk lamp",
    "backpack",
    "coffee grinder",
    "phone case",
    "air fryer",
    "office chair",
    "water bottle",
    "keyboard",
    "tent",
    "toaster",
    "monitor",
    "drill",
)
_OPINIONS = (
    "stopped working after {n} days",
    "is exactly as described",
    "arrived broken",
    "exceeded my expectations",
    "is okay for the price",
    "feels cheap",
    "is the best purchase I made this year",
    "was returned after {n} weeks",
    "works but the app keeps crashing",
    "is louder than I expected",
    "has a battery that lasts {n} hours",
)
_DETAILS = (
    "Delivery took {n} days.",
    "Customer service never replied.",
    "Would buy again.",
    "Two stars.",
    "My kids love it.",
    "The manual is useless.",
    "Five stars!",
    "Setup took {n} minutes.",
    "",
)
_ISSUES = (
    "I was charged twice for order {n}",
    "the login page shows error {n}",
    "how do I add a second user",
    "please cancel my subscription",
    "the export to CSV is missing column {n}",
    "do you offer volume pricing",
    "my invoice {n} has the wrong VAT number",
    "the API returns 502 since this morning",
)


def batch_input(rnd, task: str) -> str:
    number = between(rnd, 2, 9999)
    if task == "sentiment":
        return (
            f"The {pick(rnd, PRODUCTS)} {pick(rnd, _OPINIONS).format(n=number % 60 + 1)}. "
            f"{pick(rnd, _DETAILS).format(n=number % 14 + 1)}"
        )
    if task == "invoice":
        return (
            f"{pick(rnd, SURNAMES)} {pick(rnd, ('GmbH', 'Ltd', 'S.A.', 'Inc.', 'AB'))}\nInvoice no. INV-{number:05d}\n"
            f"Date: 2026-{between(rnd, 1, 2):02d}-{between(rnd, 1, 28):02d}\n{between(rnd, 1, 40)} x "
            f"{pick(rnd, PRODUCTS)} @ {between(rnd, 5, 900)}.{between(rnd, 0, 99):02d}\n"
            f"Total due: {between(rnd, 50, 90000)}.{between(rnd, 0, 99):02d} {pick(rnd, ('EUR', 'USD', 'GBP', 'SEK'))}"
        )
    if task == "ticket":
        return f"Hi, {pick(rnd, _ISSUES).format(n=number)}. {pick(rnd, ('Thanks.', 'Urgent!', 'Regards', ''))}"
    if task == "redact":
        return (
            f"Call {pick(rnd, NAMES)} {pick(rnd, SURNAMES)} on +1 555 {number:04d} about the {pick(rnd, PRODUCTS)} "
            f"order; {pick(rnd, NAMES)} from accounting approved it."
        )
    if task == "category":
        return (
            f"Title: {pick(rnd, ('Pro', 'Ultra', 'Eco', 'Mini', 'Max'))} {pick(rnd, PRODUCTS)} {number}\n"
            f"Description: {pick(rnd, _OPINIONS).format(n=number % 60 + 1)}."
        )
    return (
        f"Agent: Thank you for calling, this is {pick(rnd, NAMES)}. Customer: {pick(rnd, _ISSUES).format(n=number)}. "
        f"Agent: I've {pick(rnd, ('refunded it', 'escalated it', 'reset it', 'updated it'))}. Customer: thanks."
    )


EVAL_FORMS = (
    ("Question: {m}\nLet's think step by step.", True),
    ("Solve the problem. Show your reasoning step by step, then write the final answer after 'Answer:'.\n\n{m}", True),
    ("Question: What is {a} * {b}?\nA) {c}\nB) {p}\nC) {q}\nD) {r}\nAnswer with the letter only.", False),
    ('Complete the following function. Return only code.\n\ndef f(xs):\n    """{t}"""\n', False),
)


# Products built on the API wrap their end users' questions in their own prompt.
PRODUCT_WRAPPERS = {
    "markdown": "## Role\nYou are {brand}'s assistant. Give a thorough, complete answer.\n\n## Customer question\n{q}",
    "json": '{{"app": "{brand}", "user_query": {qj}, "style": "detailed", "locale": "{locale}"}}',
    "system_prompt": "{q}",
    "bare": "{q}",
}
BRANDS = ("Lexio", "CodeNest", "Tutorly", "MarketMind", "Docsy", "HelpHub", "Quill", "StudyBee", "DevPilot", "Askly")
TUTORING_FORMS = (
    "Explain step by step how to solve this, as a tutor would: {p}",
    "Student question: {p}\nGive a complete worked solution with every step explained.",
    "{p}\n\nShow the full reasoning a student needs, step by step, then the answer.",
)
CONTENT_FORMS = (
    "Write a complete, thorough blog article about {t} for {a}. At least 1,500 words.",
    "Draft a full product description and FAQ for a {x}. Cover everything a buyer asks.",
    "Write a detailed, comprehensive guide to {t}, with sections and examples.",
    "Produce a complete lesson plan on {t} for {a}, with exercises and answers.",
)
