"""What a screen reader (Orca) sees of an app through AT-SPI: run by Debian's /usr/bin/python3, which has pyatspi.

    atspi_reader.py tree APP          prints the app's accessible tree as JSON
    atspi_reader.py events APP FILE   appends the app's events to FILE, one JSON object a line, until killed

Each node of the tree: {"role", "name", "description", "states", "text" (where it has a text interface),
"extents" ([x, y, width, height] on the screen),
"labelled_by" (the names of its labels), "children"}. Each event: {"type", "role", "name", "detail1", "value" (an
announcement's text or the changed text)}; a focus event also gives "labelled_by", "text" and "description", read at the time of the event (with the names this
listener was told so far, as Orca's).
"""

import json
import sys

import pyatspi

EVENTS = ("object:announcement", "focus:", "object:state-changed:focused", "object:text-changed",
          "object:property-change:accessible-name")


def find_app(name):
    desktop = pyatspi.Registry.getDesktop(0)
    for index in range(desktop.childCount):
        app = desktop.getChildAtIndex(index)
        if app is not None and app.name == name:
            return app
    return None


def text_of(node):
    """The node's text, or None: pyatspi raises NotImplementedError for an object without that interface."""
    try:
        text = node.queryText()
    except NotImplementedError:
        return None
    return text.getText(0, text.characterCount)


def extents_of(node):
    """The node's box on the desktop, or None where it has no component interface (NotImplementedError)."""
    try:
        box = node.queryComponent().getExtents(pyatspi.DESKTOP_COORDS)
    except NotImplementedError:
        return None
    return [box.x, box.y, box.width, box.height]


def labels_of(node):
    """The names of the labels that name this node (its labelled-by relation), as Orca reads them before it."""
    names = []
    for relation in node.getRelationSet():
        if relation.getRelationType() == pyatspi.RELATION_LABELLED_BY:
            names += [relation.getTarget(i).name for i in range(relation.getNTargets())]
    return names


def describe(node, depth=0):
    states = node.getState().getStates()
    children = [] if depth > 40 else [describe(child, depth + 1) for child in node if child is not None]
    return {"role": node.getRoleName(), "name": node.name, "description": node.description,
            "states": sorted(pyatspi.stateToString(s) for s in states), "text": text_of(node),
            "extents": extents_of(node), "labelled_by": labels_of(node),
            "children": children}


def watch(app_name, path):
    with open(path, "a", encoding="utf-8") as out:
        def listener(event):
            try:
                source = event.source
                if source is None or source.getApplication().name != app_name:
                    return
                value = event.any_data if isinstance(event.any_data, (str, int, float)) else None
                record = {"type": event.type, "role": source.getRoleName(), "name": source.name,
                          "detail1": event.detail1, "value": value}
                if event.type.startswith("focus") or event.type.endswith("focused"):  # as Orca reads it then
                    record.update(labelled_by=labels_of(source), text=text_of(source),
                                  description=source.description)
                out.write(json.dumps(record) + "\n")
                out.flush()
            except Exception as exc:  # an object gone meanwhile: note it, keep listening
                out.write(json.dumps({"type": "reader-error", "value": repr(exc)}) + "\n")
                out.flush()

        pyatspi.Registry.registerEventListener(listener, *EVENTS)
        out.write(json.dumps({"type": "listening"}) + "\n")
        out.flush()
        pyatspi.Registry.start()


def main():
    command, app_name = sys.argv[1], sys.argv[2]
    if command == "tree":
        app = find_app(app_name)
        print(json.dumps(describe(app) if app is not None else None))
    elif command == "events":
        watch(app_name, sys.argv[3])


if __name__ == "__main__":
    main()
