// The Tollgate web console: the CLI's workflows in a browser, over the admin API of this origin.
// Every piece of data reaches the page through textContent or DOM properties, never as HTML,
// so a description such as <img onerror=...> is shown as text.

import * as api from "./api.js";

const $ = (id) => document.getElementById(id);
const DAY = 24 * 60 * 60 * 1000;
const SOON_DAYS = 7;

/** An element with text (never parsed as HTML) and attributes. */
function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) {
    node.textContent = String(text);
  }
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") {
      node.className = value;
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(key, value);
    }
  }
  return node;
}

const state = {
  me: null,
  canWrite: false,
  accounts: { page: 1, search: "", size: 20, total: 0 },
  audit: { page: 1, size: 25, actor: "", target: "", total: 0 },
  account: null,
};

// ---------------------------------------------------------------------------------------------
// Errors and progress

function showError(box, err) {
  box.replaceChildren();
  if (!err) {
    box.hidden = true;
    return;
  }
  box.append(el("span", err.message || String(err)));
  if (err.reason) {
    box.append(" ", el("code", err.reason, { class: "reason" }));
  }
  box.hidden = false;
}

/** Runs `work` with `button` disabled and marked busy; errors land in `box`. */
async function withProgress(button, box, work) {
  const label = button ? button.textContent : "";
  if (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.classList.add("busy");
  }
  if (box) {
    showError(box, null);
  }
  try {
    return await work();
  } catch (err) {
    if (box) {
      showError(box, err);
    }
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.classList.remove("busy");
      button.textContent = label;
    }
  }
}

api.whenBusy((busy) => {
  $("progress").hidden = !busy;
  document.body.setAttribute("aria-busy", busy ? "true" : "false");
});

api.whenUnauthorized((err) => {
  signOut(`Signed out: the server refused the token (${err.message}).`, err.reason);
});

// ---------------------------------------------------------------------------------------------
// Formatting

function formatTime(iso) {
  if (!iso) {
    return "—";
  }
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) {
    return iso;
  }
  return at.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function relative(iso) {
  const days = Math.round((new Date(iso).getTime() - Date.now()) / DAY);
  if (days === 0) {
    return "today";
  }
  return days > 0 ? `in ${days} day${days === 1 ? "" : "s"}` : `${-days} day${days === -1 ? "" : "s"} ago`;
}

function timeCell(iso, { future } = {}) {
  const cell = el("td");
  if (!iso) {
    cell.textContent = future ? "never" : "—";
    return cell;
  }
  const time = el("time", formatTime(iso), { datetime: iso });
  cell.append(time, el("span", ` (${relative(iso)})`, { class: "muted" }));
  return cell;
}

// ---------------------------------------------------------------------------------------------
// Dialogs

function confirmAction(title, message, okLabel) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-message").textContent = message;
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** Shows a token value once. It is held by the input only, and cleared when the dialog closes. */
function revealToken(issued) {
  const dialog = $("reveal-dialog");
  $("reveal-name").textContent = `“${issued.name}”`;
  $("reveal-value").value = issued.token;
  $("reveal-copied").textContent = "";
  dialog.showModal();
  $("reveal-value").select();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        $("reveal-value").value = "";
        resolve();
      },
      { once: true },
    );
  });
}

$("reveal-copy").addEventListener("click", async () => {
  const value = $("reveal-value").value;
  try {
    await navigator.clipboard.writeText(value);
    $("reveal-copied").textContent = "Copied to the clipboard.";
  } catch {
    // No clipboard permission (or an insecure context): leave it selected for Ctrl+C.
    $("reveal-value").select();
    $("reveal-copied").textContent = "Select-and-copy: press Ctrl+C (the value is selected).";
  }
});
$("reveal-done").addEventListener("click", () => $("reveal-dialog").close());

// ---------------------------------------------------------------------------------------------
// Sign-in

async function signIn(value) {
  api.setToken(value);
  try {
    state.me = await api.call("GET", "/api/v1/whoami", { quiet401: true });
  } catch (err) {
    api.clearToken();
    if (err.status === 403) {
      err.message = `This token cannot use the console: its role does not allow reading service accounts (it needs accounts:read). ${err.message}`;
    }
    throw err;
  }
  api.forgetRoles();
  state.canWrite = state.me.scopes.includes("accounts:write");
  showIdentity();
}

function showIdentity() {
  const { account } = state.me;
  $("who-name").textContent = account.displayName || account.name;
  $("who-name").title = account.name;
  $("who-tenant").textContent = account.tenant;
  $("who-role").textContent = account.role;
  $("who-all").hidden = !account.allTenants;
  $("identity").hidden = false;
  $("nav").hidden = false;
  document.body.classList.toggle("read-only", !state.canWrite);
  document.body.classList.toggle("all-tenants", account.allTenants);
  $("readonly-note").hidden = state.canWrite;
}

function signOut(message, reason) {
  api.clearToken();
  state.me = null;
  $("identity").hidden = true;
  $("nav").hidden = true;
  for (const dialog of document.querySelectorAll("dialog[open]")) {
    dialog.close();
  }
  showError($("signin-error"), message ? { message, reason } : null);
  if (window.location.hash !== "" && window.location.hash !== "#signin") {
    history.replaceState(null, "", "#signin");
  }
  route();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("signin-token");
  const value = input.value.trim();
  if (!value) {
    showError($("signin-error"), { message: "Paste a token first." });
    input.focus();
    return;
  }
  const ok = await withProgress($("signin-submit"), $("signin-error"), async () => {
    await signIn(value);
    return true;
  });
  input.value = "";
  if (ok) {
    history.replaceState(null, "", "#accounts");
    route();
  } else {
    input.focus();
  }
});

$("sign-out").addEventListener("click", () => signOut());

// ---------------------------------------------------------------------------------------------
// Routing: the hash names the view (never a token).

const VIEWS = ["signin", "accounts", "account", "review", "audit"];

function show(view) {
  for (const name of VIEWS) {
    $(`view-${name}`).hidden = name !== view;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.dataset.view === view || (view === "account" && link.dataset.view === "accounts");
    if (current) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
}

function route() {
  if (!state.me) {
    show("signin");
    $("signin-token").focus();
    return;
  }
  const hash = window.location.hash.replace(/^#/, "");
  const [view, arg] = hash.split("/");
  if (view === "account" && /^\d+$/.test(arg || "")) {
    show("account");
    loadAccount(Number(arg));
  } else if (view === "review") {
    show("review");
  } else if (view === "audit") {
    show("audit");
    loadAudit();
  } else {
    show("accounts");
    loadAccounts();
  }
}

window.addEventListener("hashchange", route);

// ---------------------------------------------------------------------------------------------
// Accounts

function statusBadge(account) {
  return account.disabled ? el("span", "disabled", { class: "badge badge-off" }) : el("span", "active", { class: "badge badge-ok" });
}

function policyText(policy) {
  return policy ? el("code", policy, { class: "policy" }) : el("span", "unrestricted", { class: "muted" });
}

async function loadAccounts() {
  const s = state.accounts;
  const body = $("accounts-table").tBodies[0];
  await withProgress(null, $("accounts-error"), async () => {
    const page = await api.call("GET", "/api/v1/serviceaccounts", {
      query: { search: s.search, page: s.page, pageSize: s.size },
    });
    s.total = page.totalCount;
    const rows = page.serviceAccounts.map((account) => {
      const row = el("tr", null, { dataset: { id: String(account.id), name: account.name } });
      const name = el("td");
      name.append(el("a", account.name, { href: `#account/${account.id}`, class: "account-link" }));
      if (account.displayName) {
        name.append(el("div", account.displayName, { class: "muted small" }));
      }
      const actions = el("td", null, { class: "row-actions" });
      actions.append(el("a", "Open", { href: `#account/${account.id}`, class: "button secondary small-btn" }));
      row.append(
        name,
        el("td", account.tenant, { class: "tenant-col" }),
        el("td", account.role),
        el("td", null),
        el("td", null),
        actions,
      );
      row.cells[3].append(policyText(account.labelPolicy));
      row.cells[4].append(statusBadge(account));
      return row;
    });
    if (rows.length === 0) {
      const empty = el("tr");
      empty.append(el("td", s.search ? "No account matches." : "No accounts yet.", { colspan: "6", class: "muted" }));
      rows.push(empty);
    }
    body.replaceChildren(...rows);
    const pages = Math.max(1, Math.ceil(s.total / s.size));
    $("accounts-page").textContent = `Page ${s.page} of ${pages} · ${s.total} account${s.total === 1 ? "" : "s"}`;
    $("accounts-prev").disabled = s.page <= 1;
    $("accounts-next").disabled = s.page >= pages;
  });
}

$("accounts-search").addEventListener("submit", (event) => {
  event.preventDefault();
  state.accounts.search = $("accounts-q").value.trim();
  state.accounts.size = Number($("accounts-size").value);
  state.accounts.page = 1;
  loadAccounts();
});
$("accounts-size").addEventListener("change", () => {
  state.accounts.size = Number($("accounts-size").value);
  state.accounts.page = 1;
  loadAccounts();
});
$("accounts-prev").addEventListener("click", () => {
  state.accounts.page = Math.max(1, state.accounts.page - 1);
  loadAccounts();
});
$("accounts-next").addEventListener("click", () => {
  state.accounts.page += 1;
  loadAccounts();
});

// ---------------------------------------------------------------------------------------------
// One account and its tokens

function detail(list, term, value) {
  list.append(el("dt", term));
  const dd = el("dd");
  if (value instanceof Node) {
    dd.append(value);
  } else {
    dd.textContent = value === "" || value === undefined || value === null ? "—" : String(value);
  }
  list.append(dd);
}

async function loadAccount(id) {
  $("account-title").textContent = "";
  $("account-details").replaceChildren();
  $("tokens-table").tBodies[0].replaceChildren();
  showError($("tokens-error"), null);
  await withProgress(null, $("account-error"), async () => {
    const account = await api.call("GET", `/api/v1/serviceaccounts/${id}`);
    state.account = account;
    $("account-title").textContent = account.displayName || account.name;
    const list = $("account-details");
    detail(list, "Name", account.name);
    if (state.me.account.allTenants) {
      detail(list, "Tenant", account.tenant);
    }
    detail(list, "Role", account.role);
    detail(list, "Label policy", policyText(account.labelPolicy));
    detail(list, "Status", statusBadge(account));
    detail(list, "Owner", account.ownerEmail);
    const description = el("dd", account.description || "—", { id: "account-description", class: "description" });
    list.append(el("dt", "Description"), description);
    detail(list, "Created", `${formatTime(account.createdAt)} by ${account.createdBy}`);
    $("account-disable").textContent = account.disabled ? "Enable" : "Disable";
    await loadTokens(id);
  });
}

async function loadTokens(id) {
  // One page of the most an API page holds; an account with more says so below the table.
  const page = await api.call("GET", `/api/v1/serviceaccounts/${id}/tokens?pageSize=1000`);
  const tokens = page.tokens;
  const soon = Date.now() + SOON_DAYS * DAY;
  const rows = tokens.map((token) => {
    const expires = token.expiresAt ? new Date(token.expiresAt).getTime() : null;
    const expiringSoon = expires !== null && expires <= soon;
    const row = el("tr", null, { dataset: { id: String(token.id), name: token.name }, class: expiringSoon ? "expiring" : "" });
    const name = el("td", token.name, { class: "token-name" });
    if (expiringSoon) {
      name.append(" ", el("span", expires <= Date.now() ? "expired" : "expires soon", { class: "badge badge-warn" }));
    }
    const actions = el("td", null, { class: "row-actions write-only" });
    const rename = el("button", "Rename", { type: "button", class: "secondary small-btn", "aria-label": `Rename token ${token.name}` });
    const regenerate = el("button", "Regenerate", { type: "button", class: "secondary small-btn", "aria-label": `Regenerate token ${token.name}` });
    const revoke = el("button", "Revoke", { type: "button", class: "danger small-btn", "aria-label": `Revoke token ${token.name}` });
    rename.addEventListener("click", () => renameToken(id, token));
    regenerate.addEventListener("click", () => regenerateToken(id, token, regenerate));
    revoke.addEventListener("click", () => revokeToken(id, token, revoke));
    actions.append(rename, regenerate, revoke);
    row.append(name, el("td", null), el("td"), el("td"), el("td"), actions);
    row.cells[1].append(el("code", token.hint, { class: "hint" }));
    row.replaceChild(timeCell(token.createdAt), row.cells[2]);
    row.replaceChild(timeCell(token.expiresAt, { future: true }), row.cells[3]);
    row.replaceChild(timeCell(token.lastUsedAt), row.cells[4]);
    return row;
  });
  if (rows.length === 0) {
    const empty = el("tr");
    empty.append(el("td", "No tokens.", { colspan: "6", class: "muted" }));
    rows.push(empty);
  }
  if (page.totalCount > tokens.length) {
    const more = el("tr");
    more.append(el("td", `Showing ${tokens.length} of ${page.totalCount} tokens (use the CLI's token list --page for the rest).`, { colspan: "6", class: "muted" }));
    rows.push(more);
  }
  $("tokens-table").tBodies[0].replaceChildren(...rows);
}

$("token-expiry").addEventListener("change", () => {
  const byDate = $("token-expiry").value === "date";
  for (const node of document.querySelectorAll(".date-field")) {
    node.hidden = !byDate;
  }
  if (byDate) {
    $("token-date").focus();
  }
});

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const account = state.account;
  const body = { name: $("token-name").value.trim() };
  const choice = $("token-expiry").value;
  if (/^\d+$/.test(choice)) {
    body.ttlSeconds = Number(choice) * 24 * 60 * 60;
  } else if (choice === "date") {
    const date = $("token-date").value;
    if (!date) {
      showError($("tokens-error"), { message: "Choose the expiry date." });
      $("token-date").focus();
      return;
    }
    body.expiresAt = `${date}T23:59:59Z`;
  }
  const issued = await withProgress($("token-create"), $("tokens-error"), () =>
    api.call("POST", `/api/v1/serviceaccounts/${account.id}/tokens`, { body }),
  );
  if (issued) {
    $("token-name").value = "";
    $("token-expiry").value = "30";
    $("token-expiry").dispatchEvent(new Event("change"));
    await revealToken(issued);
    await withProgress(null, $("tokens-error"), () => loadTokens(account.id));
    $("token-name").focus();
  }
});

async function regenerateToken(accountId, token, button) {
  const ok = await confirmAction(
    "Regenerate token?",
    `Token “${token.name}” gets a new value. The current value stops working at once, everywhere.`,
    "Regenerate",
  );
  if (!ok) {
    return;
  }
  const issued = await withProgress(button, $("tokens-error"), () =>
    api.call("POST", `/api/v1/serviceaccounts/${accountId}/tokens/${token.id}/regenerate`),
  );
  if (issued) {
    await revealToken(issued);
    await withProgress(null, $("tokens-error"), () => loadTokens(accountId));
  }
}

async function revokeToken(accountId, token, button) {
  const ok = await confirmAction(
    "Revoke token?",
    `Token “${token.name}” stops working at once, everywhere. This cannot be undone.`,
    "Revoke",
  );
  if (!ok) {
    return;
  }
  const done = await withProgress(button, $("tokens-error"), async () => {
    await api.call("DELETE", `/api/v1/serviceaccounts/${accountId}/tokens/${token.id}`);
    return true;
  });
  if (done) {
    await withProgress(null, $("tokens-error"), () => loadTokens(accountId));
  }
}

let renaming = null;
function renameToken(accountId, token) {
  renaming = { accountId, token };
  $("rename-name").value = token.name;
  showError($("rename-error"), null);
  $("rename-dialog").showModal();
  $("rename-name").select();
}
$("rename-cancel").addEventListener("click", () => $("rename-dialog").close());
$("rename-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { accountId, token } = renaming;
  const done = await withProgress($("rename-save"), $("rename-error"), async () => {
    await api.call("PATCH", `/api/v1/serviceaccounts/${accountId}/tokens/${token.id}`, {
      body: { name: $("rename-name").value.trim() },
    });
    return true;
  });
  if (done) {
    $("rename-dialog").close();
    await withProgress(null, $("tokens-error"), () => loadTokens(accountId));
  }
});

$("account-disable").addEventListener("click", async () => {
  const account = state.account;
  const disabling = !account.disabled;
  if (disabling) {
    const ok = await confirmAction(
      "Disable account?",
      `“${account.name}” and every token of it stop working until it is enabled again.`,
      "Disable",
    );
    if (!ok) {
      return;
    }
  }
  const done = await withProgress($("account-disable"), $("account-error"), async () => {
    await api.call("PATCH", `/api/v1/serviceaccounts/${account.id}`, { body: { disabled: disabling } });
    return true;
  });
  if (done) {
    loadAccount(account.id);
  }
});

$("account-delete").addEventListener("click", async () => {
  const account = state.account;
  const ok = await confirmAction(
    "Delete account?",
    `“${account.name}” is deleted and every token of it revoked. This cannot be undone.`,
    "Delete",
  );
  if (!ok) {
    return;
  }
  const done = await withProgress($("account-delete"), $("account-error"), async () => {
    await api.call("DELETE", `/api/v1/serviceaccounts/${account.id}`);
    return true;
  });
  if (done) {
    window.location.hash = "#accounts";
  }
});

// ---------------------------------------------------------------------------------------------
// Create and edit: the label policy is checked live by the server's own parser.

let editing = null;

async function fillRoles(selected) {
  const select = $("f-role");
  const roles = await api.roles();
  select.replaceChildren(...roles.map((role) => el("option", role.name, { value: role.name })));
  select.value = selected || (roles.some((r) => r.name === "viewer") ? "viewer" : roles[0].name);
  describeRole(roles);
  select.onchange = () => describeRole(roles);
}

function describeRole(roles) {
  const role = roles.find((r) => r.name === $("f-role").value);
  $("f-role-help").textContent = role && role.scopes ? `Scopes: ${role.scopes.join(", ")}` : "";
}

async function openAccountForm(account) {
  editing = account;
  const form = $("account-form");
  form.reset();
  showError($("account-form-error"), null);
  $("account-dialog-title").textContent = account ? `Edit ${account.name}` : "New service account";
  $("account-save").textContent = account ? "Save" : "Create";
  $("f-name").value = account ? account.name : "";
  $("f-display").value = account ? account.displayName : "";
  $("f-owner").value = account ? account.ownerEmail : "";
  $("f-description").value = account ? account.description : "";
  $("f-policy").value = account ? account.labelPolicy : "";
  $("f-tenant").value = account ? account.tenant : "";
  $("f-tenant").disabled = Boolean(account);
  const loaded = await withProgress(null, $("account-form-error"), async () => {
    await fillRoles(account && account.role);
    return true;
  });
  $("account-dialog").showModal();
  if (!loaded) {
    $("account-save").disabled = true;
  }
  $("f-name").focus();
  checkPolicy();
}

$("account-new").addEventListener("click", () => openAccountForm(null));
$("account-edit").addEventListener("click", () => openAccountForm(state.account));
$("account-cancel").addEventListener("click", () => $("account-dialog").close());

let policySeq = 0;
let policyTimer = null;

function explainMatcher(m) {
  const ops = { "=": "is", "!=": "is not", "=~": "matches the regex", "!~": "does not match the regex" };
  const item = el("li");
  item.append(el("code", m.name), ` ${ops[m.op] || m.op} `, el("code", JSON.stringify(m.value)));
  return item;
}

async function checkPolicy() {
  const text = $("f-policy").value;
  const box = $("policy-check");
  const seq = ++policySeq;
  box.classList.add("checking");
  let result;
  try {
    result = await api.call("POST", "/api/v1/labelpolicies/validate", { body: { policy: text } });
  } catch (err) {
    if (seq === policySeq) {
      box.classList.remove("checking");
      box.replaceChildren(el("p", `Could not check the policy: ${err.message}`, { class: "error-text" }));
    }
    return;
  }
  if (seq !== policySeq) {
    return; // a newer keystroke's answer will follow
  }
  box.classList.remove("checking");
  const parts = [];
  const limits = result.limits;
  if (result.valid) {
    $("f-policy").setAttribute("aria-invalid", "false");
    if (result.selectors.length === 0) {
      parts.push(el("p", "✓ Unrestricted: the account sees every series, log and trace of its tenant.", { class: "ok-text" }));
    } else {
      const head = el("p", "✓ Valid. Canonical form: ", { class: "ok-text" });
      head.append(el("code", result.canonical, { id: "policy-canonical" }));
      parts.push(head);
      const list = el("ul", null, { class: "explain" });
      if (result.selectors.length === 1) {
        parts.push(el("p", "The account sees only data where all of these hold:"));
        list.append(...result.selectors[0].matchers.map(explainMatcher));
      } else {
        parts.push(el("p", "The account sees data matching any one of these selectors:"));
        result.selectors.forEach((selector, i) => {
          const item = el("li", `selector ${i + 1}, all of:`);
          const inner = el("ul");
          inner.append(...selector.matchers.map(explainMatcher));
          item.append(inner);
          list.append(item);
        });
      }
      parts.push(list);
    }
    if (result.withinCeiling === false) {
      const warn = el("p", "✗ Wider than your own policy, so you may not grant it. Yours: ", { class: "error-text" });
      warn.append(el("code", result.ceiling || "unrestricted"));
      parts.push(warn);
    }
  } else {
    $("f-policy").setAttribute("aria-invalid", "true");
    const line = el("p", `✗ ${result.error} `, { class: "error-text", id: "policy-error" });
    line.append(el("code", result.reason, { class: "reason" }));
    parts.push(line);
    if (result.column) {
      // Where: the text around the column (characters, not bytes) with a caret under it.
      const chars = Array.from(text);
      const from = Math.max(0, result.column - 1 - 40);
      const shown = (from > 0 ? "…" : "") + chars.slice(from, from + 80).join("");
      const at = result.column - 1 - from + (from > 0 ? 1 : 0);
      const pointer = el("pre", null, { class: "caret" });
      pointer.append(shown, "\n", `${" ".repeat(at)}^`);
      parts.push(pointer, el("p", `at column ${result.column}`, { class: "help", id: "policy-column" }));
    }
  }
  parts.push(
    el(
      "p",
      `Limits: at most ${limits.maxSelectors} selectors joined by “or”, ${limits.maxMatchersPerSelector} matchers each` +
        `${limits.uniqueLabelNames ? ", one matcher per label name" : ""}; names up to ${limits.maxLabelNameBytes} bytes, values up to ${limits.maxLabelValueBytes}.`,
      { class: "help" },
    ),
  );
  box.replaceChildren(...parts);
}

$("f-policy").addEventListener("input", () => {
  clearTimeout(policyTimer);
  $("policy-check").classList.add("checking");
  policyTimer = setTimeout(checkPolicy, 200);
});

$("account-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = {
    name: $("f-name").value.trim(),
    displayName: $("f-display").value,
    description: $("f-description").value,
    ownerEmail: $("f-owner").value.trim(),
    role: $("f-role").value,
    labelPolicy: $("f-policy").value,
  };
  const saved = await withProgress($("account-save"), $("account-form-error"), async () => {
    if (editing) {
      const changes = {};
      const before = {
        name: editing.name,
        displayName: editing.displayName,
        description: editing.description,
        ownerEmail: editing.ownerEmail,
        role: editing.role,
        labelPolicy: editing.labelPolicy,
      };
      for (const [key, value] of Object.entries(fields)) {
        if (value !== before[key]) {
          changes[key] = value;
        }
      }
      return api.call("PATCH", `/api/v1/serviceaccounts/${editing.id}`, { body: changes });
    }
    const body = { ...fields };
    const tenant = $("f-tenant").value.trim();
    if (tenant && state.me.account.allTenants) {
      body.tenant = tenant;
    }
    return api.call("POST", "/api/v1/serviceaccounts", { body });
  });
  if (saved) {
    $("account-dialog").close();
    if (editing) {
      loadAccount(saved.id);
    } else {
      window.location.hash = `#account/${saved.id}`;
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Can I?

$("review-family").addEventListener("change", () => {
  const value = $("review-family").value;
  if (value) {
    const [method, path] = value.split(" ");
    $("review-method").value = method;
    $("review-path").value = path;
  }
});

$("review-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const who = $("review-account").value.trim();
  const body = { method: $("review-method").value, path: $("review-path").value.trim() };
  body.account = /^\d+$/.test(who) ? Number(who) : who;
  const tenant = $("review-tenant").value.trim();
  if (tenant && typeof body.account === "string") {
    body.tenant = tenant;
  }
  const labels = $("review-labels").value.trim();
  if (labels) {
    body.labels = labels;
  }
  const box = $("review-result");
  box.hidden = true;
  const answer = await withProgress($("review-submit"), $("review-error"), () =>
    api.call("POST", "/api/v1/access-review", { body }),
  );
  if (answer) {
    const verdict = el("p", answer.allowed ? "Allowed" : "Denied", { class: answer.allowed ? "verdict ok" : "verdict no", id: "review-verdict" });
    const list = el("dl", null, { class: "details" });
    detail(list, "Request", `${body.method} ${body.path}`);
    detail(list, "Scope needed", answer.scope || "no route matches (denied by default)");
    const reason = el("code", answer.reason, { id: "review-reason" });
    detail(list, "Reason", reason);
    detail(list, "Explanation", answer.message);
    box.replaceChildren(verdict, list);
    box.classList.toggle("allowed", answer.allowed);
    box.hidden = false;
  }
});

// ---------------------------------------------------------------------------------------------
// Audit log

async function loadAudit() {
  const s = state.audit;
  await withProgress(null, $("audit-error"), async () => {
    const page = await api.call("GET", "/api/v1/audit", {
      query: { actor: s.actor, target: s.target, page: s.page, pageSize: s.size },
    });
    s.total = page.totalCount;
    const rows = page.entries.map((entry) => {
      const row = el("tr", null, { class: entry.outcome === "ok" ? "" : "failed" });
      const target = el("td");
      target.append(el("code", entry.target));
      const outcome = el("td");
      outcome.append(el("span", entry.outcome, { class: entry.outcome === "ok" ? "badge badge-ok" : "badge badge-off" }));
      row.append(
        timeCell(entry.at),
        el("td", entry.actor),
        el("td", entry.tenant, { class: "tenant-col" }),
        el("td", entry.action),
        target,
        outcome,
      );
      return row;
    });
    if (rows.length === 0) {
      const empty = el("tr");
      empty.append(el("td", "No entries.", { colspan: "6", class: "muted" }));
      rows.push(empty);
    }
    $("audit-table").tBodies[0].replaceChildren(...rows);
    const pages = Math.max(1, Math.ceil(s.total / s.size));
    $("audit-page").textContent = `Page ${s.page} of ${pages} · ${s.total} entr${s.total === 1 ? "y" : "ies"}`;
    $("audit-prev").disabled = s.page <= 1;
    $("audit-next").disabled = s.page >= pages;
  });
}

$("audit-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.audit.actor = $("audit-actor").value.trim();
  state.audit.target = $("audit-target").value.trim();
  state.audit.page = 1;
  loadAudit();
});
$("audit-prev").addEventListener("click", () => {
  state.audit.page = Math.max(1, state.audit.page - 1);
  loadAudit();
});
$("audit-next").addEventListener("click", () => {
  state.audit.page += 1;
  loadAudit();
});

// ---------------------------------------------------------------------------------------------
// Start: a token already in this tab's session (a reload) signs in again.

async function start() {
  const saved = api.token();
  if (saved) {
    try {
      await signIn(saved);
    } catch (err) {
      showError($("signin-error"), err);
    }
  }
  route();
  document.body.classList.add("ready");
}

start();
