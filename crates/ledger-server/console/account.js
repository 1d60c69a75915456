// One account: its balances now and as of a moment, its history with the
// running balance, a statement to download, its holds, and closing it.

import { call, may } from "./api.js";
import { h, fill, field, shortId, when, problemBlock, notify } from "./dom.js";
import { format, parseAmount } from "./money.js";
import { paymentForm, newKey } from "./move.js";

const PAGE_SIZE = 20;

/** A datetime-local value (the person's local time) as RFC 3339 UTC; null if empty or invalid. */
function toInstant(local) {
  if (!local) return null;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

function figure(label, value, name) {
  return h("div", { class: "figure" }, h("span", { class: "label" }, label), h("strong", { "data-figure": name }, value));
}

function balancesCard(account) {
  const body = h("div", { class: "figures" });
  async function load() {
    try {
      const balance = (await call("GET", `/accounts/${account.id}/balance`)).body;
      fill(body,
        figure("Balance", format(balance.balance, balance.currency), "balance"),
        "available" in balance ? figure("Available", format(balance.available, balance.currency), "available") : null,
        "held" in balance ? figure("Held", format(balance.held, balance.currency), "held") : null,
        "overdraft_limit" in account ? figure("Overdraft line", format(account.overdraft_limit, account.currency), "overdraft") : null);
    } catch (error) {
      fill(body, problemBlock(error));
    }
  }
  load();
  return { element: h("section", { class: "card", "aria-labelledby": "now-title" }, h("h2", { id: "now-title" }, "Now"), body), load };
}

/** The as-of picker: a moment, and the balance then, saying whether that answer is final. */
function asOfCard(account) {
  const out = h("div", { class: "out", "aria-live": "polite" });
  const form = h("form", { class: "card", id: "as-of", "aria-labelledby": "as-of-title" },
    h("h2", { id: "as-of-title" }, "Balance as of a moment"),
    field({ label: "Moment (your local time)", name: "at", type: "datetime-local", step: "1", required: true }),
    h("button", { type: "submit" }, "Show balance"), out);
  let asking = 0;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const at = toInstant(form.elements.at.value);
    if (!at) {
      fill(out, h("p", { class: "problem", role: "alert" }, "Pick a date and a time."));
      return;
    }
    const mine = ++asking;
    // A moment becomes final about a second after it passes; until then
    // the answer may still change, and the page says so and asks again.
    for (let attempt = 0; attempt < 40 && mine === asking; attempt += 1) {
      try {
        const balance = (await call("GET", `/accounts/${account.id}/balance?at=${encodeURIComponent(at)}`)).body;
        fill(out, h("p", { class: balance.final ? "final" : "pending", "data-final": String(balance.final) },
          `At ${when(balance.at)}: `, h("strong", { "data-figure": "as-of" }, format(balance.balance, balance.currency)), " — ",
          balance.final
            ? h("span", { class: "badge" }, "final: this answer can never change")
            : h("span", { class: "badge warn" }, "not final yet: a payment at or before this moment may still commit; checking again…")));
        if (balance.final) return;
      } catch (error) {
        fill(out, problemBlock(error));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  });
  return form;
}

/** System accounts (money entering or leaving the ledger) have ids below …1000. */
function isSystem(id) {
  return id.startsWith("00000000-0000-0000-0000-000000000");
}

function historyRow(account, entry) {
  const transfer = entry.transfer;
  const incoming = entry.direction === "in";
  const other = incoming ? transfer.source : transfer.destination;
  const sign = incoming ? "+" : "−";
  return h("tr", { "data-id": transfer.id },
    h("td", { "data-label": "When" }, when(transfer.created_at)),
    h("td", { "data-label": incoming ? "From" : "To" }, h("a", { href: `#/accounts/${other}` }, shortId(other))),
    h("td", { "data-label": "Amount", class: `num ${incoming ? "in" : "out"}` }, `${sign}${format(transfer.amount, transfer.currency)}`),
    h("td", { "data-label": "Balance after", class: "num" }, format(entry.balance_after, transfer.currency)),
    h("td", { "data-label": "Transfer" },
      h("a", { href: `#/journal/${transfer.id}`, title: "See its proof" }, shortId(transfer.id)),
      transfer.reverses ? h("small", {}, " reverses ", shortId(transfer.reverses)) : null,
      may("write") && !transfer.reverses && !isSystem(other) ? h("a", { class: "action", href: `#/move/reversal/${transfer.id}` }, "Reverse") : null));
}

function historyCard(account) {
  const cursors = [null];
  const body = h("div", {});
  let current = 0;
  async function load(index) {
    current = index;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursors[index]) params.set("cursor", cursors[index]);
    try {
      const page = (await call("GET", `/accounts/${account.id}/transfers?${params}`)).body;
      cursors[index + 1] = page.next_cursor;
      fill(body,
        page.items.length === 0 ? h("p", {}, "No payments yet.")
          : h("table", { class: "rows", id: "history" },
            h("thead", {}, h("tr", {}, ["When", "Other account", "Amount", "Balance after", "Transfer"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, page.items.map((entry) => historyRow(account, entry)))),
        h("div", { class: "pager" },
          h("button", { type: "button", disabled: index === 0, onclick: () => load(index - 1) }, "Newer"),
          h("span", {}, `Page ${index + 1}`),
          h("button", { type: "button", disabled: !page.next_cursor, onclick: () => load(index + 1) }, "Older")));
    } catch (error) {
      fill(body, problemBlock(error));
    }
  }
  load(0);
  return {
    element: h("section", { class: "card", "aria-labelledby": "history-title" },
      h("h2", { id: "history-title" }, "History, newest first"), body),
    reload: () => (current === 0 ? load(0) : undefined),
  };
}

function statementForm(account) {
  const out = h("div", { class: "out", "aria-live": "polite" });
  const form = h("form", { class: "card", "aria-labelledby": "statement-title" },
    h("h2", { id: "statement-title" }, "Statement (CSV)"),
    field({ label: "From (your local time)", name: "from", type: "datetime-local", step: "1", required: true }),
    field({ label: "To (not included)", name: "to", type: "datetime-local", step: "1", required: true }),
    h("button", { type: "submit" }, "Download CSV"), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const from = toInstant(form.elements.from.value);
    const to = toInstant(form.elements.to.value);
    if (!from || !to) {
      fill(out, h("p", { class: "problem", role: "alert" }, "Pick both moments."));
      return;
    }
    const params = new URLSearchParams({ from, to, format: "csv" });
    try {
      // Fetched with the key (a plain link could not carry it), then saved.
      const response = await call("GET", `/accounts/${account.id}/statement?${params}`, { raw: true });
      const blob = await response.blob();
      const link = h("a", { href: URL.createObjectURL(blob), download: `statement-${account.id}-${from.slice(0, 10)}.csv` }, "statement");
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      fill(out, h("p", { class: "ok", role: "status" }, `Downloaded ${blob.size} bytes.`));
    } catch (error) {
      fill(out, problemBlock(error));
    }
  });
  return form;
}

function holdsCard(account, afterChange) {
  const body = h("div", {});
  async function load() {
    try {
      const page = (await call("GET", `/accounts/${account.id}/holds?status=pending&limit=50`)).body;
      fill(body, page.items.length === 0 ? h("p", {}, "No pending holds.")
        : h("table", { class: "rows", id: "holds" },
          h("thead", {}, h("tr", {}, ["Hold", "To", "Amount", "Expires", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, page.items.map(holdRow))));
    } catch (error) {
      if (error.status === 404 && error.code === "not_found") {
        fill(body, h("p", {}, "This ledger does not keep holds yet."));
      } else fill(body, problemBlock(error));
    }
  }
  function holdRow(hold) {
    const out = h("div", { class: "out" });
    const amount = h("input", { type: "text", inputmode: "decimal", name: "amount", "aria-label": `Amount to capture from hold ${hold.id} (empty: all)`, placeholder: hold.amount, size: 10 });
    let captureKey = newKey();
    let voidKey = newKey();
    amount.addEventListener("input", () => { captureKey = newKey(); });
    const act = async (button, run) => {
      if (button.disabled) return;
      button.disabled = true;
      try {
        await run();
        notify("Hold updated.");
        await load();
        afterChange();
      } catch (error) {
        fill(out, problemBlock(error));
      } finally {
        button.disabled = false;
      }
    };
    const capture = h("button", { type: "button", onclick: (event) => act(event.currentTarget, async () => {
      const body = {};
      if (amount.value.trim()) {
        const parsed = parseAmount(amount.value, hold.currency);
        if (parsed.error) throw new Error(parsed.error);
        body.amount = parsed.amount;
      }
      await call("POST", `/holds/${hold.id}/capture`, { body, idempotencyKey: captureKey });
    }) }, "Capture");
    const voidButton = h("button", { type: "button", class: "secondary", onclick: (event) => act(event.currentTarget, () =>
      call("POST", `/holds/${hold.id}/void`, { idempotencyKey: voidKey })) }, "Void");
    return h("tr", { "data-id": hold.id },
      h("td", { "data-label": "Hold" }, shortId(hold.id)),
      h("td", { "data-label": "To" }, h("a", { href: `#/accounts/${hold.destination}` }, shortId(hold.destination))),
      h("td", { "data-label": "Amount", class: "num" }, format(hold.amount, hold.currency)),
      h("td", { "data-label": "Expires" }, when(hold.expires_at)),
      h("td", { "data-label": "Actions" }, may("write") ? [amount, capture, voidButton] : "—", out));
  }
  load();
  return { element: h("section", { class: "card", "aria-labelledby": "holds-title" }, h("h2", { id: "holds-title" }, "Pending holds"), body), load };
}

/** Changing the overdraft line (treasury keys; ledgers with overdraft lines). */
function overdraftForm(account, afterChange) {
  let idempotencyKey = newKey();
  const out = h("div", { class: "out", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Set overdraft line");
  const form = h("form", { class: "card", id: "overdraft", "aria-labelledby": "overdraft-title" },
    h("h2", { id: "overdraft-title" }, "Overdraft line"),
    field({ label: "How far below zero the balance may go", name: "limit", inputmode: "decimal", autocomplete: "off", value: account.overdraft_limit, required: true }),
    out, button);
  form.addEventListener("input", () => { idempotencyKey = newKey(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    const parsed = parseAmount(form.elements.limit.value, account.currency, { allowZero: true });
    if (parsed.error) {
      fill(out, h("p", { class: "problem", role: "alert" }, parsed.error));
      return;
    }
    button.disabled = true;
    fill(out);
    try {
      const updated = (await call("PUT", `/accounts/${account.id}/overdraft`, { body: { overdraft_limit: parsed.amount }, idempotencyKey })).body;
      idempotencyKey = newKey();
      account.overdraft_limit = updated.overdraft_limit;
      fill(out, h("p", { class: "ok", role: "status" }, `The line is now ${format(updated.overdraft_limit, updated.currency)}.`));
      afterChange();
    } catch (error) {
      fill(out, problemBlock(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function closeCard(account) {
  const out = h("div", { class: "out", "aria-live": "polite" });
  const confirm = h("button", { type: "button", class: "danger", hidden: true }, "Yes, close it for good");
  const start = h("button", { type: "button", class: "secondary" }, "Close account…");
  start.addEventListener("click", () => {
    confirm.hidden = false;
    fill(out, h("p", {}, "A closed account can never be reopened. Its balance must be zero."));
    confirm.focus();
  });
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    try {
      await call("DELETE", `/accounts/${account.id}`);
      notify("Account closed.");
      location.hash = `#/accounts/${account.id}/closed`;
    } catch (error) {
      fill(out, problemBlock(error));
    } finally {
      confirm.disabled = false;
    }
  });
  return h("section", { class: "card", "aria-labelledby": "close-title" }, h("h2", { id: "close-title" }, "Close"), start, confirm, out);
}

export async function accountView(id) {
  const account = (await call("GET", `/accounts/${id}`)).body;
  const open = !account.closed_at;
  const balances = balancesCard(account);
  const history = historyCard(account);
  const holds = holdsCard(account, () => { balances.load(); history.reload(); });
  const refresh = () => { balances.load(); history.reload(); holds.load(); };
  return h("section", { class: "account" },
    h("h1", {}, "Account ", shortId(account.id)),
    h("p", { class: "facts" },
      `${account.currency} · ${account.kind} · opened ${when(account.created_at)}`,
      account.closed_at ? ` · closed ${when(account.closed_at)}` : ""),
    account.metadata ? h("pre", { class: "metadata", "aria-label": "Metadata" }, JSON.stringify(account.metadata, null, 2)) : null,
    h("div", { class: "grid" },
      balances.element,
      asOfCard(account),
      open && may("write")
        ? paymentForm("transfer", { prefill: { source: account.id }, onDone: refresh })
        : null),
    open && may("write")
      ? h("p", { class: "actions" }, "More: ",
        may("treasury") ? [h("a", { href: `#/move/deposit/${account.id}` }, "Deposit"), " · ", h("a", { href: `#/move/withdrawal/${account.id}` }, "Withdraw"), " · "] : null,
        h("a", { href: `#/move/hold/${account.id}` }, "Place a hold"))
      : null,
    history.element,
    holds.element,
    h("div", { class: "grid" },
      statementForm(account),
      open && may("treasury") && "overdraft_limit" in account ? overdraftForm(account, refresh) : null,
      open && may("admin") ? closeCard(account) : null));
}
