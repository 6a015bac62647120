"""Campaign linking: what joins accounts, what keeps them apart, merges, growth and expiry."""

from __future__ import annotations

import pytest

from detector.detection.alerting import CAMPAIGN_ALERT_TYPE
from detector.detection.campaigns import (
    _NOUNS,
    _TIE_NOUNS,
    ATTRIBUTE_KINDS,
    TIE_KINDS,
    AttributeIndex,
    AttributeObservation,
    CampaignBook,
    Link,
    Sweeps,
    paired,
)
from detector.detection.policy import CampaignPolicy, DetectionPolicy
from detector.detection.stages import CampaignStages

T0 = 1_772_409_600.0
HOUR = 3600.0
POLICY = CampaignPolicy()
HOLD = POLICY.campaign_alert_hold_minutes * 60
"""How long a new campaign waits before its first alert."""
RESEND = POLICY.min_resend_minutes * 60
ACCOUNT_HOLD = DetectionPolicy().account_alert_hold_minutes * 60
"""How long an account alert is held (a busy account's)."""


class CampaignLinker:
    """The attribute index and campaign book of :class:`CampaignStages`, fed one observation at a time
    and swept when a test says so: these tests are about linking, not about the stages' clocks."""

    def __init__(self, policy: CampaignPolicy | None = None):
        self.stages = stages = CampaignStages(policy)
        self.index = stages.link.index
        self.book = stages.merge.book

    def observe(self, observation: AttributeObservation):
        alerts, memberships = [], []
        for link in self.index.observe(observation):
            new_alerts, new_memberships = self.book.observe(link)
            alerts += new_alerts
            memberships += new_memberships
        return alerts, memberships

    def expire(self, now: float):
        self.index.expire(now)
        return self.book.expire_idle(now)


def report(
    linker: CampaignLinker,
    account: str,
    attributes: list[str],
    t: float,
    checked: int = 2,
    harvest_like: int = 2,
    first_seen: float | None = None,
    alarming: bool = False,
    fresh: bool = False,
    requests: int | None = None,
):
    """One account's summary through each of ``attributes``; by default a new account whose two
    checked requests both looked like harvesting (``requests``: all it sent, default ``checked``).
    ``alarming``: its own risk pages."""
    first_seen = t if first_seen is None else first_seen
    requests = checked if requests is None else requests
    pages_at = t + ACCOUNT_HOLD if alarming else 0.0  # as the detector says: its own alert is held from now
    alerts, memberships = [], []
    for attribute in attributes:
        new_alerts, new_members = linker.observe(
            AttributeObservation(
                attribute, account, t, requests, checked, harvest_like, first_seen, alarming, fresh, pages_at
            )
        )
        alerts += new_alerts
        memberships += new_members
    return alerts, memberships


def popular_sdk_customers(linker: CampaignLinker) -> None:
    """Twenty customers on a popular SDK's client, none harvesting: it carries mostly their traffic."""
    for n in range(20):
        report(linker, f"user{n}", ["tls:popular-sdk"], T0 + n, checked=4, harvest_like=0)


def firing(alerts):
    return [a for a in alerts if a.type == CAMPAIGN_ALERT_TYPE and a.status == "firing"]


def test_harvesting_accounts_sharing_a_payment_instrument_become_one_campaign_alerted_once():
    linker = CampaignLinker()
    alerts = []
    for n in range(30):
        alerts += report(linker, f"a{n}", ["payment:p1", f"network:n{n}"], T0 + n)[0]
    alerts += linker.expire(T0 + 3 + HOLD)[0]  # formed with its fourth account, at T0 + 3
    [sent] = firing(alerts)
    assert len(sent.account_ids) == 30 and sent.extra["account_count"] == 30
    assert sent.extra["shared_attributes"] == [{"attribute": "payment", "value_hash": "p1", "member_count": 30}]


def test_a_burst_of_members_is_one_update():
    """Accounts that join within a minute of the first alert go out together in the next update."""
    linker = CampaignLinker()
    for n in range(25):
        report(linker, f"a{n}", ["payment:p1"], T0)
    alerts = linker.expire(T0 + HOLD)[0]
    for n in range(25, 40):  # all within one minute
        alerts += report(linker, f"a{n}", ["payment:p1"], T0 + HOLD + 30)[0]
    alerts += report(linker, "a40", ["payment:p1"], T0 + HOLD + RESEND)[0]
    assert [len(a.account_ids) for a in firing(alerts)] == [25, 41]


def test_growth_re_sends_under_the_same_dedup_key():
    linker = CampaignLinker()
    alerts = []
    for n in range(40):
        alerts += report(linker, f"a{n}", ["payment:p1"], T0 + n * 60)[0]
    sent = firing(alerts)
    # a card links from three accounts: paged 20 minutes after it formed (23 accounts by then); grown,
    # and ten minutes later
    assert [len(a.account_ids) for a in sent] == [23, 33]
    assert len({a.dedup_key for a in sent}) == 1 and [a.sequence for a in sent] == list(range(1, len(sent) + 1))


def test_a_campaign_that_grew_in_a_last_burst_is_re_sent_at_a_later_sweep():
    """No later link need come: the sweep re-sends the complete list once the pacing allows."""
    book = CampaignBook()
    for n in range(25):
        book.observe(Link("payment:p1", f"a{n}", T0, 1, 1))
    alerts = book.expire_idle(T0 + HOLD)[0]
    for n in range(25, 40):
        alerts += book.observe(Link("payment:p1", f"a{n}", T0 + HOLD + n, 1, 1))[0]
    alerts += book.expire_idle(T0 + HOLD + 300)[0]  # too soon after the first alert
    assert [len(a.account_ids) for a in firing(alerts)] == [25]
    alerts += book.expire_idle(T0 + HOLD + RESEND)[0]
    assert [len(a.account_ids) for a in firing(alerts)] == [25, 40]


def test_three_harvesting_accounts_alone_behind_one_network_are_one_campaign_that_waits_to_page():
    """A small operator's proxy range carries three of its accounts, each on its own card: linked as
    soon as the third harvests, into a campaign that pages only from six members, one paging on its
    own, or more harvest between them than a few people behind a small office's NAT send (three people
    with a long question or two each look the same)."""
    linker = CampaignLinker()
    alerts = []
    for n in range(3):
        alerts += report(linker, f"p{n}", [f"payment:p{n}", "network:proxy"], T0 + n, checked=4, harvest_like=2)[0]
    found = {linker.book.campaign_of.get(f"p{n}") for n in range(3)}
    assert len(found) == 1 and None not in found
    assert not firing(alerts + linker.expire(T0 + 2 + HOLD)[0])
    paging = report(linker, "p0", ["payment:p0", "network:proxy"], T0 + HOUR, checked=8, harvest_like=7, alarming=True)
    [sent] = firing(paging[0])
    assert set(sent.account_ids) == {"p0", "p1", "p2"}


def test_ordinary_accounts_behind_one_nat_never_link_even_if_a_few_harvest():
    linker = CampaignLinker()
    alerts = []
    for n in range(200):
        harvesting = n % 10 == 0
        alerts += report(
            linker, f"student{n}", ["network:campus"], T0 + n, checked=4, harvest_like=4 if harvesting else 0
        )[0]
    assert not alerts and not linker.book.campaigns


def test_a_popular_user_agent_never_joins_accounts():
    linker = CampaignLinker()
    for n in range(60):
        report(linker, f"a{n}", ["user_agent:sdk"], T0 + n)
    assert not linker.book.campaigns


def test_two_campaigns_sharing_a_payment_instrument_merge_and_the_older_id_survives():
    linker = CampaignLinker()
    for n in range(30):
        report(linker, f"a{n}", ["payment:p1"], T0 + n)
        report(linker, f"b{n}", ["payment:p2"], T0 + 100 + n)
    alerts = linker.expire(T0 + 103 + HOLD)[0]  # both alerting: the newer formed at T0 + 103
    older, newer = (alert.campaign_id for alert in sorted(firing(alerts), key=lambda alert: alert.first_seen))
    merged_alerts, memberships = report(linker, "bridge", ["payment:p1", "payment:p2"], T0 + 103 + HOLD + 60)
    assert [c for c in linker.book.campaigns] == [older]
    resolved = [a for a in merged_alerts if a.status == "resolved"]
    assert [a.campaign_id for a in resolved] == [newer] and "merged into" in resolved[0].summary
    assert {m.campaign_id for m in memberships} == {older}
    assert {f"b{n}" for n in range(30)} <= {m.account_id for m in memberships}


def test_campaigns_sharing_only_a_template_others_also_use_stay_apart_but_a_second_weak_kind_merges_them():
    linker = CampaignLinker()
    for n in range(10):  # an eval suite's users paste the template too: it is not the campaigns' own
        report(linker, f"user{n}", ["template:t"], T0 + n, checked=4, harvest_like=0)
    for n in range(30):
        report(linker, f"a{n}", ["payment:p1", "template:t"], T0 + 10 + n)
        report(linker, f"b{n}", ["payment:p2", "template:t"], T0 + 50 + n)
    assert len(linker.book.campaigns) == 2
    for n in range(4):  # a TLS fingerprint, like any shared weak attribute, links from eight harvesting accounts
        report(linker, f"a{n}", ["tls:x"], T0 + 100 + n)
        report(linker, f"b{n}", ["tls:x"], T0 + 110 + n)
    assert len(linker.book.campaigns) == 1


def proxy_campaign(linker: CampaignLinker) -> None:
    """30 harvesting accounts behind one proxy range, alerting (membership is published only then)."""
    for n in range(30):
        report(linker, f"a{n}", ["network:proxy"], T0 + n)
    assert firing(linker.expire(T0 + 3 + HOLD)[0])


def test_an_account_that_stops_harvesting_leaves_its_campaign():
    linker = CampaignLinker()
    proxy_campaign(linker)
    assert "a3" in linker.book.campaign_of
    _, memberships = report(linker, "a3", ["network:proxy"], T0 + 2 * HOUR, checked=6, harvest_like=1)
    assert "a3" not in linker.book.campaign_of
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("a3", None)]


def test_an_account_that_joins_after_another_left_is_listed_though_the_campaign_is_no_larger():
    """A trickle campaign's members leave as their traffic stops looking like harvesting and its next
    ones join: the alert is re-sent for each newcomer, not only when the campaign is larger than at its
    last alert (tuning seed 1057: 17 members joined after the last alert and were never listed)."""
    linker = CampaignLinker()
    proxy_campaign(linker)
    report(linker, "a3", ["network:proxy"], T0 + 2 * HOUR, checked=6, harvest_like=1)  # leaves: 29 members
    [update] = firing(report(linker, "newcomer", ["network:proxy"], T0 + 2 * HOUR + 1)[0])  # 30 again
    assert "newcomer" in update.account_ids and "a3" not in update.account_ids
    assert not firing(linker.expire(T0 + 3 * HOUR)[0])  # nothing new since: no update


def test_an_account_paging_on_its_own_stays_in_its_campaign_when_some_of_its_requests_look_ordinary():
    """Its own traffic pages as extraction: a few cover chats do not make it a customer, and leaving
    would page it alone, under a key of its own."""
    linker = CampaignLinker()
    proxy_campaign(linker)
    campaign = linker.book.campaign_of["a3"]
    _, memberships = report(linker, "a3", ["network:proxy"], T0 + 2 * HOUR, checked=6, harvest_like=1, alarming=True)
    assert linker.book.campaign_of["a3"] == campaign and not memberships


def test_an_account_that_left_its_campaign_returns_to_it_when_it_pages_on_its_own():
    """A trickle campaign's member with cover chat leaves when its latest requests look ordinary, then
    pages on its own risk: it is paged through the campaign it left, not alone (eval seed 6246: seven
    members of a 171-account campaign paged alone after leaving it, 9 keys; 2 with this)."""
    linker = CampaignLinker()
    popular_sdk_customers(linker)
    proxy_campaign(linker)
    campaign = linker.book.campaign_of["a3"]
    report(linker, "a3", ["network:proxy"], T0 + 2 * HOUR, checked=6, harvest_like=1)
    assert "a3" not in linker.book.campaign_of
    _, memberships = report(
        linker,
        "a3",
        ["network:proxy", "tls:popular-sdk"],
        T0 + 5 * HOUR,
        checked=12,
        harvest_like=2,  # too few for the network to link it again: its own alert says it harvests
        alarming=True,
        fresh=True,
    )
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("a3", campaign)]


def test_an_account_leaves_when_it_stops_harvesting_even_after_its_attribute_stopped_linking():
    linker = CampaignLinker()
    proxy_campaign(linker)
    for n in range(60):  # ordinary users arrive on the proxy: it no longer links anyone new
        report(linker, f"user{n}", ["network:proxy"], T0 + HOUR + n, checked=6, harvest_like=0)
    assert not linker.index.attributes["network:proxy"].linking
    _, memberships = report(linker, "a3", ["network:proxy"], T0 + 2 * HOUR, checked=6, harvest_like=1)
    assert "a3" not in linker.book.campaign_of
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("a3", None)]


def test_weak_attributes_no_campaign_took_are_forgotten_after_their_ttl():
    linker = CampaignLinker(CampaignPolicy(attribute_ttl_hours=1.0))
    for n in range(5):  # ordinary accounts use the template too: it links, but joins no one on its own
        report(linker, f"user{n}", ["template:t1"], T0 + n, checked=4, harvest_like=0)
    for n in range(30):  # a template that links harvesters, but no second kind ever joins them
        report(linker, f"a{n}", ["template:t1"], T0 + 10 + n)
    book = linker.book
    assert "template:t1" in book._weak_members and not book.campaigns
    linker.expire(T0 + 2 * HOUR)
    assert "template:t1" not in book._weak_members and "template:t1" not in book._weak_seen


def test_sweeps_fall_on_event_time_boundaries_not_on_every_message():
    sweeps = Sweeps(period=300.0)
    assert [sweeps.due(t) for t in (T0 + 10, T0 + 20, T0 + 400, T0 + 450, T0 + 1000)] == [
        False,
        False,
        True,
        False,
        True,
    ]


def test_stale_attributes_expire_and_idle_campaigns_resolve():
    policy = CampaignPolicy(attribute_ttl_hours=1.0, campaign_idle_hours=2.0)
    linker = CampaignLinker(policy)
    for n in range(30):
        report(linker, f"a{n}", ["payment:p1"], T0 + n)
    assert firing(linker.expire(T0 + 3 + HOLD)[0])
    index: AttributeIndex = linker.index
    assert "payment:p1" in index.attributes
    alerts, memberships = linker.expire(T0 + 3 * HOUR)
    assert "payment:p1" not in index.attributes
    assert [a.status for a in alerts] == ["resolved"] and not linker.book.campaigns
    assert {m.campaign_id for m in memberships} == {None} and len(memberships) == 30


def alerting_campaign(linker: CampaignLinker, client: str = "tls:custom-client") -> list:
    """30 harvesting accounts tied by one payment instrument, all on one client: an alerting campaign."""
    alerts = []
    for n in range(30):
        alerts += report(linker, f"a{n}", ["payment:p1", client], T0 + n)[0]
    alerts += linker.expire(T0 + 3 + HOLD)[0]
    assert firing(alerts)
    return alerts


def test_a_harvesting_account_on_a_client_only_a_campaigns_harvesters_use_joins_it():
    """The client is exclusive (at least ten harvesting accounts, nearly no one else): it joins like a card."""
    linker = CampaignLinker()
    campaign = firing(alerting_campaign(linker))[0].campaign_id
    alerts, memberships = report(linker, "lone", ["payment:own", "tls:custom-client"], T0 + HOUR)
    assert linker.book.campaign_of["lone"] == campaign
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("lone", campaign)]
    assert "lone" in firing(alerts)[-1].account_ids
    listed_apart = firing(alerts)[-1].extra["joined_on_exclusive_attribute"]
    assert [(item["attribute"], item["account_ids"]) for item in listed_apart] == [("tls", ["lone"])]
    assert (
        "1 of them shares only one TLS fingerprint that no one but this campaign's harvesting accounts uses, "
        "and harvests on its own." in firing(alerts)[-1].summary
    )


def test_accounts_linked_before_their_client_became_exclusive_join_when_it_does():
    """Accounts that share only a script's client set-up link from the eighth, and the set-up turns
    exclusive with the tenth: from then on each new one joins outright, and the first nine, which
    were waiting, join when the campaign (formed by the tenth to thirteenth) first alerts."""
    linker = CampaignLinker()
    for n in range(20):
        report(linker, f"op{n}", [f"payment:own{n}", "setup:script"], T0 + n * 60)
    alerts, _ = linker.expire(T0 + 12 * 60 + HOLD)  # four members at T0 + 12 min
    assert {f"op{n}" for n in range(20)} <= set(firing(alerts)[-1].account_ids)


def test_an_ordinary_account_on_the_campaigns_client_is_not_joined():
    linker = CampaignLinker()
    alerting_campaign(linker)
    report(linker, "user", ["payment:own", "tls:custom-client"], T0 + HOUR, checked=4, harvest_like=0)
    assert "user" not in linker.book.campaign_of


def test_a_client_that_ordinary_accounts_also_use_joins_no_harvesting_account_on_its_own():
    linker = CampaignLinker()
    for n in range(10):
        report(linker, f"user{n}", ["tls:browser"], T0 + n, checked=4, harvest_like=0)
    alerting_campaign(linker, client="tls:browser")
    report(linker, "lone", ["payment:own", "tls:browser"], T0 + HOUR)
    assert "lone" not in linker.book.campaign_of


def test_a_template_only_the_campaigns_harvesters_use_joins_no_account_on_its_own():
    """Unlike a client, a template is pasted: a product or an eval suite sends the same public prompt
    as an operator, so even one that only a campaign's harvesting accounts used joins nobody alone."""
    linker = CampaignLinker()
    alerting_campaign(linker, client="template:think-step-by-step")
    report(linker, "lone", ["payment:own", "template:think-step-by-step"], T0 + HOUR)
    assert "lone" not in linker.book.campaign_of


def test_accounts_on_the_campaigns_client_before_it_alerts_are_published_with_its_first_alert():
    """Automation acts on what on-call was paged for: no membership goes out while the alert is held."""
    linker = CampaignLinker()
    memberships = []
    for n in range(10):
        memberships += report(linker, f"a{n}", ["payment:p1", "tls:custom-client"], T0 + n)[1]
    for n in range(3):
        memberships += report(linker, f"lone{n}", [f"payment:own{n}", "tls:custom-client"], T0 + 20 + n)[1]
    for n in range(10, 25):
        memberships += report(linker, f"a{n}", ["payment:p1", "tls:custom-client"], T0 + 30 + n)[1]
    assert not memberships
    alerts, memberships = linker.expire(T0 + 3 + HOLD)
    [sent] = firing(alerts)
    assert {"lone0", "lone1", "lone2"} <= set(sent.account_ids) and sent.extra["account_count"] == 28
    assert {m.account_id for m in memberships if m.campaign_id == sent.campaign_id} == set(sent.account_ids)


def test_fragments_on_two_cards_that_merge_while_the_alert_is_held_are_paged_once():
    """An operator's accounts on two cards, which a shared client set-up and creation hour join ten
    minutes later: on-call sees one alert, not one per fragment and a 'merged into' after each."""
    linker = CampaignLinker()
    operator = paired(["setup:script", "cohort:h1"])
    alerts = []
    for n in range(4):
        alerts += report(linker, f"a{n}", ["payment:p1", *operator], T0 + n)[0]
    for n in range(4):
        alerts += report(linker, f"b{n}", ["payment:p2", *operator], T0 + 600 + n)[0]
    alerts += linker.expire(T0 + 3 + HOLD)[0]
    assert [a.status for a in alerts] == ["firing"]
    assert set(alerts[0].account_ids) == {f"{fragment}{n}" for fragment in "ab" for n in range(4)}


def test_a_small_campaign_is_paged_one_hold_after_it_formed_before_its_members_account_alerts():
    """Four accounts that harvest hard cross the account threshold as the campaign forms: the campaign's
    alert must come first, or each of them is paged on its own before it."""
    linker = CampaignLinker()
    for n in range(4):
        report(linker, f"a{n}", ["payment:p1"], T0, alarming=True)
    assert not firing(linker.expire(T0 + HOLD - 60)[0])
    [sent] = firing(linker.expire(T0 + HOLD)[0])
    assert sent.extra["account_count"] == 4
    assert DetectionPolicy().account_alert_hold_minutes * 60 > HOLD


def test_a_campaign_whose_members_paged_before_it_formed_pages_before_their_own_alerts():
    """A burst operator's first two accounts on a card page on their own within minutes; its third
    comes 24 minutes later and the card links. The campaign pages before the first member's own alert
    would (held from its paging), not a full hold after the card linked: the account alerts fold into
    it rather than reaching on-call first (eval seed 5778: three accounts, four alert keys)."""
    linker = CampaignLinker()
    report(linker, "a0", ["payment:p1"], T0, alarming=True)
    report(linker, "a1", ["payment:p1"], T0 + 360, alarming=True)
    alerts, _ = report(linker, "a2", ["payment:p1"], T0 + 1440)
    assert not firing(alerts)
    pages = T0 + ACCOUNT_HOLD  # a0's own alert, held from its paging
    [sent] = firing(linker.expire(pages - POLICY.member_alert_lead_minutes * 60)[0])
    assert set(sent.account_ids) == {"a0", "a1", "a2"}
    assert pages < T0 + 1440 + HOLD


def test_a_few_people_on_one_card_each_with_a_long_question_are_no_campaign_until_one_of_them_pages():
    """Four students on a university card (or developers on a company card) each asked one long
    question: shaped as an operator's small card group, but nothing pages them. When one account of
    such a group pages on its own risk, the group is paged together, through its campaign."""
    linker = CampaignLinker()
    for n in range(4):
        report(linker, f"s{n}", ["payment:p1", f"network:n{n}"], T0 + n, checked=1, harvest_like=1)
    assert linker.book.campaigns  # linked, held
    assert not firing(linker.expire(T0 + HOLD)[0] + linker.expire(T0 + 6 * HOUR)[0])
    alerts, memberships = report(linker, "s2", ["payment:p1", "network:n2"], T0 + 6 * HOUR + 60, alarming=True)
    [sent] = firing(alerts)
    assert set(sent.account_ids) == {f"s{n}" for n in range(4)}
    assert {m.account_id for m in memberships} == {f"s{n}" for n in range(4)}


def test_three_accounts_on_one_proxy_range_that_harvested_ten_requests_between_them_are_paged_together():
    """The same three accounts, each three or four harvest-shaped requests in: more than the people a
    small office's NAT carries send (one or two each), so the campaign pages after its hold, though
    none of its accounts pages on its own and no fourth one came."""
    linker = CampaignLinker()
    for n in range(3):
        report(linker, f"p{n}", [f"payment:p{n}", "network:proxy"], T0 + n, checked=5, harvest_like=3 + n % 2)
    assert not firing(linker.expire(T0 + 2 + HOLD - 60)[0])
    [sent] = firing(linker.expire(T0 + 2 + HOLD)[0])
    assert set(sent.account_ids) == {"p0", "p1", "p2"}


@pytest.mark.parametrize("later_range", ["network:proxy", "network:proxy-b"])
def test_a_small_campaign_hears_its_members_harvest_grow_after_they_linked(later_range):
    """Three accounts linked by their proxy range with two harvest-shaped requests each wait; when one
    of them reports more harvest, the campaign book hears it though nothing new links, and pages. An
    operator's accounts change proxy range between requests: the summary may come through another
    range and the account's own card, which link nothing, and is heard all the same."""
    linker = CampaignLinker()
    for n in range(3):
        report(linker, f"p{n}", [f"payment:p{n}", "network:proxy"], T0 + n, checked=4, harvest_like=2)
    assert not firing(linker.expire(T0 + 2 + HOLD)[0])
    alerts, _ = report(linker, "p0", ["payment:p0", later_range], T0 + HOUR, checked=6, harvest_like=4)
    [sent] = firing(alerts)
    assert set(sent.account_ids) == {"p0", "p1", "p2"}


def test_six_harvesting_accounts_on_one_card_are_paged_as_a_campaign_though_none_pages_alone():
    linker = CampaignLinker()
    for n in range(6):
        report(linker, f"a{n}", ["payment:p1"], T0 + n)
    [sent] = firing(linker.expire(T0 + 5 + HOLD)[0])
    assert sent.extra["account_count"] == 6


def test_an_account_active_long_before_its_attribute_began_linking_is_not_linked_by_it():
    """A tutoring app with a history of its own shares a popular template and client with an operator
    whose accounts arrive with the harvesting: an account first seen more than 6 h before the shared
    attribute began linking is not linked by it, one first seen later is."""
    linker = CampaignLinker()
    shared = ["pair:popular-template+client"]
    report(linker, "tutoring-app", shared, T0, first_seen=T0 - 7 * HOUR, requests=300)
    for n in range(8):  # with the app, eight harvesting accounts from op6 on: linking begins at T0 + 6
        report(linker, f"op{n}", shared, T0 + n)
    report(linker, "recent", shared, T0 + 20, first_seen=T0 - 5 * HOUR)
    [campaign] = linker.book.campaigns.values()
    assert set(campaign.members) == {f"op{n}" for n in range(8)} | {"recent"}


def test_a_slow_operators_early_accounts_are_linked_by_an_exclusive_attribute_an_api_product_is_not():
    """A trickle campaign reaches a linking pair (a creation hour and a template) many hours after its first
    accounts began, a few requests each: when only harvesters use the pair, those early accounts are the
    operator's, not customers with a history of their own. An API product first seen as early, with
    hundreds of requests, still has one: it is not linked, though the pair is exclusive."""
    linker = CampaignLinker()
    shared = ["pair:cohort+template"]
    report(linker, "api-product", shared, T0, first_seen=T0 - 20 * HOUR, checked=200, harvest_like=150, requests=900)
    for n in range(4):  # harvesting from hour -20 at a few requests a day
        report(linker, f"early{n}", shared, T0 + n, first_seen=T0 - 20 * HOUR, checked=4, harvest_like=3, requests=5)
    for n in range(8):  # the campaign's later accounts: the pair begins linking, then only harvesters use it
        report(linker, f"op{n}", shared, T0 + HOUR + n)
    [campaign] = linker.book.campaigns.values()
    assert set(campaign.members) == {f"op{n}" for n in range(8)} | {f"early{n}" for n in range(4)}
    assert linker.index.attributes["pair:cohort+template"].exclusive


def test_a_card_links_the_accounts_that_harvested_on_it_hours_before_it_began_linking():
    """A campaign that grows slowly: two accounts on one card harvest from hour 0, the third and fourth
    arrive 8 h later and the card begins linking. Unlike a shared template, a card only harvesters use
    is the operator's, and its first accounts are as much his as the last."""
    linker = CampaignLinker()
    for n, first_seen in enumerate((T0, T0 + 60, T0 + 8 * HOUR, T0 + 8 * HOUR + 60)):
        report(linker, f"op{n}", ["payment:card"], first_seen + 30, first_seen=first_seen)
    [campaign] = linker.book.campaigns.values()
    assert set(campaign.members) == {"op0", "op1", "op2", "op3"}


def test_accounts_with_no_evidence_yet_do_not_count_against_an_attributes_harvesting_share():
    """Five accounts that sent one ordinary request each through a /24 say nothing yet: four harvesting
    accounts on it link. Five that sent three ordinary requests each are ordinary users: they do not."""
    for checked, linked in ((1, True), (3, False)):
        linker = CampaignLinker()
        for n in range(5):
            report(linker, f"quiet{n}", ["network:203.0.113.0/24"], T0 + n, checked=checked, harvest_like=0)
        for n in range(4):
            report(linker, f"op{n}", ["network:203.0.113.0/24"], T0 + 10 + n)
        assert bool(linker.book.campaigns) is linked


def test_a_campaign_whose_members_all_left_resolves_when_it_goes_quiet():
    """Every member of an alerting campaign stopped harvesting and left it; a day later the campaign
    resolves like any quiet one (its risk was log10 of its size: 0 members raised an error)."""
    book = CampaignBook()
    for n in range(6):
        book.observe(Link("payment:p1", f"a{n}", T0, 10, 10))
    assert firing(book.expire_idle(T0 + HOLD)[0])
    for n in range(6):
        book.observe(Link("payment:p1", f"a{n}", T0 + HOLD + 60, 40, 10, harvesting=False))
    [resolved] = book.expire_idle(T0 + 30 * HOUR)[0]
    assert resolved.status == "resolved" and resolved.account_ids == ()


def test_a_pair_of_weak_attributes_links_accounts_that_neither_attribute_links_alone():
    """A popular SDK's client set-up and a busy sign-up hour are each shared with many ordinary accounts;
    an operator's accounts share both, and few others do."""
    linker = CampaignLinker()
    for n in range(40):
        report(linker, f"sdk-user{n}", paired(["setup:sdk", f"cohort:c{n}"]), T0 + n, checked=4, harvest_like=0)
        report(linker, f"sign-up{n}", paired([f"setup:s{n}", "cohort:h1"]), T0 + n, checked=4, harvest_like=0)
    operator = paired(["setup:sdk", "cohort:h1"])
    for n in range(9):  # the pair joins them as a strong kind does, exclusive to them or not
        report(linker, f"op{n}", operator, T0 + 100 + n)
    [sent] = firing(linker.expire(T0 + 107 + HOLD)[0])  # formed with op7, at T0 + 107
    assert set(sent.account_ids) == {f"op{n}" for n in range(9)}
    assert [item["attribute"] for item in sent.extra["shared_attributes"]] == ["pair"]


def test_a_pair_only_harvesters_use_links_accounts_active_for_hours_as_soon_as_it_links():
    """A trickle campaign's accounts, each on its own card and network, send a few requests a day for
    hours before eight of them share one pair of template and client. Those hours would mark them as
    established (an API product's history), but a pair only harvesters use is exclusive from the eight
    it takes to link, and accounts with few requests on it are the operator's (eval seed 5656: pairs of
    eight or nine such accounts linked no one when exclusivity took ten)."""
    linker = CampaignLinker()
    for n in range(8):
        early = T0 - 10 * HOUR
        report(linker, f"slow{n}", [f"payment:s{n}", "pair:template+browser"], T0 + n, checked=3, first_seen=early)
    [sent] = firing(linker.expire(T0 + 7 + HOLD)[0])
    assert set(sent.account_ids) == {f"slow{n}" for n in range(8)}


def test_an_account_with_no_harvest_shaped_request_is_never_linked_even_on_an_exclusive_attribute():
    """On a client only harvesting accounts use, one harvest-shaped request in three links an account;
    an account with none is never linked, though its share pulled towards the exclusive prior (2/5) passes."""
    linker = CampaignLinker()
    for n in range(20):
        report(linker, f"a{n}", ["payment:p1", "tls:custom-client"], T0 + n)
    report(linker, "quiet", ["payment:own1", "tls:custom-client"], T0 + 100, checked=1, harvest_like=0)
    report(linker, "slow", ["payment:own2", "tls:custom-client"], T0 + 101, checked=3, harvest_like=1)
    assert "quiet" not in linker.book.campaign_of
    assert "slow" in linker.book.campaign_of


def slow_proxy_campaign(linker: CampaignLinker) -> list:
    """30 accounts behind one proxy range on one custom client, a third of their requests harvest-shaped
    (the rest cover chat): a campaign, paged one hold later (returns the alerts)."""
    for n in range(30):
        report(linker, f"a{n}", ["network:proxy", "tls:custom-client"], T0 + n, checked=6, harvest_like=2)
    return linker.expire(T0 + 30 + HOLD)[0]


def test_a_new_account_on_a_campaigns_proxy_range_and_client_joins_before_harvesting_of_its_own():
    """Two requests of cover chat show nothing either way; sharing the campaign's network and its client
    is the evidence, and the alert lists the account apart with what it shares."""
    linker = CampaignLinker()
    campaign = firing(slow_proxy_campaign(linker))[0].campaign_id
    alerts, memberships = report(
        linker, "newcomer", ["network:proxy", "tls:custom-client"], T0 + HOUR, checked=2, harvest_like=0
    )
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("newcomer", campaign)]
    sent = firing(alerts + linker.expire(T0 + 2 * HOUR)[0])[-1]
    assert "newcomer" in sent.account_ids
    assert sent.extra["joined_on_shared_attributes"] == [{"ties": "client+network", "account_ids": ["newcomer"]}]
    assert "1 has not harvested on its own yet, but shares its client and network." in sent.summary


def test_a_campaign_alert_says_what_its_members_share_in_words_on_call_reads():
    """The summary names kinds as a person says them ("networks and TLS fingerprints", not
    "network, tls"), and counts members in agreement with their number; the fields keep the kinds."""
    linker = CampaignLinker()
    slow_proxy_campaign(linker)
    for n in range(2):
        report(linker, f"newcomer{n}", ["network:proxy", "tls:custom-client"], T0 + HOUR, checked=2, harvest_like=0)
    sent = firing(linker.expire(T0 + 2 * HOUR)[0])[-1]
    assert "they share networks and TLS fingerprints." in sent.summary
    assert "2 have not harvested on their own yet, but share its client and network." in sent.summary
    assert {item["attribute"] for item in sent.extra["shared_attributes"]} == {"network", "tls"}


def test_every_kind_an_alert_can_name_has_words_for_on_call():
    """A summary never shows a raw kind code (``user_agent``, ``client+network``): every attribute
    kind, pairs and every kind of tie has its words."""
    assert set(_NOUNS) == {*ATTRIBUTE_KINDS, "pair"}
    assert set(_TIE_NOUNS) == set(TIE_KINDS.values())


def test_an_account_sharing_only_a_campaigns_proxy_range_does_not_join_before_harvesting():
    """A person behind a campaign's proxy range (a campus NAT) shares one thing with it, not two."""
    linker = CampaignLinker()
    slow_proxy_campaign(linker)
    report(linker, "student", ["network:proxy", "tls:browser"], T0 + HOUR, checked=2, harvest_like=0)
    assert "student" not in linker.book.campaign_of


def test_a_new_account_on_a_campaigns_card_joins_before_harvesting_of_its_own():
    """The card's payer mostly harvests; an account on it with two requests of cover chat is theirs."""
    linker = CampaignLinker()
    popular_sdk_customers(linker)
    for n in range(30):
        report(linker, f"a{n}", ["payment:p1", "tls:popular-sdk"], T0 + n, checked=6, harvest_like=2)
    campaign = firing(linker.expire(T0 + 30 + HOLD)[0])[0].campaign_id
    alerts, memberships = report(
        linker, "newcomer", ["payment:p1", "tls:popular-sdk"], T0 + HOUR, checked=2, harvest_like=0
    )
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("newcomer", campaign)]
    sent = firing(alerts + linker.expire(T0 + 2 * HOUR)[0])[-1]
    assert sent.extra["joined_on_shared_attributes"] == [{"ties": "payment", "account_ids": ["newcomer"]}]


def test_a_developer_on_a_company_card_an_eval_team_also_uses_is_not_tied_to_anything():
    """Eight developers who converse and four eval pipelines on one card: it never links, so a new
    developer on it with one chat request joins nothing."""
    linker = CampaignLinker()
    for n in range(8):
        report(linker, f"dev{n}", ["payment:company", f"tls:d{n}"], T0 + n, checked=10, harvest_like=0)
    for n in range(4):
        report(linker, f"eval{n}", ["payment:company", f"tls:e{n}"], T0 + 10 + n, checked=8, harvest_like=8)
    linker.expire(T0 + HOUR)
    report(linker, "new-dev", ["payment:company", "tls:d9"], T0 + HOUR, checked=1, harvest_like=0)
    assert not linker.book.campaigns and "new-dev" not in linker.book.campaign_of


def test_an_account_whose_own_requests_read_as_ordinary_is_not_tied_to_the_campaign_it_shares_with():
    """Twelve requests and none harvest-shaped, where a third of the campaign's are: a person, whatever
    client and network they share."""
    linker = CampaignLinker()
    slow_proxy_campaign(linker)
    report(linker, "person", ["network:proxy", "tls:custom-client"], T0 + HOUR, checked=12, harvest_like=0)
    assert "person" not in linker.book.campaign_of


def test_an_account_tied_to_a_campaign_while_its_alert_is_held_is_listed_in_its_first_alert():
    linker = CampaignLinker()
    for n in range(30):
        report(linker, f"a{n}", ["network:proxy", "tls:custom-client"], T0 + n, checked=6, harvest_like=2)
    report(linker, "newcomer", ["network:proxy", "tls:custom-client"], T0 + 60, checked=1, harvest_like=0)
    assert "newcomer" not in linker.book.campaign_of
    sent = firing(linker.expire(T0 + 30 + HOLD)[0])[0]
    assert "newcomer" in sent.account_ids
    assert linker.book.campaign_of["newcomer"] == sent.campaign_id


def test_a_launch_day_customer_on_the_new_model_and_client_a_pivoting_campaign_uses_is_not_joined():
    """A campaign moves to a newly released model on a popular SDK; a launch-day crowd moves with it, on
    the same SDK, and one of its people asks for two long answers in eight requests. The new model is
    listed in the campaign's alert, but neither it nor its pair with the client joins anyone."""
    linker = CampaignLinker()
    for n in range(40):  # the SDK's everyday users
        report(linker, f"user{n}", ["tls:popular-sdk"], T0 + n, checked=6, harvest_like=0)
    shared = ["tls:popular-sdk", "pivot:new-model"]
    for n in range(30):
        report(linker, f"a{n}", paired([f"payment:p{n // 10}", *shared]), T0 + n, checked=8, harvest_like=6)
    assert firing(linker.expire(T0 + 30 + HOLD)[0])
    report(linker, "early-adopter", paired(["payment:own", *shared]), T0 + HOUR, checked=8, harvest_like=2)
    assert "early-adopter" not in linker.book.campaign_of


def test_a_template_four_eval_pipelines_share_links_nobody_while_four_accounts_on_one_card_do():
    """Eval pipelines of one team run the same suite and start harvest-shaped: an attribute that
    unrelated customers share needs ``min_shared_accounts`` harvesting accounts, a card four."""
    index = AttributeIndex()
    links = []
    for n in range(4):
        links += index.observe(AttributeObservation("template:suite", f"eval{n}", T0 + n, 2, 2, 2, T0 + n))
        links += index.observe(AttributeObservation("payment:card", f"a{n}", T0 + n, 2, 2, 2, T0 + n))
    assert {(link.attribute, link.account_id) for link in links} == {("payment:card", f"a{n}") for n in range(4)}


def test_an_account_mixing_cover_chat_into_its_harvest_joins_the_campaign_on_its_card():
    """A card's campaign harvests in about half its requests (the rest is cover chat): an account on it
    with one harvest-shaped request in four looks like its campaign, not like a person."""
    linker = CampaignLinker()
    for n in range(10):
        report(linker, f"a{n}", ["payment:p1"], T0 + n, checked=4, harvest_like=2)
    report(linker, "covered", ["payment:p1"], T0 + 100, checked=4, harvest_like=1)
    assert linker.book.campaign_of.get("covered") == linker.book.campaign_of["a0"]


def test_a_person_behind_a_campaigns_network_with_one_long_question_among_many_is_not_linked():
    """One harvest-shaped request in twelve is what people send; on a network a campaign mostly uses,
    the account is still judged ordinary."""
    linker = CampaignLinker()
    for n in range(10):
        report(linker, f"a{n}", ["network:n1"], T0 + n, checked=4, harvest_like=2)
    report(linker, "person", ["network:n1"], T0 + 100, checked=12, harvest_like=1)
    assert "person" not in linker.book.campaign_of


def test_one_harvest_shaped_request_on_a_client_set_up_others_share_links_nobody():
    """A browser's set-up is shared by its ordinary users: one long first answer is no habit there."""
    index = AttributeIndex()
    for n in range(10):
        index.observe(AttributeObservation("setup:browser", f"a{n}", T0 + n, 2, 2, 2, T0 + n))
    for n in range(2):  # its ordinary users: the set-up is not exclusive to harvesters
        index.observe(AttributeObservation("setup:browser", f"user{n}", T0 + 20 + n, 5, 5, 0, T0))
    links = index.observe(AttributeObservation("setup:browser", "person", T0 + 100, 1, 1, 1, T0 + 100))
    links += index.observe(AttributeObservation("setup:browser", "person", T0 + 101, 2, 2, 1, T0 + 100))
    assert [link for link in links if link.account_id == "person" and not link.tie] == []


def mixed_client_campaign(linker: CampaignLinker, client: str = "tls:browser-build") -> str:
    """An alerting campaign on one card whose client a few ordinary accounts use too: the client's
    traffic mostly harvests (it links), but it is nobody's exclusively (it joins no one alone)."""
    for n in range(4):
        report(linker, f"user{n}", [client], T0 + n, checked=4, harvest_like=0)
    campaign = firing(alerting_campaign(linker, client=client))[0].campaign_id
    assert linker.index.attributes[client].linking and not linker.index.attributes[client].exclusive
    return campaign


def test_an_account_paging_on_its_own_joins_the_campaign_it_shares_only_a_client_with():
    """A campaign spread over its own cards and networks shares only a client build among its
    accounts, which customers' browsers share too: one such attribute joins nobody. A member whose
    own traffic pages is the second piece of evidence, and is paged through the campaign's alert
    instead of one of its own (eval seed 5811: 914 accounts, 55 alert keys)."""
    linker = CampaignLinker()
    campaign = mixed_client_campaign(linker)
    report(linker, "member", ["payment:own", "tls:browser-build"], T0 + HOUR, checked=6, harvest_like=4)
    assert "member" not in linker.book.campaign_of  # harvesting, but one weak kind
    alerts, memberships = report(
        linker, "member", ["payment:own", "tls:browser-build"], T0 + 2 * HOUR, checked=8, harvest_like=6, alarming=True
    )
    assert linker.book.campaign_of["member"] == campaign
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("member", campaign)]
    listed_apart = firing(alerts)[-1].extra["joined_on_own_alert"]
    assert [(item["attribute"], item["account_ids"]) for item in listed_apart] == [("tls", ["member"])]
    assert "1 shares only one TLS fingerprint with it, and its own traffic pages." in firing(alerts)[-1].summary


def test_accounts_paging_on_their_own_through_one_linking_client_found_a_campaign():
    """No campaign yet: three accounts alarming alone, each on its own card, whose shared client
    mostly carries harvest, are one operator's; harvesting accounts that do not page stay out."""
    linker = CampaignLinker()
    for n in range(4):
        report(linker, f"user{n}", ["tls:browser-build"], T0, checked=4, harvest_like=0)
    for n in range(8):
        report(linker, f"quiet{n}", [f"payment:q{n}", "tls:browser-build"], T0 + n)
    for n in range(3):
        assert "loud0" not in linker.book.campaign_of  # two are not yet a campaign
        report(linker, f"loud{n}", [f"payment:l{n}", "tls:browser-build"], T0 + HOUR + n, alarming=True)
    found = {linker.book.campaign_of.get(f"loud{n}") for n in range(3)}
    assert len(found) == 1 and None not in found
    assert not any(f"quiet{n}" in linker.book.campaign_of for n in range(8))


def test_a_campaign_founded_through_a_client_keeps_its_members_when_the_client_turns_exclusive():
    """Accounts paging on their own found a campaign through a client; the client then turns exclusive,
    and the next account it links starts a campaign of its own, under another id: it used to take the
    same id, replace the first campaign and leave its members in no alert."""
    book = CampaignBook()
    for n in range(3):
        book.observe(Link("tls:custom", f"loud{n}", T0 + n, 10, 5, alarming=True, again=True))
    book.observe(Link("tls:custom", "next", T0 + 60, 10, 5, exclusive=True))
    for account in ["loud0", "loud1", "loud2", "next"]:
        assert account in book.campaigns[book.campaign_of[account]].members
    assert book.campaign_of["next"] != book.campaign_of["loud0"]


def test_an_account_paging_on_its_own_on_a_client_two_campaigns_share_pages_alone():
    """Which of two campaigns it belongs to is not known: it is paged on its own evidence."""
    linker = CampaignLinker()
    for n in range(8):
        report(linker, f"user{n}", ["tls:browser-build"], T0, checked=4, harvest_like=0)
    for n in range(12):
        report(linker, f"a{n}", ["payment:p1", "tls:browser-build"], T0 + n)
        report(linker, f"b{n}", ["payment:p2", "tls:browser-build"], T0 + n)
    linker.expire(T0 + 12 + HOLD)
    assert linker.book.campaign_of["a0"] != linker.book.campaign_of["b0"]
    report(linker, "lone", ["payment:own", "tls:browser-build"], T0 + HOUR, alarming=True)
    assert "lone" not in linker.book.campaign_of


def test_accounts_paging_on_their_own_through_one_template_are_paged_together_and_pull_no_one_else_in():
    """Three accounts alarming alone that paste one template are paged as one campaign (a pair that
    would tie them links later, and their own alerts would have gone out first). An eval suite
    pastes the same public prompt as an operator: through the template, no account that does not
    page joins them, even one sharing a second weak attribute with them."""
    linker = CampaignLinker()
    for n in range(4):
        report(linker, f"user{n}", ["template:solve-completely"], T0, checked=4, harvest_like=0)
    report(linker, "colleague", ["cohort:c1"], T0, checked=4, harvest_like=0)  # the hour is not the suites' alone
    for n in range(8):
        report(linker, f"suite{n}", [f"payment:s{n}", "template:solve-completely", "cohort:c1"], T0 + n)
    for n in range(3):
        report(linker, f"loud{n}", [f"payment:l{n}", "template:solve-completely"], T0 + HOUR + n, alarming=True)
    found = {linker.book.campaign_of.get(f"loud{n}") for n in range(3)}
    assert len(found) == 1 and None not in found
    report(linker, "suite9", ["payment:s9", "template:solve-completely", "cohort:c1"], T0 + 2 * HOUR)
    assert not any(f"suite{n}" in linker.book.campaign_of for n in range(10))


def test_new_accounts_paging_on_their_own_through_a_client_customers_share_are_paged_together_and_pull_no_one_in():
    """A popular SDK's client carries mostly customers' traffic and links no one. Three new accounts
    that page on their own through it (an evasive campaign on per-account cards and networks, nothing
    else shared) are one alert, not three; a harvesting account on it that does not page stays out,
    and so does an old account paging on its own (an API product whose risk touches warning)."""
    linker = CampaignLinker()
    popular_sdk_customers(linker)
    report(linker, "harvester", ["payment:h", "tls:popular-sdk"], T0 + 30)
    report(linker, "product", ["payment:p", "tls:popular-sdk"], T0 + 40, checked=6, harvest_like=5, alarming=True)
    assert not linker.index.attributes["tls:popular-sdk"].linking
    for n in range(3):
        assert "loud0" not in linker.book.campaign_of  # two are not yet a campaign
        report(linker, f"loud{n}", [f"payment:l{n}", "tls:popular-sdk"], T0 + HOUR + n, alarming=True, fresh=True)
    found = {linker.book.campaign_of.get(f"loud{n}") for n in range(3)}
    assert len(found) == 1 and None not in found
    report(linker, "harvester", ["payment:h", "tls:popular-sdk"], T0 + 2 * HOUR, checked=6, harvest_like=6)
    report(linker, "product", ["payment:p", "tls:popular-sdk"], T0 + 2 * HOUR, checked=8, harvest_like=7, alarming=True)
    assert not {"harvester", "product"} & set(linker.book.campaign_of)
    assert not any(f"user{n}" in linker.book.campaign_of for n in range(20))


def test_new_accounts_paging_on_their_own_through_a_client_join_the_campaign_the_first_pagers_joined_since():
    """A burst operator's new accounts come one after another, each paging within minutes through a
    client customers share: the first two page before any campaign, a card joins them with a third,
    and those that come after on cards of their own page through the client too. They are that
    campaign's, not alerts of their own (eval seed 6201: ten accounts under five keys). An account
    paging through the client while the earlier pagers are in two campaigns, or in none, stays alone."""
    linker = CampaignLinker()
    popular_sdk_customers(linker)
    for n in range(2):
        report(linker, f"loud{n}", ["payment:shared", "tls:popular-sdk"], T0 + HOUR + n, alarming=True, fresh=True)
    assert "loud0" not in linker.book.campaign_of  # two are not yet a campaign
    report(linker, "third", ["payment:shared", "tls:popular-sdk"], T0 + 2 * HOUR, checked=6, harvest_like=6)
    campaign = linker.book.campaign_of["loud0"]
    assert linker.book.campaign_of["loud1"] == linker.book.campaign_of["third"] == campaign
    _, memberships = report(
        linker, "later", ["payment:own", "tls:popular-sdk"], T0 + 3 * HOUR, alarming=True, fresh=True
    )
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("later", campaign)]
    other = CampaignLinker()
    popular_sdk_customers(other)
    report(other, "loud0", ["payment:shared", "tls:popular-sdk"], T0 + HOUR, alarming=True, fresh=True)
    report(other, "loud1", ["payment:other", "tls:popular-sdk"], T0 + HOUR + 1, alarming=True, fresh=True)
    for card in ("shared", "other"):
        for n in range(2):
            report(other, f"{card}{n}", [f"payment:{card}"], T0 + 2 * HOUR + n, checked=6, harvest_like=6)
    assert other.book.campaign_of["loud0"] != other.book.campaign_of["loud1"]
    report(other, "later", ["payment:own", "tls:popular-sdk"], T0 + 3 * HOUR, alarming=True, fresh=True)
    assert "later" not in other.book.campaign_of


def test_a_campaign_of_accounts_paging_on_their_own_alerts_before_the_first_of_them_pages_alone():
    """A burst campaign's new accounts page on their own minutes apart, each one's alert held
    (``account_alert_hold_minutes``) for its campaign to take it in. The campaign that three of them
    found alerts once its hold has run from the first one's paging, not from its own founding, which
    came too late: the first would page alone before it (eval seed 5633: 28 accounts, 9 alert keys; 5)."""
    linker = CampaignLinker()
    popular_sdk_customers(linker)
    paged = [T0 + HOUR, T0 + HOUR + 10 * 60, T0 + HOUR + 25 * 60]
    alerts = []
    for n, t in enumerate(paged):
        alerts += report(linker, f"loud{n}", [f"payment:l{n}", "tls:popular-sdk"], t, alarming=True, fresh=True)[0]
    [sent] = firing(alerts)
    assert set(sent.account_ids) == {"loud0", "loud1", "loud2"}
    assert paged[-1] < paged[0] + DetectionPolicy().account_alert_hold_minutes * 60  # loud0's own alert still held


def test_accounts_paging_before_an_upgrade_still_found_their_campaign_from_an_older_snapshot():
    """A snapshot taken before the campaign book kept when each account began paging lists the accounts
    only: they count as paging since their attribute was last seen, and the third one still founds."""
    linker = CampaignLinker()
    popular_sdk_customers(linker)
    for n in range(2):
        report(linker, f"loud{n}", [f"payment:l{n}", "tls:popular-sdk"], T0 + HOUR + n, alarming=True, fresh=True)
    state = linker.book.snapshot()
    state["alarming"] = {attribute: sorted(accounts) for attribute, accounts in state["alarming"].items()}
    linker.book.restore(state)
    report(linker, "loud2", ["payment:l2", "tls:popular-sdk"], T0 + HOUR + HOLD, alarming=True, fresh=True)
    assert {linker.book.campaign_of.get(f"loud{n}") for n in range(3)} == {linker.book.campaign_of["loud2"]}


def test_old_accounts_paging_on_their_own_through_their_creation_hour_are_paged_together():
    """Aged accounts bought from one batch, each on its own card and network, wake up together and page
    on their own: through the hour they were opened in they are one alert, not one each (eval seed
    5553: six alerts for seven accounts). Old accounts paging through a popular client stay apart:
    API products share one with each other, and their risk touches warning now and then."""
    linker = CampaignLinker()
    popular_sdk_customers(linker)
    for n in range(3):
        assert "aged0" not in linker.book.campaign_of  # two are not yet a campaign
        report(linker, f"aged{n}", [f"payment:a{n}", "cohort:batch", "tls:popular-sdk"], T0 + HOUR + n, alarming=True)
    found = {linker.book.campaign_of.get(f"aged{n}") for n in range(3)}
    assert len(found) == 1 and None not in found
    for n in range(3):
        report(linker, f"product{n}", [f"payment:p{n}", f"cohort:h{n}", "tls:popular-sdk"], T0 + HOUR, alarming=True)
    assert not any(f"product{n}" in linker.book.campaign_of for n in range(3))


def test_old_accounts_paging_on_their_own_through_a_client_only_harvesters_use_are_paged_together():
    """A burst operator's aged accounts, each on its own card and network, page minutes apart on a
    custom client that has not linked yet (three harvesting accounts, eight needed): one alert, not one
    per account and then the campaign's (tuning seed 1055: 22 accounts, 5 alert keys). A customer
    seen on the client makes it a client anyone may use, and old accounts paging on it stay apart."""
    linker = CampaignLinker()
    for n in range(3):
        assert "burst0" not in linker.book.campaign_of  # two are not yet a campaign
        report(linker, f"burst{n}", [f"payment:b{n}", "tls:custom-client"], T0 + HOUR + n * 60, alarming=True)
    assert not linker.index.attributes["tls:custom-client"].linking
    found = {linker.book.campaign_of.get(f"burst{n}") for n in range(3)}
    assert len(found) == 1 and None not in found
    report(linker, "customer", ["payment:c", "tls:in-house-client"], T0, checked=4, harvest_like=0)
    for n in range(3):
        report(linker, f"product{n}", [f"payment:p{n}", "tls:in-house-client"], T0 + HOUR + n, alarming=True)
    assert not any(f"product{n}" in linker.book.campaign_of for n in range(3))


def test_an_account_tied_before_any_campaign_held_the_attributes_joins_the_campaign_that_takes_them():
    """A trickle account of a low-and-slow operator reported its custom client and creation hour (one
    request in three harvest-shaped) while they linked the operator's accounts but no campaign held
    them yet; its next report may come a day later. The campaign that takes them names it when it alerts."""
    linker = CampaignLinker()
    weak = ["tls:c1", "cohort:h1"]
    report(linker, "customer", weak, T0 - 60, checked=4, harvest_like=0)  # neither is exclusive to harvesters
    for n in range(7):
        report(linker, f"o{n}", weak, T0 + n)
    report(linker, "t", weak, T0 + 60, checked=3, harvest_like=1)  # eight accounts: both link from now
    assert not linker.book.campaigns
    for n in range(7):
        report(linker, f"o{n}", ["payment:p1"], T0 + 120 + n)
    report(linker, "o7", ["payment:p1", *weak], T0 + 200)
    [sent] = firing(linker.expire(T0 + 120 + HOLD + 60)[0])
    assert set(sent.account_ids) == {f"o{n}" for n in range(8)} | {"t"}
    assert sent.extra["joined_on_shared_attributes"] == [{"ties": "client+cohort", "account_ids": ["t"]}]


def test_weak_attributes_linked_before_any_campaign_are_held_by_the_campaign_their_accounts_join():
    """An operator's accounts link through their custom client and creation hour while in no campaign;
    a card joins them later, and no link through the client comes again. The campaign holds the client
    and the hour all the same, and the trickle account tied through both before is named with it."""
    linker = CampaignLinker()
    weak = ["tls:c1", "cohort:h1"]
    report(linker, "customer", weak, T0 - 60, checked=4, harvest_like=0)  # neither is exclusive to harvesters
    for n in range(7):
        report(linker, f"o{n}", weak, T0 + n)
    report(linker, "t", weak, T0 + 60, checked=3, harvest_like=1)
    for n in range(7):
        report(linker, f"o{n}", ["payment:p1"], T0 + 120 + n)
    [sent] = firing(linker.expire(T0 + 120 + HOLD + 60)[0])
    assert set(sent.account_ids) == {f"o{n}" for n in range(7)} | {"t"}
    assert {item["attribute"] for item in sent.extra["shared_attributes"]} == {"payment", "tls", "cohort"}
    assert sent.extra["joined_on_shared_attributes"] == [{"ties": "client+cohort", "account_ids": ["t"]}]


def test_an_account_tied_through_a_card_as_it_turned_linking_joins_the_campaign_the_card_founds():
    """A card and a network turn linking with the report of their third and fourth harvesting account;
    an operator's account listed before them, with one request of cover chat, is tied in the same batch,
    before the links found the campaign. It is named with the campaign all the same."""
    linker = CampaignLinker()
    shared = ["payment:p1", "network:n1"]
    report(linker, "t", shared, T0, checked=1, harvest_like=0)
    for n in range(6):
        report(linker, f"o{n}", shared, T0 + 1 + n)
    [sent] = firing(linker.expire(T0 + 6 + HOLD)[0])
    assert set(sent.account_ids) == {f"o{n}" for n in range(6)} | {"t"}
    assert sent.extra["joined_on_shared_attributes"] == [{"ties": "network+payment", "account_ids": ["t"]}]


def test_what_the_book_heard_of_linked_accounts_harvest_survives_a_snapshot_and_is_forgotten_when_they_go_quiet():
    """A small campaign waiting for its members' harvest still hears it after a restart: three accounts
    heard at 2, 3 and 2 harvest-shaped requests wait; restored from a snapshot, one reports 4 through yet
    another range, and the campaign pages."""
    linker = CampaignLinker()
    for n in range(3):
        report(linker, f"p{n}", [f"payment:p{n}", "network:proxy"], T0 + n, checked=4, harvest_like=2)
    report(linker, "p0", ["payment:p0", "network:proxy-b"], T0 + HOUR, checked=5, harvest_like=3)
    restored = AttributeIndex()
    restored.restore(linker.index.snapshot())
    heard = {"p1": (2, T0 + 2, "network:proxy"), "p2": (2, T0 + 2, "network:proxy")}
    heard["p0"] = (3, T0 + HOUR, "network:proxy")
    assert restored.harvest_heard == linker.index.harvest_heard == heard
    restored.expire(T0 + 3 + POLICY.attribute_ttl_hours * HOUR)
    assert list(restored.harvest_heard) == ["p0"]
    restarted = CampaignLinker()
    restarted.stages.restore(linker.stages.snapshot())
    alerts, _ = report(restarted, "p1", ["payment:p1", "network:proxy-c"], T0 + 2 * HOUR, checked=6, harvest_like=4)
    [sent] = firing(alerts)
    assert set(sent.account_ids) == {"p0", "p1", "p2"}
    older = AttributeIndex()  # a snapshot from before harvest_heard: its attributes alone
    older.restore(linker.index.snapshot()["attributes"])
    assert older.attributes.keys() == linker.index.attributes.keys() and older.harvest_heard == {}
