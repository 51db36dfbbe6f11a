"""The desktop portal (xdg-desktop-portal, over D-Bus) on Wayland: screenshots and global shortcuts.

On Wayland a program can neither read the screen nor grab keys by itself; the desktop does both for it.
- Screenshot (org.freedesktop.portal.Screenshot): the desktop takes the picture and hands over a file, which is
  deleted as soon as it is read (it was made for this description only). It may ask the user once whether
  captioner may take screenshots.
- GlobalShortcuts (org.freedesktop.portal.GlobalShortcuts): captioner names its actions and the keys it would
  like; the desktop binds them (it may show the user a dialog to confirm or change them) and signals each press
  for as long as the session's connection stays open.
No Qt here (jeepney, pure Python), so `captioner describe-screen` uses it without a window.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image

from captioner_gui.i18n import _

PORTAL = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
SCREENSHOT = "org.freedesktop.portal.Screenshot"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
REGISTRY = "org.freedesktop.host.portal.Registry"
REQUEST = "org.freedesktop.portal.Request"
APP_ID = "io.github.captioner.Captioner"  # as the app's desktopFileName: how the desktop names us
CANCELLED = 1  # the Response codes: 0 success, 1 the user said no (or closed the dialog), 2 anything else
MISSING = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.UnknownInterface",
           "org.freedesktop.DBus.Error.UnknownMethod")


class PortalError(Exception):
    """The portal did not do what was asked; the message says why, in one line."""


def portal_screenshot(timeout: float = 120.0) -> Image.Image:
    """The whole desktop, as the portal sees it. `timeout` allows for the permission question the first time."""
    with _Portal() as portal:
        code, results = portal.ask(SCREENSHOT, "Screenshot", "s", ("",),
                                   {"modal": ("b", False), "interactive": ("b", False)}, timeout,
                                   _("This desktop offers no screenshot portal: install xdg-desktop-portal and "
                                     "your desktop's backend (xdg-desktop-portal-gnome, -kde or -wlr)."))
    if code == CANCELLED:
        raise PortalError(_("The desktop did not allow the screenshot. Allow screenshots for captioner in your "
                            "desktop's privacy settings, then try again."))
    uri = results.get("uri", ("s", ""))[1]
    if code != 0 or not uri:
        raise PortalError(_("The desktop portal could not take the screenshot."))
    return _read_and_delete(Path(unquote(urlparse(uri).path)))


class PortalShortcuts:
    """Global shortcuts through the portal. `bind` may wait for the user (the desktop's dialog): call it off the
    GUI thread. `on_press(action)` is called on a thread of this object's own."""

    def __init__(self, on_press: Callable[[str], None]):
        self._on_press = on_press
        self._portal = _Portal()
        self._presses: queue.Queue = queue.Queue()
        self._session = ""

    def bind(self, shortcuts: dict[str, tuple[str, str]], timeout: float = 300.0) -> None:
        """Asks for {action: (description, preferred trigger such as "CTRL+ALT+SHIFT+s")}; presses are passed on
        from then on. Raises PortalError when the desktop cannot or will not bind them. (The desktop may bind other
        keys than those asked for, if the user says so in its dialog.)"""
        from jeepney import MatchRule

        missing = _("This desktop offers no global shortcuts portal (GNOME 48, KDE Plasma 6 and others have one): "
                    "bind 'captioner describe-screen' in your desktop's keyboard shortcut settings instead.")
        self._portal.register_app()
        code, results = self._portal.ask(SHORTCUTS, "CreateSession", "", (),
                                         {"session_handle_token": ("s", _token())}, 30, missing)
        self._session = str(results.get("session_handle", ("s", ""))[1])
        if code != 0 or not self._session:
            raise PortalError(_("The desktop portal could not start a global shortcuts session."))
        # Listen before binding, so that no press is missed.
        self._portal.listen(MatchRule(type="signal", interface=SHORTCUTS, member="Activated", path=PORTAL_PATH),
                            self._presses)
        threading.Thread(target=self._pass_on_presses, name="portal-shortcuts", daemon=True).start()
        wanted = [(action, {"description": ("s", description), "preferred_trigger": ("s", trigger)})
                  for action, (description, trigger) in shortcuts.items()]
        code, _results = self._portal.ask(SHORTCUTS, "BindShortcuts", "oa(sa{sv})s", (self._session, wanted, ""), {},
                                   timeout, missing)
        if code == CANCELLED:
            raise PortalError(_("The desktop's shortcut dialog was closed, so the hotkeys are not bound: change "
                                "them in Settings to be asked again."))
        if code != 0:
            raise PortalError(_("The desktop portal could not bind the hotkeys."))

    def _pass_on_presses(self) -> None:
        while (message := self._presses.get()) is not None:  # None: closed
            session, action, *_details = message.body
            if session == self._session:
                self._on_press(action)

    def close(self) -> None:
        """Ends the session: the desktop drops our keys with the connection."""
        self._portal.close()


class _Portal:
    """A connection to the portal, with jeepney's thread handing incoming messages to whoever waits for them."""

    def __init__(self):
        try:
            from jeepney.io.threading import DBusRouter, open_dbus_connection
        except ImportError:
            raise PortalError(_("jeepney is missing: pip install jeepney.")) from None
        try:
            self._connection = open_dbus_connection(bus="SESSION")
        except (OSError, KeyError, ValueError) as exc:
            raise PortalError(_("No D-Bus session bus to reach the desktop portal ({problem}).").format(problem=exc)
                              ) from None
        self._router = DBusRouter(self._connection)
        self._filters: list = []  # jeepney's filter handles, each with the queue it fills

    def __enter__(self) -> _Portal:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def register_app(self) -> None:
        """Tells the portal which app we are, where it cannot know it (a program outside a sandbox), through the
        host Registry of xdg-desktop-portal 1.19 and later. Older portals have none: the error reply is fine."""
        from jeepney import DBusAddress, new_method_call

        self._router.send_and_get_reply(new_method_call(
            DBusAddress(PORTAL_PATH, bus_name=PORTAL, interface=REGISTRY), "Register", "sa{sv}", (APP_ID, {})),
            timeout=10)

    def listen(self, rule, into: queue.Queue) -> None:
        """Puts every message that matches `rule` into `into`, until close."""
        from jeepney.bus_messages import message_bus
        from jeepney.io.threading import Proxy

        Proxy(message_bus, self._router).AddMatch(rule)
        self._filters.append(self._router.filter(rule, queue=into))

    def ask(self, interface: str, method: str, signature: str, arguments: tuple, options: dict, timeout: float,
            missing: str) -> tuple[int, dict]:
        """Calls a portal method whose answer comes as its Request object's Response signal: (code, results).
        `signature` is that of `arguments`; the options (a{sv}) follow them. `missing`: what to say when this
        desktop's portal lacks the interface."""
        from jeepney import DBusAddress, HeaderFields, MatchRule, MessageType, new_method_call

        token = _token()
        sender = self._router.unique_name.lstrip(":").replace(".", "_")
        answers: queue.Queue = queue.Queue()
        self.listen(MatchRule(type="signal", interface=REQUEST, member="Response",
                              path=f"{PORTAL_PATH}/request/{sender}/{token}"), answers)  # before asking
        call = new_method_call(DBusAddress(PORTAL_PATH, bus_name=PORTAL, interface=interface), method,
                               signature + "a{sv}", (*arguments, {**options, "handle_token": ("s", token)}))
        reply = self._router.send_and_get_reply(call, timeout=10)
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "")
            raise PortalError(missing if name in MISSING else
                              _("The desktop portal refused ({problem}).").format(
                                  problem=reply.body[0] if reply.body else name))
        try:
            answer = answers.get(timeout=timeout)
        except queue.Empty:
            raise PortalError(_("The desktop portal did not answer within {seconds} s.").format(
                seconds=f"{timeout:.0f}")) from None
        if answer is None:
            raise PortalError(_("Closed before the desktop portal answered."))
        return answer.body

    def close(self) -> None:
        for handle in self._filters:
            handle.close()
            handle.queue.put(None)  # ends the wait of whoever reads it
        self._router.close()
        self._connection.close()


def _token() -> str:
    return f"captioner{uuid.uuid4().hex}"


def _read_and_delete(path: Path) -> Image.Image:
    try:
        with Image.open(path) as picture:
            image = picture.convert("RGB")
    except OSError as exc:
        raise PortalError(_("The portal's screenshot could not be read ({problem}).").format(problem=exc)) from None
    try:
        os.remove(path)
    except OSError:
        pass  # not ours to delete after all (a read-only place): it stays
    return image
