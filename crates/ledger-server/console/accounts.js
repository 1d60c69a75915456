// The accounts: a list with cursor paging, search by id or by metadata, and
// the form that opens an account.

import { call, may, self } from "./api.js";
import { h, fill, field, shortId, when, problemBlock, notify } from "./dom.js";
import { currencies, format, parseAmount } from "./money.js";
import { newKey } from "./move.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE_SIZE = 20;

function accountRow(account) {
  const metadata = account.metadata ? JSON.stringify(account.metadata) : "";
  return h("tr", { "data-id": account.id },
    h("td", { "data-label": "Account" }, h("a", { href: `#/accounts/${account.id}` }, shortId(account.id))),
    h("td", { "data-label": "Balance", class: "num" }, format(account.balance, account.currency)),
    h("td", { "data-label": "Opened" }, when(account.created_at)),
    h("td", { "data-label": "Status" }, account.closed_at ? `closed ${when(account.closed_at)}` : account.kind === "system" ? "system" : "open"),
    h("td", { "data-label": "Metadata", class: "meta" }, metadata.length > 80 ? `${metadata.slice(0, 80)}…` : metadata));
}

/** A paged table of `GET /accounts?…`; `query` is extra parameters (a metadata filter). */
function accountList(query) {
  const cursors = [null];
  const body = h("div", { class: "list" });
  async function load(index) {
    const params = new URLSearchParams(query);
    params.set("limit", String(PAGE_SIZE));
    if (cursors[index]) params.set("cursor", cursors[index]);
    try {
      const page = (await call("GET", `/accounts?${params}`)).body;
      cursors[index + 1] = page.next_cursor;
      const older = h("button", { type: "button", disabled: !page.next_cursor, onclick: () => load(index + 1) }, "Next page");
      const newer = h("button", { type: "button", disabled: index === 0, onclick: () => load(index - 1) }, "Previous page");
      fill(body,
        page.items.length === 0
          ? h("p", {}, "No accounts match.")
          : h("table", { class: "rows" },
            h("thead", {}, h("tr", {}, ["Account", "Balance", "Opened", "Status", "Metadata"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, page.items.map(accountRow))),
        h("div", { class: "pager" }, newer, h("span", {}, `Page ${index + 1}`), older));
    } catch (error) {
      fill(body, problemBlock(error));
    }
  }
  load(0);
  return body;
}

function searchForms(results) {
  const byId = h("form", { class: "inline", "aria-label": "Find an account by id" },
    field({ label: "Account id", name: "id", autocomplete: "off", spellcheck: "false" }),
    h("button", { type: "submit" }, "Open"));
  byId.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = byId.elements.id.value.trim();
    if (!UUID.test(id)) {
      fill(results, h("p", { class: "problem", role: "alert" }, "That is not an account id (a UUID such as 0191…-…)."));
      return;
    }
    location.hash = `#/accounts/${id}`;
  });
  const byMetadata = h("form", { class: "inline", "aria-label": "Find accounts by metadata" },
    field({ label: "Metadata key", name: "key", autocomplete: "off", spellcheck: "false" }),
    field({ label: "equals", name: "value", autocomplete: "off", spellcheck: "false" }),
    h("button", { type: "submit" }, "Search"));
  byMetadata.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = byMetadata.elements.key.value.trim();
    if (!key) {
      fill(results, h("p", { class: "problem", role: "alert" }, "Give a metadata key to search by."));
      return;
    }
    fill(results,
      h("h2", {}, `Accounts whose metadata “${key}” is “${byMetadata.elements.value.value}”`),
      accountList([[`metadata[${key}]`, byMetadata.elements.value.value]]));
  });
  return h("div", { class: "card" }, h("h2", {}, "Find"), byId, byMetadata);
}

function openForm(onOpened) {
  const treasury = may("treasury");
  let idempotencyKey = newKey();
  let sending = false;
  const out = h("div", { class: "out", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Open account");
  const form = h("form", { class: "card", id: "open-account", "aria-labelledby": "open-title" },
    h("h2", { id: "open-title" }, "Open an account"),
    field({ label: "Currency", name: "currency", type: "select", options: currencies(), value: "USD" }),
    treasury ? field({ label: "Initial balance", name: "initial_balance", inputmode: "decimal", autocomplete: "off", placeholder: "0" }) : null,
    treasury ? field({ label: "Overdraft line", name: "overdraft_limit", inputmode: "decimal", autocomplete: "off", placeholder: "0", hint: "How far below zero the balance may go." }) : null,
    field({ label: "Metadata (JSON object, optional)", name: "metadata", type: "textarea", rows: 2, spellcheck: "false" }),
    out, button);
  form.addEventListener("input", () => { idempotencyKey = newKey(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending) return;
    sending = true;
    button.disabled = true;
    fill(out);
    try {
      const currency = form.elements.currency.value;
      const request = { currency };
      for (const name of ["initial_balance", "overdraft_limit"]) {
        const text = form.elements[name]?.value.trim();
        if (!text) continue;
        const parsed = parseAmount(text, currency, { allowZero: true });
        if (parsed.error) {
          fill(out, h("p", { class: "problem", role: "alert" }, `${name === "initial_balance" ? "Initial balance" : "Overdraft line"}: ${parsed.error}`));
          return;
        }
        request[name] = parsed.amount;
      }
      const metadata = form.elements.metadata.value.trim();
      if (metadata) {
        try {
          request.metadata = JSON.parse(metadata);
        } catch {
          fill(out, h("p", { class: "problem", role: "alert" }, "Metadata: not valid JSON."));
          return;
        }
      }
      const account = (await call("POST", "/accounts", { body: request, idempotencyKey })).body;
      idempotencyKey = newKey();
      fill(out, h("p", { class: "ok", role: "status", "data-id": account.id },
        "Opened ", h("a", { href: `#/accounts/${account.id}` }, shortId(account.id)),
        ` with ${format(account.balance, account.currency)}.`));
      notify("Account opened.");
      onOpened();
    } catch (error) {
      fill(out, problemBlock(error));
    } finally {
      sending = false;
      button.disabled = false;
    }
  });
  return form;
}

export async function accountsView() {
  const results = h("div", {});
  const refresh = () => fill(results, h("h2", {}, "All accounts"), accountList([]));
  refresh();
  return h("section", {},
    h("h1", {}, "Accounts"),
    // A key restricted to accounts may not open new ones.
    h("div", { class: "grid" }, searchForms(results), may("write") && !self()?.accounts ? openForm(refresh) : null),
    h("div", { class: "card" }, results));
}
