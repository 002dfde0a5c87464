"""Helpers of the real-browser tests (dash_duo + selenium): waiting, uploading, real mouse strokes."""

from __future__ import annotations

import time

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains

GD = "document.querySelector('#canvas .js-plotly-plot')"


def until(fn, timeout=30, what="condition"):
    """``fn()``'s first truthy value, polling every 0.2 s (AssertionError naming ``what`` after ``timeout``)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = fn()
        except StaleElementReferenceException:  # the element was re-rendered: look again
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def upload(dash_duo, selector, *paths):
    """Choose ``paths`` in the ``dcc.Upload`` at ``selector`` (as a user picking files).

    The file input is emptied first: Chromium adds files sent to a ``multiple`` input to
    the ones chosen before, which would upload those again.
    """
    el = until(lambda: dash_duo.driver.find_elements("css selector", f"{selector} input[type=file]"),
               what=f"the file input of {selector}")[0]
    dash_duo.driver.execute_script("arguments[0].value = ''", el)
    el.send_keys("\n".join(str(p) for p in paths))


def canvas_ready(dash_duo):
    return until(lambda: dash_duo.driver.execute_script(
        f"var g={GD}; return g && g.data && g.data.length == 1 && g.layout.images && g._fullLayout && "
        "!!g._fullLayout.xaxis._length"),
        what="the canvas with the image")


def stroke(dash_duo, points):
    """A real pointer drag along image-pixel ``points`` [(col, row), ...] on the canvas.

    The pointer goes to screen positions; the browser's hit testing decides which element
    gets the events (a stroke under the pointer would, if it took pointer events).
    """
    drag = dash_duo.find_element("#canvas .nsewdrag")
    screen = dash_duo.driver.execute_script(
        f"var g={GD}, xa=g._fullLayout.xaxis, ya=g._fullLayout.yaxis;"
        "return arguments[0].map(function(p){return [xa.d2p(p[0]), ya.d2p(p[1])];});", points)
    chain = ActionChains(dash_duo.driver).move_to_element_with_offset(drag, *screen[0]).click_and_hold()
    for x, y in screen[1:]:
        chain = chain.move_to_element_with_offset(drag, x, y)
    chain.release().perform()


def click_at(dash_duo, point):
    """A real click at image pixel ``point`` (col, row) of the canvas."""
    drag = dash_duo.find_element("#canvas .nsewdrag")
    x, y = dash_duo.driver.execute_script(
        f"var g={GD}; return [g._fullLayout.xaxis.d2p(arguments[0][0]), g._fullLayout.yaxis.d2p(arguments[0][1])];",
        point)
    ActionChains(dash_duo.driver).move_to_element_with_offset(drag, x, y).click().perform()


def overlay_source(dash_duo):
    """The overlay tiles shown (their sources joined), or None while none is shown."""
    return dash_duo.driver.execute_script(
        f"var ims=({GD}.layout.images||[]).filter(function(i){{return i.visible;}});"
        "return ims.length ? ims.map(function(i){return i.source;}).join('|') : null")


def shapes(dash_duo):
    """The strokes in the figure on screen (Plotly's ``layout.shapes``)."""
    return dash_duo.driver.execute_script(f"return ({GD}.layout.shapes || [])")


def toasts(dash_duo) -> str:
    return dash_duo.find_element(".toasts").text


def visible(dash_duo, selector) -> bool:
    """Whether the element is rendered (not display:none itself or in an ancestor)."""
    return bool(dash_duo.driver.execute_script(
        "var e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0 && "
        "getComputedStyle(e).visibility !== 'hidden'", selector))


def paint_two_classes(dash_duo, w, h):
    """Class 1 along the top and right border, class 2 across the centre (the disk images of the tests)."""
    stroke(dash_duo, [(3, 3), (w // 2, 4), (w - 4, 3), (w - 4, h // 2), (w - 4, h - 4)])
    dash_duo.find_element("body").send_keys("2")
    until(lambda: "active" in dash_duo.find_element("#class-list .class-row:nth-child(2)").get_attribute("class"),
          what="class 2 active")
    stroke(dash_duo, [(w // 2 - 8, h // 2), (w // 2, h // 2 - 4), (w // 2 + 8, h // 2)])
