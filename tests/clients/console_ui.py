#!/usr/bin/env python3
"""Drives the web console in a real browser (Debian's headless Chromium through its
chromedriver, with selenium from PyPI, pinned and installed into .venv by `make selenium`) the
way a person would, and reports what it saw. tests/e2e/console.rs starts the server and Envoy,
runs this script, then checks the outcome through the admin API and through Envoy.

    TOLLGATE_TOKEN=<admin> TOLLGATE_VIEWER_TOKEN=<viewer> [TOLLGATE_TENANT_TOKEN=<tenant admin>] \
        console_ui.py --url http://127.0.0.1:8181 --screenshots DIR [--docs DIR]

Tokens come from the environment (never argv, which process listings show). The server must
hold 120 accounts `bulk-000` to `bulk-119` besides the bootstrap admin and the viewer. Prints one
JSON object on stdout; exits 1 (with the failure and a screenshot `failure.png` in the
screenshots directory) when a step does not behave.

Screenshots are taken at 1280x800 into --screenshots; with --docs they are also written there
(the README's pictures: `make console-screenshots`).
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
POLICY = '{kube_namespace="prometheus"}'
XSS = '<img src=x id=xss-img onerror="window.__xss=1"><script>window.__xss=2</script>"\'&amp;'


class Step(Exception):
    pass


class Console:
    def __init__(self, url, screenshots, docs):
        self.url = url.rstrip("/")
        self.screenshots = screenshots
        self.docs = docs
        self.profile = tempfile.mkdtemp(prefix="tollgate-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # Headless, and nothing that reaches for the network beyond the server under test.
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
            "--force-device-scale-factor=1",
            f"--user-data-dir={self.profile}",
        ):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        self.wait = WebDriverWait(self.driver, 10)
        self.viewport(1280, 800)

    def viewport(self, width, height):
        """Sizes the window so that the page itself gets width x height (screenshots are of it)."""
        self.driver.set_window_size(width, height)
        extra_w, extra_h = self.js("return [outerWidth - innerWidth, outerHeight - innerHeight]")
        self.driver.set_window_size(width + extra_w, height + extra_h)

    def close(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def by_id(self, element_id):
        return self.driver.find_element(By.ID, element_id)

    def visible(self, element_id):
        return self.wait.until(EC.visibility_of_element_located((By.ID, element_id)))

    def until(self, what, condition):
        try:
            return self.wait.until(lambda _driver: condition())
        except TimeoutException:
            raise Step(f"timed out waiting for {what}") from None

    def idle(self):
        """No API request in flight (the progress bar is hidden)."""
        self.until("the console to be idle", lambda: self.js("return document.getElementById('progress').hidden"))

    def type_into(self, element_id, text, clear=True):
        field = self.visible(element_id)
        if clear:
            field.clear()
        field.send_keys(text)
        return field

    def click(self, element_id):
        element = self.wait.until(EC.element_to_be_clickable((By.ID, element_id)))
        element.click()
        return element

    def confirm(self, ok=True):
        self.visible("confirm-dialog")
        self.click("confirm-ok" if ok else "confirm-cancel")
        self.until("the confirmation to close", lambda: not self.by_id("confirm-dialog").is_displayed())

    def shot(self, name):
        path = os.path.join(self.screenshots, name)
        self.driver.save_screenshot(path)
        if self.docs:
            shutil.copyfile(path, os.path.join(self.docs, name))
        return path

    def no_alert(self):
        try:
            alert = self.driver.switch_to.alert
        except NoAlertPresentException:
            return True
        text = alert.text
        alert.dismiss()
        raise Step(f"an alert was shown: {text!r}")

    def storage(self):
        return {
            "url": self.driver.current_url,
            "local": self.js("return Object.keys(localStorage).map(k => k + '=' + localStorage.getItem(k))"),
            "session": self.js("return Object.keys(sessionStorage).map(k => k + '=' + sessionStorage.getItem(k))"),
            "cookies": [c["name"] + "=" + c["value"] for c in self.driver.get_cookies()],
            "requests": self.js("return performance.getEntriesByType('resource').map(e => e.name)"),
            "history_length": self.js("return history.length"),
        }

    def account_rows(self):
        return self.js(
            "return [...document.querySelectorAll('#accounts-table tbody tr[data-name]')].map(r => r.dataset.name)"
        )

    def token_rows(self):
        return self.js(
            """return [...document.querySelectorAll('#tokens-table tbody tr[data-name]')].map(r => ({
                 name: r.dataset.name, expiring: r.classList.contains('expiring'),
                 cells: [...r.cells].slice(0, 5).map(c => c.textContent.trim())}))"""
        )

    def token_action(self, name, label):
        button = self.driver.find_element(By.CSS_SELECTOR, f'#tokens-table button[aria-label="{label} token {name}"]')
        button.click()

    def reveal(self):
        """Reads the token value shown once, checks the warning, copies, closes."""
        self.visible("reveal-dialog")
        value = self.by_id("reveal-value").get_attribute("value")
        warning = self.by_id("reveal-warning").text
        if "not be shown again" not in warning:
            raise Step(f"no warning with the token: {warning!r}")
        self.click("reveal-copy")
        self.until("the copy outcome", lambda: self.by_id("reveal-copied").text != "")
        copied = self.by_id("reveal-copied").text
        self.click("reveal-done")
        self.until("the token dialog to close", lambda: not self.by_id("reveal-dialog").is_displayed())
        if self.by_id("reveal-value").get_attribute("value"):
            raise Step("the token value stayed in the page after its dialog closed")
        return value, copied

    def create_token(self, name, expiry, date=None):
        self.type_into("token-name", name)
        Select(self.by_id("token-expiry")).select_by_value(expiry)
        if date:
            # A date input takes the keys of the locale's format; set it as a script would.
            self.js("document.getElementById('token-date').value = arguments[0]", date)
        self.click("token-create")
        value, copied = self.reveal()
        self.idle()
        self.until(f"token {name} in the list", lambda: name in [r["name"] for r in self.token_rows()])
        return value, copied


def run(console, out):
    c = console
    d = c.driver
    steps = out["steps"] = []

    def step(name):
        steps.append({"step": name, "at": round(time.monotonic() - started, 2)})

    started = time.monotonic()
    d.get(c.url + "/console/")
    c.visible("view-signin")
    step("sign-in page")
    out["title"] = d.title

    # A viewer: refused with a clear message, not signed in.
    c.type_into("signin-token", os.environ["TOLLGATE_VIEWER_TOKEN"] + Keys.ENTER)
    box = c.visible("signin-error")
    out["viewer"] = {"message": box.text, "signed_in": c.by_id("identity").is_displayed()}
    out["viewer"]["storage"] = c.storage()
    step("viewer refused")

    # The admin, by keyboard only.
    c.by_id("signin-token").send_keys(os.environ["TOLLGATE_TOKEN"] + Keys.ENTER)
    c.visible("identity")
    c.visible("view-accounts")
    c.idle()
    out["identity"] = {
        "name": c.by_id("who-name").text,
        "tenant": c.by_id("who-tenant").text,
        "role": c.by_id("who-role").text,
        "all_tenants": c.by_id("who-all").is_displayed(),
    }
    out["signed_in_storage"] = c.storage()
    step("admin signed in")

    # Accounts: paging and search over 120 bulk accounts.
    c.until("the first page", lambda: len(c.account_rows()) == 20)
    out["accounts_page1"] = c.account_rows()
    out["accounts_pager"] = c.by_id("accounts-page").text
    out["tenant_column"] = c.js("return getComputedStyle(document.querySelector('#accounts-table th.tenant-col')).display")
    c.shot("console-accounts.png")
    c.click("accounts-next")
    c.idle()
    c.until("page 2", lambda: c.by_id("accounts-page").text.startswith("Page 2 "))
    out["accounts_page2"] = c.account_rows()
    c.type_into("accounts-q", "bulk-11" + Keys.ENTER)
    c.idle()
    c.until("the search", lambda: c.by_id("accounts-page").text.startswith("Page 1 of 1 "))
    out["search"] = {"rows": c.account_rows(), "pager": c.by_id("accounts-page").text}
    c.type_into("accounts-q", "no-such-account" + Keys.ENTER)
    c.idle()
    c.until("an empty search", lambda: c.account_rows() == [])
    c.by_id("accounts-q").clear()
    c.by_id("accounts-q").send_keys(Keys.ENTER)
    c.idle()
    step("paging and search")

    # Create an account: the policy is checked live by the server, with the error's place.
    c.click("account-new")
    c.visible("account-dialog")
    c.type_into("f-name", "prom-reader")
    c.type_into("f-display", "Prometheus reader")
    c.type_into("f-owner", "sre@example.com")
    c.type_into("f-description", XSS)
    Select(c.by_id("f-role")).select_by_value("viewer")
    out["roles"] = c.js("return [...document.querySelectorAll('#f-role option')].map(o => o.value)")
    c.type_into("f-policy", '{kube_namespace="prometheus" env')
    c.until("the policy error", lambda: c.js("return !!document.getElementById('policy-error')"))
    out["policy_error"] = {
        "text": c.by_id("policy-error").text,
        "caret": c.js("const p = document.querySelector('#policy-check pre.caret'); return p ? p.textContent : null"),
        "column": c.by_id("policy-column").text,
        "invalid": c.by_id("f-policy").get_attribute("aria-invalid"),
    }
    c.type_into("f-policy", POLICY)
    c.until(
        "the canonical policy",
        lambda: c.js("const e = document.getElementById('policy-canonical'); return e && e.textContent") == POLICY,
    )
    out["policy_check"] = c.by_id("policy-check").text
    c.shot("console-policy.png")
    c.click("account-save")
    c.until("the new account's page", lambda: d.current_url.split("#")[-1].startswith("account/"))
    c.visible("view-account")
    c.idle()
    account_id = int(d.current_url.split("/")[-1])
    out["account_id"] = account_id
    step("account created")

    # The XSS payload in the description is text, and nothing ran.
    c.until("the description", lambda: c.by_id("account-description").text != "")
    out["xss"] = {
        "text": c.js("return document.getElementById('account-description').textContent"),
        "injected": c.js(
            "return document.querySelectorAll('#xss-img, #account-description img, #account-description script').length"
        ),
        "flag": c.js("return window.__xss === undefined ? null : window.__xss"),
        "no_alert": c.no_alert(),
    }
    step("xss is text")

    # Tokens: several, with every kind of expiry; the value is shown once.
    tokens = {}
    tokens["ci"], out["copied"] = c.create_token("ci", "30")
    tokens["grafana"], _ = c.create_token("grafana", "90")
    tokens["backup"], _ = c.create_token("backup", "365")
    tokens["forever"], _ = c.create_token("forever", "never")
    soon = (datetime.date.today() + datetime.timedelta(days=3)).isoformat()
    tokens["dated"], _ = c.create_token("dated", "date", date=soon)
    out["tokens_listed"] = c.token_rows()
    out["after_tokens_storage"] = c.storage()
    out["page_holds_a_token"] = any(value in d.page_source for value in tokens.values())
    c.js("window.scrollTo(0, document.getElementById('tokens-title').offsetTop - 60)")
    c.shot("console-tokens.png")
    c.js("window.scrollTo(0, 0)")
    step("tokens created")

    # Regenerate (confirmed), rename, revoke (cancelled once, then confirmed).
    c.token_action("grafana", "Regenerate")
    c.confirm()
    tokens["grafana_new"], _ = c.reveal()
    c.idle()
    c.token_action("backup", "Rename")
    c.visible("rename-dialog")
    c.type_into("rename-name", "backup-2026" + Keys.ENTER)
    c.until("the renamed token", lambda: "backup-2026" in [r["name"] for r in c.token_rows()])
    c.token_action("forever", "Revoke")
    c.confirm(ok=False)
    still = "forever" in [r["name"] for r in c.token_rows()]
    c.token_action("forever", "Revoke")
    c.confirm()
    c.idle()
    c.until("the revoked token to go", lambda: "forever" not in [r["name"] for r in c.token_rows()])
    out["revoke_cancel_kept"] = still
    out["tokens_after"] = [r["name"] for r in c.token_rows()]
    out["tokens"] = tokens
    step("regenerate, rename, revoke")

    # Edit: the display name.
    c.click("account-edit")
    c.visible("account-dialog")
    c.type_into("f-display", "Prometheus reader (CI)")
    c.click("account-save")
    c.until("the edited title", lambda: c.by_id("account-title").text == "Prometheus reader (CI)")
    step("edit")

    # An error from the API in place, with its reason: a second account of the same name.
    d.get(c.url + "/console/#accounts")
    c.visible("view-accounts")
    c.idle()
    c.click("account-new")
    c.visible("account-dialog")
    c.type_into("f-name", "prom-reader")
    c.click("account-save")
    box = c.visible("account-form-error")
    out["duplicate_error"] = box.text
    c.click("account-cancel")
    step("error in place")

    # Disable, then delete with confirmation (cancelled once).
    c.click("account-new")
    c.visible("account-dialog")
    c.type_into("f-name", "doomed")
    c.click("account-save")
    c.until("doomed's page", lambda: c.by_id("account-title").text == "doomed")
    c.idle()
    doomed = int(d.current_url.split("/")[-1])
    c.click("account-disable")
    c.confirm()
    c.until("the disabled badge", lambda: "disabled" in c.by_id("account-details").text)
    c.idle()
    c.click("account-delete")
    c.confirm(ok=False)
    kept = c.by_id("view-account").is_displayed()
    c.click("account-delete")
    c.confirm()
    c.until("the accounts list", lambda: c.by_id("view-accounts").is_displayed())
    out["doomed"] = {"id": doomed, "kept_on_cancel": kept}
    step("disable and delete")

    # Can I?
    d.get(c.url + "/console/#review")
    c.visible("view-review")
    reviews = {}
    for family in ("GET /api/v1/query", "POST /api/v1/write"):
        c.type_into("review-account", str(account_id))
        Select(c.by_id("review-family")).select_by_value(family)
        c.click("review-submit")
        c.idle()
        c.visible("review-result")
        reviews[family] = {
            "verdict": c.by_id("review-verdict").text,
            "reason": c.by_id("review-reason").text,
            "text": c.by_id("review-result").text,
        }
        c.js("document.getElementById('review-result').hidden = true")
    out["review"] = reviews
    step("can i")

    # Audit log, filtered by target.
    d.get(c.url + "/console/#audit")
    c.visible("view-audit")
    c.idle()
    c.type_into("audit-target", f"serviceaccount/{account_id}" + Keys.ENTER)
    c.idle()
    c.until("audit rows", lambda: c.js("return document.querySelectorAll('#audit-table tbody tr td').length") > 1)
    out["audit"] = c.js(
        "return [...document.querySelectorAll('#audit-table tbody tr')].map(r => [...r.cells].map(c => c.textContent.trim()))"
    )
    out["audit_pager"] = c.by_id("audit-page").text
    c.shot("console-audit.png")
    step("audit")

    # A narrow window: no sideways scrolling of the page itself.
    d.get(c.url + "/console/#accounts")
    c.visible("view-accounts")
    c.idle()
    # A phone-sized viewport (a window cannot get narrower than 500 px here).
    d.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 375, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    )
    time.sleep(0.3)
    out["narrow"] = c.js(
        "return {scroll: document.documentElement.scrollWidth, width: document.documentElement.clientWidth}"
    )
    c.shot("console-narrow.png")
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    step("narrow window")

    # Sign out: the token is gone from the tab.
    c.click("sign-out")
    c.visible("view-signin")
    out["signed_out_storage"] = c.storage()
    out["console_errors"] = [
        entry["message"] for entry in d.get_log("browser") if entry.get("level") == "SEVERE"
    ]
    step("signed out")

    # A tenant admin: its own tenant only, and no tenant column.
    tenant_token = os.environ.get("TOLLGATE_TENANT_TOKEN")
    if tenant_token:
        c.by_id("signin-token").send_keys(tenant_token + Keys.ENTER)
        c.visible("view-accounts")
        c.idle()
        c.until("the tenant's accounts", lambda: len(c.account_rows()) > 0)
        out["tenant_admin"] = {
            "tenant": c.by_id("who-tenant").text,
            "all_tenants": c.by_id("who-all").is_displayed(),
            "rows": c.account_rows(),
            "tenant_column": c.js(
                "return getComputedStyle(document.querySelector('#accounts-table th.tenant-col')).display"
            ),
        }
        c.click("sign-out")
        c.visible("view-signin")
        step("tenant admin")

    # An auditor (a custom role with accounts:read only): the console is read-only.
    reader_token = os.environ.get("TOLLGATE_READER_TOKEN")
    if reader_token:
        c.by_id("signin-token").send_keys(reader_token + Keys.ENTER)
        c.visible("view-accounts")
        c.idle()
        c.until("the accounts", lambda: len(c.account_rows()) > 0)
        out["reader"] = {
            "role": c.by_id("who-role").text,
            "note": c.by_id("readonly-note").is_displayed(),
            "new_account": c.by_id("account-new").is_displayed(),
            "write_controls": c.js(
                "return [...document.querySelectorAll('.write-only')].filter(e => e.offsetParent !== null).length"
            ),
        }
        c.click("sign-out")
        c.visible("view-signin")
        step("read-only auditor")
    out["seconds"] = round(time.monotonic() - started, 2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--docs")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    out = {"ok": False}
    console = Console(args.url, args.screenshots, args.docs)
    try:
        run(console, out)
        out["ok"] = True
    except Exception as error:  # report every failure with where it happened
        out["error"] = f"{type(error).__name__}: {error}"
        out["trace"] = traceback.format_exc()
        try:
            console.driver.save_screenshot(os.path.join(args.screenshots, "failure.png"))
            out["url_at_failure"] = console.driver.current_url
        except Exception:
            pass
    finally:
        console.close()
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
