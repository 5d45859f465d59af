"""The daemon's agenda: marked scenarios, scenarios due at a time, each taken once."""

from ha.agenda import Agenda


def test_marks_are_taken_once() -> None:
    agenda = Agenda()
    agenda.mark("a", "b")
    assert agenda.take(0) == {"a", "b"}
    assert agenda.take(0) == set()


def test_a_time_is_taken_when_due_and_a_later_time_replaces_it() -> None:
    agenda = Agenda()
    agenda.at("a", 10)
    agenda.at("b", 5)
    assert agenda.take(4) == set()
    assert agenda.take(5) == {"b"}
    agenda.at("a", 20)  # replaces 10
    assert agenda.take(15) == set()
    assert agenda.take(20) == {"a"}
    agenda.at("c", 30)
    agenda.at("c", None)
    assert agenda.take(40) == set()


def test_unsettled_scenarios_come_with_the_rest() -> None:
    agenda = Agenda()
    agenda.mark("a")
    assert agenda.take(0, {"z"}) == {"a", "z"}
