#!/usr/bin/python3
"""Drive the Image Serving page of Cockpit in a real headless Chromium, inside a booted box.

    cockpit_browser.py admin USER PASSWORD SHOTS_DIR
    cockpit_browser.py plain USER PASSWORD

Logs in through Cockpit's login form, opens https://127.0.0.1:9090/imageserving and prints one
JSON object of what it saw and did (the Rust test asserts on it). It acts only through the
page, except for the restart "from a terminal" the admin scenario runs to see the page follow.
Any step that does not happen in time ends the script with exit 1 and says which.
"""

import json
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

URL = "https://127.0.0.1:9090/imageserving"
FACTS = {}
DRIVER = []


def fail(what):
    FACTS["failed"] = what
    if DRIVER:
        try:
            DRIVER[0].switch_to.default_content()
            DRIVER[0].save_screenshot("/root/shots/failure.png")
        except Exception:
            pass
    print(json.dumps(FACTS))
    sys.exit(1)


def until(what, cond, limit=30.0):
    end = time.time() + limit
    while time.time() < end:
        try:
            value = cond()
            if value:
                return value
        except Exception:  # the page redraws under us: try again
            pass
        time.sleep(0.2)
    fail(what)


def browser(width, height):
    opts = webdriver.ChromeOptions()
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--ignore-certificate-errors",
                f"--window-size={width},{height}", "--disable-gpu"]:
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    DRIVER[:] = [d]
    return d


def login(d, user, password):
    d.get(URL)
    until("the login form", lambda: d.find_element(By.ID, "login-user-input"))
    d.find_element(By.ID, "login-user-input").send_keys(user)
    d.find_element(By.ID, "login-password-input").send_keys(password)
    d.find_element(By.ID, "login-button").click()
    frame = until("the page's frame", lambda: d.find_element(By.CSS_SELECTOR, "iframe[name$='/imageserving']"), 60)
    d.switch_to.frame(frame)
    until("a row per component", lambda: len(rows(d)) == 3 and all(pid(d, c) for c in ["ps", "is", "svg"]), 60)


def rows(d):
    return d.find_elements(By.CSS_SELECTOR, "tr[data-component]")


def pid(d, component):
    return d.find_element(By.CSS_SELECTOR, f"[data-component='{component}']").get_attribute("data-pid")


def row_text(d, component):
    """The row's cells' texts (from the DOM: a row below the fold has them too)."""
    return d.execute_script(
        "return Array.from(document.querySelector(arguments[0]).children).map(c => c.textContent).join(' ')",
        f"tr[data-component='{component}']")


def shown(d, selector):
    """Whether the element takes room on the page (not hidden, not display: none)."""
    return d.execute_script(
        "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0 && "
        "getComputedStyle(e).visibility !== 'hidden'", selector)


def click(d, component, action):
    button = f"[data-component='{component}'] button[data-action='{action}']"
    until(f"{action} of {component} clickable",
          lambda: d.find_element(By.CSS_SELECTOR, button).is_enabled() and (d.find_element(By.CSS_SELECTOR, button).click() or True))


def alerts(d):
    return d.execute_script(
        "return Array.from(document.querySelectorAll(\"[role='alert']\")).map(a => a.textContent)")


def main_pid(unit):
    out = subprocess.run(["systemctl", "show", "-P", "MainPID", unit], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def no_horizontal_scroll(d):
    return d.execute_script(
        "const e = document.documentElement; return [e.scrollWidth, e.clientWidth];")


def admin(user, password, shots):
    d = browser(1280, 900)
    try:
        login(d, user, password)
        FACTS["pids"] = {c: pid(d, c) for c in ["ps", "is", "svg", "supervisor"]}
        FACTS["systemd_pids"] = {c: main_pid(u) for c, u in [
            ("ps", "imageserving-platform.service"), ("is", "imageserving-image.service"),
            ("svg", "imageserving-svg.service"), ("supervisor", "imageserving-supervisor.service")]}
        FACTS["rows"] = {c: row_text(d, c) for c in ["ps", "is", "svg"]}
        FACTS["supervisor"] = d.execute_script(
            "return document.querySelector(\"[data-component='supervisor']\").textContent")

        # Restart svg from the page: its PID changes, ps keeps its own.
        before = dict(FACTS["pids"])
        click(d, "svg", "restart")
        until("svg's new PID on the page", lambda: pid(d, "svg") not in ("", before["svg"]), 60)
        FACTS["after_restart"] = {c: pid(d, c) for c in ["ps", "is", "svg"]}
        FACTS["svg_systemd_after"] = main_pid("imageserving-svg.service")
        FACTS["alerts_after_restart"] = alerts(d)

        # A restart from a terminal: the page follows without a reload.
        ps_before = pid(d, "ps")
        started = time.time()
        subprocess.run(["ImageServing", "restart", "ps"], check=True, capture_output=True, timeout=120)
        done = time.time()
        until("ps's new PID after a restart from the terminal", lambda: pid(d, "ps") not in ("", ps_before), 30)
        FACTS["followed_terminal_after_s"] = round(time.time() - done, 2)
        FACTS["terminal_restart_took_s"] = round(done - started, 2)
        FACTS["ps_systemd_after"] = main_pid("imageserving-platform.service")
        FACTS["ps_page_after"] = pid(d, "ps")

        # The journal of svg: the last lines, then new ones.
        click(d, "svg", "logs")
        log = "return document.querySelector(\"[data-logs='svg']\").textContent"
        until("svg's log lines", lambda: d.execute_script(log).strip())
        FACTS["log_lines"] = len(d.execute_script(log).strip().splitlines())
        FACTS["log_shown"] = shown(d, "[data-logs='svg']")

        # Stop asks first; confirmed, svg stops and stays stopped; start brings it back.
        FACTS["confirm_before_stop"] = shown(d, "button[data-action='confirm']")
        click(d, "svg", "stop")
        until("the confirmation", lambda: shown(d, "button[data-action='confirm']"))
        confirm = d.find_element(By.CSS_SELECTOR, "button[data-action='confirm']")
        FACTS["confirm_shown"] = shown(d, "button[data-action='confirm']")
        FACTS["svg_running_before_confirm"] = main_pid("imageserving-svg.service") != "0"
        confirm.click()
        until("svg stopped on the page", lambda: pid(d, "svg") == "" and "inactive" in row_text(d, "svg"), 60)
        FACTS["svg_stopped_row"] = row_text(d, "svg")
        click(d, "svg", "start")
        until("svg started again", lambda: pid(d, "svg") != "" and "active (running)" in row_text(d, "svg"), 60)

        # Both widths: no horizontal scroll; a screenshot of each, with the alerts closed.
        for close in d.find_elements(By.CSS_SELECTOR, "[role='alert'] button"):
            close.click()
        FACTS["alerts_left"] = len(alerts(d))
        for width in (1280, 390):
            d.switch_to.default_content()
            d.set_window_size(width, 900 if width > 500 else 844)
            time.sleep(1)
            frame = d.find_element(By.CSS_SELECTOR, "iframe[name$='/imageserving']")
            top = no_horizontal_scroll(d)
            d.switch_to.frame(frame)
            until(f"the rows at {width} px", lambda: len(rows(d)) == 3)
            FACTS[f"scroll_{width}"] = {"page": no_horizontal_scroll(d), "shell": top}
            # What sticks out, when something does (for the failure message).
            FACTS[f"wide_{width}"] = d.execute_script(
                "const w = document.documentElement.clientWidth; return Array.from(document.querySelectorAll('body *'))"
                ".filter(e => e.getBoundingClientRect().right > w + 1).slice(-6)"
                ".map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));")
            d.switch_to.default_content()
            d.save_screenshot(f"{shots}/cockpit-{width}.png")
            d.switch_to.frame(frame)

        # Cockpit's dark theme: the shell's setting reaches the page.
        d.switch_to.default_content()
        d.execute_script("localStorage.setItem('shell:style', 'dark');"
                         "window.dispatchEvent(new StorageEvent('storage', {key: 'shell:style'}));")
        frame = d.find_element(By.CSS_SELECTOR, "iframe[name$='/imageserving']")
        d.switch_to.frame(frame)
        FACTS["dark"] = until("the dark theme", lambda: "pf-theme-dark" in (
            d.find_element(By.TAG_NAME, "html").get_attribute("class") or ""), 10) and True
    finally:
        d.quit()


def plain(user, password):
    d = browser(1280, 900)
    try:
        login(d, user, password)
        before = pid(d, "svg")
        FACTS["pid_before"] = before
        click(d, "svg", "restart")
        text = until("the refusal", lambda: next((a for a in alerts(d) if "not allowed" in a), None), 60)
        FACTS["refusal"] = text
        time.sleep(2)
        FACTS["pid_after"] = pid(d, "svg")
        FACTS["systemd_pid_after"] = main_pid("imageserving-svg.service")
    finally:
        d.quit()


if __name__ == "__main__":
    if sys.argv[1] == "admin":
        admin(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        plain(sys.argv[2], sys.argv[3])
    print(json.dumps(FACTS))
