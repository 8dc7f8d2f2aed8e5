"""Progress of long loops: plain lines when not on a terminal, Keras's bar on one."""

import io

from aekeras.progress import Progress, tracked


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_each_tenth_and_at_the_end():
    stream = io.StringIO()
    assert list(tracked(range(25), 25, "checking", stream=stream)) == list(range(25))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert [line.split(" (")[0] for line in lines[:2]] == ["checking: 3/25", "checking: 5/25"]
    assert lines[-1].startswith("checking: 25/25 (")


def test_unknown_totals_and_silence():
    stream = io.StringIO()
    progress = Progress(None, "reading", stream)
    progress.advance()
    progress.advance(2)
    assert [line.split(" (")[0] for line in stream.getvalue().splitlines()] == ["reading: 1", "reading: 3"]
    quiet = io.StringIO()
    assert list(tracked("abc", 3, "quiet", enabled=False, stream=quiet)) == ["a", "b", "c"]
    assert quiet.getvalue() == ""


def test_a_terminal_gets_a_progress_bar(capsys):
    stream = Terminal()
    list(tracked(range(4), 4, "converting", stream=stream))
    assert stream.getvalue() == "converting\n"
    # Keras's Progbar draws on standard output, ending at 4/4.
    assert "4/4" in capsys.readouterr().out
