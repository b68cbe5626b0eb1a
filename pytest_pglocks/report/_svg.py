"""The picture of one test, drawn with drawsvg: swimlanes over steps, then the wait-for graph.

Every group carries classes (``lane``, ``statement``, ``blocked``, ``mark`` with ``error``,
``gate`` or ``barrier``, ``node``, ``edge``, ``cycle``) and ``data-*`` attributes, so that
tools and tests can read the picture's structure; full SQL and messages are in tooltips.
"""

from __future__ import annotations

import math
from typing import Any

from ._lanes import Edge, Lanes

LABEL_WIDTH = 150  # the lane names
STEP = 150  # one column per step
LANE = 74
TOP = 78  # title, verdict and time axis
GRAPH = 300  # height of the wait-for graph's panel
NODE = 34  # radius of a backend in the graph
FONT = "ui-monospace, DejaVu Sans Mono, Menlo, monospace"
CHAR = 6.7  # width of a character at 11 px, for cutting labels
COLOURS = {
    "done": "#4c78a8",
    "running": "#9ecae9",
    "error": "#d62728",
    "cancelled": "#7f7f7f",
    "blocked": "#f58518",
    "gate": "#54a24b",
    "barrier": "#b279a2",
    "edge": "#555555",
    "cycle": "#d62728",
}


def _cut(text: str, width: float) -> str:
    chars = max(4, int(width / CHAR))
    return text if len(text) <= chars else text[: chars - 1] + "…"


def render(lanes: Lanes) -> str:
    """A self-contained SVG document of ``lanes``."""
    import drawsvg as draw

    steps = max(lanes.steps, 1)
    width = LABEL_WIDTH + (steps + 1) * STEP
    lanes_bottom = TOP + len(lanes.lanes) * LANE
    height = lanes_bottom + (GRAPH if lanes.edges else 40)
    drawing: Any = draw.Drawing(width, height, font_family=FONT, font_size=11)
    drawing.append(draw.Rectangle(0, 0, width, height, fill="white"))
    title = draw.Text(_cut(lanes.title, width - 24), 15, 12, 22, font_weight="bold", class_="title")
    drawing.append(title)
    drawing.append(draw.Text(_cut(lanes.verdict, width - 24), 12, 12, 42, class_="verdict"))
    arrow = draw.Marker(-0.1, -0.5, 0.9, 0.5, scale=6, orient="auto")
    arrow.append(draw.Lines(-0.1, -0.5, -0.1, 0.5, 0.9, 0, fill="context-stroke", close=True))

    def x(step: int | None) -> float:
        return LABEL_WIDTH + (steps if step is None else step) * STEP + STEP / 2

    for step, ms in enumerate(lanes.times_ms):
        drawing.append(
            draw.Text(
                f"{ms:.1f} ms", 10, x(step), 64, text_anchor="middle", fill="#666", class_="tick"
            )
        )
        drawing.append(draw.Line(x(step), 68, x(step), lanes_bottom, stroke="#eee"))
    rows = {name: TOP + index * LANE for index, name in enumerate(lanes.lanes)}
    for name, top in rows.items():
        band = draw.Group(class_="lane", data_session=name)
        band.append(
            draw.Rectangle(
                0,
                top,
                width,
                LANE,
                fill="#f7f7f7" if list(rows).index(name) % 2 else "#ffffff",
                stroke="#ddd",
            )
        )
        band.append(
            draw.Text(
                _cut(name, LABEL_WIDTH - 16),
                12,
                8,
                top + LANE / 2 + 4,
                font_weight="bold",
                class_="lane-name",
            )
        )
        drawing.append(band)
    for statement in lanes.statements:
        top = rows[statement.lane]
        start, end = x(statement.start), x(statement.end)
        group = draw.Group(
            class_=f"statement {statement.outcome}",
            data_session=statement.lane,
            data_where=statement.where,
            data_sqlstate=statement.sqlstate or "",
        )
        bar = draw.Rectangle(
            start, top + 26, max(end - start, 6), 14, rx=3, fill=COLOURS[statement.outcome]
        )
        tooltip = f"{statement.where}  {statement.sql}"
        if statement.message:
            tooltip += f"\n{statement.sqlstate}: {statement.message}"
        bar.append_title(tooltip)
        group.append(bar)
        room = max(end - start, 0) + STEP - 12
        group.append(draw.Text(_cut(statement.call, room), 11, start, top + 20, class_="call"))
        group.append(draw.Text(statement.where, 10, start, top + 54, fill="#666", class_="where"))
        drawing.append(group)
    for wait in lanes.blocked:
        top = rows[wait.lane]
        start, end = x(wait.start), x(wait.end)
        by = ", ".join(wait.by) or "?"
        group = draw.Group(
            class_="blocked", data_session=wait.lane, data_by=by, data_where=wait.where
        )
        bar = draw.Rectangle(
            start, top + 26, max(end - start, 6), 14, rx=3, fill=COLOURS["blocked"]
        )
        bar.append_title(f"{wait.where}  {wait.detail}")
        group.append(bar)
        group.append(
            draw.Text(
                _cut(f"blocked by {by}", max(end - start, STEP) - 8),
                10,
                start + 4,
                top + 37,
                fill="white",
                font_weight="bold",
                class_="blocked-by",
            )
        )
        drawing.append(group)
    for mark in lanes.marks:
        top = rows[mark.lane]
        cx, cy = x(mark.step), top + 33
        group = draw.Group(
            class_=f"mark {mark.kind}", data_session=mark.lane, data_where=mark.where
        )
        colour = COLOURS[mark.kind]
        if mark.kind == "gate":
            shape = draw.Lines(
                cx, cy - 9, cx + 9, cy, cx, cy + 9, cx - 9, cy, close=True, fill=colour
            )
        elif mark.kind == "barrier":
            shape = draw.Rectangle(cx - 3, cy - 10, 6, 20, fill=colour)
        else:
            shape = draw.Circle(cx, cy, 8, fill=colour, stroke="white", stroke_width=2)
        shape.append_title(f"{mark.where}  {mark.label}")
        group.append(shape)
        point = mark.kind in ("gate", "barrier")  # on a lane of its own, no statement there
        label_y = top + 20 if point else top + 66
        group.append(
            draw.Text(_cut(mark.label, STEP - 8), 10, cx - 4, label_y, fill=colour, class_="label")
        )
        if point:
            group.append(draw.Text(mark.where, 10, cx - 4, top + 54, fill="#666", class_="where"))
        drawing.append(group)
    if lanes.edges:
        _graph(drawing, draw, lanes.edges, lanes_bottom, width, arrow)
    return str(drawing.as_svg())


def _graph(
    drawing: Any, draw: Any, edges: list[Edge], top: float, width: float, arrow: Any
) -> None:
    """The wait-for graph: backends on a circle, an arrow per wait, the cycle in red."""
    unique: dict[tuple[str, str], Edge] = {}
    for edge in edges:
        known = unique.get((edge.waiter, edge.blocker))
        if known is None or (edge.cycle and not known.cycle):
            unique[(edge.waiter, edge.blocker)] = edge
    nodes = list(
        dict.fromkeys(name for edge in unique.values() for name in (edge.waiter, edge.blocker))
    )
    panel = draw.Group(class_="wait-for-graph")
    panel.append(
        draw.Text("wait-for graph (waiter → blocker)", 13, 12, top + 24, font_weight="bold")
    )
    cycle = {edge.waiter: edge.blocker for edge in unique.values() if edge.cycle}
    if cycle:
        path = [next(iter(cycle))]
        while len(path) <= len(cycle) and path[-1] in cycle:
            path.append(cycle[path[-1]])
        panel.append(
            draw.Text(
                "deadlock: " + " → ".join(path),
                12,
                12,
                top + 44,
                fill=COLOURS["cycle"],
                class_="cycle-label",
            )
        )
    centre_x, centre_y = min(width / 2, 420), top + 170
    radius = 0 if len(nodes) == 1 else 95
    places = {
        name: (
            centre_x + radius * math.cos(2 * math.pi * i / len(nodes) - math.pi / 2),
            centre_y + radius * math.sin(2 * math.pi * i / len(nodes) - math.pi / 2),
        )
        for i, name in enumerate(nodes)
    }
    for edge in unique.values():
        (x1, y1), (x2, y2) = places[edge.waiter], places[edge.blocker]
        length = math.hypot(x2 - x1, y2 - y1) or 1
        # Bend each arrow to its right so that a→b and b→a stay apart.
        nx, ny = (y2 - y1) / length, -(x2 - x1) / length
        mx, my = (x1 + x2) / 2 + nx * 28, (y1 + y2) / 2 + ny * 28
        shrink = (NODE + 4) / length
        sx, sy = x1 + (mx - x1) * shrink * 2, y1 + (my - y1) * shrink * 2
        ex, ey = x2 + (mx - x2) * shrink * 2, y2 + (my - y2) * shrink * 2
        colour = COLOURS["cycle" if edge.cycle else "edge"]
        group = draw.Group(
            class_="edge cycle" if edge.cycle else "edge",
            data_waiter=edge.waiter,
            data_blocker=edge.blocker,
        )
        path = draw.Path(
            stroke=colour, stroke_width=3 if edge.cycle else 1.5, fill="none", marker_end=arrow
        )
        path.M(sx, sy).Q(mx, my, ex, ey)
        path.append_title(f"{edge.waiter} waits for {edge.lock} held by {edge.blocker}")
        group.append(path)
        group.append(
            draw.Text(
                _cut(edge.lock, 260),
                10,
                mx + nx * 8,
                my + ny * 8,
                text_anchor="start" if nx >= 0 else "end",
                fill=colour,
                class_="lock",
            )
        )
        panel.append(group)
    for name, (cx, cy) in places.items():
        node = draw.Group(class_="node", data_session=name)
        node.append(draw.Circle(cx, cy, NODE, fill="white", stroke="#333", stroke_width=2))
        node.append(
            draw.Text(
                _cut(name, 2 * NODE - 6), 12, cx, cy + 4, text_anchor="middle", font_weight="bold"
            )
        )
        panel.append(node)
    drawing.append(panel)
