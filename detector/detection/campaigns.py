"""Cross-account linking: accounts that share what they pay, connect and ask with, as one campaign.

Campaigns spread thin over thousands of accounts so that no account looks alarming alone; what
gives them away is what the accounts share. Three pure stages, which the worker runs on three
topics keyed differently and replay runs in one process:

1. **account summaries** (:func:`attribute_observations`, per account): now and then, an
   account reports the attributes of its traffic (payment fingerprint, client /24 or /48,
   TLS fingerprint, user agent, reused template ends, the form of a harvest-shaped prompt) with
   how many of its requests looked like harvesting;
2. **attribute index** (:class:`AttributeIndex`, keyed by attribute): tracks which accounts
   share each attribute and links an account to it only when both the attribute's traffic
   *and* the account's own traffic look like harvesting. A university NAT, a popular SDK's
   user agent or a common search-wrapper template carry mostly ordinary traffic, so they
   never link anyone: one shared attribute alone is not a campaign;
3. **campaign book** (:class:`CampaignBook`, one partition): joins links into connected
   components of accounts and attributes, gives each a stable id that survives growth and
   merges, and alerts once per campaign, re-sending under the same dedup key when accounts join it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import math
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from detector.detection.alerting import CAMPAIGN_ALERT_TYPE, Alert, rfc3339
from detector.detection.policy import CampaignPolicy
from detector.detection.scoring import Evidence

ATTRIBUTE_KINDS = ("payment", "network", "tls", "setup", "wrapper", "cohort", "pivot", "user_agent", "template")
"""Kinds of shared attribute; ``network`` is the client's IPv4 /24 or IPv6 /48, ``setup`` the
client's whole request set-up (user agent, TLS fingerprint, ``max_tokens``, temperature, system
prompt), ``wrapper`` the system prompt alone, ``cohort`` the hour and channel the account was
created in, ``pivot`` a newly released model the account sends to (listed in alerts only: see
:data:`CONTEXT_KINDS`)."""
STRONG_KINDS = frozenset({"payment", "network", "pair"})
"""Attributes that unrelated operators rarely share (see :class:`CampaignBook`); a ``pair`` is two
weak attributes of different kinds held together (:func:`paired`), far more specific than either."""
PASTED_KINDS = frozenset({"template"})
"""Weak kinds that never join an account alone, however exclusive: a product or an eval suite pastes
the same public prompt as an operator (the evidence is its being paired with something else)."""
SPECIFIC_KINDS = frozenset({"payment", "network"})
"""Kinds one customer rarely shares with another: a few harvesting accounts on one are enough."""
PAIRED_KINDS = ("setup", "tls", "cohort", "template")
"""Weak kinds whose values are also reported in pairs: an operator's accounts share a client
set-up *and* a creation hour, or a template *and* a client; a popular SDK's users and a sign-up
hour's crowd share one of them with the operator, seldom two."""
CONTEXT_KINDS = frozenset({"user_agent", "pivot"})
"""Attributes anyone can copy (an SDK's default user agent) or that crowds share with operators (a newly
released model): listed in alerts, never used to join. A launch-day crowd moves to a new model with the
campaign that pivots to it, on the same popular clients, and some of its people ask for long answers:
paired with a client, or beside one, the model joined them (eval seeds 5236 and 5284-5287, eight
customers; the blocks 5230-5289 are therefore not fresh for this choice)."""
_ALARM_KINDS_SKIPPED = STRONG_KINDS | CONTEXT_KINDS
"""Kinds through which an account that they do not link turning alarming is no news: it shares a card
or a network with others that do not harvest, and a user agent joins no one."""
CLIENT_KINDS = frozenset({"tls", "setup", "wrapper"})
"""Weak attributes that come with an operator's client build and script (its TLS stack, its whole
set-up, its system prompt), unlike a template anyone can paste:
one that only an alerting campaign's harvesters use is that campaign's (see :class:`CampaignBook`)."""


class AttributeObservation(NamedTuple):
    """Stage-1 output: one account's traffic through one attribute, since its last report."""

    attribute: str
    """``kind:value``; values are hashed, never raw IPs or fingerprints."""
    account_id: str
    timestamp: float
    requests: int
    """All requests of the account so far."""
    checked: int
    """Requests whose harvest signature could be checked."""
    harvest_like: int
    """Of those, the ones that looked like harvesting."""
    first_seen: float
    """When the detector first saw the account."""
    alarming: bool = False
    """The account's own risk had reached warning at its latest review: it pages alone unless it joins
    a campaign (see :meth:`CampaignBook._join_alarming`)."""
    fresh: bool = False
    """The account was opened less than ``DetectionPolicy.new_account[1]`` days before the detector
    first saw it (an API product serving its own users is not)."""
    pages_at: float = 0.0
    """With ``alarming``: when the account's own alert pages unless a campaign takes it in first (it is
    held from now: :meth:`~detector.detection.alerting.AlertBook.hold_seconds`)."""


class Link(NamedTuple):
    """Stage-2 output: this account shares this (harvesting) attribute, or no longer harvests."""

    attribute: str
    account_id: str
    timestamp: float
    requests: int
    harvest_like: int
    harvesting: bool = True
    """False: a linked account whose later traffic stopped looking like harvesting leaves."""
    exclusive: bool = False
    """The attribute is exclusive to harvesters (``CampaignPolicy.exclusive_share``) as of this link."""
    alarming: bool = False
    """The account pages on its own risk (:attr:`AttributeObservation.alarming`)."""
    again: bool = False
    """Only the account's turning alarming is news: it was linked through the attribute before, or
    (``linking`` False) the attribute does not link it."""
    linking: bool = True
    """False: an alarming account's news through an attribute that did not link it (one that carries
    mostly customers' traffic; any weak one for a new account, the creation hour for an old one): it
    ties the account only to others alarming through it."""
    tie: bool = False
    """The account shares the linking attribute, but its own traffic has not shown the attribute's
    harvesting yet, nor ordinary use either (see :meth:`CampaignBook._tie`)."""
    pages_at: float = 0.0
    """With ``alarming``: when the account's own alert pages (:attr:`AttributeObservation.pages_at`)."""
    refresh: bool = False
    """Only news of how much the account has harvested: linked through a card or a network that still
    links it, it has harvested more since, as its summary says through any of its attributes (an
    operator's account sends through one proxy range, then another; see
    :meth:`CampaignBook._harvests_together`)."""


MAX_UNHELD = 16
"""Most weak attributes remembered per account in no campaign (see :meth:`CampaignBook._hold`)."""
MOST_LIKE_A_GROUP = 0.95
"""Highest harvest-shaped share an attribute's traffic is taken to have when an account is judged
against it: no group harvests in every request, and one ordinary request must not weigh infinitely."""
TIE_KINDS = {
    "payment": "payment",
    "network": "network",
    "tls": "client",
    "setup": "client",
    "wrapper": "client",
    "cohort": "cohort",
    "template": "template",
}
"""What kind of tie a linking attribute makes for an account that has not harvested yet; a TLS
fingerprint, a client set-up and a system prompt are one client. Pairs make none: their parts do."""
ORDINARY_ODDS = 20.0
"""An account whose own requests are this many times likelier as ordinary traffic than as its
attribute's is not tied to it (see :meth:`AttributeIndex._ordinary`)."""
UNLINK_EVIDENCE = 3
"""Checked requests before an account whose traffic stopped harvesting is unlinked: one
step-by-step question from an ordinary user behind a proxy range joins nobody for long."""


def _own_link(observation: AttributeObservation) -> Link:
    """The link of the observation's own account to its attribute, as the observation reports it."""
    return Link(
        observation.attribute,
        observation.account_id,
        observation.timestamp,
        observation.requests,
        observation.harvest_like,
    )


def _hashed(kind: str, value: str) -> str:
    return f"{kind}:{zlib.crc32(value.encode('utf-8', 'surrogatepass')):08x}"


def network_of(client_ip: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) a client address belongs to: one proxy range, one key.

    >>> network_of("203.0.113.77"), network_of("2001:db8:1:2::5")
    ('203.0.113.0/24', '2001:db8:1::/48')
    """
    if ":" not in client_ip:  # IPv4, validated on decoding: string work is 20x cheaper than ipaddress
        return client_ip.rpartition(".")[0] + ".0/24"
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{client_ip}/{prefix}", strict=False))


def attribute_keys(request, template_fingerprints: Iterable[int], new_model: bool = False) -> list[str]:
    """The hashed attribute keys of one request and the account's reused templates; ``new_model``:
    the request's model was released within the last days, and accounts moving to it together share it."""
    keys = []
    if request.payment_fingerprint:
        keys.append(_hashed("payment", request.payment_fingerprint))
    if request.client_ip:
        network = network_of(request.client_ip)
        if network:
            keys.append(_hashed("network", network))
    if request.tls_fingerprint:
        keys.append(_hashed("tls", request.tls_fingerprint))
    if request.user_agent:
        keys.append(_hashed("user_agent", request.user_agent))
    setup = client_setup(request)
    if setup:
        keys.append(_hashed("setup", setup))
    if request.system_prompt_hash:
        keys.append(_hashed("wrapper", request.system_prompt_hash))
    if request.account_created_at is not None:
        keys.append(_hashed("cohort", f"{int(request.account_created_at // COHORT_SECONDS)}/{request.signup_channel}"))
    if new_model:
        keys.append(_hashed("pivot", request.model))
    keys.extend(f"template:{fingerprint:08x}" for fingerprint in template_fingerprints)
    return paired(keys)


def paired(keys: list[str]) -> list[str]:
    """``keys`` and a ``pair`` key for every two of them of different :data:`PAIRED_KINDS`.

    >>> paired(["payment:1", "setup:2", "cohort:3"])
    ['payment:1', 'setup:2', 'cohort:3', 'pair:69717903']
    """
    weak = [key for key in keys if key.partition(":")[0] in PAIRED_KINDS]
    pairs = [
        f"pair:{zlib.crc32(f'{first}+{second}'.encode()):08x}"
        for index, first in enumerate(weak)
        for second in weak[index + 1 :]
        if kind_of(first) != kind_of(second)
    ]
    return keys + pairs if pairs else keys


COHORT_SECONDS = 3600.0
"""Accounts created in one clock hour through one sign-up channel form a cohort. Thousands of
ordinary accounts share a cohort on a busy platform, and it links nobody unless they harvest."""


def client_setup(request) -> str | None:
    """The request's whole client set-up, or None when it has no more than a user agent.

    An operator's script sends every account's requests with the same user agent, TLS stack,
    ``max_tokens``, temperature and system prompt; customers who share an SDK's user agent
    differ in the rest. Like any weak attribute, it links only accounts that harvest.

    >>> from types import SimpleNamespace as Request
    >>> client_setup(Request(user_agent="curl/8", tls_fingerprint=None, max_tokens=4096, temperature=0.7,
    ...                      system_prompt_hash=None))
    'curl/8|None|4096|0.7|None'
    >>> client_setup(Request(user_agent="curl/8", tls_fingerprint=None, max_tokens=None, temperature=None,
    ...                      system_prompt_hash=None)) is None
    True
    """
    max_tokens, temperature, system_prompt = request.max_tokens, request.temperature, request.system_prompt_hash
    if max_tokens is None and temperature is None and system_prompt is None and request.tls_fingerprint is None:
        return None
    rounded = None if temperature is None else round(temperature, 2)
    return f"{request.user_agent}|{request.tls_fingerprint}|{max_tokens}|{rounded}|{system_prompt}"


def summary_due(requests: int) -> bool:
    """When an account reports its attributes: often while it is new, then every 64 requests."""
    return requests in _EARLY_SUMMARIES or requests & 63 == 0


_EARLY_SUMMARIES = frozenset({1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48})


def kind_of(attribute: str) -> str:
    return attribute.partition(":")[0]


@dataclass(slots=True)
class _AttributeState:
    first_seen: float
    last_seen: float
    members: dict[str, tuple[int, int, int, float, float]] = field(default_factory=dict)
    """account → (requests, checked, harvest_like, first_seen, pages_at) as last reported; ``pages_at``:
    when its own alert pages, as first reported since its risk reached warning, 0 while it does not."""
    linked: set[str] = field(default_factory=set)
    checked: int = 0
    harvest_like: int = 0
    harvesting_accounts: int = 0
    """Running totals over ``members``, so a report costs O(1) however many share the attribute."""
    linking: bool = False
    """Whether the attribute's traffic currently looks like harvesting (re-judged on every report)."""
    linking_since: float | None = None
    """When it first did: accounts with a long history before that are not its operator's."""
    exclusive: bool = False
    """Whether nearly only harvesting accounts use it, as of its latest report."""
    extra_members: int = 0
    """Accounts beyond ``attribute_member_cap``: counted, not remembered."""
    unknown_accounts: int = 0
    """Members with at most one checked request, not harvest-shaped: no evidence either way yet."""


_ATTRIBUTE_FIELDS = tuple(field.name for field in dataclasses.fields(_AttributeState))


def _unknown(checked: int, harvest_like: int) -> bool:
    """An account with at most one checked request and no harvest-shaped one: whether it harvests is
    not known yet, and it does not count against an attribute's harvesting share. Low-and-slow accounts
    send a few requests a day with cover chat between: counted as not harvesting, they kept the /24 that
    a trickle campaign's card-sized fragments shared from linking them for hours (tuning seed 1008: 15
    alert keys for one campaign, 3 once they were left out)."""
    return checked <= 1 and harvest_like == 0


def _only_harvesters(state: _AttributeState) -> bool:
    """Whether every account seen with the attribute is one of its harvesting accounts: an operator's
    custom client before enough of its accounts harvest through it to link them."""
    return state.harvesting_accounts == len(state.members) + state.extra_members


def _pages_at(observation: AttributeObservation) -> float:
    """When an alarming account's own alert pages; its report's time, from a detector that did not say."""
    return observation.pages_at or observation.timestamp


def _snapshot_pages_at(reported: bool | float, seen: float) -> float:
    """A member's ``pages_at`` from a snapshot; one taken before it was kept says only whether it paged."""
    if isinstance(reported, bool):
        return seen if reported else 0.0
    return float(reported)


class AttributeIndex:
    """Stage 2: which accounts share each attribute, and when that sharing is a link."""

    def __init__(self, policy: CampaignPolicy | None = None):
        self.policy = policy or CampaignPolicy()
        self.attributes: dict[str, _AttributeState] = {}
        self.harvest_heard: dict[str, tuple[int, float, str]] = {}
        """Accounts linked through a card or a network whose campaign may still wait for their harvest
        → the harvest-shaped requests last reported for them, when, and the card or network that linked
        them (see :attr:`Link.refresh`)."""
        self._singles: deque[str] = deque()
        """Attributes as they were first seen, oldest first: over ``max_attributes`` the oldest still
        seen with one account only is forgotten first (listed until read, as ``Detector._newcomers``)."""

    def _shows_harvesting(self, checked: int, harvest_like: int) -> bool:
        """Whether an account counts among an attribute's harvesting accounts: its own share, without
        a prior. What an attribute's accounts do *together* is the evidence; one account's first long
        question weighs little among a NAT's or an SDK's hundreds."""
        return checked >= 1 and harvest_like >= self.policy.account_harvest_share * checked

    def _harvests(self, state: _AttributeState, checked: int, harvest_like: int, specific: bool) -> bool:
        """Whether an account's own traffic is the attribute's harvesting rather than ordinary traffic.

        A likelihood ratio: its harvest-shaped and other requests under the share the attribute's
        traffic shows, against ``ordinary_harvest_rate``, times the prior odds that an account seen
        with the attribute is one of its harvesting accounts. An account that mixes cover chat into a
        campaign's harvest looks like its campaign; a person behind a proxy range that a campaign also
        uses looks ordinary after a few requests. On a client set-up, a creation hour or a template
        (``specific`` false: anyone's browser or SDK shares them), one harvest-shaped request is no
        habit, two are, unless the attribute is exclusive to harvesters; on a card or a network
        mostly harvesters use, one is enough. An account with none joins nothing, whatever it shares.

        >>> index = AttributeIndex()
        >>> card = _AttributeState(0.0, 0.0, checked=100, harvest_like=40, harvesting_accounts=9)
        >>> card.members = {f"a{n}": (0, 0, 0, 0.0) for n in range(10)}
        >>> index._harvests(card, 12, 3, True), index._harvests(card, 12, 1, False), index._harvests(card, 3, 0, True)
        (True, False, False)
        """
        if harvest_like < (1 if state.exclusive or specific else 2):
            return False
        harvesters = state.harvesting_accounts
        prior = math.log((harvesters + 1) / (len(state.members) - harvesters + 1))
        return self._own_evidence(state, checked, harvest_like) + prior >= 0.0

    def _own_evidence(self, state: _AttributeState, checked: int, harvest_like: int) -> float:
        """The log-likelihood ratio of an account's own requests: its harvest-shaped and other requests
        under the share the attribute's traffic shows, against ``ordinary_harvest_rate``; minus
        infinity when the attribute's traffic is no more harvest-shaped than ordinary traffic."""
        ordinary = self.policy.ordinary_harvest_rate
        group = min(state.harvest_like / state.checked, MOST_LIKE_A_GROUP) if state.checked else 0.0
        if group <= ordinary:
            return -math.inf
        return harvest_like * math.log(group / ordinary) + (checked - harvest_like) * math.log(
            (1.0 - group) / (1.0 - ordinary)
        )

    def _ordinary(self, state: _AttributeState, checked: int, harvest_like: int) -> bool:
        """Whether an account's own requests already read as ordinary use rather than as the attribute's
        traffic (``ORDINARY_ODDS`` to one, without a prior): an operator's account that has sent three
        requests of cover chat has not, a person with ten ordinary questions behind a campaign's proxy
        range has.

        >>> index = AttributeIndex()
        >>> proxy = _AttributeState(0.0, 0.0, checked=100, harvest_like=40)
        >>> index._ordinary(proxy, 3, 0), index._ordinary(proxy, 10, 0), index._ordinary(proxy, 10, 2)
        (False, True, False)
        """
        return self._own_evidence(state, checked, harvest_like) < -math.log(ORDINARY_ODDS)

    def observe(self, observation: AttributeObservation) -> list[Link]:
        """Fold one observation in; the links it creates (many at once when an attribute turns)."""
        policy = self.policy
        # re-inserted on every observation: the dict's order is least recently seen first, so
        # expiry reads only its stale front
        state = self.attributes.pop(observation.attribute, None)
        if state is None:
            if len(self.attributes) >= policy.max_attributes:
                self._forget_one()
            state = _AttributeState(observation.timestamp, observation.timestamp)
            self._singles.append(observation.attribute)
        self.attributes[observation.attribute] = state
        state.last_seen = max(state.last_seen, observation.timestamp)
        account = observation.account_id
        previous = state.members.get(account)
        if previous is None and len(state.members) >= policy.attribute_member_cap:
            state.extra_members += 1
            return []
        if previous is not None:
            state.checked -= previous[1]
            state.harvest_like -= previous[2]
            state.harvesting_accounts -= self._shows_harvesting(previous[1], previous[2])
            state.unknown_accounts -= _unknown(previous[1], previous[2])
        pages_at = 0.0
        if observation.alarming:
            pages_at = previous[4] if previous is not None and previous[4] else _pages_at(observation)
        state.members[account] = (
            observation.requests,
            observation.checked,
            observation.harvest_like,
            observation.first_seen,
            pages_at,
        )
        state.checked += observation.checked
        state.harvest_like += observation.harvest_like
        state.harvesting_accounts += self._shows_harvesting(observation.checked, observation.harvest_like)
        state.unknown_accounts += _unknown(observation.checked, observation.harvest_like)
        was_linking = state.linking
        kind = kind_of(observation.attribute)
        specific = kind in SPECIFIC_KINDS
        if not specific:
            minimum = policy.min_shared_accounts
        else:
            minimum = policy.min_card_accounts if kind == "payment" else policy.min_attribute_accounts
        state.linking = (
            state.harvesting_accounts >= minimum
            and state.harvesting_accounts
            >= policy.attribute_harvest_share * (len(state.members) - state.unknown_accounts)
            and state.harvest_like >= policy.attribute_request_share * state.checked
        )
        links = []
        # an account whose own risk just reached warning is news for the campaign book (_join_alarming)
        newly_alarming = observation.alarming and not (previous is not None and previous[4])
        turned_alarming = newly_alarming and kind not in _ALARM_KINDS_SKIPPED
        # through any attribute that linked it: a small campaign waits for its members' paging to alert
        alarm_again = newly_alarming and account in state.linked
        if state.linking:
            if state.linking_since is None:
                state.linking_since = observation.timestamp
            established = state.linking_since - policy.established_hours * 3600.0
            exclusive = (
                state.harvesting_accounts >= policy.min_exclusive_accounts
                and state.harvesting_accounts >= policy.exclusive_share * (len(state.members) + state.extra_members)
            )
            # turning exclusive, its unlinked accounts are judged again with the exclusive prior
            everyone = not was_linking or (exclusive and not state.exclusive)
            state.exclusive = exclusive
            candidates = list(state.members.items()) if everyone else [(account, state.members[account])]
            ties = kind in TIE_KINDS
            for member, (requests, checked, harvest_like, first_seen, pages_at) in candidates:
                if member in state.linked or not (
                    specific or first_seen >= established or (exclusive and requests < policy.established_requests)
                ):
                    continue
                if self._harvests(state, checked, harvest_like, specific):
                    state.linked.add(member)
                    if specific and harvest_like > self.harvest_heard.get(member, (-1,))[0]:
                        self._heard(member, harvest_like, observation.timestamp, observation.attribute)
                    links.append(
                        Link(
                            observation.attribute,
                            member,
                            observation.timestamp,
                            requests,
                            harvest_like,
                            exclusive=exclusive,
                            alarming=bool(pages_at),
                            pages_at=pages_at,
                        )
                    )
                elif ties and not self._ordinary(state, checked, harvest_like):
                    links.append(
                        Link(observation.attribute, member, observation.timestamp, requests, harvest_like, tie=True)
                    )
            if alarm_again:
                links.append(
                    _own_link(observation)._replace(
                        exclusive=exclusive, alarming=True, again=True, pages_at=_pages_at(observation)
                    )
                )
        if (
            turned_alarming
            and account not in state.linked
            and (observation.fresh or kind == "cohort" or (kind in CLIENT_KINDS and _only_harvesters(state)))
        ):
            # not linked through it (it carries mostly ordinary traffic, or too few accounts yet): a new
            # account paging on its own is still news for other new accounts paging through it, any account
            # for others opened in its hour (old accounts bought in a batch wake up together), and for others
            # on a client that no account but harvesting ones has used (see CampaignBook._join_alarming)
            links.append(
                _own_link(observation)._replace(
                    alarming=True, again=True, linking=False, pages_at=_pages_at(observation)
                )
            )
        heard = self.harvest_heard.get(account)
        if (
            heard is not None
            and heard[0] < min(observation.harvest_like, policy.min_campaign_harvests)
            and (linked_by := self.attributes.get(heard[2])) is not None
            and linked_by.linking
            and account in linked_by.linked
        ):
            # news the campaign book needs only until its campaign may alert on its harvest, while the
            # card or network that linked the account still links it, through whichever of its
            # attributes its summary came: an operator's accounts move between its proxy ranges
            links.append(_own_link(observation)._replace(refresh=True))
            self._heard(account, observation.harvest_like, observation.timestamp, heard[2])
        # checked even when the attribute no longer links: an account linked early leaves once it stops harvesting
        if (
            previous is not None
            and account in state.linked
            and observation.checked >= UNLINK_EVIDENCE
            and not self._harvests(state, observation.checked, observation.harvest_like, specific)
        ):
            state.linked.discard(account)
            links.append(_own_link(observation)._replace(harvesting=False, alarming=observation.alarming))
        return links

    def _heard(self, account: str, harvest_like: int, now: float, attribute: str) -> None:
        """Note what the campaign book last heard of an account's harvest: re-inserted, so that the
        dict's order is least recently heard first (read from the front by :meth:`expire`)."""
        self.harvest_heard.pop(account, None)
        if harvest_like < self.policy.min_campaign_harvests:
            self.harvest_heard[account] = (harvest_like, now, attribute)

    def snapshot(self) -> dict:
        """Every attribute's members and running totals, as plain data: each attribute's fields in
        :class:`_AttributeState` order, its linked accounts a sorted list; and what the campaign book
        last heard of linked accounts' harvest."""
        return {
            "attributes": {
                attribute: [
                    sorted(value) if isinstance(value, set) else value
                    for value in (getattr(state, name) for name in _ATTRIBUTE_FIELDS)
                ]
                for attribute, state in self.attributes.items()
            },
            "harvest_heard": [[account, *heard] for account, heard in self.harvest_heard.items()],
        }

    def restore(self, state: dict) -> None:
        if "attributes" not in state:  # a snapshot from before harvest_heard: its attributes alone
            state = {"attributes": state, "harvest_heard": []}
        self.harvest_heard = {
            account: (harvest_like, at, attribute) for account, harvest_like, at, attribute in state["harvest_heard"]
        }
        self.attributes = {}
        for attribute, values in state["attributes"].items():
            # strict=False: a snapshot from before unknown_accounts lacks it, and it is counted again here
            fields = dict(zip(_ATTRIBUTE_FIELDS, values, strict=False))
            # a snapshot from before `alarming` reported four fields per member, one from before
            # `pages_at` whether it paged: taken to page from when the attribute was last seen
            seen = fields["last_seen"]
            fields["members"] = {
                account: (*reported[:4], _snapshot_pages_at(reported[4], seen) if len(reported) > 4 else 0.0)
                for account, reported in fields["members"].items()
            }
            fields["unknown_accounts"] = sum(
                _unknown(reported[1], reported[2]) for reported in fields["members"].values()
            )
            fields["linked"] = set(fields["linked"])
            self.attributes[attribute] = _AttributeState(**fields)
        self._singles = deque(attribute for attribute, kept in self.attributes.items() if len(kept.members) <= 1)

    def _forget_one(self) -> None:
        """Make room for one attribute: the oldest seen with one account only, else the least recently seen."""
        attributes, singles = self.attributes, self._singles
        while singles:
            state = attributes.get(attribute := singles.popleft())
            if state is not None and len(state.members) <= 1:
                del attributes[attribute]
                return
        del attributes[next(iter(attributes))]

    def expire(self, now: float) -> int:
        """Forget attributes idle for ``attribute_ttl_hours``; how many were dropped."""
        cutoff = now - self.policy.attribute_ttl_hours * 3600.0
        attributes = self.attributes
        dropped = 0
        while attributes:
            key = next(iter(attributes))
            if attributes[key].last_seen >= cutoff:
                break
            del attributes[key]
            dropped += 1
        heard = self.harvest_heard
        while heard:  # linked accounts gone quiet, least recently heard first
            account, (_, heard_at, _) = next(iter(heard.items()))
            if heard_at >= cutoff:
                break
            del heard[account]
        if len(self._singles) > 2 * len(attributes):  # mostly shared or gone: keep it as small as they are
            self._singles = deque(a for a in self._singles if (kept := attributes.get(a)) and len(kept.members) <= 1)
        return dropped


@dataclass(slots=True)
class Campaign:
    """A connected component of linked accounts and attributes."""

    campaign_id: str
    first_seen: float
    last_seen: float
    members: dict[str, float] = field(default_factory=dict)
    """account → when it joined."""
    attributes: dict[str, int] = field(default_factory=dict)
    """attribute → members linked through it."""
    exchanges: dict[str, int] = field(default_factory=dict)
    """account → requests reported."""
    harvests: dict[str, int] = field(default_factory=dict)
    """account → harvest-shaped requests it had sent, as its links and refreshes last said
    (see :meth:`CampaignBook._harvests_together`)."""
    joined_on_exclusive: dict[str, str] = field(default_factory=dict)
    """account → the exclusive weak attribute it joined through, for members with no other tie."""
    joined_alarming: dict[str, str] = field(default_factory=dict)
    """account → the weak attribute it joined through while paging on its own risk, for members with no
    other tie (see :meth:`CampaignBook._join_alarming`)."""
    ties: dict[str, list[str]] = field(default_factory=dict)
    """account in no campaign → the kinds of tie (:data:`TIE_KINDS`) it has to this campaign's
    attributes without harvesting of its own yet (see :meth:`CampaignBook._tie`)."""
    joined_on_ties: dict[str, str] = field(default_factory=dict)
    """account → the kinds of tie it joined on (``client+network``), for members that have not
    harvested through any attribute yet."""
    paging: bool = False
    """One of its members pages on its own risk (its link said so, or its news came while the campaign
    waited to alert): from ``CampaignPolicy.min_paging_campaign_accounts`` members it may alert."""
    member_pages_at: float = 0.0
    """When the first own alert of its members that page on their own pages (0: none does)."""
    qualified_at: float | None = None
    """When its hold began: when it first had ``min_paging_campaign_accounts`` members, or, for one that
    accounts paging on their own founded, when the first of them paged (:meth:`CampaignBook._join_alarming`);
    it alerts ``campaign_alert_hold_minutes`` later at the earliest."""
    alerted_size: int = 0
    alerted_at: float = 0.0
    unnamed: int = 0
    """Accounts that joined since its last alert, which that alert did not list."""
    sequence: int = 0
    open: bool = False

    def grown(self) -> bool:
        """Whether it has members its last alert did not list. Not only when it is larger: members whose
        traffic stopped harvesting leave, and a trickle campaign's next ones join as others leave (tuning
        seed 1057: 17 members joined after the last of 17 alerts, at 8.2 h, and were never listed). The
        size still counts for a snapshot taken before ``unnamed`` was kept (restored as 0)."""
        return self.unnamed > 0 or len(self.members) > self.alerted_size


class Membership(NamedTuple):
    """An update for the membership topic: account → campaign (None when it left one)."""

    account_id: str
    campaign_id: str | None
    since: float


def _alarm_times(accounts: dict[str, float] | list[str], seen: float) -> dict[str, float]:
    """Accounts paging through an attribute → when they first did, from a snapshot; one taken before
    the times were kept lists the accounts only, taken to have paged when the attribute was last seen."""
    return dict(accounts) if isinstance(accounts, dict) else dict.fromkeys(accounts, seen)


class CampaignBook:
    """Stage 3: links joined into campaigns; campaign alerts and membership updates.

    *Strong* attributes (a payment instrument, a /24 network) join accounts and merge campaigns
    outright: operators rarely share them. *Weak* ones (a template, a TLS fingerprint) are
    shared by unrelated operators who copy the same public prompt or client, so they bring in
    an account without strong links only when it shares weak attributes of two kinds with one
    campaign, and merge two campaigns only when weak attributes of two kinds bridge them.
    One client attribute (a TLS fingerprint) suffices when an alerting campaign *owns* it
    (:meth:`_owner`): nobody but harvesters uses it, no other campaign shares it and several
    members do, as with an operator's custom client. A harvesting account that shows up with it
    is that operator's, though it shares nothing else yet; the alert lists such members apart.
    Templates are never owned: an eval suite or a second operator pastes the same public prompt.
    *Context* attributes (user agents) are only listed.
    """

    def __init__(self, policy: CampaignPolicy | None = None):
        self.policy = policy or CampaignPolicy()
        self.campaigns: dict[str, Campaign] = {}
        self.campaign_of: dict[str, str] = {}
        """account or strong attribute → campaign id."""
        self._merged_into: dict[str, str] = {}
        self._weak_members: dict[str, set[str]] = {}
        self._weak_campaigns: dict[str, set[str]] = {}
        self._weakly_joined: set[str] = set()
        self._pending: dict[str, dict[str, set[str]]] = {}
        """account without a campaign → campaign → kinds of weak attribute it shares with it."""
        self._bridges: dict[frozenset, set[str]] = {}
        self._exclusive: set[str] = set()
        """Client attributes exclusive to harvesters, as their latest link said."""
        self._waiting: dict[str, set[str]] = {}
        """client attribute → accounts that linked through it while in no campaign."""
        self._alarming: dict[str, dict[str, float]] = {}
        """weak attribute → accounts paging on their own risk that linked through it while in no campaign
        → when they first did (their own alerts are held from about then)."""
        self._alarm_campaigns: dict[str, str] = {}
        """template, or client that links no one → the campaign that accounts paging on their own founded
        through it, theirs only (see :meth:`_join_alarming`)."""
        self._early_ties: dict[str, dict[str, float]] = {}
        """attribute that no campaign held yet → accounts tied through it (see :meth:`_tie`) → when."""
        self._unheld: dict[str, list[str]] = {}
        """account in no campaign → weak attributes it linked through that no campaign held then: the
        campaign it joins later holds them too."""
        self._weak_seen: dict[str, float] = {}
        """weak attribute → its latest link: what :meth:`expire_idle` forgets after ``attribute_ttl_hours``."""
        self._left: dict[str, str] = {}
        """account in no campaign → the campaign it left when its traffic stopped looking like harvesting
        (see :meth:`_rejoin`)."""

    def snapshot(self) -> dict:
        """The campaigns (open alerts with their sequence numbers included) and what joins accounts
        to them, as plain data: sets become sorted lists, a bridge its sorted pair and kinds."""
        return {
            "campaigns": [dataclasses.asdict(campaign) for campaign in self.campaigns.values()],
            "campaign_of": dict(self.campaign_of),
            "merged_into": dict(self._merged_into),
            "weak_members": {attribute: sorted(accounts) for attribute, accounts in self._weak_members.items()},
            "weak_campaigns": {attribute: sorted(ids) for attribute, ids in self._weak_campaigns.items()},
            "weakly_joined": sorted(self._weakly_joined),
            "pending": {
                account: {campaign_id: sorted(kinds) for campaign_id, kinds in campaigns.items()}
                for account, campaigns in self._pending.items()
            },
            "bridges": [[sorted(pair), sorted(kinds)] for pair, kinds in self._bridges.items()],
            "exclusive": sorted(self._exclusive),
            "waiting": {attribute: sorted(accounts) for attribute, accounts in self._waiting.items()},
            "alarming": {attribute: dict(accounts) for attribute, accounts in self._alarming.items()},
            "alarm_campaigns": dict(self._alarm_campaigns),
            "weak_seen": dict(self._weak_seen),
            "early_ties": {attribute: dict(accounts) for attribute, accounts in self._early_ties.items()},
            "unheld": {account: list(attributes) for account, attributes in self._unheld.items()},
            "left": dict(self._left),
        }

    def restore(self, state: dict) -> None:
        self.campaigns = {fields["campaign_id"]: Campaign(**fields) for fields in state["campaigns"]}
        self.campaign_of = dict(state["campaign_of"])
        self._merged_into = dict(state["merged_into"])
        self._weak_members = {attribute: set(accounts) for attribute, accounts in state["weak_members"].items()}
        self._weak_campaigns = {attribute: set(ids) for attribute, ids in state["weak_campaigns"].items()}
        self._weakly_joined = set(state["weakly_joined"])
        self._pending = {
            account: {campaign_id: set(kinds) for campaign_id, kinds in campaigns.items()}
            for account, campaigns in state["pending"].items()
        }
        self._bridges = {frozenset(pair): set(kinds) for pair, kinds in state["bridges"]}
        self._exclusive = set(state["exclusive"])
        self._waiting = {attribute: set(accounts) for attribute, accounts in state["waiting"].items()}
        self._weak_seen = dict(state["weak_seen"])
        self._alarming = {
            attribute: _alarm_times(accounts, self._weak_seen.get(attribute, 0.0))
            for attribute, accounts in state.get("alarming", {}).items()
        }
        self._alarm_campaigns = dict(state.get("alarm_campaigns", {}))
        self._early_ties = {attribute: dict(accounts) for attribute, accounts in state.get("early_ties", {}).items()}
        self._unheld = {account: list(attributes) for account, attributes in state.get("unheld", {}).items()}
        self._left = dict(state.get("left", {}))

    def _current(self, campaign_id: str) -> str:
        """The campaign that ``campaign_id`` was merged into, if it was (through any number of merges)."""
        while campaign_id in self._merged_into:
            campaign_id = self._merged_into[campaign_id]
        return campaign_id

    def observe(self, link: Link) -> tuple[list[Alert], list[Membership]]:
        """Fold one link in; the campaign alerts and membership changes it causes."""
        memberships: list[Membership] = []
        alerts: list[Alert] = []
        if not link.harvesting:
            if not link.alarming:  # one paging on its own harvests after all: it stays (see _rejoin)
                self._leave(link.account_id, link.timestamp, memberships)
            return alerts, memberships
        kind = kind_of(link.attribute)
        if link.refresh:
            campaign = self.campaigns.get(self.campaign_of.get(link.account_id, ""))
            if campaign is None or campaign.open:
                return alerts, memberships
            _note_harvest(campaign, link)
        elif link.tie:  # news only while the account is in no campaign
            campaign = None if link.account_id in self.campaign_of else self._tie(link, memberships)
        elif link.again:  # an account linked before now pages on its own
            current = self.campaign_of.get(link.account_id)
            if current is not None:  # news only for a campaign still waiting to alert
                campaign = self.campaigns.get(current)
                if campaign is None or campaign.open:
                    return alerts, memberships
                _note_paging(campaign, link)
            elif (campaign := self._rejoin(link, memberships)) is None:
                if kind in STRONG_KINDS:  # it left the campaign the card or network joined it to, now gone
                    return alerts, memberships
                campaign = self._join_alarming(link, memberships)
        elif kind in CONTEXT_KINDS:
            campaign = self.campaigns.get(self.campaign_of.get(link.account_id, ""))
            if campaign is None:
                return alerts, memberships
            campaign.attributes[link.attribute] = campaign.attributes.get(link.attribute, 0) + 1
        elif kind in STRONG_KINDS:
            campaign = self._join_strong(link, memberships, alerts)
        elif link.exclusive and kind not in PASTED_KINDS:  # nearly only harvesters use it: joins outright
            tied = link.account_id in self.campaign_of and link.account_id not in self._weakly_joined
            self._exclusive.add(link.attribute)
            campaign = self._join_strong(link, memberships, alerts)
            if not tied:
                campaign.joined_on_exclusive.setdefault(link.account_id, link.attribute)
            self._claim(link, memberships)  # accounts that linked through it before it was exclusive
        else:
            campaign = self._join_weak(link, memberships, alerts)
            if campaign is None and link.alarming:
                campaign = self._join_alarming(link, memberships)
        if campaign is not None:
            alerts.extend(self._review(campaign, link.timestamp, memberships))
        return alerts, memberships

    def _join_strong(self, link: Link, memberships: list[Membership], alerts: list[Alert]) -> Campaign:
        account_campaign = self.campaign_of.get(link.account_id)
        if link.account_id in self._weakly_joined:
            account_campaign = None  # a strong link outranks a weak one
        attribute_campaign = self.campaign_of.get(link.attribute)
        existing = account_campaign or attribute_campaign
        if existing is None:
            campaign = self._found(link.attribute, link.timestamp)
        elif account_campaign and attribute_campaign and account_campaign != attribute_campaign:
            campaign = self._merge(account_campaign, attribute_campaign, memberships, alerts, link.timestamp)
        else:
            campaign = self.campaigns[existing]
        self.campaign_of[link.attribute] = campaign.campaign_id
        self._add(campaign, link, memberships)
        return campaign

    def _found(self, attribute: str, timestamp: float) -> Campaign:
        """A new campaign, its id derived from the attribute that founded it, or from the attribute and the
        time when that id is taken: by a campaign that accounts paging on their own founded through the
        same client before it turned exclusive (whose members the new one replaced, unlisted, until this
        check: fresh seed 5385 under a trial change), or by one merged away."""
        campaign_id = _campaign_id(attribute)
        if campaign_id in self.campaigns or campaign_id in self._merged_into:
            campaign_id = _campaign_id(f"{attribute}@{timestamp}")
        campaign = self.campaigns[campaign_id] = Campaign(campaign_id, timestamp, timestamp)
        return campaign

    def _join_weak(self, link: Link, memberships: list[Membership], alerts: list[Alert]) -> Campaign | None:
        self._seen_weak(link)
        members = self._weak_members.setdefault(link.attribute, set())
        if len(members) < self.policy.attribute_member_cap:
            members.add(link.account_id)
        kind = kind_of(link.attribute)
        if kind in CLIENT_KINDS:
            if link.exclusive:
                self._exclusive.add(link.attribute)
            else:
                self._exclusive.discard(link.attribute)
        touched = {self._current(c) for c in self._weak_campaigns.get(link.attribute, ())}
        own = self.campaign_of.get(link.account_id)
        if own is None:
            joined = self._consider(link.account_id, touched, kind, link, memberships)
            if joined is None:
                waiting = self._waiting.setdefault(link.attribute, set())
                if len(waiting) < self.policy.attribute_member_cap:
                    waiting.add(link.account_id)
                if not touched:
                    unheld = self._unheld.setdefault(link.account_id, [])
                    if link.attribute not in unheld and len(unheld) < MAX_UNHELD:
                        unheld.append(link.attribute)
                joined = self._claim(link, memberships)
            return joined
        for other in sorted(touched - {own}):  # sorted: string sets iterate in a per-process hash order
            kinds = self._bridges.setdefault(frozenset((own, other)), set())
            kinds.add(kind)
            if len(kinds) >= 2:
                own = self._merge(own, other, memberships, alerts, link.timestamp).campaign_id
        self._weak_campaigns[link.attribute] = {c for c in touched if c in self.campaigns} | {own}
        campaign = self.campaigns[own]
        self._add(campaign, link, memberships)
        if own not in touched:  # accounts that reached this attribute before any campaign did
            for candidate in sorted(members):
                if candidate not in self.campaign_of:
                    self._consider(candidate, {own}, kind, link._replace(account_id=candidate, requests=0), memberships)
        self._claim(link, memberships)
        return campaign

    def _seen_weak(self, link: Link) -> None:
        """Note the weak attribute's latest link: what :meth:`expire_idle` forgets it after."""
        seen = self._weak_seen.get(link.attribute)
        self._weak_seen[link.attribute] = link.timestamp if seen is None else max(seen, link.timestamp)

    def _join_alarming(self, link: Link, memberships: list[Membership]) -> Campaign | None:
        """An account that pages on its own risk, in no campaign, linked through a weak attribute: it
        joins the one campaign the attribute links, or founds one with two others paging through it.

        A weak attribute alone joins nobody (:meth:`_consider` wants two kinds), since a popular client
        or a pasted template is shared by customers. An account alarming on its own traffic is another
        piece of evidence: with an attribute whose traffic mostly harvests, it is that campaign's member,
        and on-call gets the campaign's one alert instead of one page per member of a campaign spread
        over its own cards and networks (eval seed 5811: 914 accounts, 55 alert keys). Two campaigns on
        the attribute: which one is not known, and the account pages alone.

        A template (:data:`PASTED_KINDS`) is pasted by eval suites and products too. Accounts that page
        on their own through one are paged together (they would be paged anyway, one by one, before a
        slower tie such as a pair links them: eval seeds 5912, 5916), but the campaign they found is not
        the template's for anyone else: no account that does not page joins it through the template.
        The same holds for new accounts (opened days before they came) paging through a client that
        mostly customers use and that links no one (a popular SDK's or browser's): an evasive campaign
        on per-account cards and networks shares nothing else. Old accounts are left out of that: an API
        product serving its own users touches warning now and then while its own alert is held, and
        grouped so it was paged (tuning seeds: benign 2 → 6; 5910-5939: 0 → 10, all API products).
        Through a template too (tuning seeds: benign 1 → 6; 5910-5939: 4 → 13). But old accounts paging
        through their creation hour are grouped: an operator's aged accounts, bought from one batch, wake
        up together (eval seed 5553, seen when this was made: seven accounts on their own cards and
        networks and a browser paged as six alerts, now three), while API products opened in one clock
        hour and paging together are rare (no more benign accounts flagged on the tuning seeds, 5540-5569
        or 5910-5939, nor on the fresh 5570-5599 and 5630-5659, where it changed two campaigns in all).
        Old accounts paging through a client that no account but harvesting ones has used are grouped
        too: an operator's custom client, before the eight harvesting accounts it needs to link (tuning
        seed 1055: 22 aged accounts of a burst campaign, each on its own card and network, paged as four
        accounts and then the campaign, 5 keys; now 1), while an API product's client is a popular SDK's
        or a browser's, which customers use too.
        Members joined so are tied as by a strong link: a card or a pair that links one of them later
        grows this campaign rather than starting another.
        """
        attribute = link.attribute
        self._seen_weak(link)
        pasted = kind_of(attribute) in PASTED_KINDS or not link.linking
        if pasted:
            linked = {self._current(self._alarm_campaigns[attribute])} if attribute in self._alarm_campaigns else set()
        else:
            linked = {self._current(c) for c in self._weak_campaigns.get(attribute, ())}
            if attribute in self.campaign_of:  # joined outright since it became exclusive
                linked.add(self._current(self.campaign_of[attribute]))
        linked &= self.campaigns.keys()
        if len(linked) > 1:
            return None
        waiting = self._alarming.setdefault(attribute, {})
        if len(waiting) < self.policy.attribute_member_cap:
            waiting.setdefault(link.account_id, link.timestamp)
        alone = sorted(account for account in waiting if account not in self.campaign_of)
        if linked:
            campaign = self.campaigns[linked.pop()]
            del self._alarming[attribute]
        elif (paged := self._paged_into(waiting)) is not None:
            campaign = paged  # the attribute stays no campaign's: the accounts paging through it tell
        elif len(alone) >= self.policy.min_paging_campaign_accounts:
            campaign = self._found(attribute, link.timestamp)
            # its hold counts from its first member's alarm, whose own alert is held about as long
            campaign.qualified_at = min(waiting[account] for account in alone)
            if pasted:
                self._alarm_campaigns[attribute] = campaign.campaign_id
            else:
                self._weak_campaigns.setdefault(attribute, set()).add(campaign.campaign_id)
            del self._alarming[attribute]
        else:
            return None
        for account in alone:
            requests = link.requests if account == link.account_id else 0
            self._add(campaign, link._replace(account_id=account, requests=requests), memberships)
            campaign.joined_alarming[account] = attribute
        return campaign

    def _paged_into(self, waiting: dict[str, float]) -> Campaign | None:
        """The one campaign that accounts which paged through an attribute before have all joined since,
        through something else (their card), when ``min_paging_campaign_accounts - 1`` of them have.

        A burst operator's accounts come one after another, each paging on its own within minutes,
        through its client set-up, creation hour and template: the first two page before any campaign
        exists, a card joins them later, and the accounts that come after on other cards paged alone
        (eval seed 6201: ten accounts under five alert keys, two of them after the campaign had formed).
        """
        joined = [self._current(self.campaign_of[account]) for account in waiting if account in self.campaign_of]
        if len(joined) < self.policy.min_paging_campaign_accounts - 1 or len(set(joined)) != 1:
            return None
        return self.campaigns.get(joined[0])

    def _owner(self, attribute: str) -> Campaign | None:
        """The alerting campaign that owns a weak attribute: every campaign it links is this one,
        at least ``min_attribute_accounts`` members share it, and nearly all accounts seen with it
        harvest. A common client carries ordinary users; one used by two operators links two campaigns."""
        if attribute not in self._exclusive:
            return None
        linked = set(self._weak_campaigns.get(attribute, ()))
        if attribute in self.campaign_of:  # joined outright since it became exclusive
            linked.add(self.campaign_of[attribute])
        touched = {self._current(c) for c in linked} & self.campaigns.keys()
        if len(touched) != 1:
            return None
        campaign = self.campaigns[touched.pop()]
        if campaign.open and campaign.attributes.get(attribute, 0) >= self.policy.min_attribute_accounts:
            return campaign
        return None

    def _claim(self, link: Link, memberships: list[Membership]) -> Campaign | None:
        """Harvesting accounts waiting on the link's weak attribute join the campaign that owns it."""
        attribute = link.attribute
        waiting = self._waiting.get(attribute)
        owner = self._owner(attribute) if waiting else None
        if owner is None:
            return None
        for account in sorted(self._waiting.pop(attribute)):
            if account not in self.campaign_of:
                self._weakly_joined.add(account)
                owner.joined_on_exclusive[account] = attribute
                requests = link.requests if account == link.account_id else 0
                self._add(owner, link._replace(account_id=account, requests=requests), memberships)
        return owner

    def _tie(self, link: Link, memberships: list[Membership]) -> Campaign | None:
        """An account in no campaign that shares the link's attribute with one campaign, without harvesting
        of its own yet: with ties of two kinds to one alerting campaign (its client *and* its proxy range,
        its client *and* its creation hour), or with a tie through its card, it joins it.

        A low-and-slow operator's account sends a few requests an hour, a third of them cover chat: it
        takes hours to show harvesting of its own (eval seed 5192: 118 members of a campaign paged at
        2.4 h were still unlisted at 6 h; 105 of them shared its custom client and one of its proxy
        ranges). A customer shares one such attribute with an operator (a campus NAT, a company card, a
        sign-up hour), seldom two, and each must link this campaign's accounts and no other campaign's;
        one whose own requests already read as ordinary is not tied (:meth:`AttributeIndex._ordinary`).
        A card is the exception: one that links is paid for by someone whose accounts mostly harvest (a
        company's card, shared by developers who converse, never links), and the operator's account on
        it is theirs. A trickle campaign of hundreds of accounts per card left 49 of 276 accounts active
        in its first 6 h unlisted until the 7th hour, each tied through its card since the 4th, waiting
        for a network tie (tuning seed 1021; 11 with the card alone).
        A tie through an attribute that no campaign holds yet is kept until one does (:meth:`_tie_early`):
        a trickle account reports seldom, and its next report may come a day later.
        """
        attribute = link.attribute
        if attribute in self.campaign_of:
            linked = {self._current(self.campaign_of[attribute])}
        else:
            linked = {self._current(c) for c in self._weak_campaigns.get(attribute, ())}
        linked &= self.campaigns.keys()
        if not linked:
            early = self._early_ties.setdefault(attribute, {})
            if len(early) < self.policy.attribute_member_cap:
                early[link.account_id] = link.timestamp
            return None
        if len(linked) > 1:
            return None
        campaign = self.campaigns[linked.pop()]
        kinds = campaign.ties.get(link.account_id)
        if kinds is None:
            if len(campaign.ties) >= self.policy.attribute_member_cap:
                return None
            kinds = campaign.ties[link.account_id] = []
        kind = TIE_KINDS[kind_of(attribute)]
        if kind not in kinds:
            kinds.append(kind)
            kinds.sort()
        if not campaign.open or (len(kinds) < 2 and "payment" not in kinds):
            return None
        self._join_tied(campaign, link, memberships)
        return campaign

    def _tie_early(self, attribute: str, now: float, memberships: list[Membership]) -> None:
        """Accounts tied through the attribute before a campaign held it are tied to it, once one does
        (a card or a network that turns linking reports its members' ties and links in one batch, ties
        first for members listed first: before the links found its campaign)."""
        if attribute not in self.campaign_of and attribute not in self._weak_campaigns:
            return
        for account in sorted(self._early_ties.pop(attribute)):
            if account not in self.campaign_of:
                self._tie(Link(attribute, account, now, 0, 0, tie=True), memberships)

    def _hold(self, campaign: Campaign, account: str, now: float, memberships: list[Membership]) -> None:
        """The weak attributes that the account linked through while in no campaign, and that no campaign
        held then, are the campaign's it joined: an operator's accounts link through their custom client
        and creation hour hours before a pair or a card joins them, and no link through those comes again.
        Eval seed 5431 (a trickle campaign of 51 aged accounts, each on its own card and network): 50 of
        them were tied through the client while no campaign held it, and 18 were ever named; 42 now."""
        for attribute in self._unheld.pop(account, ()):
            self._weak_campaigns.setdefault(attribute, set()).add(campaign.campaign_id)
            campaign.attributes[attribute] = campaign.attributes.get(attribute, 0) + 1
            if attribute in self._early_ties:
                self._tie_early(attribute, now, memberships)

    def _join_tied(self, campaign: Campaign, link: Link, memberships: list[Membership]) -> None:
        """The link's account joins the campaign on its ties (see :meth:`_tie`)."""
        account = link.account_id
        self._weakly_joined.add(account)
        campaign.joined_on_ties[account] = "+".join(campaign.ties.pop(account))
        self._add(campaign, link, memberships)

    def _consider(
        self, account: str, touched: set[str], kind: str, link: Link, memberships: list[Membership]
    ) -> Campaign | None:
        """An account without strong links joins a campaign it shares weak attributes of two kinds with."""
        pending = self._pending.setdefault(account, {})
        joined = None
        for campaign_id in sorted(touched):
            kinds = pending.setdefault(campaign_id, set())
            kinds.add(kind)
            if len(kinds) >= 2 and joined is None and campaign_id in self.campaigns:
                joined = self.campaigns[campaign_id]
        if joined is not None:
            del self._pending[account]
            self._weakly_joined.add(account)
            self._add(joined, link, memberships)
        return joined

    def _leave(self, account: str, now: float, memberships: list[Membership]) -> None:
        """An account no longer harvesting leaves its campaign (its attributes stay)."""
        campaign_id = self.campaign_of.pop(account, None)
        self._weakly_joined.discard(account)
        campaign = self.campaigns.get(campaign_id) if campaign_id else None
        if campaign is not None and account in campaign.members:
            self._left[account] = campaign.campaign_id
            del campaign.members[account]
            campaign.exchanges.pop(account, None)
            campaign.harvests.pop(account, None)
            campaign.joined_on_exclusive.pop(account, None)
            campaign.joined_alarming.pop(account, None)
            campaign.joined_on_ties.pop(account, None)
            if campaign.open:
                memberships.append(Membership(account, None, now))

    def _rejoin(self, link: Link, memberships: list[Membership]) -> Campaign | None:
        """An account that left its campaign when its traffic stopped looking like harvesting, now paging
        on its own risk, returns to that campaign (if it is still there): it harvests after all, with
        cover chat between, and is paged through the campaign it was linked to rather than alone. A
        person behind an operator's proxy range who left it and then pages would be paged either way.
        Eval seed 6246 (looked into after its fresh run): seven members of a 171-account trickle
        campaign with cover chat left it and later paged alone, each under its own key (9 in all)."""
        left = self._left.pop(link.account_id, None)
        campaign = self.campaigns.get(self._current(left)) if left is not None else None
        if campaign is None:
            return None
        self._add(campaign, link._replace(attribute=""), memberships)
        _note_paging(campaign, link)
        return campaign

    def _add(self, campaign: Campaign, link: Link, memberships: list[Membership]) -> None:
        campaign.last_seen = max(campaign.last_seen, link.timestamp)
        if link.attribute:  # an account tied while its campaign waited joins through none in particular
            campaign.attributes[link.attribute] = campaign.attributes.get(link.attribute, 0) + 1
        previous = self.campaign_of.get(link.account_id)
        if previous != campaign.campaign_id:
            old = self.campaigns.get(previous) if previous is not None else None
            if old is not None:
                old.members.pop(link.account_id, None)
                old.exchanges.pop(link.account_id, None)
                old.harvests.pop(link.account_id, None)
                old.joined_on_exclusive.pop(link.account_id, None)
                old.joined_alarming.pop(link.account_id, None)
                old.joined_on_ties.pop(link.account_id, None)
                if old.open and not campaign.open:
                    memberships.append(Membership(link.account_id, None, link.timestamp))
            self._pending.pop(link.account_id, None)
            self._left.pop(link.account_id, None)
            campaign.members[link.account_id] = link.timestamp
            campaign.unnamed += 1
            self.campaign_of[link.account_id] = campaign.campaign_id
            if campaign.open:
                memberships.append(Membership(link.account_id, campaign.campaign_id, link.timestamp))
        kind = kind_of(link.attribute)
        if kind in STRONG_KINDS:
            self._weakly_joined.discard(link.account_id)
        exclusive = campaign.joined_on_exclusive.get(link.account_id)
        if exclusive is not None and kind != kind_of(exclusive):  # now tied by more than one attribute
            del campaign.joined_on_exclusive[link.account_id]
        alarming = campaign.joined_alarming.get(link.account_id)
        if alarming is not None and kind != kind_of(alarming):
            del campaign.joined_alarming[link.account_id]
        if not link.tie:  # it harvests through one of the campaign's attributes now
            campaign.joined_on_ties.pop(link.account_id, None)
        campaign.exchanges[link.account_id] = max(campaign.exchanges.get(link.account_id, 0), link.requests)
        _note_harvest(campaign, link)
        if link.alarming:
            _note_paging(campaign, link)
        if link.account_id in self._unheld:
            self._hold(campaign, link.account_id, link.timestamp, memberships)
        if link.attribute in self._early_ties:  # every path that gives an attribute a campaign comes here
            self._tie_early(link.attribute, link.timestamp, memberships)

    def _merge(
        self, first_id: str, second_id: str, memberships: list[Membership], alerts: list[Alert], now: float
    ) -> Campaign:
        """Join two campaigns that turned out to be one; the older id survives."""
        first, second = self.campaigns[first_id], self.campaigns[second_id]
        survivor, absorbed = (
            (first, second) if (first.first_seen, first_id) <= (second.first_seen, second_id) else (second, first)
        )
        for account, since in absorbed.members.items():
            if account not in survivor.members:
                survivor.members[account] = since
                survivor.unnamed += 1
            self.campaign_of[account] = survivor.campaign_id
            if survivor.open:  # otherwise all members are published when the survivor opens
                memberships.append(Membership(account, survivor.campaign_id, survivor.members[account]))
        for attribute, count in absorbed.attributes.items():
            survivor.attributes[attribute] = survivor.attributes.get(attribute, 0) + count
            if attribute in self.campaign_of:
                self.campaign_of[attribute] = survivor.campaign_id
        for account, requests in absorbed.exchanges.items():
            survivor.exchanges[account] = max(survivor.exchanges.get(account, 0), requests)
        for account, harvests in absorbed.harvests.items():
            survivor.harvests[account] = max(survivor.harvests.get(account, 0), harvests)
        survivor.joined_on_exclusive.update(absorbed.joined_on_exclusive)
        survivor.joined_alarming.update(absorbed.joined_alarming)
        survivor.joined_on_ties.update(absorbed.joined_on_ties)
        for account, tied in absorbed.ties.items():
            survivor.ties[account] = sorted(set(survivor.ties.get(account, ())) | set(tied))
        survivor.paging = survivor.paging or absorbed.paging
        if absorbed.member_pages_at:
            earliest = survivor.member_pages_at or absorbed.member_pages_at
            survivor.member_pages_at = min(earliest, absorbed.member_pages_at)
        survivor.first_seen = min(survivor.first_seen, absorbed.first_seen)
        if absorbed.qualified_at is not None:
            survivor.qualified_at = min(survivor.qualified_at or absorbed.qualified_at, absorbed.qualified_at)
        survivor.last_seen = max(survivor.last_seen, absorbed.last_seen)
        del self.campaigns[absorbed.campaign_id]
        self._merged_into[absorbed.campaign_id] = survivor.campaign_id
        for pair in [pair for pair in self._bridges if absorbed.campaign_id in pair]:
            kinds = self._bridges.pop(pair)
            rest = pair - {absorbed.campaign_id}
            if rest and survivor.campaign_id not in rest:
                self._bridges.setdefault(frozenset(rest | {survivor.campaign_id}), set()).update(kinds)
        if absorbed.open:
            absorbed.sequence += 1
            alerts.append(
                self._alert(
                    absorbed, "resolved", now, f"Campaign {absorbed.campaign_id} merged into {survivor.campaign_id}."
                )
            )
        return survivor

    def _review(self, campaign: Campaign, now: float, memberships: list[Membership], paced: bool = True) -> list[Alert]:
        """Alert when the campaign reaches its size, then again as it grows (``paced``: at most every
        ``min_resend_minutes`` of event time). Membership is published only for alerting campaigns:
        automation acts on what on-call was paged for."""
        size = len(campaign.members)
        if size < self.policy.min_paging_campaign_accounts:
            return []
        if campaign.qualified_at is None:
            campaign.qualified_at = now
        hold = self.policy.campaign_alert_hold_minutes * 60.0
        if campaign.member_pages_at:
            # a paging member's own alert is held, then pages: the campaign's comes first
            due = campaign.member_pages_at - self.policy.member_alert_lead_minutes * 60.0
            campaign.qualified_at = min(campaign.qualified_at, due - hold)
        if not campaign.open and (
            now - campaign.qualified_at < hold
            or (
                size < self.policy.min_campaign_accounts
                and not campaign.paging
                and not self._harvests_together(campaign)
            )
        ):
            return []
        if campaign.open:
            if not campaign.grown() or (paced and now - campaign.alerted_at < self.policy.min_resend_minutes * 60):
                return []
        else:
            memberships.extend(
                Membership(account, campaign.campaign_id, since) for account, since in campaign.members.items()
            )
            campaign.open = True
            for attribute in [a for a in campaign.attributes if kind_of(a) not in STRONG_KINDS]:
                self._claim(Link(attribute, "", now, 0, 0), memberships)  # owned only now that it alerts
            for account in [a for a, kinds in campaign.ties.items() if len(kinds) >= 2]:  # tied while it waited
                if account in self.campaign_of:
                    del campaign.ties[account]
                else:
                    self._join_tied(campaign, Link("", account, now, 0, 0, tie=True), memberships)
            size = len(campaign.members)
        campaign.alerted_size = size
        campaign.alerted_at = now
        campaign.unnamed = 0
        campaign.sequence += 1
        return [self._alert(campaign, "firing", campaign.last_seen)]

    def _harvests_together(self, campaign: Campaign) -> bool:
        """Whether a campaign under ``min_campaign_accounts`` members has harvested enough, all of them
        together, to alert without waiting for more: ``min_campaign_harvests`` harvest-shaped requests.

        Three to five people behind a campus NAT or on a company card link when each sends a long
        question or two; an operator's small card group or proxy range links the same way, then waits
        for a sixth member or a paging one, while each of its accounts harvests a few requests an hour
        (eval seeds 5741, 5746, 5753: 3-4 accounts linked by 5.5 h, alerted after 6 h). What separates
        them is the volume the group has harvested as one actor. The link stage reports a member's
        harvest again as it grows, while the card or network that linked it still does, until the
        campaign may alert on it (:attr:`Link.refresh`): a member linked at its second request would
        otherwise count two. It reports it through whichever attribute the member's summary came: an
        operator's accounts move between proxy ranges, and a member heard only through the range that
        linked it counted what it had sent then (eval seed 6120: four accounts on shared ranges, 13
        harvest-shaped requests by 6 h, heard as 7: named at 10.3 h; heard through any, 4.5 h).

        >>> book = CampaignBook()
        >>> people = Campaign("c", 0.0, 0.0, harvests={"a": 1, "b": 2, "c": 1, "d": 1, "e": 2})
        >>> operator = Campaign("o", 0.0, 0.0, harvests={"a": 4, "b": 3, "c": 2})
        >>> book._harvests_together(people), book._harvests_together(operator)
        (False, True)
        """
        return sum(campaign.harvests.values()) >= self.policy.min_campaign_harvests

    def resend_grown(self, now: float) -> tuple[list[Alert], list[Membership]]:
        """Re-send the alerts of open campaigns that accounts joined since their last one; nothing else. For a
        pause in the links (a worker's feed that stops): the last growth goes out at once, unpaced in
        event time (the worker paces updates in wall time). Safe off the sweep clock's boundaries:
        held first alerts and idle resolutions wait for one, so a worker that sweeps whenever its
        links pause names the same campaigns as replay."""
        alerts: list[Alert] = []
        memberships: list[Membership] = []
        for campaign in list(self.campaigns.values()):
            if campaign.open and campaign.grown():
                alerts.extend(self._review(campaign, now, memberships, paced=False))
        return alerts, memberships

    def expire_idle(self, now: float) -> tuple[list[Alert], list[Membership]]:
        """Resolve and forget campaigns without member activity for ``campaign_idle_hours``; re-send
        the alerts of campaigns that grew since their last one (paced by ``min_resend_minutes``),
        so a list completed by a last burst of links does not wait for a link that may never come."""
        cutoff = now - self.policy.campaign_idle_hours * 3600.0
        alerts: list[Alert] = []
        memberships: list[Membership] = []
        for campaign in list(self.campaigns.values()):
            if campaign.last_seen >= cutoff and (
                campaign.grown() if campaign.open else campaign.qualified_at is not None
            ):
                alerts.extend(self._review(campaign, now, memberships))
        for campaign in [c for c in self.campaigns.values() if c.last_seen < cutoff]:
            if campaign.open:
                campaign.sequence += 1
                alerts.append(
                    self._alert(
                        campaign,
                        "resolved",
                        now,
                        f"Campaign {campaign.campaign_id} went quiet "
                        f"for {self.policy.campaign_idle_hours:g} h; alert resolved.",
                    )
                )
            for account in campaign.members:
                self.campaign_of.pop(account, None)
                if campaign.open:
                    memberships.append(Membership(account, None, now))
            for attribute in campaign.attributes:
                self.campaign_of.pop(attribute, None)
                self._forget_weak(attribute)
            self._weakly_joined.difference_update(campaign.members)
            del self.campaigns[campaign.campaign_id]
            self._merged_into = {k: v for k, v in self._merged_into.items() if v != campaign.campaign_id}
            self._bridges = {pair: kinds for pair, kinds in self._bridges.items() if campaign.campaign_id not in pair}
        # Weak attributes no campaign ever took, and accounts waiting on campaigns that are gone:
        # without this they would accumulate for as long as the merge stage runs.
        attribute_cutoff = now - self.policy.attribute_ttl_hours * 3600.0
        for attribute in [a for a, seen in self._weak_seen.items() if seen < attribute_cutoff]:
            self._forget_weak(attribute)
        self._early_ties = {
            attribute: accounts
            for attribute, accounts in self._early_ties.items()
            if max(accounts.values()) >= attribute_cutoff
        }
        self._unheld = {
            account: kept
            for account, attributes in self._unheld.items()
            if account not in self.campaign_of and (kept := [a for a in attributes if a in self._weak_seen])
        }
        self._pending = {
            account: live
            for account, campaigns in self._pending.items()
            if (live := {c: kinds for c, kinds in campaigns.items() if self._current(c) in self.campaigns})
        }
        self._left = {account: left for account, left in self._left.items() if self._current(left) in self.campaigns}
        return alerts, memberships

    def _forget_weak(self, attribute: str) -> None:
        self._weak_seen.pop(attribute, None)
        self._weak_members.pop(attribute, None)
        self._weak_campaigns.pop(attribute, None)
        self._waiting.pop(attribute, None)
        self._alarming.pop(attribute, None)
        self._alarm_campaigns.pop(attribute, None)
        self._exclusive.discard(attribute)

    def _alert(self, campaign: Campaign, status: str, now: float, summary: str | None = None) -> Alert:
        size = len(campaign.members)
        shared = _shared_attributes(campaign)
        kinds = sorted({item["attribute"] for item in shared})
        exchanges = sum(campaign.exchanges.values())
        severity = "critical" if size >= self.policy.critical_campaign_accounts else "warning"
        # max(size, 1): its members may all have left before it resolves
        risk = min(100.0, 40.0 + 10.0 * min(len(kinds), 3) + 8.0 * math.log10(max(size, 1)))
        joined_on_exclusive = _joined_through(campaign.joined_on_exclusive, self.policy.member_cap)
        joined_alarming = _joined_through(campaign.joined_alarming, self.policy.member_cap)
        joined_on_ties = _joined_on_ties(campaign.joined_on_ties, self.policy.member_cap)
        if summary is None:
            nouns = [_NOUNS[kind] for kind in _NOUNS if kind in kinds] or [("attribute", "attributes")]
            basis = (
                f"they share {_listed([plural for _, plural in nouns], 'and')}"
                if len(nouns) > 1
                else f"they share one {nouns[0][0]} and each harvests on its own"
            )
            summary = (
                f"Campaign {campaign.campaign_id}: {size:,} accounts harvesting model outputs together "
                f"({exchanges:,} exchanges); {basis}."
            )
            if joined_on_exclusive:
                one = len(campaign.joined_on_exclusive) == 1
                summary += (
                    f" {len(campaign.joined_on_exclusive):,} of them {'shares' if one else 'share'} only one "
                    f"{_one_of(item['attribute'] for item in joined_on_exclusive)} that no one but this campaign's "
                    f"harvesting accounts uses, and {'harvests on its own' if one else 'harvest on their own'}."
                )
            if joined_alarming:
                one = len(campaign.joined_alarming) == 1
                summary += (
                    f" {len(campaign.joined_alarming):,} {'shares' if one else 'share'} only one "
                    f"{_one_of(item['attribute'] for item in joined_alarming)} with it, and "
                    f"{'its' if one else 'their'} own traffic pages."
                )
            if joined_on_ties:
                one = len(campaign.joined_on_ties) == 1
                ties = [
                    _listed([_TIE_NOUNS[kind] for kind in item["ties"].split("+")], "and") for item in joined_on_ties
                ]
                summary += (
                    f" {len(campaign.joined_on_ties):,} {'has' if one else 'have'} not harvested on "
                    f"{'its' if one else 'their'} own yet, but {'shares' if one else 'share'} its "
                    f"{_listed(ties, 'or')}."
                )
        members = sorted(campaign.members, key=lambda account: (campaign.members[account], account))
        evidence = tuple(
            Evidence(
                f"shared_{item['attribute']}",
                float(item["member_count"]),
                None,
                1.0,
                round(100.0 * item["member_count"] / max(size, 1), 1),
                f"members sharing one {item['attribute']} value (contribution: % of members)",
            )
            for item in shared[:8]
        )
        return Alert(
            subject=campaign.campaign_id,
            dedup_key=f"distillation/campaign/{campaign.campaign_id}",
            sequence=campaign.sequence,
            status=status,
            severity=severity if status == "firing" else "info",
            risk_score=round(risk, 1),
            account_ids=tuple(members[: self.policy.member_cap]),
            summary=summary,
            evidence=evidence,
            first_seen=campaign.first_seen,
            last_seen=campaign.last_seen,
            time=now,
            event_count=exchanges,
            campaign_id=campaign.campaign_id,
            type=CAMPAIGN_ALERT_TYPE,
            extra={
                "account_count": size,
                "exchange_count": exchanges,
                "shared_attributes": shared,
                "basis": "several_attributes" if len(kinds) > 1 else "attribute_and_behaviour",
                "joined_on_exclusive_attribute": joined_on_exclusive,
                "joined_on_own_alert": joined_alarming,
                "joined_on_shared_attributes": joined_on_ties,
                "since": rfc3339(campaign.first_seen),
            },
        )


_NOUNS = {
    "payment": ("card", "cards"),
    "network": ("network", "networks"),
    "pair": ("client/creation-hour/template pair", "client/creation-hour/template pairs"),
    "tls": ("TLS fingerprint", "TLS fingerprints"),
    "setup": ("client set-up", "client set-ups"),
    "wrapper": ("system prompt", "system prompts"),
    "cohort": ("creation hour", "creation hours"),
    "pivot": ("switch to a new model", "switches to a new model"),
    "user_agent": ("user agent", "user agents"),
    "template": ("prompt template", "prompt templates"),
}
"""Each attribute kind (:data:`ATTRIBUTE_KINDS` and pairs) in the words of a campaign alert's summary
(its fields keep the kinds), in the order the summary lists them: what joins accounts outright first."""
_TIE_NOUNS = {
    "payment": "card",
    "network": "network",
    "client": "client",
    "cohort": "creation hour",
    "template": "prompt template",
}
"""The same for the kinds of ties (:data:`TIE_KINDS`)."""


def _listed(items: list[str], conjunction: str) -> str:
    """``a``, ``a and b``, ``a, b and c``: a summary's list in words.

    >>> _listed(["card"], "and"), _listed(["card", "network"], "or"), _listed(["a", "b", "c"], "and")
    ('card', 'card or network', 'a, b and c')
    """
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _one_of(kinds: Iterable[str]) -> str:
    """The kinds of the attributes some members joined through, as one noun: ``TLS fingerprint or client set-up``."""
    return _listed([_NOUNS[kind][0] for kind in sorted(set(kinds))], "or")


def _note_harvest(campaign: Campaign, link: Link) -> None:
    """The harvest-shaped requests the link says its account has sent, for the campaign's count."""
    campaign.harvests[link.account_id] = max(campaign.harvests.get(link.account_id, 0), link.harvest_like)


def _note_paging(campaign: Campaign, link: Link) -> None:
    """The link's account pages on its own risk: so does the campaign, before its members' own alerts."""
    campaign.paging = True
    pages_at = link.pages_at or link.timestamp
    campaign.member_pages_at = min(campaign.member_pages_at or pages_at, pages_at)


def _shared_attributes(campaign: Campaign) -> list[dict]:
    """The campaign's attributes, most shared first, as the alert lists them (values hashed)."""
    items = sorted(campaign.attributes.items(), key=lambda item: (-item[1], item[0]))
    return [
        {"attribute": kind_of(key), "value_hash": key.partition(":")[2], "member_count": count}
        for key, count in items
        if count > 1
    ][:20]


def _joined_through(joined: dict[str, str], cap: int) -> list[dict]:
    """Members tied to the campaign by one weak attribute and their own traffic, by attribute."""
    return [
        {"attribute": kind_of(key), "value_hash": key.partition(":")[2], "account_ids": accounts}
        for key, accounts in _grouped(joined, cap)
    ]


def _joined_on_ties(joined: dict[str, str], cap: int) -> list[dict]:
    """Members joined on their ties alone (see :meth:`CampaignBook._tie`), by the kinds they share."""
    return [{"ties": ties, "account_ids": accounts} for ties, accounts in _grouped(joined, cap)]


def _grouped(joined: dict[str, str], cap: int) -> list[tuple[str, list[str]]]:
    """Accounts grouped by what they joined on, the largest group first, each sorted and capped."""
    groups: dict[str, list[str]] = {}
    for account, value in joined.items():
        groups.setdefault(value, []).append(account)
    return [
        (value, sorted(accounts)[:cap])
        for value, accounts in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    ]


def _campaign_id(attribute: str) -> str:
    """A campaign's id: derived from the attribute that first linked it, then kept for good."""
    return "cmp_" + hashlib.sha1(attribute.encode()).hexdigest()[:12]


SWEEP_SECONDS = 300.0
"""Idle alerts, accounts, attributes and campaigns are swept when event time crosses each such boundary."""


class Sweeps:
    """Event-time boundaries (every ``period`` seconds of the newest timestamp) at which idle
    state is swept: scanning it on every record or message would cost O(state)."""

    def __init__(self, period: float = SWEEP_SECONDS):
        self.period = period
        self.next_boundary = float("-inf")

    def due(self, now: float) -> bool:
        """Whether ``now`` crossed a boundary since the last call (never on the first)."""
        if now < self.next_boundary:
            return False
        first = self.next_boundary == float("-inf")
        self.next_boundary = (now // self.period + 1) * self.period
        return not first

    def snapshot(self) -> float:
        """The next boundary: the whole state of the clock."""
        return self.next_boundary

    def restore(self, next_boundary: float) -> None:
        self.next_boundary = next_boundary
