from aggregator.registry import RegistryView
from schemas.models import Announcement, ClassifierMode


def entry(label, since, mode=ClassifierMode.VOTING, version="1"):
    return Announcement(
        label=label,
        version=version,
        mode=mode,
        since_ms=since,
        heartbeat_ms=since,
        group_id="g",
        instance="i",
    )


def test_expected_set_follows_since_and_mode():
    view = RegistryView()
    view.apply("a", entry("a", 10))
    view.apply("b", entry("b", 20))
    view.apply("s", entry("s", 0, ClassifierMode.SHADOW))
    assert view.expected_for(15) == {"a"}
    assert view.expected_for(25) == {"a", "b"}


def test_text_older_than_every_classifier_expects_all_voting():
    view = RegistryView()
    view.apply("a", entry("a", 10))
    assert view.expected_for(5) == {"a"}


def test_tombstone_retires_and_bumps_revision():
    view = RegistryView()
    view.apply("a", entry("a", 10))
    revision = view.revision
    view.apply("a", entry("a", 10))  # a heartbeat is not a membership change
    assert view.revision == revision
    view.apply("a", None)
    assert not view.knows("a") and view.revision == revision + 1
