"""A screenshot on Wayland, through the desktop portal (org.freedesktop.portal.Screenshot, over D-Bus).

On Wayland a program cannot read the screen itself; the desktop takes the picture and hands over a file. The
desktop may ask the user once whether captioner may take screenshots. The file is deleted as soon as it is read:
it was made for this description only. No Qt here (jeepney, pure Python), so `captioner describe-screen` uses it
without a window.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image

PORTAL = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
SCREENSHOT = "org.freedesktop.portal.Screenshot"
REQUEST = "org.freedesktop.portal.Request"
CANCELLED = 1  # the Response codes: 0 success, 1 the user said no (or closed the dialog), 2 anything else


class PortalError(Exception):
    """The portal gave no screenshot; the message says why, in one line."""


def portal_screenshot(timeout: float = 120.0) -> Image.Image:
    """The whole desktop, as the portal sees it. `timeout` allows for the permission question the first time."""
    try:
        from jeepney import DBusAddress, HeaderFields, MatchRule, MessageType, message_bus, new_method_call
        from jeepney.io.blocking import Proxy, open_dbus_connection
    except ImportError:
        raise PortalError("jeepney is missing: pip install jeepney.") from None
    try:
        connection = open_dbus_connection(bus="SESSION")
    except (OSError, KeyError, ValueError) as exc:
        raise PortalError(f"No D-Bus session bus to reach the desktop portal ({exc}).") from None
    with connection:
        token = f"captioner{uuid.uuid4().hex}"
        sender = connection.unique_name.lstrip(":").replace(".", "_")
        request_path = f"{PORTAL_PATH}/request/{sender}/{token}"
        # Listen before asking, so that a quick answer cannot be missed.
        response = MatchRule(type="signal", interface=REQUEST, member="Response", path=request_path)
        Proxy(message_bus, connection).AddMatch(response)
        with connection.filter(response) as answers:
            call = new_method_call(DBusAddress(PORTAL_PATH, bus_name=PORTAL, interface=SCREENSHOT), "Screenshot",
                                   "sa{sv}", ("", {"handle_token": ("s", token), "modal": ("b", False),
                                                   "interactive": ("b", False)}))
            reply = connection.send_and_get_reply(call, timeout=10)
            if reply.header.message_type == MessageType.error:
                raise PortalError(_refusal(reply.header.fields.get(HeaderFields.error_name, ""), reply.body))
            try:
                code, results = connection.recv_until_filtered(answers, timeout=timeout).body
            except TimeoutError:
                raise PortalError(f"The desktop portal gave no screenshot within {timeout:.0f} s.") from None
    if code == CANCELLED:
        raise PortalError("The desktop did not allow the screenshot. Allow screenshots for captioner in your "
                          "desktop's privacy settings, then try again.")
    uri = results.get("uri", ("s", ""))[1]
    if code != 0 or not uri:
        raise PortalError("The desktop portal could not take the screenshot.")
    return _read_and_delete(Path(unquote(urlparse(uri).path)))


def _refusal(name: str, body: tuple) -> str:
    if name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.UnknownInterface",
                "org.freedesktop.DBus.Error.UnknownMethod"):
        return ("This desktop offers no screenshot portal: install xdg-desktop-portal and your desktop's "
                "backend (xdg-desktop-portal-gnome, -kde or -wlr).")
    detail = body[0] if body else name
    return f"The desktop portal refused the screenshot ({detail})."


def _read_and_delete(path: Path) -> Image.Image:
    try:
        with Image.open(path) as picture:
            image = picture.convert("RGB")
    except OSError as exc:
        raise PortalError(f"The portal's screenshot could not be read ({exc}).") from None
    try:
        os.remove(path)
    except OSError:
        pass  # not ours to delete after all (a read-only place): it stays
    return image
