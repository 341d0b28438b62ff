import pytest

from servelab.observe._waiting import Stuck, wait_for


def test_returns_the_first_truthy_result():
    calls = iter([None, 0, "ready"])
    assert wait_for(lambda: next(calls), what="x", layer="Serve", timeout=5, interval=0.01, show=False) == "ready"


def test_deadline_names_the_layer_and_the_last_error():
    def broken():
        raise ConnectionError("connection refused")

    with pytest.raises(Stuck) as info:
        wait_for(broken, what="the proxy", layer="Serve", timeout=0.2, interval=0.05,
                 hint="Look at logs/serve/.", show=False)
    assert info.value.layer == "Serve"
    assert str(info.value).startswith("[Serve] the proxy did not happen within 0s")
    assert "connection refused" in str(info.value) and "logs/serve/" in str(info.value)


def test_unknown_layer_is_a_programming_error():
    with pytest.raises(AssertionError):
        Stuck("Networking", "no such layer in the course's model")


def test_outside_a_kernel_progress_is_a_line_of_text(capsys):
    from servelab.observe._waiting import TextProgress, progress

    shown = progress("the proxy", timeout=10)
    assert isinstance(shown, TextProgress)
    calls = iter([None, None, "up"])
    assert wait_for(lambda: next(calls), what="the proxy", layer="Serve", timeout=5, interval=0.01) == "up"
    assert "the proxy: ok (" in capsys.readouterr().out
    with pytest.raises(Stuck):
        wait_for(lambda: None, what="the proxy", layer="Serve", timeout=0.05, interval=0.01)
    assert "the proxy: gave up after 0s" in capsys.readouterr().out
