"""Campaign linking: what joins accounts, what keeps them apart, merges, growth and expiry."""

from __future__ import annotations

from detector.detection.alerting import CAMPAIGN_ALERT_TYPE
from detector.detection.campaigns import (
    AttributeIndex,
    AttributeObservation,
    CampaignBook,
    CampaignPolicy,
    Link,
    Sweeps,
)
from detector.detection.stages import CampaignStages

T0 = 1_772_409_600.0


class CampaignLinker:
    """The attribute index and campaign book of :class:`CampaignStages`, fed one observation at a time
    and swept when a test says so: these tests are about linking, not about the stages' clocks."""

    def __init__(self, policy: CampaignPolicy | None = None):
        stages = CampaignStages(policy)
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
    linker: CampaignLinker, account: str, attributes: list[str], t: float, checked: int = 2, harvest_like: int = 2
):
    alerts, memberships = [], []
    for attribute in attributes:
        new_alerts, new_members = linker.observe(
            AttributeObservation(attribute, account, t, checked, checked, harvest_like, t)
        )
        alerts += new_alerts
        memberships += new_members
    return alerts, memberships


def firing(alerts):
    return [a for a in alerts if a.type == CAMPAIGN_ALERT_TYPE and a.status == "firing"]


def test_harvesting_accounts_sharing_a_payment_instrument_become_one_campaign_alerted_once():
    linker = CampaignLinker()
    alerts = []
    for n in range(30):
        alerts += report(linker, f"a{n}", ["payment:p1", f"network:n{n}"], T0 + n)[0]
    sent = firing(alerts)
    assert len({a.dedup_key for a in sent}) == 1
    assert len(sent[0].account_ids) == 25 and sent[0].extra["account_count"] == 25
    assert sent[0].extra["shared_attributes"] == [{"attribute": "payment", "value_hash": "p1", "member_count": 25}]


def test_a_burst_of_members_is_one_update():
    linker = CampaignLinker()
    alerts = []
    for n in range(40):
        alerts += report(linker, f"a{n}", ["payment:p1"], T0)[0]
    assert [len(a.account_ids) for a in firing(alerts)] == [25]


def test_growth_re_sends_under_the_same_dedup_key():
    linker = CampaignLinker()
    alerts = []
    for n in range(40):
        alerts += report(linker, f"a{n}", ["payment:p1"], T0 + n * 60)[0]
    sent = firing(alerts)
    assert [len(a.account_ids) for a in sent] == [25, 35]  # grown, and ten minutes later
    assert len({a.dedup_key for a in sent}) == 1 and [a.sequence for a in sent] == list(range(1, len(sent) + 1))


def test_a_campaign_that_grew_in_a_last_burst_is_re_sent_at_a_later_sweep():
    """No later link need come: the sweep re-sends the complete list once the pacing allows."""
    book = CampaignBook()
    alerts = []
    for n in range(40):
        alerts += book.observe(Link("payment:p1", f"a{n}", T0 + n, 1, 1))[0]
    alerts += book.expire_idle(T0 + 300)[0]  # too soon after the first alert
    assert [len(a.account_ids) for a in firing(alerts)] == [25]
    alerts += book.expire_idle(T0 + 900)[0]
    assert [len(a.account_ids) for a in firing(alerts)] == [25, 40]


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
    alerts = []
    for n in range(30):
        alerts += report(linker, f"a{n}", ["payment:p1"], T0 + n)[0]
    for n in range(30):
        alerts += report(linker, f"b{n}", ["payment:p2"], T0 + 100 + n)[0]
    older, newer = (a.campaign_id for a in firing(alerts)[:1] + firing(alerts)[-1:])
    assert older != newer
    merged_alerts, memberships = report(linker, "bridge", ["payment:p1", "payment:p2"], T0 + 200)
    assert [c for c in linker.book.campaigns] == [older]
    resolved = [a for a in merged_alerts if a.status == "resolved"]
    assert [a.campaign_id for a in resolved] == [newer] and "merged into" in resolved[0].summary
    assert {m.campaign_id for m in memberships} == {older}
    assert {f"b{n}" for n in range(30)} <= {m.account_id for m in memberships}


def test_campaigns_sharing_only_a_template_stay_apart_but_a_second_weak_kind_merges_them():
    linker = CampaignLinker()
    for n in range(30):
        report(linker, f"a{n}", ["payment:p1", "template:t"], T0 + n)
        report(linker, f"b{n}", ["payment:p2", "template:t"], T0 + 50 + n)
    assert len(linker.book.campaigns) == 2
    for n in range(3):
        report(linker, f"a{n}", ["tls:x"], T0 + 100 + n)
        report(linker, f"b{n}", ["tls:x"], T0 + 110 + n)
    assert len(linker.book.campaigns) == 1


def test_an_account_that_stops_harvesting_leaves_its_campaign():
    linker = CampaignLinker()
    for n in range(30):
        report(linker, f"a{n}", ["network:proxy"], T0 + n)
    assert "a3" in linker.book.campaign_of
    _, memberships = report(linker, "a3", ["network:proxy"], T0 + 100, checked=6, harvest_like=1)
    assert "a3" not in linker.book.campaign_of
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("a3", None)]


def test_an_account_leaves_when_it_stops_harvesting_even_after_its_attribute_stopped_linking():
    linker = CampaignLinker()
    for n in range(30):
        report(linker, f"a{n}", ["network:proxy"], T0 + n)
    for n in range(60):  # ordinary users arrive on the proxy: it no longer links anyone new
        report(linker, f"user{n}", ["network:proxy"], T0 + 50 + n, checked=6, harvest_like=0)
    assert not linker.index.attributes["network:proxy"].linking
    _, memberships = report(linker, "a3", ["network:proxy"], T0 + 200, checked=6, harvest_like=1)
    assert "a3" not in linker.book.campaign_of
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("a3", None)]


def test_weak_attributes_no_campaign_took_are_forgotten_after_their_ttl():
    linker = CampaignLinker(CampaignPolicy(attribute_ttl_hours=1.0))
    for n in range(30):  # a template that links harvesters, but no second kind ever joins them
        report(linker, f"a{n}", ["template:t1"], T0 + n)
    book = linker.book
    assert "template:t1" in book._weak_members and not book.campaigns
    linker.expire(T0 + 2 * 3600)
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
    index: AttributeIndex = linker.index
    assert "payment:p1" in index.attributes
    alerts, memberships = linker.expire(T0 + 3 * 3600)
    assert "payment:p1" not in index.attributes
    assert [a.status for a in alerts] == ["resolved"] and not linker.book.campaigns
    assert {m.campaign_id for m in memberships} == {None} and len(memberships) == 30


def alerting_campaign(linker: CampaignLinker, client: str = "tls:custom-client") -> list:
    """30 harvesting accounts tied by one payment instrument, all on one client: an alerting campaign."""
    alerts = []
    for n in range(30):
        alerts += report(linker, f"a{n}", ["payment:p1", client], T0 + n)[0]
    assert firing(alerts)
    return alerts


def test_a_harvesting_account_on_a_client_only_an_alerting_campaign_uses_joins_it_and_the_alert_says_why():
    linker = CampaignLinker()
    campaign = firing(alerting_campaign(linker))[0].campaign_id
    alerts, memberships = report(linker, "lone", ["payment:own", "tls:custom-client"], T0 + 3600)
    assert linker.book.campaign_of["lone"] == campaign
    assert [(m.account_id, m.campaign_id) for m in memberships] == [("lone", campaign)]
    sent = firing(alerts)[-1]
    assert "lone" in sent.account_ids
    assert sent.extra["joined_on_exclusive_attribute"] == [
        {"attribute": "tls", "value_hash": "custom-client", "account_ids": ["lone"]}
    ]
    assert "1 of them share only one tls that no one but this campaign's harvesting accounts uses" in sent.summary


def test_an_ordinary_account_on_the_campaigns_client_is_not_joined():
    linker = CampaignLinker()
    alerting_campaign(linker)
    report(linker, "user", ["payment:own", "tls:custom-client"], T0 + 3600, checked=4, harvest_like=0)
    assert "user" not in linker.book.campaign_of


def test_a_client_that_ordinary_accounts_also_use_joins_no_harvesting_account_on_its_own():
    linker = CampaignLinker()
    for n in range(10):
        report(linker, f"user{n}", ["tls:browser"], T0 + n, checked=4, harvest_like=0)
    alerting_campaign(linker, client="tls:browser")
    report(linker, "lone", ["payment:own", "tls:browser"], T0 + 3600)
    assert "lone" not in linker.book.campaign_of


def test_a_template_only_the_campaign_uses_joins_no_account_on_its_own():
    """An eval suite pastes the same public extraction prompt: a template is never owned."""
    linker = CampaignLinker()
    alerting_campaign(linker, client="template:think-step-by-step")
    report(linker, "eval", ["payment:own", "template:think-step-by-step"], T0 + 3600)
    assert "eval" not in linker.book.campaign_of


def test_accounts_on_the_client_before_the_campaign_alerts_join_when_it_does():
    linker = CampaignLinker()
    for n in range(10):
        report(linker, f"a{n}", ["payment:p1", "tls:custom-client"], T0 + n)
    for n in range(3):
        report(linker, f"lone{n}", [f"payment:own{n}", "tls:custom-client"], T0 + 20 + n)
    assert not any(f"lone{n}" in linker.book.campaign_of for n in range(3))
    alerts = []
    for n in range(10, 25):
        alerts += report(linker, f"a{n}", ["payment:p1", "tls:custom-client"], T0 + 30 + n)[0]
    sent = firing(alerts)
    assert len(sent) == 1 and {"lone0", "lone1", "lone2"} <= set(sent[0].account_ids)
    assert sent[0].extra["account_count"] == 28
