"""The isolation tester's spec format: a scanner and parser with line:column errors.

Follows PostgreSQL's ``specscanner.l`` and ``specparse.y`` (14 and later): keywords, plain
and ``"quoted"`` identifiers, ``{ sql }`` blocks with blanks trimmed inside the braces,
``#`` comments, and permutation steps with blocker annotations ``(*)``, ``(other)`` and
``(other notices N)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

KEYWORDS = ("notices", "permutation", "session", "setup", "step", "teardown")
# Flex takes the longest match, so "setups" is an identifier and "setup" a keyword.
IDENTIFIER = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z_0-9$\x80-\U0010ffff]*")
SPACE = " \t\r\f"
# A directive for pytest-pglocks in a comment: "# pglocks: no_deadlock".
DIRECTIVE = re.compile(r"#\s*pglocks:\s*(.*)")


class SpecError(Exception):
    """A spec that cannot be run: where (``file:line:column``) and what is wrong."""

    __module__ = "pytest_pglocks"

    def __init__(self, message: str, path: str, line: int, column: int, source: str = ""):
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}: {self.message}"
        if not self.source:
            return where
        return f"{where}\n  {self.source}\n  {' ' * (self.column - 1)}^"


@dataclass(frozen=True)
class Directive:
    """A ``# pglocks: ...`` comment line: what it says and where."""

    text: str
    line: int


@dataclass(frozen=True)
class Token:
    kind: str  # a keyword, "identifier", "sql", "integer", one of ",()*", or "end"
    text: str
    line: int
    column: int


@dataclass
class Step:
    """``step name { sql }`` of a session."""

    name: str
    sql: str
    session: str
    line: int
    column: int = field(default=0, compare=False)
    # A Python step (scenarios): called with the session's connection instead of sending sql.
    function: Callable[[Any], Any] | None = field(default=None, compare=False)


@dataclass
class Session:
    """``session name``: optional setup, its steps, optional teardown."""

    name: str
    steps: list[Step]
    setup: str | None = None
    teardown: str | None = None
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Blocker:
    """An annotation of a permutation step: ``*``, another step, or another step's notices."""

    kind: Literal["once", "step", "notices"]
    step: str | None = None
    notices: int = 0
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        if self.kind == "once":
            return "*"
        return f"{self.step} notices {self.notices}" if self.kind == "notices" else str(self.step)


@dataclass(frozen=True)
class PermutationStep:
    """One step named in a permutation, with its blocker annotations."""

    name: str
    blockers: tuple[Blocker, ...] = ()
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        if not self.blockers:
            return self.name
        return f"{self.name}({', '.join(str(b) for b in self.blockers)})"


@dataclass
class Spec:
    """A parsed spec file."""

    path: str
    setup: list[str]
    teardown: str | None
    sessions: list[Session]
    permutations: list[tuple[PermutationStep, ...]]
    directives: list[Directive] = field(default_factory=list)
    # "unused step name: x" lines, which the isolation tester prints before anything else.
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def steps(self) -> dict[str, Step]:
        return {step.name: step for session in self.sessions for step in session.steps}

    def runs(self) -> list[tuple[PermutationStep, ...]]:
        """The permutations to run: those listed, or every interleaving of the sessions' steps."""
        if self.permutations:
            return list(self.permutations)
        return [tuple(PermutationStep(name) for name in order) for order in self._interleavings()]

    def _interleavings(self) -> Iterator[list[str]]:
        """Every order that keeps each session's steps in sequence, in the tester's order."""
        taken = [0] * len(self.sessions)
        order: list[str] = []

        def walk() -> Iterator[list[str]]:
            found = False
            for index, session in enumerate(self.sessions):
                if taken[index] < len(session.steps):
                    found = True
                    order.append(session.steps[taken[index]].name)
                    taken[index] += 1
                    yield from walk()
                    taken[index] -= 1
                    order.pop()
            if not found:
                yield list(order)

        yield from walk()


def tokens(text: str, path: str) -> Iterator[Token]:
    """The spec's tokens, as PostgreSQL's scanner produces them."""
    lines = text.split("\n")
    pos, line, line_start = 0, 1, 0

    def error(message: str, at: int, at_line: int, at_start: int) -> SpecError:
        return SpecError(message, path, at_line, at - at_start + 1, lines[at_line - 1])

    while pos < len(text):
        char = text[pos]
        column = pos - line_start + 1
        if char == "\n":
            pos, line, line_start = pos + 1, line + 1, pos + 1
        elif char in SPACE:
            pos += 1
        elif char == "#":
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            yield Token("comment", text[pos:end], line, column)
            pos = end
        elif char == '"':
            chars: list[str] = []
            cursor = pos + 1
            while True:
                if cursor >= len(text):
                    raise error("unterminated quoted identifier", pos, line, line_start)
                if text[cursor] == "\n":
                    raise error("unexpected newline in quoted identifier", pos, line, line_start)
                if text[cursor] == '"':
                    if text.startswith('""', cursor):
                        chars.append('"')
                        cursor += 2
                        continue
                    break
                chars.append(text[cursor])
                cursor += 1
            yield Token("identifier", "".join(chars), line, column)
            pos = cursor + 1
        elif char == "{":
            start_line, start_col, block_start = line, column, pos
            cursor = pos + 1
            while cursor < len(text) and text[cursor] in SPACE:
                cursor += 1
            end = text.find("}", cursor)
            if end < 0:
                raise error("unterminated sql block", block_start, start_line, line_start)
            body_end = end
            while body_end > cursor and text[body_end - 1] in SPACE:
                body_end -= 1
            body = text[cursor:body_end]
            yield Token("sql", body, start_line, start_col)
            newlines = text.count("\n", pos, end)
            if newlines:
                line += newlines
                line_start = text.rfind("\n", pos, end) + 1
            pos = end + 1
        elif "0" <= char <= "9":
            match = re.match(r"[0-9]+", text[pos:])
            assert match is not None
            yield Token("integer", match[0], line, column)
            pos += len(match[0])
        elif char in ",()*":
            yield Token(char, char, line, column)
            pos += 1
        else:
            match = IDENTIFIER.match(text, pos)
            if match is None:
                raise error(f"unexpected character {char!r}", pos, line, line_start)
            word = match[0]
            yield Token(word if word in KEYWORDS else "identifier", word, line, column)
            pos = match.end()
    yield Token("end", "", line, pos - line_start + 1)


DESCRIBE = {
    "identifier": "a name",
    "sql": "a { sql } block",
    "integer": "a number",
    "end": "the end of the file",
}


class Parser:
    """A recursive-descent version of ``specparse.y``."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = text.split("\n")
        self.directives: list[Directive] = []
        self._tokens = [t for t in tokens(text, path) if not self._comment(t)]
        self._pos = 0

    def _comment(self, token: Token) -> bool:
        if token.kind != "comment":
            return False
        match = DIRECTIVE.match(token.text)
        if match:
            self.directives.append(Directive(match[1].strip(), token.line))
        return True

    @property
    def token(self) -> Token:
        return self._tokens[self._pos]

    def error(self, message: str, token: Token | None = None) -> SpecError:
        token = token or self.token
        source = self.lines[token.line - 1] if token.line <= len(self.lines) else ""
        return SpecError(message, self.path, token.line, token.column, source)

    def unexpected(self, wanted: str) -> SpecError:
        token = self.token
        found = DESCRIBE.get(token.kind, repr(token.text))
        if token.kind in KEYWORDS:
            found = f"the keyword {token.text!r}"
        elif token.kind == "identifier":
            found = f"the name {token.text!r}"
        return self.error(f"syntax error: expected {wanted}, found {found}")

    def take(self, kind: str, wanted: str) -> Token:
        if self.token.kind != kind:
            raise self.unexpected(wanted)
        token = self.token
        self._pos += 1
        return token

    def accept(self, kind: str) -> Token | None:
        if self.token.kind == kind:
            token = self.token
            self._pos += 1
            return token
        return None

    def spec(self) -> Spec:
        setups = []
        while self.accept("setup"):
            setups.append(self.take("sql", "a { sql } block after 'setup'").text)
        teardown = None
        if self.accept("teardown"):
            teardown = self.take("sql", "a { sql } block after 'teardown'").text
        sessions = []
        while self.token.kind == "session":
            sessions.append(self.session())
        if not sessions:
            wanted = "'session'" if setups or teardown else "'setup', 'teardown' or 'session'"
            raise self.unexpected(wanted)
        permutations = []
        while self.token.kind == "permutation":
            permutations.append(self.permutation())
        if self.token.kind != "end":
            raise self.unexpected(
                "'session' or 'permutation'" if not permutations else "'permutation'"
            )
        return Spec(self.path, setups, teardown, sessions, permutations, self.directives)

    def session(self) -> Session:
        self.take("session", "'session'")
        name_token = self.take("identifier", "a session name after 'session'")
        name = name_token.text
        setup = None
        if self.accept("setup"):
            setup = self.take("sql", "a { sql } block after 'setup'").text
        steps = []
        while self.token.kind == "step":
            self._pos += 1
            step_name = self.take("identifier", "a step name after 'step'")
            sql = self.take("sql", f"a {{ sql }} block for step {step_name.text!r}").text
            steps.append(Step(step_name.text, sql, name, step_name.line, step_name.column))
        if not steps:
            raise self.unexpected(f"'step' (session {name!r} needs at least one step)")
        teardown = None
        if self.accept("teardown"):
            teardown = self.take("sql", "a { sql } block after 'teardown'").text
        return Session(name, steps, setup, teardown, name_token.line, name_token.column)

    def permutation(self) -> tuple[PermutationStep, ...]:
        self.take("permutation", "'permutation'")
        steps = []
        while self.token.kind == "identifier":
            name = self.take("identifier", "a step name")
            blockers: list[Blocker] = []
            if self.accept("("):
                blockers.append(self.blocker())
                while self.accept(","):
                    blockers.append(self.blocker())
                self.take(")", "',' or ')' in the blocker list")
            steps.append(PermutationStep(name.text, tuple(blockers), name.line, name.column))
        if not steps:
            raise self.unexpected("a step name after 'permutation'")
        return tuple(steps)

    def blocker(self) -> Blocker:
        if star := self.accept("*"):
            return Blocker("once", line=star.line, column=star.column)
        step = self.take("identifier", "'*' or a step name in the blocker list")
        if self.accept("notices"):
            count = self.take("integer", "a number after 'notices'")
            return Blocker("notices", step.text, int(count.text), step.line, step.column)
        return Blocker("step", step.text, line=step.line, column=step.column)


def parse(text: str, path: str = "<spec>") -> Spec:
    """Parse and check a spec; raises ``SpecError`` with line and column."""
    parser = Parser(text, path)
    spec = parser.spec()
    _check(spec, parser)
    return spec


def parse_file(path: str | Path) -> Spec:
    """Read and parse a spec file (UTF-8)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x}; save the spec as UTF-8",
            str(path),
            line,
            column,
        ) from None
    return parse(text, str(path))


def _check(spec: Spec, parser: Parser) -> None:
    """``check_testspec()``: unique steps, known steps and blockers, unused-step warnings."""

    def error(message: str, line: int, column: int) -> SpecError:
        return SpecError(message, spec.path, line, column, parser.lines[line - 1])

    seen: dict[str, Step] = {}
    session_names: set[str] = set()
    for session in spec.sessions:
        if session.name in session_names:  # stricter than the tester: names must be unique
            raise error(f"duplicate session name: {session.name}", session.line, session.column)
        session_names.add(session.name)
        for step in session.steps:
            if step.name in seen:
                raise error(f"duplicate step name: {step.name}", step.line, step.column)
            seen[step.name] = step
    used: set[str] = set()
    for permutation in spec.permutations:
        names = {pstep.name for pstep in permutation}
        for pstep in permutation:
            if pstep.name not in seen:
                raise error(
                    f'undefined step "{pstep.name}" specified in permutation',
                    pstep.line,
                    pstep.column,
                )
            used.add(pstep.name)
        for pstep in permutation:
            for blocker in pstep.blockers:
                if blocker.step is None:
                    continue
                if blocker.step not in names:
                    raise error(
                        f'undefined blocking step "{blocker.step}" referenced in permutation '
                        f'step "{pstep.name}"',
                        blocker.line,
                        blocker.column,
                    )
                if seen[blocker.step].session == seen[pstep.name].session:
                    raise error(
                        f'permutation step "{pstep.name}" cannot block on its own session',
                        blocker.line,
                        blocker.column,
                    )
    if spec.permutations:
        spec.warnings = [f"unused step name: {name}" for name in sorted(seen) if name not in used]
