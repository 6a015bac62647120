"""The detection core on hand-built traffic: who is alerted, with what evidence, and when."""

from __future__ import annotations

import random

import msgspec

from detector.detection.core import Detector
from detector.detection.records import Request
from detector.detection.stages import ChainedStages

T0 = 1_772_409_600.0
HOUR = 3600.0


def request(account: str, t: float, n: int, **fields) -> Request:
    values = dict(
        event_id=f"{account}-{n}",
        timestamp=t,
        account_id=account,
        model="helix-3",
        input_tokens=120,
        output_tokens=300,
        status_code=200,
    )
    values.update(fields)
    return Request(**values)


def extractor(account: str, start: float, count: int, every: float = 4.0, **overrides):
    """A script: one template, new content each time, reasoning requested, outputs at the limit."""
    for n in range(count):
        fields = dict(
            prompt_text=f"Solve the following problem step by step, showing all reasoning: "
            f"a train leaves at {n} and travels {n * 7 % 97} km; case {n * 31}",
            max_tokens=4096,
            output_tokens=4096,
            finish_reason="length",
            turn_index=0,
            account_created_at=start - 0.5 * 86400,
        )
        fields.update(overrides)
        yield request(account, start + n * every, n, **fields)


def chatter(account: str, start: float, hours: float, seed: int):
    """A person: a few conversations a day, follow-ups, varied questions, ordinary outputs."""
    rnd = random.Random(seed)
    topics = [
        "recipes for dinner",
        "a python error",
        "holiday ideas in Spain",
        "how tides work",
        "a cover letter",
        "the French revolution",
        "my garden's tomatoes",
        "a birthday poem",
    ]
    t, n = start, 0
    while t < start + hours * HOUR:
        conversation = rnd.randrange(1 << 30)
        for turn in range(rnd.randint(1, 5)):
            yield request(
                account,
                t,
                n,
                prompt_text=f"Question about {rnd.choice(topics)}: {rnd.random():.6f}?",
                turn_index=turn,
                conversation_id=str(conversation),
                output_tokens=rnd.randint(80, 700),
                max_tokens=2048,
                finish_reason="stop",
                account_created_at=start - 400 * 86400,
            )
            n += 1
            t += rnd.uniform(20, 240)
        t += rnd.expovariate(1 / (2 * HOUR))


def run(requests) -> tuple[Detector, list]:
    detector = Detector()
    alerts = detector.process_all(sorted(requests, key=lambda r: r.timestamp))
    return detector, alerts


def background(hours: float = 8.0, people: int = 30):
    return [r for i in range(people) for r in chatter(f"person-{i}", T0, hours, seed=i)]


def test_a_blatant_extractor_is_alerted_and_people_are_not():
    _, alerts = run(background() + list(extractor("script", T0 + 2 * HOUR, 1500)))
    assert {a.subject for a in alerts} == {"script"}
    assert alerts[-1].severity == "critical"
    indicators = {e.indicator for e in alerts[-1].evidence}
    assert {"reasoning_elicitation_share", "templated_novel_fill_share"} & indicators


def test_updates_keep_one_dedup_key_and_one_open_alert():
    _, alerts = run(background() + list(extractor("script", T0 + 2 * HOUR, 1500)))
    assert len({a.dedup_key for a in alerts}) == 1
    assert [a.sequence for a in alerts] == list(range(1, len(alerts) + 1))
    assert all(a.status == "firing" for a in alerts)


def test_an_alert_resolves_when_its_account_falls_silent():
    detector, alerts = run(background(hours=12) + list(extractor("script", T0 + 2 * HOUR, 600)))
    resolved = [a for a in alerts if a.status == "resolved"]
    assert [a.subject for a in resolved] == ["script"]
    assert resolved[0].time - resolved[0].last_seen >= 6 * HOUR
    assert not detector.alerts.open


def test_nothing_alerts_during_warm_up():
    _, alerts = run(list(extractor("script", T0, 1500, every=5.0)))
    assert alerts and min(a.time for a in alerts) >= T0 + HOUR


def test_without_prompt_text_an_extractor_is_still_caught_on_its_outputs():
    _, alerts = run(background() + list(extractor("script", T0 + 2 * HOUR, 1500, prompt_text=None)))
    assert {a.subject for a in alerts} == {"script"}
    assert "reasoning_elicitation_share" not in {e.indicator for a in alerts for e in a.evidence}


def test_templated_batch_jobs_with_short_outputs_are_not_alerted():
    batch = [
        request(
            "batch",
            T0 + 2 * HOUR + n * 2.0,
            n,
            prompt_text=f"Classify the sentiment of review {n}: 'ok'",
            output_tokens=3,
            max_tokens=10,
            finish_reason="stop",
            turn_index=0,
            account_created_at=T0 - 2 * 86400,
        )
        for n in range(3000)
    ]
    _, alerts = run(background() + batch)
    assert not alerts


def test_replaying_the_same_records_gives_identical_alerts():
    traffic = background() + list(extractor("script", T0 + 2 * HOUR, 800))
    first = [a.to_cloudevent() for a in run(traffic)[1]]
    second = [a.to_cloudevent() for a in run(traffic)[1]]
    assert first == second and first


def test_late_records_do_not_move_time_backwards():
    detector = Detector()
    detector.process(request("a", T0 + 100, 0))
    detector.process(request("a", T0 + 10, 1))
    profile = detector.profiles["a"]
    assert profile.last_seen == T0 + 100 and profile.requests == 2


def test_an_account_reports_its_attributes_as_alarming_the_moment_its_own_risk_reaches_warning():
    """The link stage hears at once that an account pages alone (not at its next summary, which a
    slow member sends hours later): its campaign can take it in while its alert is held."""
    detector = Detector()
    alarming_reports, crossed_at = [], None
    for request in sorted(background() + list(extractor("script", T0 + 2 * HOUR, 60)), key=lambda r: r.timestamp):
        observations = detector.process(request).observations
        if request.account_id != "script":
            continue
        requests = detector.profiles["script"].requests
        alarming_reports += [requests for o in observations if o.alarming]
        if crossed_at is None and detector.profiles["script"].risk >= detector.policy.warning_risk:
            crossed_at = requests
    assert crossed_at is not None and alarming_reports[0] == crossed_at


def _templates(detector: Detector, account: str, prompt: str, n: int = 0, turn: int = 0) -> set[str]:
    """The template keys of the summary one request of ``account`` sends (its first requests always report)."""
    observations = detector.process(
        request(account, T0 + n, n, prompt_text=prompt, input_tokens=40, output_tokens=2400, turn_index=turn)
    ).observations
    return {o.attribute for o in observations if o.attribute.startswith("template:")}


def test_a_harvest_shaped_first_request_reports_its_prompt_form():
    """A trickle campaign's accounts may send one request each in a day: the form of that request
    (both ends of its template) is what they share; a person's question with one end alike is not."""
    detector = Detector()
    form = _templates(detector, "op-1", "Write the complete solution to this task: sort 41 numbers. Include tests.")
    assert len(form) == 1
    assert (
        _templates(detector, "op-2", "Write the complete solution to this task: parse 7 dates. Include tests.") == form
    )
    other_end = _templates(detector, "person", "Write the complete solution to this task: my cat. Thanks a lot.")
    assert other_end and other_end.isdisjoint(form)
    assert _templates(detector, "chat", "Write the complete solution to this task: hi. Include tests.", turn=3) == set()


def _harvest_reported(detector: Detector, account: str, start: float, age_days: float) -> dict[str, int]:
    """Per attribute kind, the harvest-shaped requests an account's first summaries report, the account
    sending a script's requests from ``start`` through one card and a client of its own."""
    reported: dict[str, int] = {}
    for n in range(4):
        record = request(
            account,
            start + 4.0 * n,
            n,
            prompt_text=f"Write a complete, thorough answer for {account}'s user: case {n * 31} of {n * 7 % 97} trains",
            max_tokens=4096,
            output_tokens=4096,
            finish_reason="length",
            turn_index=0,
            account_created_at=start - age_days * 86400,
            payment_fingerprint=f"card-{account}",
            user_agent="product-client/1.0",
            tls_fingerprint="tls-popular",
        )
        for observation in detector.process(record).observations:
            kind = observation.attribute.partition(":")[0]
            reported[kind] = max(reported.get(kind, 0), observation.harvest_like)
    return reported


def test_an_old_account_busy_from_the_detectors_first_hour_is_reported_through_its_card_only():
    """An API product, opened long ago and serving its users when the detector starts, sends single
    questions with long answers: what it shares with other products (a popular TLS stack, a wrapper
    template) must not link it to them; its own card still reports what it sends. A woken old account
    first seen hours later, and a new account from the first hour, report every attribute."""
    detector = Detector()
    product = _harvest_reported(detector, "product", T0, age_days=400.0)
    woken = _harvest_reported(detector, "woken", T0 + 5 * HOUR, age_days=400.0)
    detector = Detector()
    new = _harvest_reported(detector, "new", T0, age_days=1.0)
    assert product == {"payment": 4}  # no network: the test's records carry no address
    assert woken["payment"] == 4 and woken["tls"] == 4 and woken["setup"] == 4
    assert new["tls"] == 4


def _operator_on_browsers(system_prompts: list[str | None]) -> set[str]:
    """New accounts of one burst operator coming ten minutes apart, each on its own card and network,
    opened hours apart, on one of three browsers that people use too, each sending its ``system_prompts``
    entry (no prompt text: no template to share); the alert keys that page them, and nobody else."""
    browsers = ["tls-chrome", "tls-firefox", "tls-safari"]
    people = [
        msgspec.structs.replace(r, tls_fingerprint=browsers[i % 3], client_ip=f"198.51.{i}.7")
        for i in range(30)
        for r in chatter(f"person-{i}", T0, 12.0, seed=i)
    ]
    accounts = [
        r
        for n, system_prompt in enumerate(system_prompts)
        for r in extractor(
            f"script-{n}",
            T0 + 2 * HOUR + n * 600,
            400,
            every=6.0,
            tls_fingerprint=browsers[n % 3],
            user_agent=f"Mozilla/5.0 {browsers[n % 3]}",
            payment_fingerprint=f"pm-{n}",
            client_ip=f"203.0.{n}.9",
            system_prompt_hash=system_prompt,
            account_created_at=T0 - (1 + n / 4) * 86400,
            prompt_text=None,
        )
    ]
    stages = ChainedStages()
    alerts = [a for r in sorted(people + accounts, key=lambda r: r.timestamp) for a in stages.process(r)]
    paged = [a for a in alerts if a.status == "firing" and a.severity in ("warning", "critical")]
    assert {f"script-{n}" for n in range(len(system_prompts))} <= {x for a in paged for x in a.account_ids}
    assert not {x for a in paged for x in a.account_ids if x.startswith("person")}
    return {a.dedup_key for a in paged}


def test_an_operators_accounts_on_different_browsers_sharing_its_system_prompt_are_one_campaign():
    """A system prompt is the operator's own wrapper: its accounts share it whatever client they send
    from, where a browser's TLS fingerprint is shared with people (eval seed 6230: 35 accounts on three
    browsers, each paging on its own, under six alert keys; one with the system prompt)."""
    assert len(_operator_on_browsers(["sp-operator"] * 9)) == 1
    assert len(_operator_on_browsers([f"sp-{n}" for n in range(9)])) > 1
