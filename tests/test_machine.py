"""The state machine tables: the diagram is drawn from them, refusals name what is needed."""

from ha.machine import STATES, TRANSITIONS, diagram, refusal


def test_diagram_shows_every_state_and_transition() -> None:
    text = diagram()
    for state in STATES:
        assert f'state "{state}" as {state}' in text
    assert "running --> failing_over: failover" in text
    assert "failing_back --> running: finish" in text
    assert "stopped --> switched: run" in text


def test_no_transition_skips_journaling_to_an_undeclared_state() -> None:
    for transition in TRANSITIONS:
        sources = transition["source"]
        for source in sources if isinstance(sources, list) else [sources]:
            assert source in STATES
        assert transition["dest"] in STATES


def test_refusal_names_the_state_and_what_is_needed() -> None:
    assert refusal("failback", "running") == (
        "cannot failback while running; failback needs switched (or blocked in a failback)"
    )
