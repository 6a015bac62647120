"""Benign families: ordinary users and the look-alikes that resemble a distillation campaign in some respect.

Each family is built to look like an attack in one way, so that no single signal separates the two:
students, tutoring apps and eval suites ask for step-by-step reasoning; content apps and API
products ask for complete, thorough, long answers, single-turn and round the clock; a university
sits behind one NAT; a company's developers share one card; thousands of accounts share an SDK's
user agent; batch jobs are templated; a launch-day crowd rushes to a new model; coding agents send
tool transcripts all day. What they keep that a harvest does not: ordinary users converse, repeat
themselves and keep human hours; products are one long-lived account with stable volume and
history; eval suites re-run a fixed set of prompts.

Every family's parameters are a frozen dataclass drawn by the scenario's seed (recorded in the
labels), so a detector tuned on one run is tested on variants of it. ``BENIGN_MIX`` is how many
accounts each family has at ``Scenario.scale`` 1.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from detector.sim.accounts import Account, ChatUser, Emitter, Population, interleave, session_starts
from detector.sim.clients import (
    BROWSER_CLIENTS,
    CLIENT_WEIGHTS,
    DATACENTER_OCTETS,
    HUMAN,
    POPULAR_SDK_USER_AGENT,
    RESIDENTIAL_OCTETS,
    STUDENT,
    TIMEZONES,
    TLS,
    WORLD,
    address,
    subnet,
    working_rhythm,
)
from detector.sim.corpora import (
    BATCH_TASKS,
    BRANDS,
    CHAT_WRAPPERS,
    CODING_TASKS,
    CONTENT_FORMS,
    DEV_TASKS,
    EVAL_FORMS,
    FUNCS,
    LAUNCH_TESTS,
    MODULES,
    PRODUCT_WRAPPERS,
    PRODUCTS,
    TOPICS,
    TUTORING_FORMS,
    batch_input,
    coding_task,
    corpus,
    math_problem,
    rubric_case,
    tool_results,
)
from detector.sim.sampling import (
    DAY,
    HOUR,
    between,
    exponential,
    fingerprint,
    hex_id,
    lognormal,
    pick,
    seeded,
    uniform,
    weighted,
)
from detector.sim.scenario import MODEL_CURRENT, MODEL_NEW, MODEL_SMALL


@dataclass(frozen=True)
class OrdinaryChatParameters:
    """What a scenario draws for its ordinary chat accounts as a whole."""

    sessions_per_day_median: float
    turns_mean: float
    new_model_adopters: float
    template_wrapper_share: float
    prompt_not_logged_share: float
    ip_not_logged_share: float

    @classmethod
    def draw(cls, rnd) -> OrdinaryChatParameters:
        return cls(
            sessions_per_day_median=0.8 + 1.6 * rnd(),
            turns_mean=1.8 + 1.2 * rnd(),
            new_model_adopters=0.08 + 0.17 * rnd(),
            template_wrapper_share=0.06 + 0.14 * rnd(),
            prompt_not_logged_share=0.03 + 0.07 * rnd(),
            ip_not_logged_share=0.02 + 0.05 * rnd(),
        )


@dataclass(frozen=True)
class CodingAgentParameters:
    """What a scenario draws for its coding agent accounts as a whole."""

    requests_per_day_median: float
    tool_loop_turns_mean: float
    late_night_share: float
    new_model_adopters: float

    @classmethod
    def draw(cls, rnd) -> CodingAgentParameters:
        return cls(
            requests_per_day_median=500 + 1000 * rnd(),
            tool_loop_turns_mean=8 + 10 * rnd(),
            late_night_share=0.1 + 0.25 * rnd(),
            new_model_adopters=0.3 + 0.5 * rnd(),
        )


@dataclass(frozen=True)
class EnterpriseBatchParameters:
    """What a scenario draws for its enterprise batch accounts as a whole."""

    nightly_requests_median: float
    window_hours_median: float
    zero_retention_share: float

    @classmethod
    def draw(cls, rnd) -> EnterpriseBatchParameters:
        return cls(
            nightly_requests_median=3000 + 6000 * rnd(),
            window_hours_median=1.0 + 2.5 * rnd(),
            zero_retention_share=0.15 + 0.3 * rnd(),
        )


@dataclass(frozen=True)
class EvalPipelineParameters:
    """What a scenario draws for its eval pipeline accounts as a whole."""

    benchmark_size_low: int
    benchmark_size_high: int
    run_every_hours_low: float
    run_every_hours_high: float
    reasoning_share: float
    judge_share: float
    """Items that grade a candidate answer against a rubric (LLM-as-judge suites)."""

    @classmethod
    def draw(cls, rnd) -> EvalPipelineParameters:
        return cls(
            benchmark_size_low=200 + int(100 * rnd()),
            benchmark_size_high=350 + int(150 * rnd()),
            run_every_hours_low=3.0 + 2.0 * rnd(),
            run_every_hours_high=6.0 + 6.0 * rnd(),
            reasoning_share=0.3 + 0.4 * rnd(),
            judge_share=pick(rnd, (0.0, 0.0, 0.2, 0.5)),
        )


@dataclass(frozen=True)
class SharedNatParameters:
    """What a scenario draws for its shared nat accounts as a whole."""

    egress_ips: int
    homework_share_max: float
    sessions_per_day_median: float
    university_card_share: float

    @classmethod
    def draw(cls, rnd) -> SharedNatParameters:
        return cls(
            egress_ips=1 + int(4 * rnd()),
            homework_share_max=0.2 + 0.4 * rnd(),
            sessions_per_day_median=1.5 + 2.0 * rnd(),
            university_card_share=0.2 + 0.3 * rnd(),
        )


@dataclass(frozen=True)
class LaunchCrowdParameters:
    """What a scenario draws for its launch crowd accounts as a whole."""

    launch_boost: float
    launch_day_hours: float
    new_model_share: float
    new_signup_share: float
    test_prompt_share: float

    @classmethod
    def draw(cls, rnd) -> LaunchCrowdParameters:
        return cls(
            launch_boost=4.0 + 6.0 * rnd(),
            launch_day_hours=18.0 + 12.0 * rnd(),
            new_model_share=0.8 + 0.15 * rnd(),
            new_signup_share=0.1 + 0.2 * rnd(),
            test_prompt_share=0.2 + 0.3 * rnd(),
        )


@dataclass(frozen=True)
class ResellerParameters:
    """What a scenario draws for its reseller accounts as a whole."""

    conversations_per_day_median: float
    end_user_agents: int
    new_model_share: float

    @classmethod
    def draw(cls, rnd) -> ResellerParameters:
        return cls(
            conversations_per_day_median=700 + 1000 * rnd(),
            end_user_agents=20 + int(60 * rnd()),
            new_model_share=0.3 + 0.3 * rnd(),
        )


def ordinary_chat(population: Population, family_rng: random.Random, count: int) -> None:
    """People chatting: real ShareGPT prompts, multi-turn, human hours; some behind a popular tool's wrapper."""
    scenario = population.scenario
    params = OrdinaryChatParameters.draw(family_rng.random)
    population.record_parameters("ordinary_chat", params)
    wrapper_hashes = [(fingerprint(name)[:16], text) for name, text in CHAT_WRAPPERS]
    for index in range(count):
        rng = seeded(scenario.seed, "ordinary_chat", index)
        rnd = rng.random
        ua, tls = weighted(rnd, CLIENT_WEIGHTS)
        account = population.new_account(
            rng,
            "ordinary_chat",
            created_at=population.benign_created_at(rnd),
            signup_channel=weighted(
                rnd, (("web", 0.6), ("google_oauth", 0.25), ("github_oauth", 0.1), ("mobile_app", 0.05))
            ),
            payment_fingerprint=("pm_" + hex_id(rng, 16)) if rnd() < 0.7 else None,
            tls_fingerprint=TLS[tls] if rnd() > 0.03 else None,
        )
        wrapper = pick(rnd, wrapper_hashes) if rnd() < params.template_wrapper_share else None
        add_chat_user(
            population,
            account,
            rng,
            phases=[(scenario.start, lognormal(rnd, params.sessions_per_day_median, 0.8))],
            rhythm=HUMAN,
            tz=weighted(rnd, TIMEZONES),
            client=(ua, tls),
            wrapper=wrapper,
            turns_mean=max(1.0, lognormal(rnd, params.turns_mean, 0.3)),
            prompt_logged=rnd() >= params.prompt_not_logged_share,
            ip_logged=rnd() >= params.ip_not_logged_share,
            model_at=population.model_chooser(
                rnd,
                MODEL_CURRENT if rnd() < 0.7 else MODEL_SMALL,
                population.adoption(rnd, params.new_model_adopters, 12.0),
                0.3 + 0.6 * rnd(),
            ),
        )


def add_chat_user(
    population: Population,
    account: Account,
    rng: random.Random,
    *,
    phases,
    rhythm,
    tz,
    client,
    wrapper,
    turns_mean,
    prompt_logged,
    ip_logged,
    model_at,
    homework_share=0.0,
    client_at=None,
    opening=None,
) -> None:
    scenario = population.scenario

    def stream() -> Iterator[dict]:
        rnd = rng.random
        emit = Emitter(account, rnd, ("key_" + hex_id(rng, 12),), omission_rate=0.02, prompt_logged=prompt_logged)
        default_opening, follow_up = population.ordinary_opening(rnd, wrapper and wrapper[1], homework_share)
        user = ChatUser(
            emit,
            rnd,
            model_at=model_at,
            opening=opening or default_opening,
            follow_up=follow_up,
            turns_mean=turns_mean,
            max_tokens=pick(rnd, (None, None, None, 1024, 2048, 4096)),
            temperature=pick(rnd, (None, None, 0.7, 1.0, 0.2)),
            system_prompt_hash=wrapper and wrapper[0],
            client=client_at or population.home_client(rnd, client, ip_logged),
        )
        starts = session_starts(rnd, phases, scenario.end, rhythm, tz, conversations_per_session=1.0 + 1.5 * rnd())
        return interleave(starts, user.conversation, scenario.end)

    account.stream = stream


def coding_agent(population: Population, family_rng: random.Random, count: int) -> None:
    """Coding agents: long tool loops all day, long contexts, a team sharing an org and a card."""
    scenario = population.scenario
    params = CodingAgentParameters.draw(family_rng.random)
    population.record_parameters("coding_agent", params)
    tools = [(f"agent-cli/{v}", fingerprint(f"coding-agent-{v}")[:16]) for v in ("1.4.2", "2.0.1", "0.9.8")]
    team_left, org, payment = 0, None, None
    for index in range(count):
        rng = seeded(scenario.seed, "coding_agent", index)
        rnd = rng.random
        if team_left == 0:  # developers of one company share an org and its card
            team_left, org, payment = between(rnd, 1, 6), "org_" + hex_id(rng, 12), "pm_" + hex_id(rng, 16)
        team_left -= 1
        ua_name, system_hash = pick(rnd, tools)
        ua = f"{ua_name} {pick(rnd, ('node/20.11.1', 'node/22.3.0', 'python/3.12'))}"
        account = population.new_account(
            rng,
            "coding_agent",
            created_at=population.benign_created_at(rnd, 0.02),
            signup_channel=weighted(rnd, (("github_oauth", 0.5), ("web", 0.3), ("enterprise_sso", 0.2))),
            org_id=org,
            payment_fingerprint=payment,
            tls_fingerprint=TLS["node" if "node" in ua else "python"],
        )
        requests_per_day = lognormal(rnd, params.requests_per_day_median, 0.6)
        turns_mean = max(3.0, lognormal(rnd, params.tool_loop_turns_mean, 0.3))
        adopt_at = population.adoption(rnd, params.new_model_adopters, 4.0)
        rhythm = working_rhythm(params.late_night_share * 2 * rnd())
        tz = weighted(rnd, TIMEZONES)
        account.stream = _coding_stream(
            population, account, rng, requests_per_day / turns_mean, turns_mean, adopt_at, rhythm, tz, ua, system_hash
        )


def _coding_stream(
    population: Population, account, rng, tasks_per_day, turns_mean, adopt_at, rhythm, tz, ua, system_hash
):
    scenario = population.scenario

    def stream() -> Iterator[dict]:
        rnd = rng.random
        emit = Emitter(
            account,
            rnd,
            tuple("key_" + hex_id(rng, 12) for _ in range(between(rnd, 1, 3))),
            error_rate=0.02,
            omission_rate=0.005,
        )
        texts = corpus()
        coding, pairs, results = texts.coding, texts.code_tokens, tool_results()
        ips = (address(rnd), address(rnd, DATACENTER_OCTETS))  # laptop, and a cloud dev box
        base_context = between(rnd, 2000, 9000)
        counter = 0

        def task(at: float) -> Iterator[dict]:
            nonlocal counter
            counter += 1
            conversation_id = f"conv_{account.account_id[5:]}_{counter:x}"
            model = MODEL_NEW if at >= adopt_at and rnd() < 0.85 else MODEL_CURRENT
            ip = pick(rnd, ips)
            turns = 1 + int(exponential(rnd, turns_mean - 1))
            context = base_context + between(rnd, 0, 3000)
            for turn in range(turns):
                if turn == 0:
                    prompt = (
                        pick(rnd, coding)
                        if rnd() < 0.5
                        else pick(rnd, DEV_TASKS).format(m=pick(rnd, MODULES), f=pick(rnd, FUNCS))
                    )
                else:
                    prompt = pick(rnd, results)
                _, trace_output = pairs[int(rnd() * len(pairs))]
                last = turn == turns - 1
                wanted = trace_output * between(rnd, 3, 12) if last else 20 + trace_output * between(rnd, 1, 6)
                record = emit(
                    at,
                    model,
                    context,
                    wanted,
                    8192,
                    0.0 if rnd() < 0.7 else None,
                    "stop" if last else "tool_calls",
                    prompt,
                    ip,
                    ua,
                    conversation_id,
                    turn,
                    system_hash,
                )
                yield record
                # tool output joins the context, until the agent compacts it near the window limit
                context += record["output_tokens"] + between(rnd, 50, 2500)
                if context > 160_000:
                    context = base_context + between(rnd, 5000, 20000)
                at += emit.last_latency_s + lognormal(rnd, 4.0, 0.9)

        tasks_per_session = 4.0
        starts = session_starts(
            rnd,
            [(scenario.start, tasks_per_day / tasks_per_session)],
            scenario.end,
            rhythm,
            tz,
            conversations_per_session=tasks_per_session,
            gap_minutes=3.0,
        )
        return interleave(starts, task, scenario.end)

    return stream


def enterprise_batch(population: Population, family_rng: random.Random, count: int) -> None:
    """Nightly batch jobs: one narrow template, thousands of requests, short outputs."""
    scenario = population.scenario
    params = EnterpriseBatchParameters.draw(family_rng.random)
    population.record_parameters("enterprise_batch", params)
    for index in range(count):
        rng = seeded(scenario.seed, "enterprise_batch", index)
        rnd = rng.random
        ua = pick(rnd, (POPULAR_SDK_USER_AGENT, "openai-python/1.54.4", "openai-node/4.76.0", "okhttp/4.12.0"))
        account = population.new_account(
            rng,
            "enterprise_batch",
            created_at=scenario.start - DAY * (60 + rnd() * 900),
            signup_channel=pick(rnd, ("sales", "enterprise_sso")),
            payment_fingerprint="pm_" + hex_id(rng, 16),
            tls_fingerprint=TLS["node" if "node" in ua else "java" if "okhttp" in ua else "python"],
        )
        job = pick(rnd, BATCH_TASKS)
        account.stream = _batch_stream(
            population,
            account,
            rng,
            job,
            ua,
            nightly=lognormal(rnd, params.nightly_requests_median, 0.5),
            window_h=max(0.5, lognormal(rnd, params.window_hours_median, 0.4)),
            local_start_h=0.5 + 2.5 * rnd(),
            tz=weighted(rnd, TIMEZONES),
            prompt_logged=rnd() >= params.zero_retention_share,
        )


def _batch_stream(
    population: Population, account, rng, job, ua, *, nightly, window_h, local_start_h, tz, prompt_logged
):
    scenario = population.scenario
    name, template, (out_low, out_high), max_tokens = job

    def stream() -> Iterator[dict]:
        rnd = rng.random
        emit = Emitter(account, rnd, ("key_" + hex_id(rng, 12),), error_rate=0.004, prompt_logged=prompt_logged)
        operation = "text_completion" if rnd() < 0.3 else "chat"
        system_hash = hex_id(rng, 16) if operation == "chat" else None
        ips = tuple(f"{subnet(rnd)}.{between(rnd, 2, 250)}" for _ in range(between(rnd, 1, 3)))
        temperature = pick(rnd, (0.0, 0.0, 0.2))
        first_day = math.floor((scenario.start - tz * HOUR) / DAY) - 1
        day = first_day
        while True:
            window_start = day * DAY + (local_start_h - tz) * HOUR + (rnd() - 0.5) * 1200
            if window_start >= scenario.end:
                return
            window_end = window_start + window_h * HOUR
            gap = window_h * HOUR / max(1.0, nightly * (0.8 + 0.4 * rnd()))
            at = window_start
            while True:
                at += exponential(rnd, gap)
                if at >= window_end or at >= scenario.end:
                    break
                if at < scenario.start:
                    continue
                prompt = template.format(x=batch_input(rnd, name))
                wanted = between(rnd, out_low, out_high)
                yield emit(
                    at,
                    MODEL_SMALL if max_tokens < 64 else MODEL_CURRENT,
                    len(prompt) // 4 + 40,
                    wanted,
                    max_tokens,
                    temperature,
                    "stop",
                    prompt,
                    pick(rnd, ips),
                    ua,
                    system_prompt_hash=system_hash,
                    operation=operation,
                )
            day += 1

    return stream


def eval_pipeline(population: Population, family_rng: random.Random, count: int) -> None:
    """Evaluation suites: a fixed set of prompts (step by step, multiple choice, judge rubrics) re-run on schedule."""
    scenario = population.scenario
    params = EvalPipelineParameters.draw(family_rng.random)
    population.record_parameters("eval_pipeline", params)
    for index in range(count):
        rng = seeded(scenario.seed, "eval_pipeline", index)
        rnd = rng.random
        account = population.new_account(
            rng,
            "eval_pipeline",
            created_at=scenario.start - DAY * (30 + rnd() * 700),
            signup_channel=pick(rnd, ("web", "enterprise_sso", "github_oauth")),
            payment_fingerprint="pm_" + hex_id(rng, 16),
            tls_fingerprint=TLS["python"],
        )
        size = between(rnd, params.benchmark_size_low, params.benchmark_size_high)
        period = params.run_every_hours_low + rnd() * (params.run_every_hours_high - params.run_every_hours_low)
        account.stream = _eval_stream(population, account, rng, size, period * HOUR, params)


def _eval_stream(population: Population, account, rng, size, period, params):
    scenario = population.scenario

    def stream() -> Iterator[dict]:
        rnd = rng.random
        emit = Emitter(account, rnd, ("key_" + hex_id(rng, 12),), error_rate=0.005)
        ua = pick(
            rnd, ("lm-eval-harness/0.4.5 " + POPULAR_SDK_USER_AGENT, POPULAR_SDK_USER_AGENT, "python-httpx/0.27.2")
        )
        ip = f"{subnet(rnd)}.{between(rnd, 2, 250)}"
        max_tokens = pick(rnd, (1024, 2048, 2048, 4096))
        benchmark = []  # (prompt, output tokens on the current model): fixed for every run
        for _ in range(size):
            if rnd() < params.judge_share:
                task = math_problem(rnd) if rnd() < 0.5 else coding_task(rnd)
                prompt = rubric_case(rnd, task) + "\n\nScore each criterion and justify the score."
                benchmark.append((prompt, len(prompt) // 4 + 12, int(lognormal(rnd, 500, 0.4))))
                continue
            reasoning = rnd() < params.reasoning_share
            forms = [form for form in EVAL_FORMS if form[1] == reasoning]
            left, right = between(rnd, 11, 999), between(rnd, 11, 999)
            prompt = pick(rnd, forms)[0].format(
                m=math_problem(rnd),
                a=left,
                b=right,
                c=left * right,
                p=left * right + 10,
                q=left * right - 9,
                r=left * (right + 1),
                t=pick(rnd, CODING_TASKS).format(n=between(rnd, 10, 999), k=between(rnd, 2, 9)),
            )
            output = int(lognormal(rnd, 700, 0.5)) if reasoning else between(rnd, 1, 160)
            benchmark.append((prompt, len(prompt) // 4 + 12, output))
        speedup = {MODEL_CURRENT: 1.0, MODEL_SMALL: 0.8, MODEL_NEW: 1.15}
        concurrency_gap = 0.2 + 1.0 * rnd()
        runs = [
            scenario.start + rnd() * period + run * period
            for run in range(int(scenario.duration_hours * HOUR / period) + 2)
        ]
        release_run = scenario.release + (0.5 + 2.5 * rnd()) * HOUR
        runs = sorted(runs + [release_run])
        adds_new_model = rnd() < 0.7
        t_free = scenario.start
        for scheduled in runs:
            at = max(scheduled, t_free)
            if at >= scenario.end:
                return
            if scheduled == release_run:
                models = (MODEL_NEW,)
            elif at >= release_run and adds_new_model:
                models = (MODEL_CURRENT, MODEL_NEW)
            else:
                models = (MODEL_CURRENT, MODEL_SMALL)
            for model in models:
                for prompt, input_tokens, output in benchmark:
                    if at >= scenario.end:
                        return
                    yield emit(
                        at,
                        model,
                        input_tokens,
                        int(output * speedup[model]),
                        max_tokens,
                        0.0,
                        "stop",
                        prompt,
                        ip,
                        ua,
                    )
                    at += exponential(rnd, concurrency_gap)
            t_free = at

    return stream


def shared_nat(population: Population, family_rng: random.Random, count: int) -> None:
    """A campus behind a few NAT addresses: many accounts on one network, students' homework."""
    scenario = population.scenario
    params = SharedNatParameters.draw(family_rng.random)
    population.record_parameters("shared_nat", params)
    family_draw = family_rng.random
    egress = tuple(
        f"{subnet(family_draw, RESIDENTIAL_OCTETS)}.{between(family_draw, 2, 250)}" for _ in range(params.egress_ips)
    )
    tz = weighted(family_draw, TIMEZONES)
    university_org, university_card = "org_" + hex_id(family_rng, 12), "pm_" + hex_id(family_rng, 16)
    semester_start = scenario.start - DAY * (20 + 40 * family_draw())
    for index in range(count):
        rng = seeded(scenario.seed, "shared_nat", index)
        rnd = rng.random
        ua, tls = pick(rnd, BROWSER_CLIENTS) if rnd() < 0.6 else weighted(rnd, CLIENT_WEIGHTS)
        cohort = rnd() < 0.7  # most students signed up in the first week of the semester
        card = rnd()
        account = population.new_account(
            rng,
            "shared_nat",
            created_at=semester_start + rnd() * 7 * DAY if cohort else scenario.start - DAY * (100 + rnd() * 800),
            signup_channel=pick(rnd, ("edu_sso", "edu_sso", "google_oauth", "web")),
            org_id=university_org if card < params.university_card_share else None,
            payment_fingerprint=(
                university_card
                if card < params.university_card_share
                else "pm_" + hex_id(rng, 16)
                if card > 0.8
                else None
            ),
            tls_fingerprint=TLS[tls],
        )
        add_chat_user(
            population,
            account,
            rng,
            phases=[(scenario.start, lognormal(rnd, params.sessions_per_day_median, 0.7))],
            rhythm=STUDENT,
            tz=tz,
            client=(ua, tls),
            wrapper=None,
            turns_mean=max(1.0, lognormal(rnd, 2.6, 0.3)),
            prompt_logged=True,
            ip_logged=True,
            homework_share=rnd() * params.homework_share_max,
            model_at=population.model_chooser(rnd, MODEL_CURRENT, population.adoption(rnd, 0.2, 12.0), 0.5),
            client_at=lambda rnd=rnd, ua=ua: (pick(rnd, egress), ua),
        )


def launch_crowd(population: Population, family_rng: random.Random, count: int) -> None:
    """A launch-day crowd: new sign-ups and regulars rushing to the new model with test prompts."""
    scenario = population.scenario
    params = LaunchCrowdParameters.draw(family_rng.random)
    population.record_parameters("launch_crowd", params)
    texts = corpus()
    for index in range(count):
        rng = seeded(scenario.seed, "launch_crowd", index)
        rnd = rng.random
        ua, tls = weighted(rnd, CLIENT_WEIGHTS)
        launch = scenario.release + exponential(rnd, 1.5 * HOUR)
        new_signup = rnd() < params.new_signup_share
        account = population.new_account(
            rng,
            "launch_crowd",
            created_at=launch - rnd() * HOUR if new_signup else population.benign_created_at(rnd, 0.0),
            signup_channel=weighted(rnd, (("web", 0.5), ("google_oauth", 0.3), ("github_oauth", 0.2))),
            payment_fingerprint="pm_" + hex_id(rng, 16) if rnd() < 0.8 else None,
            tls_fingerprint=TLS[tls],
        )
        usual = lognormal(rnd, 2.0, 0.6)
        launch_end = launch + params.launch_day_hours * HOUR
        phases = [
            (scenario.start, 0.0 if new_signup else usual),
            (launch, usual * params.launch_boost),
            (launch_end, usual * 1.5),
        ]

        def model_at(at, rnd=rnd, launch=launch, launch_end=launch_end):
            if at >= launch and rnd() < (params.new_model_share if at < launch_end else 0.6):
                return MODEL_NEW
            return MODEL_CURRENT

        def opening(rnd=rnd):
            if rnd() < params.test_prompt_share:
                form = pick(rnd, LAUNCH_TESTS)
                return form.format(m=math_problem(rnd), c=coding_task(rnd), t=pick(rnd, TOPICS)), False
            return pick(rnd, texts.first_turn), False

        add_chat_user(
            population,
            account,
            rng,
            phases=phases,
            rhythm=HUMAN,
            tz=weighted(rnd, TIMEZONES),
            client=(ua, tls),
            wrapper=None,
            turns_mean=max(1.0, lognormal(rnd, 2.5, 0.3)),
            prompt_logged=True,
            ip_logged=True,
            model_at=model_at,
            opening=opening,
        )


def reseller(population: Population, family_rng: random.Random, count: int) -> None:
    """Resellers: one account serving many end users' conversations round the clock."""
    scenario = population.scenario
    params = ResellerParameters.draw(family_rng.random)
    population.record_parameters("reseller", params)
    texts = corpus()
    for index in range(count):
        rng = seeded(scenario.seed, "reseller", index)
        rnd = rng.random
        account = population.new_account(
            rng,
            "reseller",
            created_at=scenario.start - DAY * (90 + rnd() * 700),
            signup_channel=pick(rnd, ("partner", "web")),
            payment_fingerprint="pm_" + hex_id(rng, 16),
            tls_fingerprint=TLS[pick(rnd, ("python", "node", "go"))],
        )
        per_day = lognormal(rnd, params.conversations_per_day_median, 0.4)
        account.stream = _reseller_stream(population, account, rng, per_day, params, texts)


def _reseller_stream(population: Population, account, rng, per_day, params, texts):
    scenario = population.scenario

    def stream() -> Iterator[dict]:
        rnd = rng.random
        emit = Emitter(
            account, rnd, tuple("key_" + hex_id(rng, 12) for _ in range(between(rnd, 2, 6))), omission_rate=0.01
        )
        uas = tuple(
            weighted(rnd, CLIENT_WEIGHTS)[0] + f" app/{between(rnd, 1, 9)}.{between(rnd, 0, 30)}"
            for _ in range(params.end_user_agents)
        )
        server_range = subnet(rnd)
        servers = tuple(f"{server_range}.{between(rnd, 2, 250)}" for _ in range(between(rnd, 2, 8)))
        personas = tuple(hex_id(rng, 16) for _ in range(between(rnd, 3, 10)))
        adopt_at = scenario.release + exponential(rnd, 2 * HOUR)

        def conversation(at: float) -> Iterator[dict]:
            ua = pick(rnd, uas)
            user = ChatUser(
                emit,
                rnd,
                model_at=population.model_chooser(rnd, MODEL_CURRENT, adopt_at, params.new_model_share, 0.3),
                opening=lambda: (pick(rnd, texts.first_turn), False),
                follow_up=lambda _: pick(rnd, texts.follow_up),
                turns_mean=max(1.0, lognormal(rnd, 2.8, 0.3)),
                max_tokens=pick(rnd, (None, 2048)),
                temperature=pick(rnd, (0.7, 0.8, 1.0)),
                system_prompt_hash=pick(rnd, personas),
                client=lambda: (pick(rnd, servers), ua),
            )
            user.conversations = int(rnd() * 2**40)  # end users' conversation ids, unordered
            return user.conversation(at)

        starts = session_starts(
            rnd, [(scenario.start, per_day)], scenario.end, WORLD, 0.0, conversations_per_session=1.0
        )
        return interleave(starts, conversation, scenario.end)

    return stream


# -- products and apps built on the API: one long-lived account serving many end users -------


@dataclass(frozen=True)
class ApiProductParameters:
    """What a scenario draws for the products that serve their own end users through one account."""

    requests_per_day_median: float
    wrapper: str
    long_answer_share: float
    multilingual_end_users: bool
    new_model_share: float

    @classmethod
    def draw(cls, rnd) -> ApiProductParameters:
        return cls(
            requests_per_day_median=uniform(rnd, 400, 2500),
            wrapper=pick(rnd, ("markdown", "json", "system_prompt", "bare")),
            long_answer_share=uniform(rnd, 0.5, 0.95),
            multilingual_end_users=rnd() < 0.5,
            new_model_share=uniform(rnd, 0.0, 0.6),
        )


def _product_account(population: Population, rng: random.Random, family: str, client: str) -> Account:
    """A product's account: opened months ago, a company card, a server-side client stack."""
    scenario = population.scenario
    rnd = rng.random
    stack = client if client in TLS else "python"
    return population.new_account(
        rng,
        family,
        created_at=scenario.start - DAY * uniform(rnd, 60, 900),
        signup_channel=pick(rnd, ("web", "enterprise_sso", "partner")),
        payment_fingerprint="pm_" + hex_id(rng, 16),
        tls_fingerprint=TLS[stack],
    )


def _single_turn_product(
    population: Population, account: Account, rng: random.Random, *, per_day, rhythm, prompt, output, max_tokens,
    ua, adopt_at, new_model_share, turns_mean=1.0,
):  # fmt: skip
    """A product's stream: end users' requests through a few servers, at the product's stable rate.

    ``prompt(rnd)`` gives (text, system prompt hash); ``output(rnd)`` the tokens the answer takes.
    Most requests are single-turn; ``turns_mean`` above 1 lets some end users follow up.
    """
    scenario = population.scenario

    def stream() -> Iterator[dict]:
        rnd = rng.random
        emit = Emitter(account, rnd, tuple("key_" + hex_id(rng, 12) for _ in range(between(rnd, 1, 3))))
        servers = tuple(f"{subnet(rnd)}.{between(rnd, 2, 250)}" for _ in range(between(rnd, 2, 6)))
        follow_ups = corpus().follow_up
        counter = int(rnd() * 2**30)
        continuing = 1.0 - 1.0 / turns_mean

        def conversation(at: float) -> Iterator[dict]:
            nonlocal counter
            counter += 1
            conversation_id = f"conv_{account.account_id[5:]}_{counter:x}"
            model = MODEL_NEW if at >= adopt_at and rnd() < new_model_share else MODEL_CURRENT
            server = pick(rnd, servers)
            text, system_hash = prompt(rnd)
            turn, context = 0, 0
            while True:
                input_tokens = len(text) // 4 + 30 + context
                record = emit(at, model, input_tokens, output(rnd), max_tokens, pick(rnd, (0.7, 0.3, None)), "stop",
                              text, server, ua, conversation_id, turn, system_hash)  # fmt: skip
                yield record
                if rnd() >= continuing or turn >= 6:
                    return
                context = input_tokens + record["output_tokens"]
                turn += 1
                text = pick(rnd, follow_ups)
                at += emit.last_latency_s + lognormal(rnd, 40.0, 0.8)

        starts = session_starts(rnd, [(scenario.start, per_day)], scenario.end, rhythm, 0.0, 1.0)
        return interleave(starts, conversation, scenario.end)

    return stream


def api_product(population: Population, family_rng: random.Random, count: int) -> None:
    """Assistants, search and writing tools: their own prompt wrapper around end users' questions, long
    single-turn answers round the clock, one account with months of history and a stable volume."""
    scenario = population.scenario
    params = ApiProductParameters.draw(family_rng.random)
    population.record_parameters("api_product", params)
    texts = corpus()
    questions = texts.first_turn if params.multilingual_end_users else tuple(q for q in texts.first_turn if q.isascii())
    for index in range(count):
        rng = seeded(scenario.seed, "api_product", index)
        rnd = rng.random
        ua = pick(rnd, (POPULAR_SDK_USER_AGENT, "openai-node/4.76.0", "python-httpx/0.27.2", "Go-http-client/2.0"))
        account = _product_account(
            population, rng, "api_product", "node" if "node" in ua else "go" if "Go" in ua else "python"
        )
        brand, locale = pick(rnd, BRANDS), pick(rnd, ("en-US", "de-DE", "pt-BR", "ja-JP", "fr-FR"))
        template = PRODUCT_WRAPPERS[params.wrapper]
        system_hash = hex_id(rng, 16) if params.wrapper in ("system_prompt", "markdown") else None

        def prompt(rnd, template=template, brand=brand, locale=locale, system_hash=system_hash):
            question = pick(rnd, questions)
            text = template.format(q=question, qj=orjson_string(question), brand=brand, locale=locale)
            return text, system_hash

        def output(rnd, long_share=params.long_answer_share):
            return int(lognormal(rnd, 1400, 0.5)) if rnd() < long_share else int(lognormal(rnd, 350, 0.6))

        account.stream = _single_turn_product(
            population, account, rng, per_day=lognormal(rnd, params.requests_per_day_median, 0.4), rhythm=WORLD,
            prompt=prompt, output=output, max_tokens=pick(rnd, (None, 4096, 8192)), ua=ua,
            adopt_at=scenario.release + exponential(rnd, 6 * HOUR), new_model_share=params.new_model_share,
            turns_mean=uniform(rnd, 1.0, 1.4),
        )  # fmt: skip


def orjson_string(text: str) -> str:
    """``text`` as a JSON string literal, for JSON-shaped wrappers."""
    import orjson

    return orjson.dumps(text).decode()


@dataclass(frozen=True)
class TutoringAppParameters:
    """What a scenario draws for homework-help apps: fresh maths problems, worked solutions, step by step."""

    requests_per_day_median: float
    follow_up_turns_mean: float

    @classmethod
    def draw(cls, rnd) -> TutoringAppParameters:
        return cls(requests_per_day_median=uniform(rnd, 300, 2000), follow_up_turns_mean=uniform(rnd, 1.1, 1.8))


def tutoring_app(population: Population, family_rng: random.Random, count: int) -> None:
    """A study app: every request a new problem with a step-by-step worked solution, at students' hours."""
    scenario = population.scenario
    params = TutoringAppParameters.draw(family_rng.random)
    population.record_parameters("tutoring_app", params)
    for index in range(count):
        rng = seeded(scenario.seed, "tutoring_app", index)
        rnd = rng.random
        account = _product_account(population, rng, "tutoring_app", "node")
        system_hash = hex_id(rng, 16)
        forms = tuple(rng.sample(TUTORING_FORMS, 2))

        def prompt(rnd, forms=forms, system_hash=system_hash):
            return pick(rnd, forms).format(p=math_problem(rnd)), system_hash

        account.stream = _single_turn_product(
            population, account, rng, per_day=lognormal(rnd, params.requests_per_day_median, 0.4), rhythm=STUDENT,
            prompt=prompt, output=lambda rnd: int(lognormal(rnd, 900, 0.45)), max_tokens=4096,
            ua="openai-node/4.76.0", adopt_at=math.inf, new_model_share=0.0, turns_mean=params.follow_up_turns_mean,
        )  # fmt: skip


@dataclass(frozen=True)
class ContentAppParameters:
    """What a scenario draws for content generators: long, complete articles and guides on demand."""

    requests_per_day_median: float

    @classmethod
    def draw(cls, rnd) -> ContentAppParameters:
        return cls(requests_per_day_median=uniform(rnd, 200, 1500))


def content_app(population: Population, family_rng: random.Random, count: int) -> None:
    """A writing product: "complete", "thorough", "comprehensive" long outputs, round the clock."""
    scenario = population.scenario
    params = ContentAppParameters.draw(family_rng.random)
    population.record_parameters("content_app", params)
    audiences = ("beginners", "small business owners", "developers", "parents", "students", "marketers")
    for index in range(count):
        rng = seeded(scenario.seed, "content_app", index)
        rnd = rng.random
        account = _product_account(population, rng, "content_app", "python")
        system_hash = hex_id(rng, 16) if rnd() < 0.5 else None

        def prompt(rnd, system_hash=system_hash):
            form = pick(rnd, CONTENT_FORMS)
            return form.format(t=pick(rnd, TOPICS), a=pick(rnd, audiences), x=pick(rnd, PRODUCTS)), system_hash

        account.stream = _single_turn_product(
            population, account, rng, per_day=lognormal(rnd, params.requests_per_day_median, 0.4), rhythm=WORLD,
            prompt=prompt, output=lambda rnd: int(lognormal(rnd, 2200, 0.35)), max_tokens=pick(rnd, (4096, 8192)),
            ua=POPULAR_SDK_USER_AGENT, adopt_at=scenario.release + exponential(rnd, 12 * HOUR), new_model_share=0.5,
        )  # fmt: skip


@dataclass(frozen=True)
class DevTeamParameters:
    """What a scenario draws for companies whose developers share one card and org but converse."""

    team_size_median: float
    turns_mean: float

    @classmethod
    def draw(cls, rnd) -> DevTeamParameters:
        return cls(team_size_median=uniform(rnd, 6, 25), turns_mean=uniform(rnd, 2.5, 5.0))


def dev_team(population: Population, family_rng: random.Random, count: int) -> None:
    """Developers of one company: shared card, org and office network, multi-turn coding chats at work hours."""
    scenario = population.scenario
    params = DevTeamParameters.draw(family_rng.random)
    population.record_parameters("dev_team", params)
    team_left, org, payment, office, zone = 0, "", "", "", 0.0
    texts = corpus()
    for index in range(count):
        rng = seeded(scenario.seed, "dev_team", index)
        rnd = rng.random
        if team_left == 0:
            team_left = max(2, int(lognormal(rnd, params.team_size_median, 0.5)))
            org, payment = "org_" + hex_id(rng, 12), "pm_" + hex_id(rng, 16)
            office, zone = f"{subnet(rnd)}.{between(rnd, 2, 250)}", weighted(rnd, TIMEZONES)
        team_left -= 1
        ua, stack = weighted(rnd, CLIENT_WEIGHTS)
        account = population.new_account(
            rng,
            "dev_team",
            created_at=population.benign_created_at(rnd, 0.05),
            signup_channel=pick(rnd, ("enterprise_sso", "github_oauth")),
            org_id=org,
            payment_fingerprint=payment,
            tls_fingerprint=TLS[stack],
        )

        def opening(rnd=rnd):
            return (pick(rnd, texts.coding) if rnd() < 0.7 else pick(rnd, texts.first_turn)), False

        add_chat_user(
            population, account, rng, phases=[(scenario.start, lognormal(rnd, 3.0, 0.5))], rhythm=working_rhythm(0.05),
            tz=zone, client=(ua, stack), wrapper=None, turns_mean=max(1.5, lognormal(rnd, params.turns_mean, 0.3)),
            prompt_logged=True, ip_logged=True, opening=opening,
            model_at=population.model_chooser(rnd, MODEL_CURRENT, population.adoption(rnd, 0.3, 6.0), 0.6),
            client_at=lambda office=office, ua=ua, rnd=rnd: (office if rnd() < 0.85 else address(rnd), ua),
        )  # fmt: skip


BENIGN_FAMILIES = (
    "ordinary_chat",
    "coding_agent",
    "enterprise_batch",
    "eval_pipeline",
    "shared_nat",
    "launch_crowd",
    "reseller",
    "api_product",
    "tutoring_app",
    "content_app",
    "dev_team",
)
BENIGN_MIX = {
    "ordinary_chat": 2600,
    "coding_agent": 40,
    "enterprise_batch": 10,
    "eval_pipeline": 6,
    "shared_nat": 150,
    "launch_crowd": 200,
    "reseller": 5,
    "api_product": 8,
    "tutoring_app": 3,
    "content_app": 3,
    "dev_team": 80,
}
"""Accounts per benign family at scale 1; each scenario varies every count by ±25 % (its seed)."""
_BUILDERS = {
    "ordinary_chat": ordinary_chat,
    "coding_agent": coding_agent,
    "enterprise_batch": enterprise_batch,
    "eval_pipeline": eval_pipeline,
    "shared_nat": shared_nat,
    "launch_crowd": launch_crowd,
    "reseller": reseller,
    "api_product": api_product,
    "tutoring_app": tutoring_app,
    "content_app": content_app,
    "dev_team": dev_team,
}


def add_benign(population: Population) -> None:
    """Every benign family's accounts, each present family with at least one account."""
    scenario = population.scenario
    for family in BENIGN_FAMILIES:
        family_rng = seeded(scenario.seed, family)
        count = max(1, round(BENIGN_MIX[family] * scenario.scale * uniform(family_rng.random, 0.75, 1.25)))
        _BUILDERS[family](population, family_rng, count)
